//! Keeping secret values out of the store: the executor passes every command line and captured
//! output through a [`Redactor`] before it becomes a record.

use sluice_model::Capture;

/// What a secret value is replaced with.
pub const MASK: &str = "***";

/// Replaces a set of secret values with `***` in text and bytes.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    // Longest first, so a secret that contains another is masked whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// Empty values are ignored: masking "" would mask between every character.
    pub fn new(secrets: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(Into::into)
            .filter(|s| !s.is_empty())
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn redact_str(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for secret in &self.secrets {
            out = replace_bytes(&out, secret.as_bytes(), MASK.as_bytes());
        }
        out
    }

    pub fn redact_args(&self, args: &[String]) -> Vec<String> {
        args.iter().map(|a| self.redact_str(a)).collect()
    }

    /// Masks secrets in a capture's head and tail. A secret cut by the head or tail boundary
    /// cannot be recognised there, so the parts of each secret at a boundary are masked too:
    /// a head that ends with a secret's prefix, a tail that starts with its suffix. `bytes` and
    /// `sha256` describe the stream as received and are kept.
    pub fn redact_capture(&self, capture: &Capture) -> Capture {
        let mut head = self.redact_str(&capture.head);
        let mut tail = self.redact_str(&capture.tail);
        if capture.truncated {
            for secret in &self.secrets {
                if let Some(cut) = partial_at_end(&head, secret) {
                    head.truncate(cut);
                    head.push_str(MASK);
                }
                if let Some(len) = partial_at_start(&tail, secret) {
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

/// Byte index where `text` ends with a proper prefix of `secret` (at least 2 bytes).
fn partial_at_end(text: &str, secret: &str) -> Option<usize> {
    (2..secret.len())
        .rev()
        .filter(|&n| secret.is_char_boundary(n))
        .find(|&n| text.ends_with(&secret[..n]))
        .map(|n| text.len() - n)
}

/// Length of the proper suffix of `secret` (at least 2 bytes) that `text` starts with.
fn partial_at_start(text: &str, secret: &str) -> Option<usize> {
    (1..secret.len().saturating_sub(1))
        .filter(|&i| secret.is_char_boundary(i))
        .map(|i| &secret[i..])
        .find(|suffix| text.starts_with(suffix))
        .map(str::len)
}

fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let r = Redactor::new(["hunter2", "hunter2-long", ""]);
        assert_eq!(
            r.redact_str("a=hunter2 b=hunter2-long hunter2"),
            "a=*** b=*** ***"
        );
        assert_eq!(r.redact_bytes(b"xhunter2y\xff"), b"x***y\xff".to_vec());
        assert_eq!(r.redact_args(&["--pw=hunter2".into()]), vec!["--pw=***"]);
    }

    #[test]
    fn masks_secret_cut_by_capture_boundaries() {
        let r = Redactor::new(["s3cretvalue"]);
        let capture = Capture {
            head: "token: s3cr".into(),
            tail: "etvalue done".into(),
            bytes: 5000,
            sha256: "x".into(),
            truncated: true,
        };
        let out = r.redact_capture(&capture);
        assert_eq!(out.head, "token: ***");
        assert_eq!(out.tail, "*** done");
        assert_eq!(out.bytes, 5000);
    }
}
