//! Text from hosts made safe for a terminal: control characters are shown, never obeyed.
//!
//! A host's output (and anything derived from it: a registered value in a command, sudo's
//! message in an error) may hold terminal escape sequences that change the window title, clear
//! the screen, or move the cursor, and `\r` that overwrites a line with something else. Every
//! human display passes such text through [`visible`] before it is printed (and before it is
//! coloured, so sluice's own colours still work). The raw bytes stay in the audit trail and
//! `--json`; `sluice logs --raw` prints them as they came.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character written as an escape (`\x1b`, `\r`, `\x07`, `\u{9b}`):
/// C0 and C1 controls, DEL, and the Unicode controls that reorder text on screen (bidi
/// overrides). Line breaks and tabs are kept: they are the layout of the output.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !hidden(c) {
            out.push(c);
        } else if c == '\r' {
            out.push_str("\\r");
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// Characters a terminal acts on instead of showing.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_and_layout_is_kept() {
        let host =
            "\x1b]0;pwned\x07\x1b[2J\x1b[1;31mred\rover\x00\x7f\u{9b}6n\u{202e}txt\nnext\tcol";
        assert_eq!(
            visible(host),
            "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[1;31mred\\rover\\x00\\x7f\\u{9b}6n\\u{202e}txt\nnext\tcol"
        );
        assert!(matches!(visible("plain ✓ é"), Cow::Borrowed("plain ✓ é")));
    }
}
