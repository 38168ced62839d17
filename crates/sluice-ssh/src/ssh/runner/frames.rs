//! Splits one of the runner's streams into the step's own bytes and the runner's frames.
//!
//! A frame is `\x1e NONCE ' ' TEXT '\n'`, where NONCE is the 32 hex digits of the current step
//! (or of the session, for the `ready` frame). Everything else on the stream is the step's
//! output, passed on byte for byte, wherever a frame falls (a step's output need not end with a
//! line break). A step cannot print a frame by accident: it would have to print the nonce, which
//! only the controller and the runner's memory hold.

/// The longest frame text the runner prints (`signal NAME`, `ready PID yes`): anything longer
/// after a marker is not the runner's, so the scanner gives up on it rather than buffer it.
const MAX_FRAME_TEXT: usize = 128;

/// What a chunk of the stream held, in order.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Piece {
    /// The step's own bytes.
    Output(Vec<u8>),
    /// A frame's text, without the marker and the line break.
    Frame(String),
}

/// The state of one stream between chunks.
pub(super) struct FrameScanner {
    /// `\x1e NONCE ' '`.
    marker: Vec<u8>,
    /// Bytes held back: the start of what may be a marker, cut at the end of a chunk.
    held: Vec<u8>,
    /// The text of a frame whose line break has not arrived yet.
    frame: Option<Vec<u8>>,
    /// The marker of the frames after the next one (see [`FrameScanner::then_expect`]).
    next: Option<Vec<u8>>,
}

impl FrameScanner {
    pub(super) fn new(nonce: &str) -> Self {
        FrameScanner {
            marker: marker(nonce),
            held: Vec::new(),
            frame: None,
            next: None,
        }
    }

    /// The next step's frames carry its own nonce.
    pub(super) fn expect(&mut self, nonce: &str) {
        self.marker = marker(nonce);
        self.next = None;
    }

    /// The frames after the next one (the runner's `ready`) carry `nonce`: a step sent with the
    /// runner's start may follow `ready` in the same chunk.
    pub(super) fn then_expect(&mut self, nonce: &str) {
        self.next = Some(marker(nonce));
    }

    /// Splits `data` (the next chunk of the stream) into the step's bytes and frames.
    pub(super) fn feed(&mut self, data: &[u8]) -> Vec<Piece> {
        let mut pieces = Vec::new();
        let joined;
        let mut rest: &[u8] = if self.held.is_empty() {
            data
        } else {
            let mut held = std::mem::take(&mut self.held);
            held.extend_from_slice(data);
            joined = held;
            &joined
        };
        loop {
            if let Some(text) = self.frame.as_mut() {
                match rest.iter().position(|&b| b == b'\n') {
                    Some(nl) => {
                        text.extend_from_slice(&rest[..nl]);
                        rest = &rest[nl + 1..];
                        let text = self.frame.take().unwrap_or_default();
                        pieces.push(Piece::Frame(String::from_utf8_lossy(&text).into_owned()));
                        if let Some(next) = self.next.take() {
                            self.marker = next;
                        }
                        continue;
                    }
                    None if text.len() + rest.len() <= MAX_FRAME_TEXT => {
                        text.extend_from_slice(rest);
                        return pieces;
                    }
                    None => {
                        // Not the runner's: no frame is that long. Pass it on as output.
                        let mut bytes = self.marker.clone();
                        bytes.extend_from_slice(text);
                        bytes.extend_from_slice(rest);
                        self.frame = None;
                        pieces.push(Piece::Output(bytes));
                        return pieces;
                    }
                }
            }
            match find(rest, &self.marker) {
                Some(at) => {
                    if at > 0 {
                        pieces.push(Piece::Output(rest[..at].to_vec()));
                    }
                    rest = &rest[at + self.marker.len()..];
                    self.frame = Some(Vec::new());
                }
                None => {
                    let keep = partial_marker_at_end(rest, &self.marker);
                    let (out, held) = rest.split_at(rest.len() - keep);
                    if !out.is_empty() {
                        pieces.push(Piece::Output(out.to_vec()));
                    }
                    self.held = held.to_vec();
                    return pieces;
                }
            }
        }
    }
}

