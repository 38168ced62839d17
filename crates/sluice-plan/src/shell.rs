//! Where each `{{…}}` of a shell command lands: a POSIX shell lexer over the template's text.
//!
//! A value is written differently depending on where it stands. Outside quotes it is quoted as
//! one word; inside `"…"` it is escaped for double quotes. Some places cannot hold an arbitrary
//! value safely whatever is done to it, and a reference there is refused at plan time
//! ([`Refusal`]): single quotes (nothing can be escaped), `$'…'`, backticks (they re-read
//! backslashes), here-documents (a line of the value could end the document), arithmetic and
//! `${…}` (they evaluate their text), comments (a line break ends them), right after `$`, and
//! text that the shell reads twice: the arguments of `eval` and `let`, and the command string of
//! `sh -c` and its kin (`bash`, `su`, …). `{{raw …}}` is never refused: it is the author's
//! explicit choice to insert shell syntax.
//!
//! The lexer follows the POSIX token rules for what matters here: quotes, backslashes, `$(…)`,
//! `$((…))`, `${…}`, backticks, comments, operators, here-documents (`<<`, `<<-`, their bodies
//! after the next line break) and `case` patterns inside `$(…)`. It keeps the words of the
//! current simple command to recognise `eval`, `let`, `[[ … -eq … ]]` and `sh -c`. It does not
//! need to understand the whole grammar: it only has to know, at each `{{`, which quotes and
//! substitutions are open.

use crate::template::{Part, Template};

/// How a value is written at a place where it can be made safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShellContext {
    /// Outside quotes: one shell word.
    Word,
    /// Inside `"…"`.
    DoubleQuoted,
}

/// A place where no quoting makes an arbitrary value safe.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("is inside single quotes, where nothing can be escaped")]
    SingleQuoted,
    #[error("is inside `$'…'`, where backslashes are read as escapes")]
    AnsiCQuoted,
    #[error("is inside backticks, which read backslashes again")]
    Backticks,
    #[error("is an argument of `eval`, which runs its arguments as shell code")]
    Eval,
    #[error("is in the command string of `{shell} -c`, which runs it as shell code")]
    ShellCommandString { shell: String },
    #[error("is in a here-document, which a line of the value could end early")]
    HereDoc,
    #[error("is in arithmetic, which evaluates its text as an expression")]
    Arithmetic,
    #[error("is inside `${{…}}`")]
    ParameterExpansion,
    #[error("is in a comment, which a line break in the value would end")]
    Comment,
    #[error("follows a `$`, which would read the value as a variable name or as `$'…'`")]
    AfterDollar,
    #[error("is inside {opened} that the command never closes")]
    Unterminated { opened: &'static str },
}

impl Refusal {
    /// How to write the command instead; `reference` is the text between the braces.
    pub fn help(&self, reference: &str) -> String {
        let r = format!("{{{{{reference}}}}}");
        match self {
            Refusal::SingleQuoted => format!(
                "move the reference outside the single quotes (`'text '{r}' more'`), or use double quotes (`\"text {r} more\"`)"
            ),
            Refusal::AnsiCQuoted => format!("move the reference outside `$'…'`: `$'a\\tb'{r}`"),
            Refusal::Backticks => format!("write `$(…)` instead of backticks: `$(cmd {r})`"),
            Refusal::Eval => format!(
                "pass the value as an argument instead of building code for `eval`; write `{{{{raw {reference}}}}}` only if the value is meant to be shell code"
            ),
            Refusal::ShellCommandString { shell } => format!(
                "pass the value as an argument of the script: `{shell} -c 'cmd \"$1\"' {shell} {r}`"
            ),
            Refusal::HereDoc => format!("pipe the value in instead: `printf '%s\\n' {r} | cmd`"),
            Refusal::Arithmetic => format!(
                "check that it is a number in a variable first: `n={r}; case $n in ''|*[!0-9]*) exit 1;; esac; echo $((n + 1))`"
            ),
            Refusal::ParameterExpansion => {
                format!("assign it to a variable first: `v={r}; echo \"${{X:-$v}}\"`")
            }
            Refusal::Comment => "remove the reference from the comment".to_string(),
            Refusal::AfterDollar => format!(
                "write `\\$` for a literal dollar sign, or keep `$` and the reference apart: `\"$X\"{r}`"
            ),
            Refusal::Unterminated { .. } => {
                "close the quote or substitution; sh would refuse the command".to_string()
            }
        }
    }
}

