//! The remote command line: environment exports, shell quoting, the process-group marker;
//! `become` is wrapped by [`super::sudo`].
//!
//! Environment variables travel inside the command (`export K='v'; ...`) rather than as SSH
//! `env` requests, because sshd accepts those only for names listed in its `AcceptEnv`.

use std::time::Duration;

use crate::transport::Become;

/// Quotes `s` as one POSIX shell word.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A valid shell variable name (sluice refuses others rather than quoting them wrongly).
pub fn valid_env_name(name: &str) -> bool {
    crate::secret_stdin::valid_name(name)
}

/// First stderr line of a command run with a timeout: the remote login shell's pid, which is
/// also its process group (sshd starts every session command with `setsid`). The client strips
/// it from stderr and, on timeout, kills that group over a second channel: sshd refuses the SSH
/// `signal` request for root logins ("session signalling requires privilege separation").
pub const PGID_MARKER: &[u8] = b"\x1esluice-pgid=";

/// An environment variable name that is not a shell name: sluice refuses it rather than quote
/// it wrongly.
#[derive(Debug, thiserror::Error)]
#[error("invalid environment variable name {0:?}")]
pub struct InvalidEnvName(pub String);

/// Builds the command line sent in the SSH `exec` request: the process-group marker, then (under
/// sudo, when the command becomes another user) the exports, the `prologue` that reads secret
/// values from stdin ([`crate::secret_stdin`]; empty without secrets) and the command. The
/// prologue runs in the shell that runs the command, so its variables are the command's.
pub fn remote_command(
    command: &str,
    prologue: &str,
    env: &[(String, String)],
    become_user: Option<&Become>,
    timeout: Option<Duration>,
) -> Result<String, InvalidEnvName> {
    let mut inner = String::new();
    for (k, v) in env {
        if !valid_env_name(k) {
            return Err(InvalidEnvName(k.clone()));
        }
        inner.push_str(&format!("export {k}={}; ", quote(v)));
    }
    if !prologue.is_empty() {
        // The prologue is lines of its own; `export …; ` before it ends with a separator.
        inner.push('\n');
        inner.push_str(prologue);
    }
    inner.push_str(command);
    let marker = match timeout {
        Some(_) => "printf '\\036sluice-pgid=%s\\n' \"$$\" >&2; ",
        None => "",
    };
    Ok(match become_user {
        None => format!("{marker}{inner}"),
        Some(b) => format!("{marker}{}", super::sudo::command_line(&inner, b, timeout)),
    })
}

/// Splits the [`PGID_MARKER`] line off the start of stderr, once the whole line has arrived.
#[derive(Default)]
pub struct PgidLine {
    buf: Vec<u8>,
    done: bool,
    pub pgid: Option<i64>,
}

impl PgidLine {
    /// A parser for a command that did not print the marker.
    pub fn absent() -> Self {
        PgidLine {
            done: true,
            ..Default::default()
        }
    }

    /// Feeds stderr bytes; returns those that belong to the command's own stderr.
    pub fn feed<'a>(&mut self, data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        if self.done {
            return data.into();
        }
        self.buf.extend_from_slice(data);
        let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
            // The marker is short; anything longer than it without a newline is not the marker.
            if self.buf.len() > 64
                || !PGID_MARKER.starts_with(&self.buf[..self.buf.len().min(PGID_MARKER.len())])
            {
                self.done = true;
                return std::mem::take(&mut self.buf).into();
            }
            return Vec::new().into();
        };
        self.done = true;
        let line = &self.buf[..nl];
        match line.strip_prefix(PGID_MARKER) {
            Some(pid) => {
                self.pgid = std::str::from_utf8(pid).ok().and_then(|p| p.parse().ok());
                self.buf[nl + 1..].to_vec().into()
            }
            None => std::mem::take(&mut self.buf).into(),
        }
    }

    /// Bytes held back at the end of the stream (a stderr that never had a newline).
    pub fn finish(&mut self) -> Vec<u8> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgid_line_is_stripped_across_chunks() {
        let mut p = PgidLine::default();
        assert!(p.feed(b"\x1esluice-pg").is_empty());
        assert_eq!(&*p.feed(b"id=4242\nreal err"), b"real err");
        assert_eq!(&*p.feed(b" more"), b" more");
        assert_eq!(p.pgid, Some(4242));
        let mut q = PgidLine::default();
        assert_eq!(&*q.feed(b"no marker\n"), b"no marker\n");
    }

    #[test]
    fn env_is_exported_and_quoted() {
        let env = vec![("A".to_string(), "x'; rm -rf /".to_string())];
        let line = remote_command("echo $A", "", &env, None, None).unwrap();
        assert_eq!(line, r"export A='x'\''; rm -rf /'; echo $A");
        assert!(remote_command("true", "", &[("A B".into(), String::new())], None, None).is_err());
    }

    #[test]
    fn the_prologue_is_inside_sudo_and_no_value_is_on_the_line() {
        let mut req = crate::ExecRequest::new(r#"echo "${__sluice_s1}""#);
        req.secrets.push(crate::SecretVar {
            name: "__sluice_s1".into(),
            value: "tok-secret".into(),
        });
        let prologue = crate::secret_stdin::Prologue::of(&req).unwrap().unwrap();
        let b = Become {
            user: None,
            password: Some("sudo-pw".into()),
        };
        let env = vec![("A".to_string(), "1".to_string())];
        let line = remote_command(&req.command, &prologue.text, &env, Some(&b), None).unwrap();
        assert!(
            !line.contains("tok-secret") && !line.contains("sudo-pw"),
            "{line}"
        );
        // The exports, the prologue and the command are one argument of `sudo … sh -c W`.
        let inner = quote(&format!("export A='1'; \n{}{}", prologue.text, req.command));
        assert!(line.ends_with(&inner), "{line}");
    }
}
