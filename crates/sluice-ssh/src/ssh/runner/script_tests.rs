//! `runner.sh` itself, run locally by `sh` without SSH: its output copiers serve a batch of
//! commands each, a new pair takes over after a batch, and none outlives the runner.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::frames::{FrameScanner, Piece};
use super::{Outgoing, SCRIPT};

/// The script with copiers that serve 2 commands each instead of 1024.
fn small_batches() -> String {
    let script = SCRIPT
        .replace("__l=\"$1 $2\" __k=10", "__l=\"$1 $2\" __k=1")
        .replace("__left=1024", "__left=2");
    assert_eq!(
        script.len(),
        SCRIPT.len() - 4,
        "the batch size is no longer where it was"
    );
    script
}

/// A runner on this machine, its streams and their scanners.
struct LocalRunner {
    child: Child,
    out: FrameScanner,
    err: FrameScanner,
}

impl LocalRunner {
    fn start(script: &str) -> LocalRunner {
        let mut child = Command::new("sh")
            .args(["-c", script, "sluice-runner"])
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A runner that hangs fails the test instead of hanging it.
        let pid = child.id().to_string();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(60));
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        });
        let nonce = super::nonce();
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{nonce}\n").as_bytes()).unwrap();
        let mut runner = LocalRunner {
            child,
            out: FrameScanner::new(&nonce),
            err: FrameScanner::new(&nonce),
        };
        assert!(runner.read(true, "ready").1.starts_with("ready "));
        assert_eq!(runner.read(false, "ready").1, "ready");
        runner
    }

    /// Reads stdout (or stderr) up to the frame starting with `last`: the bytes before it and
    /// the frame.
    fn read(&mut self, stdout: bool, last: &str) -> (Vec<u8>, String) {
        let (stream, scanner): (&mut dyn Read, _) = if stdout {
            (self.child.stdout.as_mut().unwrap(), &mut self.out)
        } else {
            (self.child.stderr.as_mut().unwrap(), &mut self.err)
        };
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "the runner ended before {last}");
            for piece in scanner.feed(&chunk[..n]) {
                match piece {
                    Piece::Output(b) => bytes.extend(b),
                    Piece::Frame(f) if f.starts_with(last) => return (bytes, f),
                    Piece::Frame(_) => {}
                }
            }
        }
    }

    /// Runs `text`: its stdout, stderr and status frame.
    fn run(&mut self, text: &str) -> (String, String, String) {
        let outgoing = Outgoing::new(text, b"", false);
        self.out.expect(&outgoing.nonce);
        self.err.expect(&outgoing.nonce);
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(&outgoing.message).unwrap();
        let _ = self.read(true, "start");
        let (out, status) = self.read(true, "exit");
        let (err, _) = self.read(false, "end");
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (text(out), text(err), status)
    }
}

/// Whether process `pid` runs (a zombie does not).
fn alive(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(") ")
        .next()
        .and_then(|rest| rest.chars().next());
    matches!(state, Some(s) if s != 'Z' && s != 'X')
}

#[test]
fn a_pair_of_copiers_serves_a_batch_of_commands_and_none_outlives_the_runner() {
    let mut runner = LocalRunner::start(&small_batches());
    // The runner's `cat` children, as the command (a child of the runner) sees them.
    let copiers = "ps -o pid= -o comm= --ppid $PPID | awk '$2 == \"cat\" { print $1 }' | sort | \
                   tr '\\n' ' '; echo err$$ >&2; printf 'no line break'";
    let mut batches = Vec::new();
    for i in 0..5 {
        let (out, err, status) = runner.run(copiers);
        assert_eq!(status, "exit 0", "{i}");
        let (pids, rest) = out.split_at(out.find("no line break").unwrap());
        assert_eq!(rest, "no line break");
        assert_eq!(pids.split_whitespace().count(), 2, "{i}: {out:?}");
        assert!(
            err.starts_with("err") && err.ends_with('\n'),
            "{i}: {err:?}"
        );
        batches.push(pids.to_string());
    }
    assert_eq!(batches[0], batches[1], "one pair for a batch of 2");
    assert_ne!(batches[1], batches[2], "a new pair after the batch");
    assert_eq!(batches[2], batches[3]);
    assert_ne!(batches[3], batches[4]);
    assert!(batches[4].split_whitespace().all(alive));
    // The end of stdin ends the runner, and its copiers with it.
    drop(runner.child.stdin.take());
    runner.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let left: Vec<&str> = batches[4].split_whitespace().filter(|p| alive(p)).collect();
    assert!(left.is_empty(), "copiers left: {left:?}");
}
