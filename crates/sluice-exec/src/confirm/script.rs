//! The shell scripts of confirm-or-revert on the host: arm, disarm or inspect, clean up.
//!
//! One directory per armed step, `BASE/UNIT` (BASE: the host variable `sluice_confirm_dir`, or
//! `$HOME/.sluice/confirm` of the user the step runs as; UNIT: `sluice-confirm-` and 16 hex
//! digits of the run, host and step), mode 0700, holds:
//!
//! - `undo.sh` (0600): the step's undo, with the host's environment exports and its secret
//!   values as shell assignments. It arrives on the arming command's stdin, never in argv, so
//!   no secret is in a process listing; it rests on the host's disk until the step is settled.
//! - `fire.sh`: what the timer runs: `mv armed firing` (the commit point), then the undo, its
//!   output to `undo.out` and its exit code to `result` (written aside, then renamed).
//! - `armed`: present while nobody has won. Disarming is `mv armed disarmed`. Both renames
//!   move the same file, so exactly one of them succeeds: the step is either confirmed (or
//!   disarmed) or reverted, never both.
//! - `pid`: the sleeping timer's process id (session and process group leader, so killing
//!   the group takes its `sleep` too), when systemd does not keep the time.
//!
//! Every script prints its findings as `WORD [VALUE]` lines for [`parse_state`].

use std::fmt::Write as _;

use sluice_model::ConfirmTimer;
use sluice_plan::shell_quote;

/// The prefix of every confirm's unit name (and of the marker in the sleeper's command line).
pub(crate) const UNIT_PREFIX: &str = "sluice-confirm-";

/// The unit name of a step's confirm on a host in a run: the same again after a resume, so
/// that a resumed run finds what the interrupted one armed.
pub(crate) fn unit_name(run: &str, host: &str, step: &str) -> String {
    // FNV-1a: stable across builds and platforms, which std's hasher does not promise.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in [run, host, step].join("\0").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{UNIT_PREFIX}{hash:016x}")
}

/// Where the confirm files of `unit` are, as a shell word that sets `D` (and fails, so the
/// script stops, when `$HOME` is unset and no directory is configured).
fn set_dir(base: Option<&str>, unit: &str) -> String {
    match base {
        Some(base) => format!("D={}/{unit}\n", shell_quote(base)),
        None => format!(
            "D=\"${{HOME:?no HOME: set the host variable sluice_confirm_dir}}/.sluice/confirm/{unit}\"\n"
        ),
    }
}

/// Stops the timer of `unit` in `$D` once the state left `armed`: the sleeper's process group
/// (only if that pid still runs our script: a pid may be reused) and the systemd timer.
fn stop_timer(unit: &str) -> String {
    format!(
        "p=$(cat \"$D/pid\" 2>/dev/null)\n\
         case $p in ''|*[!0-9]*) ;; *)\n  \
           if grep -q {unit} \"/proc/$p/cmdline\" 2>/dev/null; then kill -s TERM -- \"-$p\" 2>/dev/null || kill -s TERM \"$p\" 2>/dev/null; fi ;;\n\
         esac\n\
         if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then systemctl stop {unit}.timer >/dev/null 2>&1; fi\n"
    )
}

/// The text of `undo.sh`: exports, secret assignments, then the undo's resolved text.
pub(crate) fn undo_file(
    env: &[(String, String)],
    secrets: &[(String, String)],
    undo: &str,
) -> String {
    let mut out =
        String::from("# sluice: the undo a confirm timer runs if the step is not confirmed\n");
    for (name, value) in env {
        let _ = writeln!(out, "{name}={}; export {name}", shell_quote(value));
    }
    for (name, value) in secrets {
        let _ = writeln!(out, "{name}={}", shell_quote(value));
    }
    out.push_str(undo);
    out.push('\n');
    out
}

/// The arming script: reads `undo.sh` from stdin, writes `fire.sh`, marks the step `armed`
/// and starts the timer, `within_secs` from now. Prints `dir D` and `timer systemd|sleeper`.
/// A directory left by an earlier arming of the same step (a resume runs it again) is
/// disarmed and replaced first.
pub(crate) fn arm(base: Option<&str>, unit: &str, within_secs: u64) -> String {
    let mut s = String::from("umask 077\n");
    s.push_str(&set_dir(base, unit));
    s.push_str("mkdir -p \"${D%/*}\" || exit 90\n");
    s.push_str("if [ -d \"$D\" ]; then mv \"$D/armed\" \"$D/disarmed\" 2>/dev/null\n");
    s.push_str(&stop_timer(unit));
    s.push_str("rm -rf -- \"$D\"; fi\n");
    s.push_str("mkdir -m 700 \"$D\" || exit 91\n");
    s.push_str("cat > \"$D/undo.sh\" || exit 92\n");
    // `fire.sh` names its directory in full: systemd starts it anywhere.
    let _ = write!(
        s,
        "cat > \"$D/fire.sh\" <<'SLUICE_FIRE' || exit 93\n\
         # sluice: run by the confirm timer {unit}; does nothing once sluice disarmed it.\n\
         cd \"$1\" || exit 0\n\
         mv armed firing 2>/dev/null || exit 0\n\
         (cd ~ 2>/dev/null || cd /; exec /bin/sh \"$1/undo.sh\") </dev/null >\"$1/undo.out\" 2>&1\n\
         echo $? > \"$1/result.new\" && mv \"$1/result.new\" \"$1/result\"\n\
         SLUICE_FIRE\n"
    );
    s.push_str(": > \"$D/armed\" || exit 94\n");
    s.push_str("printf 'dir %s\\n' \"$D\"\n");
    let _ = write!(
        s,
        "if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1 && \
         systemd-run --quiet --collect --unit={unit} --on-active={within_secs}s /bin/sh \"$D/fire.sh\" \"$D\" >/dev/null 2>&1; then\n  \
           echo 'timer systemd'; exit 0\n\
         fi\n"
    );
    // A session of its own: killing the SSH session, the runner's process group or sshd
    // leaves it running; its stdio is /dev/null, so no channel waits for it.
    let _ = write!(
        s,
        "setsid nohup /bin/sh -c 'echo $$ > \"$0/pid\"; sleep {within_secs}; exec /bin/sh \"$0/fire.sh\" \"$0\"' \"$D\" </dev/null >/dev/null 2>&1 &\n\
         i=0; while [ ! -s \"$D/pid\" ] && [ $i -lt 200 ]; do sleep 0.05 2>/dev/null || sleep 1; i=$((i+1)); done\n\
         [ -s \"$D/pid\" ] || exit 95\n\
         echo 'timer sleeper'\n"
    );
    s
}

