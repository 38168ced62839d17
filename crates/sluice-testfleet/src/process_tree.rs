//! The processes under a pid, read from `/proc` (Linux), to freeze a host's whole sshd.

use std::collections::HashMap;
use std::fs;

/// Every live descendant of `root` (children, grandchildren, ...), not `root` itself.
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, ppid) in parents() {
        children.entry(ppid).or_default().push(pid);
    }
    let mut found = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            found.push(child);
            todo.push(child);
        }
    }
    found
}

/// `(pid, parent pid)` of every process now running.
fn parents() -> Vec<(u32, u32)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parent_of(&stat)?))
        })
        .collect()
}

/// The parent pid in a `/proc/PID/stat` line: `pid (comm) state ppid ...`; `comm` may hold
/// spaces and parentheses, so the fields are read after its last `)`.
fn parent_of(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_is_read_after_a_command_name_with_spaces_and_parens() {
        assert_eq!(parent_of("42 (sshd: a (b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn a_child_and_its_grandchild_are_found() {
        use std::time::{Duration, Instant};
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let sh = child.id();
        // `sleep` appears once sh forked it.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut grandchildren = descendants(sh);
        while grandchildren.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            grandchildren = descendants(sh);
        }
        let found = descendants(std::process::id());
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .args(grandchildren.iter().map(u32::to_string))
            .status();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(grandchildren.len(), 1, "{grandchildren:?}");
        assert!(found.contains(&sh), "{found:?} lacks the child {sh}");
        assert!(found.contains(&grandchildren[0]), "{found:?}");
    }
}
