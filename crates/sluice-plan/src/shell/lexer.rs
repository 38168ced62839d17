//! The character-level lexer: which quotes, substitutions and here-documents are open at each
//! `{{…}}`, after POSIX's token rules.

use super::words::{NextWord, Script, Word};
use super::{Refusal, ShellContext};

#[derive(Default)]
pub(super) struct Lexer {
    stack: Vec<Frame>,
    results: Vec<Result<ShellContext, Refusal>>,
    /// The literal so far ended with an unescaped `$` that starts nothing yet.
    dollar_pending: bool,
}

enum Frame {
    Script(Box<Script>),
    Single,
    AnsiC,
    Double,
    Backtick,
    Param { depth: u32 },
    Arith { depth: u32 },
    HereDoc(HereDocBody),
}

pub(super) struct HereDocBody {
    pub(super) delimiter: String,
    pub(super) strip_tabs: bool,
    pub(super) line: String,
}

impl Lexer {
    pub(super) fn literal(&mut self, text: &str) {
        if self.stack.is_empty() {
            self.stack.push(Frame::Script(Box::default()));
        }
        self.dollar_pending = false;
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let at = |k: usize| chars.get(i + k).copied();
            i += self.step(chars[i], at(1), at(2));
        }
    }

    /// Reads one token starting with `c` (lookahead `n1`, `n2`); returns the chars consumed.
    fn step(&mut self, c: char, n1: Option<char>, n2: Option<char>) -> usize {
        let Some(frame) = self.stack.last_mut() else {
            return 1;
        };
        match frame {
            Frame::Script(_) => self.script_step(c, n1, n2),
            Frame::Single => {
                if c == '\'' {
                    self.stack.pop();
                } else {
                    self.quoted_text(c);
                }
                1
            }
            Frame::AnsiC => match c {
                '\\' => 2,
                '\'' => {
                    self.stack.pop();
                    1
                }
                _ => 1,
            },
            Frame::Backtick => match c {
                '\\' => 2,
                '`' => {
                    self.stack.pop();
                    1
                }
                _ => 1,
            },
            Frame::Double => match c {
                '\\' => {
                    if let Some(n) = n1 {
                        self.quoted_text(n);
                    }
                    2
                }
                '"' => {
                    self.stack.pop();
                    1
                }
                '`' => self.open(Frame::Backtick, 1),
                '$' => self.dollar(n1, n2, false),
                _ => {
                    self.quoted_text(c);
                    1
                }
            },
            Frame::Param { depth } => match c {
                '\\' => 2,
                '{' => {
                    *depth += 1;
                    1
                }
                '}' if *depth == 0 => {
                    self.stack.pop();
                    1
                }
                '}' => {
                    *depth -= 1;
                    1
                }
                '\'' => self.open(Frame::Single, 1),
                '"' => self.open(Frame::Double, 1),
                '`' => self.open(Frame::Backtick, 1),
                '$' => self.dollar(n1, n2, false),
                _ => 1,
            },
            Frame::Arith { depth } => match c {
                '(' => {
                    *depth += 1;
                    1
                }
                ')' if *depth == 0 => {
                    self.stack.pop();
                    if n1 == Some(')') { 2 } else { 1 }
                }
                ')' => {
                    *depth -= 1;
                    1
                }
                _ => 1,
            },
            Frame::HereDoc(body) => {
                if c == '\n' {
                    let line = std::mem::take(&mut body.line);
                    let line = if body.strip_tabs {
                        line.trim_start_matches('\t')
                    } else {
                        line.as_str()
                    };
                    if line == body.delimiter {
                        self.stack.pop();
                    }
                } else {
                    body.line.push(c);
                }
                1
            }
        }
    }

    /// A quoted character belongs to the word of the script right below the quotes.
    fn quoted_text(&mut self, c: char) {
        let n = self.stack.len();
        if n >= 2
            && let Frame::Script(s) = &mut self.stack[n - 2]
        {
            s.word.text.push(c);
        }
    }

    /// Pushes `frame`, marking the enclosing word as not plain text; returns `consumed`.
    fn open(&mut self, frame: Frame, consumed: usize) -> usize {
        let quote = matches!(frame, Frame::Single | Frame::Double);
        if let Some(s) = self.innermost_script() {
            s.word.started = true;
            if !quote {
                s.word.expanded = true;
            }
        }
        self.stack.push(frame);
        consumed
    }

    fn innermost_script(&mut self) -> Option<&mut Script> {
        self.stack.iter_mut().rev().find_map(|f| match f {
            Frame::Script(s) => Some(&mut **s),
            _ => None,
        })
    }

    /// `$` at an unquoted (`ansi_c`) or double-quoted place.
    fn dollar(&mut self, n1: Option<char>, n2: Option<char>, ansi_c: bool) -> usize {
        match (n1, n2) {
            (Some('('), Some('(')) => self.open(Frame::Arith { depth: 0 }, 3),
            (Some('('), _) => self.open(
                Frame::Script(Box::new(Script {
                    substitution: true,
                    ..Script::default()
                })),
                2,
            ),
            (Some('{'), _) => self.open(Frame::Param { depth: 0 }, 2),
            (Some('\''), _) if ansi_c => self.open(Frame::AnsiC, 2),
            (None, _) => {
                self.dollar_pending = true;
                self.plain_char('$', true);
                1
            }
            (Some(n), _) => {
                let variable = n.is_ascii_alphanumeric() || "_@*#?$!-".contains(n);
                self.plain_char('$', variable);
                1
            }
        }
    }

    /// A character of the current word (or of the double-quoted text around it).
    fn plain_char(&mut self, c: char, expands: bool) {
        if matches!(self.stack.last(), Some(Frame::Double)) {
            self.quoted_text(c);
            if expands && let Some(s) = self.innermost_script() {
                s.word.expanded = true;
            }
            return;
        }
        if let Some(s) = self.innermost_script() {
            s.word.started = true;
            s.word.text.push(c);
            s.word.expanded |= expands;
        }
    }

    fn script_step(&mut self, c: char, n1: Option<char>, n2: Option<char>) -> usize {
        let Some(Frame::Script(s)) = self.stack.last_mut() else {
            return 1;
        };
        if s.comment {
            if c == '\n' {
                s.comment = false;
                return self.line_break();
            }
            return 1;
        }
        match c {
            '\\' => {
                s.word.started = true;
                match n1 {
                    // A line continuation joins the lines; it is not part of the word.
                    Some('\n') => {}
                    Some(n) => s.word.text.push(n),
                    None => {}
                }
                2
            }
            '\'' => self.open(Frame::Single, 1),
            '"' => self.open(Frame::Double, 1),
            '`' => self.open(Frame::Backtick, 1),
            '$' => self.dollar(n1, n2, true),
            ' ' | '\t' => {
                s.end_word(&mut self.results);
                1
            }
            '\n' => {
                s.end_word(&mut self.results);
                self.line_break()
            }
            ';' => {
                s.end_word(&mut self.results);
                s.end_command(&mut self.results);
                if matches!(n1, Some(';' | '&')) {
                    // `;;` or `;&` ends a `case` item: patterns come next.
                    s.case_patterns = s.case_depth > 0;
                    return if n2 == Some('&') { 3 } else { 2 };
                }
                1
            }
            '&' | '|' => {
                s.end_word(&mut self.results);
                if !s.test_brackets {
                    s.end_command(&mut self.results);
                }
                if n1 == Some(c) || (c == '|' && n1 == Some('&')) {
                    2
                } else {
                    1
                }
            }
            '(' => self.open_paren(n1),
            ')' => self.close_paren(),
            '<' | '>' => self.redirection(c, n1, n2),
            '#' if !s.word.started => {
                s.comment = true;
                1
            }
            _ => {
                s.word.started = true;
                s.word.text.push(c);
                1
            }
        }
    }

    fn open_paren(&mut self, n1: Option<char>) -> usize {
        let Some(Frame::Script(s)) = self.stack.last_mut() else {
            return 1;
        };
        s.end_word(&mut self.results);
        if s.test_brackets || s.case_patterns {
            return 1;
        }
        if n1 == Some('(') && s.at_command_position() {
            // bash's `(( … ))` arithmetic command.
            return self.open(Frame::Arith { depth: 0 }, 2);
        }
        s.parens += 1;
        s.end_command(&mut self.results);
        1
    }

    fn close_paren(&mut self) -> usize {
        let Some(Frame::Script(s)) = self.stack.last_mut() else {
            return 1;
        };
        s.end_word(&mut self.results);
        if s.test_brackets {
            return 1;
        }
        if s.case_patterns {
            s.case_patterns = false;
            s.end_command(&mut self.results);
            return 1;
        }
        s.end_command(&mut self.results);
        if s.parens > 0 {
            s.parens -= 1;
        } else if s.substitution {
            self.stack.pop();
        }
        1
    }

    fn redirection(&mut self, c: char, n1: Option<char>, n2: Option<char>) -> usize {
        let Some(Frame::Script(s)) = self.stack.last_mut() else {
            return 1;
        };
        // `2>&1`: digits right before the operator are its file descriptor, not a word.
        if s.word.started && !s.word.expanded && s.word.text.chars().all(|d| d.is_ascii_digit()) {
            s.word = Word::default();
        }
        s.end_word(&mut self.results);
        if s.test_brackets {
            return 1;
        }
        if n1 == Some('(') {
            // `<(…)` / `>(…)`: process substitution, shell code like `$(…)`.
            return self.open(
                Frame::Script(Box::new(Script {
                    substitution: true,
                    ..Script::default()
                })),
                2,
            );
        }
        if c == '<' && n1 == Some('<') {
            return match n2 {
                Some('<') => {
                    s.next_word = NextWord::RedirectTarget;
                    3
                }
                Some('-') => {
                    s.next_word = NextWord::HereDocDelimiter { strip_tabs: true };
                    3
                }
                _ => {
                    s.next_word = NextWord::HereDocDelimiter { strip_tabs: false };
                    2
                }
            };
        }
        s.next_word = NextWord::RedirectTarget;
        if matches!(n1, Some('>' | '&' | '|')) {
            2
        } else {
            1
        }
    }

    /// An unquoted line break: the command ends and announced here-document bodies begin.
    fn line_break(&mut self) -> usize {
        let Some(Frame::Script(s)) = self.stack.last_mut() else {
            return 1;
        };
        s.end_command(&mut self.results);
        let bodies = std::mem::take(&mut s.heredocs);
        // The first announced body is read first: push it last.
        for body in bodies.into_iter().rev() {
            self.stack.push(Frame::HereDoc(body));
        }
        1
    }

    pub(super) fn reference(&mut self) {
        if self.stack.is_empty() {
            self.stack.push(Frame::Script(Box::default()));
        }
        let id = self.results.len();
        let innermost = match self.stack.last() {
            Some(Frame::Script(s)) if s.comment => Err(Refusal::Comment),
            Some(Frame::Double) => Ok(ShellContext::DoubleQuoted),
            Some(Frame::Single) => Err(Refusal::SingleQuoted),
            Some(Frame::AnsiC) => Err(Refusal::AnsiCQuoted),
            _ => Ok(ShellContext::Word),
        };
        // A frame anywhere around the reference that reads its text again decides.
        let enclosing = self.stack.iter().find_map(|f| match f {
            Frame::Backtick => Some(Refusal::Backticks),
            Frame::Arith { .. } => Some(Refusal::Arithmetic),
            Frame::Param { .. } => Some(Refusal::ParameterExpansion),
            Frame::HereDoc(_) => Some(Refusal::HereDoc),
            _ => None,
        });
        let result = match (innermost, enclosing) {
            (Err(e), _) => Err(e),
            (Ok(_), Some(e)) => Err(e),
            (Ok(_), None) if self.dollar_pending => Err(Refusal::AfterDollar),
            (Ok(c), None) => Ok(c),
        };
        self.results.push(result);
        self.dollar_pending = false;
        // The reference is part of the current word of every script around it, up to a
        // here-document: a body is not part of any word of the command that announced it.
        for frame in self.stack.iter_mut().rev() {
            match frame {
                Frame::Script(s) => {
                    s.word.started = true;
                    s.word.expanded = true;
                    s.word.refs.push(id);
                }
                Frame::HereDoc(body) => {
                    // Keeps the line from ever matching the delimiter.
                    body.line.push('\0');
                    break;
                }
                _ => {}
            }
        }
    }

    pub(super) fn finish(mut self) -> Vec<Result<ShellContext, Refusal>> {
        let unclosed = self.stack.iter().skip(1).find_map(|f| match f {
            Frame::Single => Some("a `'`"),
            Frame::AnsiC => Some("a `$'`"),
            Frame::Double => Some("a `\"`"),
            Frame::Backtick => Some("a `` ` ``"),
            Frame::Param { .. } => Some("a `${`"),
            Frame::Arith { .. } => Some("a `$((`"),
            Frame::Script(_) => Some("a `$(`"),
            Frame::HereDoc(_) => None,
        });
        // Commands still open end with the text: apply their rules, innermost first.
        while let Some(frame) = self.stack.pop() {
            if let Frame::Script(mut s) = frame {
                s.end_word(&mut self.results);
                s.end_command(&mut self.results);
            }
        }
        if let Some(opened) = unclosed {
            for result in &mut self.results {
                if result.is_ok() {
                    *result = Err(Refusal::Unterminated { opened });
                }
            }
        }
        self.results
    }
}