/// Disarms (`mv armed disarmed`, then stops the timer) when `disarm`, or only looks; prints
/// the state it found: `won` (this call disarmed it), `disarmed` (disarmed before), `armed`
/// (looking only), `firing` (the undo runs), `reverted CODE`, or `none` (no such directory).
pub(crate) fn settle(base: Option<&str>, unit: &str, disarm: bool) -> String {
    let mut s = set_dir(base, unit);
    s.push_str("[ -d \"$D\" ] || { echo none; exit 0; }\n");
    if disarm {
        s.push_str("if mv \"$D/armed\" \"$D/disarmed\" 2>/dev/null; then\n");
        s.push_str(&stop_timer(unit));
        s.push_str("echo won; exit 0; fi\n");
    }
    s.push_str(
        "if [ -e \"$D/result\" ]; then echo \"reverted $(cat \"$D/result\")\"\n\
         elif [ -e \"$D/firing\" ]; then echo firing\n\
         elif [ -e \"$D/armed\" ]; then echo armed\n\
         elif [ -e \"$D/disarmed\" ]; then echo disarmed\n\
         else echo none; fi\n",
    );
    s
}

/// Prints the output of the undo the timer ran.
pub(crate) fn undo_output(base: Option<&str>, unit: &str) -> String {
    let mut s = set_dir(base, unit);
    s.push_str("cat \"$D/undo.out\" 2>/dev/null\n");
    s
}

/// Removes the directory (the undo text with its secrets leaves the disk), once the outcome is
/// on record.
pub(crate) fn clean_up(base: Option<&str>, unit: &str) -> String {
    let mut s = set_dir(base, unit);
    s.push_str("rm -rf -- \"$D\"\n");
    s
}

/// What a settle script found on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostState {
    /// This call moved `armed` to `disarmed`: the timer can no longer fire.
    Won,
    Disarmed,
    Armed,
    Firing,
    Reverted(i32),
    None,
}

/// The state a settle script printed, or `None` if its output is not one.
pub(crate) fn parse_state(stdout: &str) -> Option<HostState> {
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    let mut words = line.split_whitespace();
    Some(match (words.next()?, words.next()) {
        ("won", None) => HostState::Won,
        ("disarmed", None) => HostState::Disarmed,
        ("armed", None) => HostState::Armed,
        ("firing", None) => HostState::Firing,
        ("none", None) => HostState::None,
        ("reverted", Some(code)) => HostState::Reverted(code.parse().ok()?),
        _ => return None,
    })
}

/// What the arming script printed: the directory and the timer.
pub(crate) struct ArmedOn {
    pub dir: String,
    pub timer: ConfirmTimer,
}

pub(crate) fn parse_armed(stdout: &str) -> Option<ArmedOn> {
    let mut dir = None;
    let mut timer = None;
    for line in stdout.lines() {
        if let Some(d) = line.strip_prefix("dir ") {
            dir = Some(d.to_string());
        }
        match line.trim() {
            "timer systemd" => timer = Some(ConfirmTimer::Systemd),
            "timer sleeper" => timer = Some(ConfirmTimer::Sleeper),
            _ => {}
        }
    }
    Some(ArmedOn {
        dir: dir?,
        timer: timer?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_name_is_stable_and_differs_per_host_and_step() {
        let a = unit_name("20261123T110142Z-1", "web-1", "sshd");
        assert_eq!(a, unit_name("20261123T110142Z-1", "web-1", "sshd"));
        assert_ne!(a, unit_name("20261123T110142Z-1", "web-2", "sshd"));
        assert_ne!(a, unit_name("20261123T110142Z-1", "web-1", "sshd2"));
        assert_eq!(a.len(), UNIT_PREFIX.len() + 16);
    }

    #[test]
    fn the_state_is_the_last_line() {
        assert_eq!(parse_state("noise\nwon\n"), Some(HostState::Won));
        assert_eq!(parse_state("reverted 3\n"), Some(HostState::Reverted(3)));
        assert_eq!(parse_state("reverted x\n"), None);
        assert_eq!(parse_state(""), None);
    }
}
