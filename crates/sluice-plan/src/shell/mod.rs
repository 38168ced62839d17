//! Where each `{{…}}` of a shell command lands: a POSIX shell lexer over the template's text.
//!
//! A value is written differently depending on where it stands. Outside quotes it is quoted as
//! one word; inside `"…"` it is escaped for double quotes. Some places cannot hold an arbitrary
//! value safely whatever is done to it, and a reference there is refused at plan time
//! ([`Refusal`]): single quotes (nothing can be escaped), `$'…'`, backticks (they re-read
//! backslashes), here-documents (a line of the value could end the document), arithmetic and
//! `${…}` (they evaluate their text), comments (a line break ends them), right after `$`, and
//! text that is parsed as shell code again: the arguments of `eval`, `trap`, `watch` and `let`,
//! the command string of `sh -c` and its kin (`bash`, `su`, `flock`, …), and the remote command
//! of `ssh`. `{{raw …}}` is never refused: it is the author's explicit choice to insert shell
//! syntax.
//!
//! The lexer follows the POSIX token rules for what matters here: quotes, backslashes, `$(…)`,
//! `$((…))`, `${…}`, backticks, comments, operators, here-documents (`<<`, `<<-`, their bodies
//! after the next line break) and `case` patterns inside `$(…)`. It keeps the words of the
//! current simple command to recognise those commands and `[[ … -eq … ]]` (in `words.rs`). It
//! does not need to understand the whole grammar: it only has to know, at each `{{`, which
//! quotes and substitutions are open.

mod lexer;
mod words;

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
    #[error("is an argument of `{command}`, which runs its arguments as shell code")]
    Evaluated { command: String },
    #[error("is in the command string of `{shell} -c`, which runs it as shell code")]
    ShellCommandString { shell: String },
    #[error("is part of the command `ssh` sends, which the remote shell parses again")]
    RemoteCommand,
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
            Refusal::Evaluated { command } => format!(
                "pass the value as an argument instead of building code for `{command}`; write `{{{{raw {reference}}}}}` only if the value is meant to be shell code"
            ),
            Refusal::RemoteCommand => format!(
                "send the value on stdin instead: `printf '%s\\n' {r} | ssh HOST 'read -r v; cmd \"$v\"'`"
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
    let mut lexer = lexer::Lexer::default();
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
