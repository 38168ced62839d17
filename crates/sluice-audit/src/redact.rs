//! Keeping secret values out of the store: every command line and captured output passes through
//! a [`Redactor`] before it becomes a record.
//!
//! The values are masked whole and across line breaks, overlapping values leaving no part in
//! clear ([`sluice_model::SecretMask`]). A run learns more values while it runs (a value
//! registered from output that held a secret is secret too), so a `Redactor` shared by a run's
//! journal can be told of them: [`Redactor::add`].

use std::sync::RwLock;

use sluice_model::{Capture, SecretMask};

/// What a secret value is replaced with.
pub use sluice_model::MASK;

/// Replaces a set of secret values with `***` in text and bytes.
#[derive(Default)]
pub struct Redactor {
    mask: RwLock<SecretMask>,
}

impl std::fmt::Debug for Redactor {
    // Debug output ends up in logs: never a value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Redactor").field(&self.current()).finish()
    }
}

impl Clone for Redactor {
    fn clone(&self) -> Self {
        Redactor {
            mask: RwLock::new(self.current()),
        }
    }
}

impl Redactor {
    /// Empty values are ignored: masking "" would mask between every character.
    pub fn new(secrets: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Redactor {
            mask: RwLock::new(SecretMask::new(secrets)),
        }
    }

    /// Masks `value` too from now on (a value the run found to hold a secret).
    pub fn add(&self, value: &str) {
        let mut mask = self.mask.write().unwrap_or_else(|p| p.into_inner());
        mask.extend([value]);
    }

    fn current(&self) -> SecretMask {
        self.mask.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn with<T>(&self, f: impl FnOnce(&SecretMask) -> T) -> T {
        f(&self.mask.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn is_empty(&self) -> bool {
        self.with(SecretMask::is_empty)
    }

    pub fn redact_str(&self, text: &str) -> String {
        self.with(|m| m.mask(text))
    }

    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        self.with(|m| m.mask_bytes(bytes))
    }

    pub fn redact_args(&self, args: &[String]) -> Vec<String> {
        self.with(|m| args.iter().map(|a| m.mask(a)).collect())
    }

    /// Masks secrets in a capture's head and tail, the parts of a secret cut by the boundary
    /// between them included ([`SecretMask::mask_capture`]). `bytes` and `sha256` describe the
    /// stream as received and are kept.
    pub fn redact_capture(&self, capture: &Capture) -> Capture {
        self.with(|m| m.mask_capture(capture))
    }
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

    /// Issue 16, fault 7: masking went value by value, so an overlapping pair left `***ghij`,
    /// and a multi-line value had to be found whole.
    #[test]
    fn overlapping_and_multi_line_secrets_are_masked_whole() {
        let r = Redactor::new(["abcdef", "defghij"]);
        assert_eq!(r.redact_str("<abcdefghij>"), "<***>");
        let pem = "-----BEGIN KEY-----\nMIIB\n-----END KEY-----";
        let r = Redactor::new([pem]);
        assert_eq!(r.redact_str(&format!("a\n{pem}\nb")), "a\n***\nb");
    }

    #[test]
    fn values_added_later_are_masked_from_then_on_and_debug_shows_none() {
        let r = Redactor::new(["tok-1"]);
        assert_eq!(r.redact_str("v=tok-1-derived"), "v=***-derived");
        r.add("tok-1-derived");
        assert_eq!(r.redact_str("v=tok-1-derived"), "v=***");
        assert!(!format!("{r:?}").contains("tok"), "{r:?}");
        assert_eq!(r.clone().redact_str("tok-1-derived"), "***");
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