fn marker(nonce: &str) -> Vec<u8> {
    let mut m = vec![0x1e];
    m.extend_from_slice(nonce.as_bytes());
    m.push(b' ');
    m
}

/// Where `marker` first occurs in `data`. Output rarely holds `\x1e`, so the search is a scan
/// for that byte.
fn find(data: &[u8], marker: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(pos) = data[from..].iter().position(|&b| b == marker[0]) {
        let at = from + pos;
        if data[at..].starts_with(marker) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// How many bytes at the end of `data` are the start of `marker` (which may continue in the
/// next chunk).
fn partial_marker_at_end(data: &[u8], marker: &[u8]) -> usize {
    let longest = (marker.len() - 1).min(data.len());
    (1..=longest)
        .rev()
        .find(|&n| marker.starts_with(&data[data.len() - n..]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "0123456789abcdef0123456789abcdef";

    fn split(chunks: &[&[u8]]) -> (Vec<u8>, Vec<String>) {
        let mut s = FrameScanner::new(N);
        let (mut out, mut frames) = (Vec::new(), Vec::new());
        for chunk in chunks {
            for piece in s.feed(chunk) {
                match piece {
                    Piece::Output(b) => out.extend(b),
                    Piece::Frame(f) => frames.push(f),
                }
            }
        }
        (out, frames)
    }

    #[test]
    fn a_frame_after_output_without_a_line_break_is_found_in_any_cut() {
        let stream = format!("abc\x1e{N} exit 3\n");
        let bytes = stream.as_bytes();
        for cut in 0..bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(
                split(&[a, b]),
                (b"abc".to_vec(), vec!["exit 3".into()]),
                "{cut}"
            );
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(split(&one_by_one).1, vec!["exit 3".to_string()]);
    }

    #[test]
    fn another_nonce_and_stray_record_separators_are_output() {
        let forged = format!("\x1e{} exit 0\n\x1e\x1e{N}", "f".repeat(32));
        let stream = format!("{forged} start\nrest");
        let (out, frames) = split(&[stream.as_bytes()]);
        assert_eq!(frames, vec!["start".to_string()]);
        let mut expected = format!("\x1e{} exit 0\n\x1e", "f".repeat(32)).into_bytes();
        expected.extend_from_slice(b"rest");
        assert_eq!(out, expected);
    }

    #[test]
    fn binary_output_passes_whole_and_a_held_partial_marker_is_released() {
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let (out, frames) = split(&data.chunks(333).collect::<Vec<_>>());
        assert_eq!(out, data);
        assert!(frames.is_empty());
        let partial = format!("x\x1e{}", &N[..10]);
        let (out, _) = split(&[partial.as_bytes(), b"zz"]);
        assert_eq!(out, format!("{partial}zz").into_bytes());
    }

    #[test]
    fn after_the_ready_frame_the_steps_nonce_is_expected_in_any_cut() {
        let step = "fedcba9876543210fedcba9876543210";
        let stream = format!("junk\x1e{N} ready 1 yes\n\x1e{step} start\nout\x1e{N} x\n");
        let bytes = stream.as_bytes();
        for cut in 0..bytes.len() {
            let mut s = FrameScanner::new(N);
            s.then_expect(step);
            let (a, b) = bytes.split_at(cut);
            let (mut out, mut frames) = (Vec::new(), Vec::new());
            for piece in [s.feed(a), s.feed(b)].into_iter().flatten() {
                match piece {
                    Piece::Output(b) => out.extend(b),
                    Piece::Frame(f) => frames.push(f),
                }
            }
            assert_eq!(frames, vec!["ready 1 yes", "start"], "{cut}");
            assert_eq!(out, format!("junkout\x1e{N} x\n").into_bytes(), "{cut}");
        }
    }

    #[test]
    fn an_overlong_frame_is_output() {
        let long = format!("\x1e{N} {}", "y".repeat(MAX_FRAME_TEXT + 10));
        let (out, frames) = split(&[long.as_bytes()]);
        assert!(frames.is_empty());
        assert_eq!(out, long.into_bytes());
    }
}
