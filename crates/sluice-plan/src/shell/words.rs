//! The words of a simple command, and the rules that refuse a reference because of the command
//! it is in: `eval`, `trap`, `watch`, `let`, `[[ … -eq … ]]`, `sh -c`, `su -c`, `ssh HOST …`,
//! here-document delimiters.

use super::lexer::HereDocBody;
use super::{Refusal, ShellContext};

/// Shells, whose `-c` argument is a command string they parse again.
const SHELLS: &[&str] = &["sh", "bash", "dash", "ksh", "mksh", "zsh", "ash"];
/// Commands that hand their `-c` argument to a shell, wherever it stands among their arguments.
const C_COMMANDS: &[&str] = &["su", "runuser", "flock", "script"];
/// Commands that run their arguments as shell code: `trap` when the signal comes, `watch` by
/// handing them to `sh -c`.
const EVALUATING_COMMANDS: &[&str] = &["eval", "trap", "watch"];
/// Commands that run the command in their arguments.
const WRAPPERS: &[&str] = &[
    "sudo", "env", "nice", "nohup", "timeout", "exec", "setsid", "time",
];
/// ssh(1) options that take an argument.
const SSH_OPTIONS_WITH_ARGUMENT: &str = "BbcDEeFIiJLlmOopQRSWw";
/// Words after which the next word is at command position.
const RESERVED_WORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in", "case",
    "esac", "{", "}", "!", "time", "function", "select",
];
/// `[[ … ]]` operators whose operands bash evaluates as arithmetic.
const ARITHMETIC_TESTS: &[&str] = &["-eq", "-ne", "-lt", "-le", "-gt", "-ge"];

/// Shell code: the whole command, or the inside of `$(…)` / `<(…)`.
#[derive(Default)]
pub(super) struct Script {
    /// Ends at its unmatched `)` (a substitution), rather than at the end of the text.
    pub(super) substitution: bool,
    /// Open `(` of subshells and function definitions inside this script.
    pub(super) parens: u32,
    pub(super) comment: bool,
    pub(super) word: Word,
    /// The current simple command's words so far.
    pub(super) words: Vec<Word>,
    pub(super) next_word: NextWord,
    /// Here-documents announced on the current line; their bodies start at the next line break.
    pub(super) heredocs: Vec<HereDocBody>,
    pub(super) case_depth: u32,
    /// Reading `case` patterns, where `(` and `)` are not subshells.
    pub(super) case_patterns: bool,
    /// Inside `[[ … ]]`, where `&&`, `<` and `(` are operators of the test, not of the shell.
    pub(super) test_brackets: bool,
}

#[derive(Default)]
pub(super) enum NextWord {
    #[default]
    Argument,
    RedirectTarget,
    HereDocDelimiter {
        strip_tabs: bool,
    },
}

#[derive(Default)]
pub(super) struct Word {
    pub(super) started: bool,
    /// The word with its quotes removed, for recognising `eval` or a here-document delimiter.
    pub(super) text: String,
    /// Has a substitution or a reference, so `text` is not all of it.
    pub(super) expanded: bool,
    /// References inside the word, at any depth.
    pub(super) refs: Vec<usize>,
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
    pub(super) fn at_command_position(&self) -> bool {
        !self.word.started
            && self
                .words
                .iter()
                .all(|w| w.is_reserved() || w.is_assignment())
    }

    pub(super) fn end_word(&mut self, results: &mut [Result<ShellContext, Refusal>]) {
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
    pub(super) fn end_command(&mut self, results: &mut [Result<ShellContext, Refusal>]) {
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
            Some(command) if EVALUATING_COMMANDS.contains(&command) => {
                let why = Refusal::Evaluated {
                    command: command.to_string(),
                };
                for w in arguments {
                    refuse(results, &w.refs, &why);
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
        if let Some(start) = remote_command(&words, first) {
            for w in &words[start..] {
                refuse(results, &w.refs, &Refusal::RemoteCommand);
            }
        }
    }
}

/// Where the command `ssh` sends to the remote shell starts: the words after the destination,
/// which ssh joins with spaces for the remote shell to parse again. Only when ssh is the command
/// run (after `sudo`, `timeout 5` and the like): `apt-get install ssh x` is not one.
fn remote_command(words: &[Word], first: usize) -> Option<usize> {
    let at = command_after_wrappers(words, first);
    if words.get(at)?.command_name() != Some("ssh") {
        return None;
    }
    let mut i = at + 1;
    while let Some(w) = words.get(i) {
        if w.expanded || !w.text.starts_with('-') || w.text == "-" {
            // The destination.
            return Some(i + 1);
        }
        if w.text == "--" {
            return Some(i + 2);
        }
        // In `-tp 22` the option that takes an argument ends the cluster and takes the next
        // word; in `-p22` the argument is attached.
        let flags = &w.text[1..];
        let takes_next = flags
            .find(|c| SSH_OPTIONS_WITH_ARGUMENT.contains(c))
            .is_some_and(|at| at + 1 == flags.len());
        i += if takes_next { 2 } else { 1 };
    }
    None
}

/// The command a wrapper runs: `sudo -u app ssh …`, `timeout 30 ssh …`, `env A=1 nice -n 5 ssh`.
fn command_after_wrappers(words: &[Word], first: usize) -> usize {
    let mut i = first;
    while let Some(name) = words.get(i).and_then(Word::command_name) {
        if !WRAPPERS.contains(&name) {
            return i;
        }
        i += 1;
        while let Some(w) = words.get(i) {
            let text = w.text.as_str();
            let duration = text.trim_end_matches(['s', 'm', 'h', 'd']);
            let is_duration =
                !duration.is_empty() && duration.chars().all(|c| c.is_ascii_digit() || c == '.');
            if w.expanded || !(text.starts_with('-') || w.is_assignment() || is_duration) {
                break;
            }
            // `sudo -u app`, `nice -n 5`, `timeout -s KILL`: the option's argument.
            i += if matches!(text, "-u" | "-g" | "-n" | "-s" | "-k" | "-C" | "-D" | "-h") {
                2
            } else {
                1
            };
        }
    }
    i
}

/// The word a shell (or `su`, `flock`, …) runs as code with `-c`: `sh -c STRING`,
/// `sudo bash -ec STRING`, `su - app -c STRING`. Returns the command's name and the string's
/// index.
fn command_string(words: &[Word]) -> Option<(String, usize)> {
    let (at, shell) = words.iter().enumerate().find_map(|(i, w)| {
        w.command_name()
            .filter(|n| SHELLS.contains(n) || C_COMMANDS.contains(n))
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
        // The others take operands (a user, a lock file) before `-c`, so keep looking there.
        if !is_option && SHELLS.contains(&shell.as_str()) {
            return None;
        }
        i += if option_with_argument { 2 } else { 1 };
    }
    None
}
