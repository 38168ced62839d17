//! Bounded capture of one output stream.
//!
//! A command may print gigabytes. We keep the first and the last bytes up to a cap (what an
//! operator reads to see what went wrong), plus the byte count and sha256 of the whole stream (what
//! an auditor needs to prove what was printed), and we keep reading past the cap so the remote
//! side never blocks on a full pipe or channel window.

use std::collections::VecDeque;

use sha2::{Digest, Sha256};

use crate::transport::{LineSink, Stream};

/// Longest line handed to a [`LineSink`]; longer lines are passed on in pieces.
const MAX_LINE: usize = 4096;

/// The kept part of a stream and the fingerprint of all of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    /// The first bytes, up to half the cap (all of the stream when it fits the cap).
    pub head: Vec<u8>,
    /// The last bytes, up to the other half of the cap; empty when everything fit in `head`.
    pub tail: Vec<u8>,
    /// Bytes in the whole stream.
    pub total_bytes: u64,
    /// sha256 (hex) of the whole stream.
    pub sha256: String,
}

impl CapturedOutput {
    /// True when bytes between `head` and `tail` were dropped.
    pub fn truncated(&self) -> bool {
        self.total_bytes > (self.head.len() + self.tail.len()) as u64
    }

    /// The kept bytes; when truncated, a marker line stands for the dropped middle.
    pub fn kept_bytes(&self) -> Vec<u8> {
        let mut out = self.head.clone();
        if self.truncated() {
            let dropped = self.total_bytes - (self.head.len() + self.tail.len()) as u64;
            out.extend_from_slice(format!("\n[... {dropped} bytes not kept ...]\n").as_bytes());
        }
        out.extend_from_slice(&self.tail);
        out
    }

    /// The kept bytes as text, invalid UTF-8 replaced.
    pub fn text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.kept_bytes()).into_owned()
    }
}

/// Accumulates one stream as it arrives.
pub struct OutputCapture {
    stream: Stream,
    head_cap: usize,
    tail_cap: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
    hasher: Sha256,
    sink: Option<LineSink>,
    line: Vec<u8>,
}

impl OutputCapture {
    pub fn new(stream: Stream, cap: usize, sink: Option<LineSink>) -> Self {
        let head_cap = cap / 2;
        OutputCapture {
            stream,
            head_cap,
            tail_cap: cap - head_cap,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
            hasher: Sha256::new(),
            sink,
            line: Vec::new(),
        }
    }

    pub fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        self.hasher.update(data);
        self.feed_lines(data);
        let room = self.head_cap.saturating_sub(self.head.len());
        let take = room.min(data.len());
        self.head.extend_from_slice(&data[..take]);
        data = &data[take..];
        if self.tail_cap == 0 || data.is_empty() {
            return;
        }
        if data.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.tail_cap..]);
        } else {
            let overflow = (self.tail.len() + data.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(data);
        }
    }

    fn feed_lines(&mut self, data: &[u8]) {
        let Some(sink) = &self.sink else { return };
        for &b in data {
            if b == b'\n' {
                sink(self.stream, &self.line);
                self.line.clear();
            } else {
                self.line.push(b);
                if self.line.len() >= MAX_LINE {
                    sink(self.stream, &self.line);
                    self.line.clear();
                }
            }
        }
    }

    pub fn finish(mut self) -> CapturedOutput {
        if let Some(sink) = &self.sink
            && !self.line.is_empty()
        {
            sink(self.stream, &self.line);
        }
        self.line.clear();
        CapturedOutput {
            head: self.head,
            tail: self.tail.into_iter().collect(),
            total_bytes: self.total,
            sha256: hex::encode(self.hasher.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn capture(cap: usize, chunks: &[&[u8]]) -> CapturedOutput {
        let mut c = OutputCapture::new(Stream::Stdout, cap, None);
        for chunk in chunks {
            c.push(chunk);
        }
        c.finish()
    }

    #[test]
    fn small_output_is_kept_whole() {
        let out = capture(16, &[b"hello ", b"world"]);
        assert_eq!(out.kept_bytes(), b"hello world");
        assert!(!out.truncated());
        assert_eq!(out.total_bytes, 11);
    }

    #[test]
    fn large_output_keeps_head_tail_and_hash_of_everything() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let out = capture(100, &data.chunks(7).collect::<Vec<_>>());
        assert_eq!(out.head, &data[..50]);
        assert_eq!(out.tail, &data[data.len() - 50..]);
        assert_eq!(out.total_bytes, 10_000);
        assert_eq!(out.sha256, hex::encode(Sha256::digest(&data)));
        assert!(out.truncated());
    }

    #[test]
    fn lines_reach_the_sink_including_the_last_unterminated_one() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let sink: LineSink = Arc::new(move |_, l: &[u8]| seen.lock().unwrap().push(l.to_vec()));
        let mut c = OutputCapture::new(Stream::Stderr, 8, Some(sink));
        c.push(b"a\nbc");
        c.push(b"d\ne");
        c.finish();
        assert_eq!(
            *lines.lock().unwrap(),
            vec![b"a".to_vec(), b"bcd".to_vec(), b"e".to_vec()]
        );
    }
}
