//! Executable inventories speaking Ansible's dynamic inventory protocol.
//!
//! `SCRIPT --list` prints a JSON object: each key a group (`{"hosts": [...], "vars": {...},
//! "children": [...]}`, or a bare list of hosts), and `_meta.hostvars` the variables of every
//! host. Without `_meta`, `SCRIPT --host NAME` is asked for each host's variables. Every run is
//! bounded by [`LoadOptions::script_timeout`] (the script is killed after it) and by
//! [`crate::source::MAX_FILE_BYTES`] of output; a script that fails, stalls, or prints something
//! that is not that JSON is an error that says which, with the end of its stderr.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ansible_vars::set_group_var;
use super::build::{Builder, Layer};
use super::{GroupOrder, InventoryFormat, LoadOptions, Origin};
use crate::diagnostic::{Diagnostic, Diagnostics, Loc, SourceFile};
use crate::source::MAX_FILE_BYTES;

mod json;

use json::Ordered;

/// Bytes of a failing script's stderr quoted in the error (its end).
const STDERR_TAIL: usize = 2048;

/// True for an executable regular file that starts like a program (`#!` or ELF), so an INI or
/// YAML file that merely has its executable bit set is still read as text.
pub fn looks_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return false;
    }
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    head[..n].starts_with(b"#!") || head[..n].starts_with(b"\x7fELF")
}

/// Runs `path --list` (and `--host` when needed) and reads the inventory it prints.
pub fn read(path: &Path, options: &LoadOptions, diags: &mut Diagnostics) -> Option<Builder> {
    let run = |args: &[&str], diags: &mut Diagnostics| -> Option<(Arc<SourceFile>, Ordered)> {
        let what = format!("{} {}", path.display(), args.join(" "));
        let output = match run_script(path, args, options.script_timeout) {
            Ok(out) => out,
            Err(e) => {
                diags.push(e.into_diagnostic(&what));
                return None;
            }
        };
        let file = Arc::new(SourceFile {
            path: format!("{what} (output)"),
            text: output,
        });
        match json::parse(&file.text) {
            Ok(value) => Some((file, value)),
            Err(e) => {
                let loc = e.loc(&file.text);
                diags.push(
                    Diagnostic::error(format!("the output of `{what}` is not JSON: {}", e.message))
                        .at(&file, loc)
                        .with_help("an inventory script prints one JSON object (Ansible's dynamic inventory protocol)"),
                );
                None
            }
        }
    };
    let (file, listed) = run(&["--list"], diags)?;
    let mut r = ScriptReader {
        b: Builder::new(&file, InventoryFormat::Script, GroupOrder::PriorityThenName),
        file: &file,
        diags,
        hosts: Vec::new(),
    };
    let Ordered::Object(entries) = &listed else {
        r.error("the output of --list must be a JSON object of groups");
        return None;
    };
    let mut meta = None;
    for (name, data) in entries {
        if name == "_meta" {
            meta = Some(data);
        } else {
            r.group(name, data);
        }
    }
    let hostvars: Option<std::collections::HashMap<&str, &Ordered>> = match meta {
        None => None,
        Some(m) => match m.get("hostvars") {
            Some(Ordered::Object(h)) => Some(h.iter().map(|(k, v)| (k.as_str(), v)).collect()),
            _ => {
                r.error("`_meta.hostvars` must be a JSON object of hosts");
                return None;
            }
        },
    };
    for (name, h) in r.hosts.clone() {
        let vars = match &hostvars {
            Some(all) => all
                .get(name.as_str())
                .map(|v| (Arc::clone(r.file), (*v).clone())),
            None => run(&["--host", &name], r.diags),
        };
        match vars {
            Some((file, Ordered::Object(vars))) => {
                for (k, v) in vars {
                    let origin = Some(Origin {
                        file: Arc::clone(&file),
                        loc: Loc::default(),
                    });
                    r.b.set_host_var(h, k, v.to_json(), Layer::Inventory, origin);
                }
            }
            Some((_, Ordered::Null)) | None => {}
            Some(_) => r.error(&format!(
                "the variables of host `{name}` must be a JSON object"
            )),
        }
    }
    Some(r.b)
}

struct ScriptReader<'a> {
    b: Builder,
    file: &'a Arc<SourceFile>,
    diags: &'a mut Diagnostics,
    /// Every host listed by a group, in first-seen order.
    hosts: Vec<(String, usize)>,
}

