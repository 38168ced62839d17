//! Secret values on a command's stdin, never on a command line.
//!
//! A command line is public on its host: `ps` shows every process's arguments to every user, and
//! sshd runs the `exec` request's text as `$SHELL -c TEXT`. So a command that needs secret values
//! ([`ExecRequest::secrets`]) refers to each one by a shell variable (`"${__sluice_s1}"`), and the
//! values travel on the command's stdin:
//!
//! 1. The transport puts [`Prologue::text`] in front of the command text, in the shell that runs
//!    the command (under `become`, inside sudo: shell variables do not cross sudo). It is fixed
//!    text that names the variables, never their values: it defines a reader, reads each value
//!    into its variable in order, forgets the reader, and then points stdin at `/dev/null`
//!    (unless the request has stdin of its own), so the command never reads the frame.
//! 2. The transport writes [`Prologue::frame`] on the command's stdin before the request's own
//!    stdin. Under `become` the frame is sent once the command has started, after sudo's
//!    password if sudo asked for it (sudo reads its password a byte at a time itself).
//!
//! **The frame.** For each value: the number N of its lines in decimal and a line break, then
//! its N lines, each followed by a line break (a value is split at its line breaks, so `a\nb` is
//! 2 lines and `a\n` is 2 lines, the second empty). The reader reads it with `IFS= read -r`,
//! which keeps every byte of a line except the line break, and joins the lines again with line
//! breaks. Values are only ever read, never parsed: no value (quotes, `$(…)`, line breaks,
//! control characters) can end the frame early or run. Shells read a pipe a byte at a time for
//! `read`, so nothing past the frame is consumed.
//!
//! **Failure modes.** A value holding a NUL byte cannot be held by a shell variable: the request
//! is refused before anything is sent ([`InvalidSecret`]). A shell whose stdin ends before the
//! frame does (the channel closed early) prints `sluice: the secret values did not arrive on
//! stdin` on stderr and exits 125 without running the command. The login shell must be a POSIX
//! shell (sh, dash, bash, zsh, ksh, busybox ash), as for every command sluice sends.

use std::fmt;

use crate::transport::ExecRequest;

/// Exit status of a command whose secret values did not arrive.
pub const NOT_ARRIVED_EXIT: i32 = 125;

/// The reader function and its scratch variables; none of them is exported.
const READER: &str = "__sluice_read() { IFS= read -r __sluice_n || return 1; __sluice_v=; \
__sluice_sep=; while [ \"$__sluice_n\" -gt 0 ]; do IFS= read -r __sluice_l || return 1; \
__sluice_v=$__sluice_v$__sluice_sep$__sluice_l; __sluice_sep='\n'; \
__sluice_n=$((__sluice_n - 1)); done; }\n";

const FORGET: &str =
    "unset -f __sluice_read; unset __sluice_n __sluice_l __sluice_v __sluice_sep\n";

/// A secret value for the command, and the shell variable the command text names it by.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretVar {
    pub name: String,
    pub value: String,
}

impl fmt::Debug for SecretVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretVar({} = ***)", self.name)
    }
}

/// A request's secrets that cannot be passed.
#[derive(Debug, thiserror::Error)]
pub enum InvalidSecret {
    #[error("invalid shell variable name {0:?} for a secret value")]
    Name(String),
    #[error(
        "the value of {0} holds a NUL byte, which no shell variable can hold; nothing was sent"
    )]
    Nul(String),
}

/// What a request with secrets adds: text in front of the command, bytes in front of its stdin.
pub struct Prologue {
    /// Shell text naming the variables, never a value.
    pub text: String,
    /// The values, framed for the prologue. Secret: never log it.
    pub frame: Vec<u8>,
}

impl Prologue {
    /// The prologue of `request`; `None` when it has no secrets (nothing changes then).
    pub fn of(request: &ExecRequest) -> Result<Option<Prologue>, InvalidSecret> {
        if request.secrets.is_empty() {
            return Ok(None);
        }
        let mut text = String::from(READER);
        let mut frame = Vec::new();
        let mut reads = Vec::new();
        for secret in &request.secrets {
            if !valid_name(&secret.name) {
                return Err(InvalidSecret::Name(secret.name.clone()));
            }
            if secret.value.contains('\0') {
                return Err(InvalidSecret::Nul(secret.name.clone()));
            }
            reads.push(format!("__sluice_read && {}=$__sluice_v", secret.name));
            let lines: Vec<&str> = secret.value.split('\n').collect();
            frame.extend_from_slice(format!("{}\n", lines.len()).as_bytes());
            for line in lines {
                frame.extend_from_slice(line.as_bytes());
                frame.push(b'\n');
            }
        }
        text.push_str(&format!(
            "{{ {}; }} || {{ printf '%s\\n' 'sluice: the secret values did not arrive on stdin' >&2; exit {NOT_ARRIVED_EXIT}; }}\n",
            reads.join(" && ")
        ));
        text.push_str(FORGET);
        if request.stdin.is_none() {
            // The command's stdin is empty, as without secrets: it never sees the frame.
            text.push_str("exec </dev/null\n");
        }
        Ok(Some(Prologue { text, frame }))
    }
}

