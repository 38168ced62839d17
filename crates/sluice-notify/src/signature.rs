//! The `X-Sluice-Signature` header: `sha256=` and the hex HMAC-SHA256 of the exact body, keyed
//! with the value of the plan secret the target names (as GitHub's `X-Hub-Signature-256`).

use hmac::{KeyInit, Mac};

/// The header's name.
pub const HEADER: &str = "X-Sluice-Signature";

/// The header's value for `body` under `key`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = match hmac::Hmac::<sha2_hmac::Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2.
    #[test]
    fn matches_the_rfc_4231_vector() {
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