impl ScriptReader<'_> {
    fn error(&mut self, message: &str) {
        self.diags
            .push(Diagnostic::error(message.to_string()).in_file(self.file));
    }

    fn group(&mut self, name: &str, data: &Ordered) {
        let g = self.b.group(name, Loc::default());
        // Older scripts print a group as a bare list of hosts, or as a mapping of variables
        // standing for one host named after the group; Ansible still reads both.
        let shaped;
        let data = match data {
            Ordered::Object(entries)
                if entries
                    .iter()
                    .any(|(k, _)| matches!(k.as_str(), "hosts" | "vars" | "children")) =>
            {
                data
            }
            Ordered::Object(_) => {
                shaped = Ordered::Object(vec![
                    (
                        "hosts".into(),
                        Ordered::Array(vec![Ordered::String(name.to_string())]),
                    ),
                    ("vars".into(), data.clone()),
                ]);
                &shaped
            }
            _ => {
                shaped = Ordered::Object(vec![("hosts".into(), data.clone())]);
                &shaped
            }
        };
        match data.get("hosts") {
            Some(Ordered::Array(hosts)) => {
                for host in hosts {
                    let Ordered::String(host) = host else {
                        self.error(&format!("`{name}.hosts` must list host names"));
                        continue;
                    };
                    let known = self.b.host_named(host).is_some();
                    let h = self.b.host(host, Loc::default());
                    if !known {
                        self.hosts.push((host.clone(), h));
                    }
                    self.b.add_host_to(g, h);
                }
            }
            Some(Ordered::Null) | None => {}
            Some(_) => self.error(&format!("`{name}.hosts` must be a JSON list")),
        }
        match data.get("vars") {
            Some(Ordered::Object(vars)) => {
                for (k, v) in vars {
                    let origin = Some(Origin {
                        file: Arc::clone(self.file),
                        loc: Loc::default(),
                    });
                    if let Err(d) = set_group_var(&mut self.b, g, k, v.to_json(), origin) {
                        self.diags.push(d);
                    }
                }
            }
            Some(Ordered::Null) | None => {}
            Some(_) => self.error(&format!("`{name}.vars` must be a JSON object")),
        }
        match data.get("children") {
            Some(Ordered::Array(children)) => {
                for child in children {
                    let Ordered::String(child) = child else {
                        self.error(&format!("`{name}.children` must list group names"));
                        continue;
                    };
                    let c = self.b.group(child, Loc::default());
                    if c == g {
                        self.error(&format!("group `{name}` cannot be its own child"));
                    } else {
                        self.b.add_child(g, c);
                    }
                }
            }
            Some(Ordered::Null) | None => {}
            Some(_) => self.error(&format!("`{name}.children` must be a JSON list")),
        }
    }
}

/// Why a script run gave no output to read.
#[derive(Debug)]
enum RunError {
    Start(std::io::Error),
    Failed { status: String, stderr: String },
    TimedOut(Duration),
    TooLarge,
    NotUtf8,
}

impl RunError {
    fn into_diagnostic(self, what: &str) -> Diagnostic {
        let (message, help) = match self {
            RunError::Start(e) => (
                format!("cannot run the inventory script `{what}`: {e}"),
                "check that it exists and is executable".to_string(),
            ),
            RunError::Failed { status, stderr } => (
                format!("the inventory script `{what}` failed ({status})"),
                if stderr.trim().is_empty() {
                    "it printed nothing on stderr".to_string()
                } else {
                    format!("its stderr ends with:\n{}", stderr.trim_end())
                },
            ),
            RunError::TimedOut(t) => (
                format!(
                    "the inventory script `{what}` did not finish within {}s; it was stopped",
                    t.as_secs_f64()
                ),
                "make it answer faster, or check what it waits for".to_string(),
            ),
            RunError::TooLarge => (
                format!(
                    "the inventory script `{what}` printed more than {} MiB",
                    MAX_FILE_BYTES / (1024 * 1024)
                ),
                String::new(),
            ),
            RunError::NotUtf8 => (
                format!("the output of `{what}` is not UTF-8"),
                String::new(),
            ),
        };
        let d = Diagnostic::error(message);
        if help.is_empty() {
            d
        } else {
            d.with_help(help)
        }
    }
}

/// Runs the script with `args`, killing it after `timeout`; its stdout on success.
fn run_script(path: &Path, args: &[&str], timeout: Duration) -> Result<String, RunError> {
    // A bare name would be looked up in PATH; the inventory is a file here.
    let program = if path.components().count() == 1 {
        Path::new(".").join(path)
    } else {
        path.to_path_buf()
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(RunError::Start)?;
    let stdout = child.stdout.take().map(|s| reader(s, MAX_FILE_BYTES + 1));
    let stderr = child.stderr.take().map(|s| reader(s, 64 * 1024));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::TimedOut(timeout));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(RunError::Start(e)),
        }
    };
    // A process the script left behind may hold the pipes open: wait a little, not forever.
    let collect = |r: Option<std::sync::mpsc::Receiver<Vec<u8>>>| {
        r.and_then(|r| r.recv_timeout(Duration::from_secs(2)).ok())
            .unwrap_or_default()
    };
    let (out, err) = (collect(stdout), collect(stderr));
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let start = err.len().saturating_sub(STDERR_TAIL);
        let start = (start..err.len())
            .find(|&i| err.is_char_boundary(i))
            .unwrap_or(err.len());
        return Err(RunError::Failed {
            status: status.to_string(),
            stderr: err[start..].to_string(),
        });
    }
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(RunError::TooLarge);
    }
    String::from_utf8(out).map_err(|_| RunError::NotUtf8)
}

/// Reads a pipe to its end (keeping at most `limit` bytes) on a thread of its own.
fn reader(mut pipe: impl Read + Send + 'static, limit: u64) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = (&mut pipe).take(limit).read_to_end(&mut kept);
        // Drain the rest so the script is not blocked writing to a full pipe.
        let _ = std::io::copy(&mut pipe, &mut std::io::sink());
        let _ = tx.send(kept);
    });
    rx
}