/// Where the references of one command template stand, in the order of
/// [`Template::references`].
pub fn contexts(template: &Template) -> Vec<Result<ShellContext, Refusal>> {
    let mut lexer = Lexer::default();
    let mut raw = Vec::new();
    for part in &template.parts {
        match part {
            Part::Literal(text) => lexer.literal(text),
            Part::Ref(r) => {
                raw.push(r.raw);
                lexer.reference();
            }
        }
    }
    let mut results = lexer.finish();
    for (result, raw) in results.iter_mut().zip(raw) {
        // `{{raw …}}` is the explicit opt-out: the value is meant to be shell syntax.
        if raw && result.is_err() {
            *result = Ok(ShellContext::Word);
        }
    }
    results
}

/// Shells and commands whose `-c` argument is a command string parsed again.
const REPARSING_COMMANDS: &[&str] = &[
    "sh", "bash", "dash", "ksh", "mksh", "zsh", "ash", "su", "runuser",
];
/// Words after which the next word is at command position.
const RESERVED_WORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in", "case",
    "esac", "{", "}", "!", "time", "function", "select",
];
/// `[[ … ]]` operators whose operands bash evaluates as arithmetic.
const ARITHMETIC_TESTS: &[&str] = &["-eq", "-ne", "-lt", "-le", "-gt", "-ge"];

#[derive(Default)]
struct Lexer {
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

/// Shell code: the whole command, or the inside of `$(…)` / `<(…)`.
#[derive(Default)]
struct Script {
    /// Ends at its unmatched `)` (a substitution), rather than at the end of the text.
    substitution: bool,
    /// Open `(` of subshells and function definitions inside this script.
    parens: u32,
    comment: bool,
    word: Word,
    /// The current simple command's words so far.
    words: Vec<Word>,
    next_word: NextWord,
    /// Here-documents announced on the current line; their bodies start at the next line break.
    heredocs: Vec<HereDocBody>,
    case_depth: u32,
    /// Reading `case` patterns, where `(` and `)` are not subshells.
    case_patterns: bool,
    /// Inside `[[ … ]]`, where `&&`, `<` and `(` are operators of the test, not of the shell.
    test_brackets: bool,
}

#[derive(Default)]
enum NextWord {
    #[default]
    Argument,
    RedirectTarget,
    HereDocDelimiter {
        strip_tabs: bool,
    },
}

#[derive(Default)]
struct Word {
    started: bool,
    /// The word with its quotes removed, for recognising `eval` or a here-document delimiter.
    text: String,
    /// Has a substitution or a reference, so `text` is not all of it.
    expanded: bool,
    /// References inside the word, at any depth.
    refs: Vec<usize>,
}

struct HereDocBody {
    delimiter: String,
    strip_tabs: bool,
    line: String,
}

impl Word {
    fn is_reserved(&self) -> bool {
        !self.expanded && RESERVED_WORDS.contains(&self.text.as_str())
    }

