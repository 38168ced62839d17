//! Masking secret values in text: what "a secret is shown as `***`" means, in one place.
//!
//! Every output path (the executor's facts, the audit store, the displays) masks with
//! [`SecretMask`], so they cannot disagree. Masking is by whole value, never line by line: a
//! secret that spans lines (a PEM key) is found across its line breaks. Secrets may overlap in a
//! text (`abcdef` and `defghij` in `abcdefghij`), so replacing them one after the other would
//! leave part of one in clear (`abc***`): instead every byte covered by any occurrence of any
//! secret is marked first, and then each maximal run of marked bytes becomes one `***`.

use crate::Capture;

/// What a secret value is replaced with.
pub const MASK: &str = "***";

/// A set of secret values to mask. Empty values are ignored (masking "" would mask between
/// every character).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretMask {
    /// Distinct, non-empty, longest first.
    values: Vec<String>,
}

impl std::fmt::Debug for SecretMask {
    // Debug output ends up in logs: the count, never a value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretMask({} values)", self.values.len())
    }
}

impl SecretMask {
    pub fn new(values: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let mut mask = SecretMask::default();
        mask.extend(values);
        mask
    }

    /// Adds values to mask from now on.
    pub fn extend(&mut self, values: impl IntoIterator<Item = impl Into<String>>) {
        self.values.extend(
            values
                .into_iter()
                .map(Into::into)
                .filter(|v: &String| !v.is_empty()),
        );
        self.values
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.values.dedup();
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// True when `text` holds any of the values.
    pub fn found_in(&self, text: &str) -> bool {
        self.values.iter().any(|v| text.contains(v.as_str()))
    }

    /// `text` with every run of bytes covered by an occurrence of a value replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        if !self.values.iter().any(|v| text.contains(v.as_str())) {
            return text.to_string();
        }
        // An occurrence of a UTF-8 value in UTF-8 text starts and ends on character
        // boundaries, and so does every run of them: the result is UTF-8 again.
        let masked = self.mask_bytes(text.as_bytes());
        String::from_utf8(masked)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// [`SecretMask::mask`] over bytes (the store's raw values).
    pub fn mask_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let covered = self.covered(bytes);
        let mut out = Vec::with_capacity(bytes.len());
        let mut in_run = false;
        for (&byte, &hidden) in bytes.iter().zip(&covered) {
            if hidden {
                if !in_run {
                    out.extend_from_slice(MASK.as_bytes());
                }
            } else {
                out.push(byte);
            }
            in_run = hidden;
        }
        out
    }

    /// Which bytes of `bytes` belong to an occurrence of some value (occurrences of one value
    /// may overlap each other too: `aa` twice in `aaa`).
    fn covered(&self, bytes: &[u8]) -> Vec<bool> {
        let mut covered = vec![false; bytes.len()];
        for value in &self.values {
            let needle = value.as_bytes();
            let Some(&first) = needle.first() else {
                continue;
            };
            let mut from = 0;
            while let Some(at) = find(&bytes[from..], needle, first) {
                let start = from + at;
                covered[start..start + needle.len()].fill(true);
                from = start + 1;
            }
        }
        covered
    }

    /// Masks a capture's head and tail. A value cut by the boundary between them cannot be
    /// recognised whole, so the parts of each value at the boundary are masked too: a head that
    /// ends with a value's prefix, a tail that starts with its suffix (at least 2 bytes each).
    /// `bytes` and `sha256` describe the stream as received and are kept.
    pub fn mask_capture(&self, capture: &Capture) -> Capture {
        let mut head = self.mask(&capture.head);
        let mut tail = self.mask(&capture.tail);
        if capture.truncated {
            for value in &self.values {
                if let Some(cut) = partial_at_end(&head, value) {
                    head.truncate(cut);
                    head.push_str(MASK);
                }
                if let Some(len) = partial_at_start(&tail, value) {
                    tail.replace_range(..len, MASK);
                }
            }
        }
        Capture {
            head,
            tail,
            ..capture.clone()
        }
    }
}

/// Position of `needle` (whose first byte is `first`) in `haystack`.
fn find(haystack: &[u8], needle: &[u8], first: u8) -> Option<usize> {
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let at = from + haystack[from..].iter().position(|&b| b == first)?;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Byte index where `text` ends with a proper prefix of `value` (at least 2 bytes).
fn partial_at_end(text: &str, value: &str) -> Option<usize> {
    (2..value.len())
        .rev()
        .filter(|&n| value.is_char_boundary(n))
        .find(|&n| text.ends_with(&value[..n]))
        .map(|n| text.len() - n)
}

/// Length of the proper suffix of `value` (at least 2 bytes) that `text` starts with.
fn partial_at_start(text: &str, value: &str) -> Option<usize> {
    (1..value.len().saturating_sub(1))
        .filter(|&i| value.is_char_boundary(i))
        .map(|i| &value[i..])
        .find(|suffix| text.starts_with(suffix))
        .map(str::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(values: &[&str], text: &str, expected: &str) {
        assert_eq!(SecretMask::new(values.iter().copied()).mask(text), expected);
    }

    #[test]
    fn masks_every_occurrence_whole() {
        check(
            &["hunter2", "hunter2-long", ""],
            "a=hunter2 b=hunter2-long hunter2",
            "a=*** b=*** ***",
        );
        check(&["tok"], "no secret here", "no secret here");
    }

    #[test]
    fn masks_a_value_across_its_line_breaks() {
        let pem = "-----BEGIN KEY-----\nMIIB\nAAAA\n-----END KEY-----";
        check(&[pem], &format!("key:\n{pem}\ndone\n"), "key:\n***\ndone\n");
    }

    #[test]
    fn overlapping_values_leave_no_part_in_clear() {
        check(&["abcdef", "defghij"], "xabcdefghijx", "x***x");
        check(&["defghij", "abcdef"], "abcdefghij", "***");
        check(&["aa"], "aaa b aa", "*** b ***");
        check(&["ab", "bc", "cd"], "abcd", "***");
    }

    #[test]
    fn bytes_and_multibyte_text_are_masked_on_boundaries() {
        let mask = SecretMask::new(["ünï"]);
        assert_eq!(mask.mask("aünïb"), "a***b");
        assert_eq!(mask.mask_bytes(b"x\xffy"), b"x\xffy".to_vec());
        assert_eq!(
            SecretMask::new(["y"]).mask_bytes(b"x\xffy"),
            b"x\xff***".to_vec()
        );
    }

    #[test]
    fn values_cut_by_the_capture_boundary_are_masked_at_both_ends() {
        let mask = SecretMask::new(["s3cretvalue"]);
        let capture = Capture {
            head: "token: s3cr".into(),
            tail: "etvalue done".into(),
            bytes: 5000,
            sha256: "x".into(),
            truncated: true,
        };
        let out = mask.mask_capture(&capture);
        assert_eq!(
            (out.head.as_str(), out.tail.as_str()),
            ("token: ***", "*** done")
        );
        assert_eq!(out.bytes, 5000);
    }

    #[test]
    fn debug_never_shows_a_value() {
        assert_eq!(
            format!("{:?}", SecretMask::new(["s3cret"])),
            "SecretMask(1 values)"
        );
    }
}