impl fmt::Debug for Prologue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prologue")
            .field("text", &self.text)
            .field("frame_bytes", &self.frame.len())
            .finish()
    }
}

/// A valid shell variable name.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(values: &[&str]) -> ExecRequest {
        let mut req = ExecRequest::new("true");
        req.secrets = values
            .iter()
            .enumerate()
            .map(|(i, v)| SecretVar {
                name: format!("__sluice_s{}", i + 1),
                value: v.to_string(),
            })
            .collect();
        req
    }

    #[test]
    fn the_frame_counts_lines_and_the_text_holds_no_value() {
        let p = Prologue::of(&request(&["v4lue", "tw0\nl1nes\n"]))
            .unwrap()
            .unwrap();
        assert_eq!(p.frame, b"1\nv4lue\n3\ntw0\nl1nes\n\n".to_vec());
        assert!(!p.text.contains("v4lue") && !p.text.contains("l1nes"));
        assert!(
            p.text.contains("__sluice_s1=$__sluice_v") && p.text.ends_with("exec </dev/null\n")
        );
        assert!(Prologue::of(&ExecRequest::new("true")).unwrap().is_none());
    }

    #[test]
    fn nul_bytes_and_bad_names_are_refused() {
        assert!(matches!(
            Prologue::of(&request(&["a\0b"])),
            Err(InvalidSecret::Nul(_))
        ));
        let mut req = request(&["x"]);
        req.secrets[0].name = "a b".into();
        assert!(matches!(Prologue::of(&req), Err(InvalidSecret::Name(_))));
        assert!(!format!("{:?}", req.secrets).contains('x'));
    }

    /// The prologue in real shells: every value arrives exact, and the command's stdin is
    /// empty (or is the request's own stdin, untouched).
    #[test]
    fn values_arrive_exact_in_real_shells() {
        use std::io::Write;
        let values = [
            "plain",
            "it's \"quoted\" $(touch pwned) `x` \\ $HOME *",
            "-----BEGIN KEY-----\nMIIB\r\nAAAA\n-----END KEY-----\n\n",
            "\x01\x02\x07\x1b[31m\x7f é ✓ \t end",
            "\n",
            " lead and trail ",
            "-n",
        ];
        for shell in ["sh", "bash"] {
            for with_stdin in [false, true] {
                let mut req = request(&values);
                if with_stdin {
                    req.stdin = Some(b"own stdin\n".to_vec());
                }
                let p = Prologue::of(&req).unwrap().unwrap();
                let script = (1..=values.len())
                    .map(|i| format!("printf '%s\\0' \"${{__sluice_s{i}}}\"; "))
                    .collect::<String>();
                let text = format!("{}{script}cat", p.text);
                let mut child = std::process::Command::new(shell)
                    .arg("-c")
                    .arg(&text)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot run {shell} ({e}): install it"));
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(&p.frame).unwrap();
                if let Some(own) = &req.stdin {
                    stdin.write_all(own).unwrap();
                }
                drop(stdin);
                let out = child.wait_with_output().unwrap();
                let mut expected: Vec<u8> = values
                    .iter()
                    .flat_map(|v| [v.as_bytes(), b"\0"].concat())
                    .collect();
                if with_stdin {
                    expected.extend_from_slice(b"own stdin\n");
                }
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&expected),
                    "{shell}, own stdin: {with_stdin}"
                );
                assert!(out.status.success());
            }
        }
    }

    #[test]
    fn a_missing_frame_stops_the_command_with_125() {
        let p = Prologue::of(&request(&["a", "b"])).unwrap().unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{}echo ran", p.text))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(NOT_ARRIVED_EXIT));
        assert!(out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).contains("did not arrive"));
    }
}