    fn is_assignment(&self) -> bool {
        let Some((name, _)) = self.text.split_once('=') else {
            return false;
        };
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    /// The command this word names, if it is a plain word: `/bin/sh` names `sh`.
    fn command_name(&self) -> Option<&str> {
        (!self.expanded).then(|| self.text.rsplit('/').next().unwrap_or_default())
    }
}

impl Lexer {
    fn literal(&mut self, text: &str) {
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

    fn reference(&mut self) {
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

    fn finish(mut self) -> Vec<Result<ShellContext, Refusal>> {
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

fn refuse(results: &mut [Result<ShellContext, Refusal>], refs: &[usize], why: &Refusal) {
    for &id in refs {
        if let Some(result) = results.get_mut(id)
            && result.is_ok()
        {
            *result = Err(why.clone());
        }
    }
}

impl Script {
    fn at_command_position(&self) -> bool {
        !self.word.started
            && self
                .words
                .iter()
                .all(|w| w.is_reserved() || w.is_assignment())
    }

    fn end_word(&mut self, results: &mut [Result<ShellContext, Refusal>]) {
        if !self.word.started {
            return;
        }
        let word = std::mem::take(&mut self.word);
        match std::mem::take(&mut self.next_word) {
            NextWord::RedirectTarget => {}
            NextWord::HereDocDelimiter { strip_tabs } => {
                refuse(results, &word.refs, &Refusal::HereDoc);
                self.heredocs.push(HereDocBody {
                    delimiter: word.text,
                    strip_tabs,
                    line: String::new(),
                });
            }
            NextWord::Argument => self.argument(word),
        }
    }

    fn argument(&mut self, word: Word) {
        let plain = |w: &str| !word.expanded && word.text == w;
        if self.case_patterns {
            if plain("esac") {
                self.case_patterns = false;
                self.case_depth = self.case_depth.saturating_sub(1);
            }
            return;
        }
        if self.at_command_position() {
            if plain("case") {
                self.case_depth += 1;
            } else if plain("esac") {
                self.case_depth = self.case_depth.saturating_sub(1);
            } else if plain("[[") {
                self.test_brackets = true;
            }
        } else if self.test_brackets && plain("]]") {
            self.test_brackets = false;
        }
        self.words.push(word);
        let case_in = self.words.len() == 3
            && self.words[0].text == "case"
            && !self.words[0].expanded
            && self.words[2].text == "in";
        if case_in {
            self.words.clear();
            self.case_patterns = true;
        }
    }

    /// The simple command is complete: apply the rules that depend on its words.
    fn end_command(&mut self, results: &mut [Result<ShellContext, Refusal>]) {
        let words = std::mem::take(&mut self.words);
        self.next_word = NextWord::Argument;
        self.test_brackets = false;
        let mut first = words
            .iter()
            .position(|w| !w.is_reserved() && !w.is_assignment());
        // `command eval …` and `builtin eval …` are still eval.
        while let Some(i) = first
            && matches!(words[i].command_name(), Some("command" | "builtin"))
        {
            first = (i + 1 < words.len()).then_some(i + 1);
        }
        let Some(first) = first else {
            return;
        };
        let arguments = &words[first + 1..];
        match words[first].command_name() {
            Some("eval") => {
                for w in arguments {
                    refuse(results, &w.refs, &Refusal::Eval);
                }
            }
            Some("let") => {
                for w in arguments {
                    refuse(results, &w.refs, &Refusal::Arithmetic);
                }
            }
            Some("[[") => {
                for (i, w) in words.iter().enumerate().skip(first + 1) {
                    let is_test = |j: Option<usize>| {
                        j.and_then(|j| words.get(j)).is_some_and(|n| {
                            !n.expanded && ARITHMETIC_TESTS.contains(&n.text.as_str())
                        })
                    };
                    if is_test(i.checked_sub(1)) || is_test(Some(i + 1)) {
                        refuse(results, &w.refs, &Refusal::Arithmetic);
                    }
                }
            }
            _ => {}
        }
        if let Some((shell, string)) = command_string(&words) {
            refuse(
                results,
                &words[string].refs,
                &Refusal::ShellCommandString { shell },
            );
        }
    }
}

/// The word a shell (or `su`) runs as code with `-c`: `sh -c STRING`, `sudo bash -ec STRING`,
/// `su - app -c STRING`. Returns the command's name and the string's index.
fn command_string(words: &[Word]) -> Option<(String, usize)> {
    let (at, shell) = words.iter().enumerate().find_map(|(i, w)| {
        w.command_name()
            .filter(|n| REPARSING_COMMANDS.contains(n))
            .map(|n| (i, n.to_string()))
    })?;
    let is_c_flag = |w: &Word| {
        !w.expanded
            && w.text.len() > 1
            && w.text.starts_with('-')
            && !w.text.starts_with("--")
            && w.text[1..].chars().all(|c| c.is_ascii_alphabetic())
            && w.text.contains('c')
    };
    let mut i = at + 1;
    while i < words.len() {
        let w = &words[i];
        if is_c_flag(w) {
            return (i + 1 < words.len()).then_some((shell, i + 1));
        }
        let option_with_argument = matches!(w.text.as_str(), "-o" | "+o" | "-O" | "+O");
        let is_option = !w.expanded && (w.text.starts_with('-') || w.text.starts_with('+'));
        // A shell's first operand is a script file: a later `-c` is that script's argument.
        // `su` takes its user name anywhere, so keep looking there.
        if !is_option && !matches!(shell.as_str(), "su" | "runuser") {
            return None;
        }
        i += if option_with_argument { 2 } else { 1 };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::parse;

    fn check(text: &str) -> Vec<Result<ShellContext, Refusal>> {
        contexts(&parse(text).unwrap())
    }

    use Refusal::*;
    use ShellContext::*;

    #[test]
    fn quoting_contexts_that_can_be_made_safe() {
        assert_eq!(check("echo {{vars.a}} x={{vars.b}}"), [Ok(Word), Ok(Word)]);
        assert_eq!(check("echo \"v={{vars.a}}\" '\\{{'"), [Ok(DoubleQuoted)]);
        assert_eq!(check("echo \"$(echo {{vars.a}})\""), [Ok(Word)]);
        assert_eq!(check("echo \"$(echo \"{{vars.a}}\")\""), [Ok(DoubleQuoted)]);
        assert_eq!(check("echo 'it''s' {{vars.a}}"), [Ok(Word)]);
        assert_eq!(check("echo \\' {{vars.a}}"), [Ok(Word)]);
        assert_eq!(check("echo \"\\\"\" {{vars.a}}"), [Ok(Word)]);
        assert_eq!(check("f -f='${Version}' | grep {{vars.a}}"), [Ok(Word)]);
        assert_eq!(check("x=$((1 + 2)) {{vars.a}}"), [Ok(Word)]);
        assert_eq!(check("a#b {{vars.a}}"), [Ok(Word)]);
        assert_eq!(check("cat <<<{{vars.a}}"), [Ok(Word)]);
        assert_eq!(check("diff <(echo {{vars.a}}) f"), [Ok(Word)]);
        assert_eq!(check("[[ -f {{vars.a}} ]]"), [Ok(Word)]);
        assert_eq!(check("echo $'a\\'b' {{vars.a}}"), [Ok(Word)]);
        assert_eq!(check("eval x; echo {{vars.a}}"), [Ok(Word)]);
        assert_eq!(check("sh script.sh -c {{vars.a}}"), [Ok(Word)]);
        assert_eq!(
            check("echo \"x {{raw vars.a}}\" '{{raw vars.b}}'"),
            [Ok(DoubleQuoted), Ok(Word)]
        );
    }

    #[test]
    fn case_patterns_inside_a_substitution_do_not_close_it() {
        assert_eq!(
            check("echo \"$(case $x in a) echo y;; (b) echo z;; esac) {{vars.a}}\""),
            [Ok(DoubleQuoted)]
        );
        assert_eq!(
            check("x=$(case a in a) echo ok;; esac); echo \"{{vars.a}}\""),
            [Ok(DoubleQuoted)]
        );
    }

    #[test]
    fn places_that_cannot_be_made_safe() {
        assert_eq!(check("echo '{{vars.a}}'"), [Err(SingleQuoted)]);
        assert_eq!(check("echo $'{{vars.a}}'"), [Err(AnsiCQuoted)]);
        assert_eq!(check("echo `echo {{vars.a}}`"), [Err(Backticks)]);
        assert_eq!(check("echo \"`echo {{vars.a}}`\""), [Err(Backticks)]);
        assert_eq!(check("eval echo {{vars.a}}"), [Err(Eval)]);
        assert_eq!(check("X=1 command eval \"echo {{vars.a}}\""), [Err(Eval)]);
        assert_eq!(check("eval \"$(echo {{vars.a}})\""), [Err(Eval)]);
        let sh = |s: &str| Err(ShellCommandString { shell: s.into() });
        assert_eq!(check("sh -c \"echo {{vars.a}}\""), [sh("sh")]);
        assert_eq!(
            check("sudo /bin/bash -o pipefail -ec \"x {{vars.a}}\""),
            [sh("bash")]
        );
        assert_eq!(check("su - app -c \"x {{vars.a}}\""), [sh("su")]);
        assert_eq!(check("sh -c 'x \"$1\"' sh {{vars.a}}"), [Ok(Word)]);
        assert_eq!(
            check("cat <<EOF\n{{vars.a}}\nEOF\necho {{vars.b}}"),
            [Err(HereDoc), Ok(Word)]
        );
        assert_eq!(check("cat <<-'E' > f\n\tx {{vars.a}}\n\tE"), [Err(HereDoc)]);
        assert_eq!(check("cat <<{{vars.a}}\nx"), [Err(HereDoc)]);
        assert_eq!(
            check("cat <<E\n{{vars.a}}\nE\neval {{vars.b}}"),
            [Err(HereDoc), Err(Eval)]
        );
        assert_eq!(check("echo $(( {{vars.a}} + 1 ))"), [Err(Arithmetic)]);
        assert_eq!(check("(( {{vars.a}} > 1 ))"), [Err(Arithmetic)]);
        assert_eq!(check("let x={{vars.a}}"), [Err(Arithmetic)]);
        assert_eq!(
            check("[[ {{vars.a}} -eq 1 ]] && echo {{vars.b}}"),
            [Err(Arithmetic), Ok(Word)]
        );
        assert_eq!(check("echo ${X:-{{vars.a}}}"), [Err(ParameterExpansion)]);
        assert_eq!(
            check("echo \"${X:-{{vars.a}}}\""),
            [Err(ParameterExpansion)]
        );
        assert_eq!(
            check("echo hi # {{vars.a}}\necho {{vars.b}}"),
            [Err(Comment), Ok(Word)]
        );
        assert_eq!(check("echo ${{vars.a}}"), [Err(AfterDollar)]);
        assert_eq!(check("echo \"${{vars.a}}\""), [Err(AfterDollar)]);
        assert_eq!(
            check("echo \"{{vars.a}}"),
            [Err(Unterminated { opened: "a `\"`" })]
        );
    }

    #[test]
    fn raw_is_never_refused() {
        assert_eq!(check("echo '{{raw vars.a}}'"), [Ok(Word)]);
        assert_eq!(check("eval {{raw vars.a}}"), [Ok(Word)]);
    }
}
