//! One captured output stream as facts carry it: head and tail up to the caps, and the size and
//! hash of the whole stream as received.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    pub head: String,
    pub tail: String,
    /// Bytes in the whole stream as received.
    pub bytes: u64,
    /// sha256 (hex) of the whole stream as received.
    pub sha256: String,
    /// True when head and tail are not the whole stream.
    pub truncated: bool,
}

impl Capture {
    /// The capture of a stream that was exactly `text`, kept whole.
    pub fn whole(text: &str) -> Capture {
        Capture {
            head: text.to_string(),
            tail: String::new(),
            bytes: text.len() as u64,
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            truncated: false,
        }
    }

    /// The whole stream as text, when this capture provably holds all of it unchanged: not
    /// truncated, and head and tail hash to the stream's sha256 (so no secret was masked and no
    /// invalid UTF-8 replaced). Resume restores a registered value from it.
    pub fn whole_text(&self) -> Option<String> {
        if self.truncated {
            return None;
        }
        let text = format!("{}{}", self.head, self.tail);
        let digest = Sha256::digest(text.as_bytes());
        (hex::encode(digest) == self.sha256).then_some(text)
    }

    /// The kept text: the head, a marker for what was left out, the tail.
    pub fn text(&self) -> String {
        if self.truncated {
            let kept = (self.head.len() + self.tail.len()) as u64;
            let skipped = self.bytes.saturating_sub(kept);
            format!(
                "{}\n[... {skipped} bytes not kept ...]\n{}",
                self.head, self.tail
            )
        } else {
            format!("{}{}", self.head, self.tail)
        }
    }

    /// Applies `f` to the kept text (redaction); `bytes` and `sha256` describe the stream as
    /// received and are kept.
    pub fn map_text(&self, f: impl Fn(&str) -> String) -> Capture {
        Capture {
            head: f(&self.head),
            tail: f(&self.tail),
            ..self.clone()
        }
    }
}
