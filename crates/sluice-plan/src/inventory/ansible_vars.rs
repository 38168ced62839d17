//! Ansible's connection variables: how a host of an Ansible inventory is reached.
//!
//! Read from each host's merged inventory variables (so a group can set them), after every
//! source and `group_vars/`/`host_vars/` file is read:
//!
//! | variable (and older alias) | becomes |
//! |---|---|
//! | `ansible_host` (`ansible_ssh_host`) | the address |
//! | `ansible_port` (`ansible_ssh_port`) | the port |
//! | `ansible_user` (`ansible_ssh_user`) | the login user |
//! | `ansible_ssh_private_key_file` (`ansible_private_key_file`) | the identity file |
//! | `ansible_connection`: `ssh`, `smart`, `paramiko` / `local` | SSH / the local transport |
//! | `ansible_become`, `ansible_become_user`, `ansible_become_method: sudo` | sudo for every command |
//! | `ansible_ssh_common_args`, `ansible_ssh_extra_args`: `-J HOST`, `-o ProxyJump=HOST` | jump hosts |
//! | … `-o UserKnownHostsFile=PATH`, `-o StrictHostKeyChecking=yes\|accept-new` | known_hosts files, host key checking |
//! | `sluice_workdir` (sluice's own; Ansible ignores it) | the local transport's working directory |
//!
//! (`sluice_metrics_file`, a setting of the controller rather than of a host, is read from
//! group `all` by `ansible_settings`.)
//!
//! The variables stay host variables too (`ansible-inventory` lists them). Settings sluice
//! cannot honour are located errors ([`REFUSED`]: passwords, other connection types and become
//! methods, other ssh options), and settings it does not use are located warnings
//! ([`UNUSED`]); each is reported once, where the value that wins was written. A password's value
//! is dropped from the inventory so it cannot reach a plan artifact or any output.

use std::collections::BTreeSet;

use serde_json::Value;

use super::build::{Builder, Layer};
use super::{Inventory, Origin, shell_words};
use crate::artifact::{HostBecome, HostKeyChecking, TransportKind};
use crate::diagnostic::{Diagnostic, Diagnostics};

/// Values sluice never keeps: it takes no password from an inventory.
const SECRETS: &[&str] = &[
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_ssh_password",
    "ansible_become_password",
    "ansible_become_pass",
    "ansible_sudo_pass",
    "ansible_su_pass",
];

/// Settings sluice cannot honour, and what to do instead.
const REFUSED: &[(&str, &str)] = &[
    ("ansible_become_exe", "sluice runs sudo; remove it"),
    (
        "ansible_become_flags",
        "sluice runs sudo with its own flags; remove it",
    ),
    (
        "ansible_ssh_executable",
        "sluice has its own SSH client; remove it",
    ),
    ("ansible_sudo", "write `ansible_become: true`"),
    ("ansible_sudo_user", "write `ansible_become_user`"),
    ("ansible_su", "sluice becomes users with sudo only"),
    ("ansible_su_user", "sluice becomes users with sudo only"),
];

/// Prefixes of variables that configure connection plugins sluice does not have.
const REFUSED_PREFIXES: &[&str] = &[
    "ansible_winrm_",
    "ansible_psrp_",
    "ansible_docker_",
    "ansible_paramiko_",
];

/// Connection settings sluice does not use; reported as warnings.
const UNUSED: &[(&str, &str)] = &[
    (
        "ansible_host_key_checking",
        "host keys are checked (strict, or accept-new from ~/.ssh/config)",
    ),
    (
        "ansible_ssh_host_key_checking",
        "host keys are checked (strict, or accept-new from ~/.ssh/config)",
    ),
    (
        "ansible_ssh_pipelining",
        "sluice sends each command over one SSH channel anyway",
    ),
    (
        "ansible_pipelining",
        "sluice sends each command over one SSH channel anyway",
    ),
    (
        "ansible_ssh_transfer_method",
        "sluice copies nothing with scp or sftp",
    ),
    ("ansible_sftp_extra_args", "sluice copies nothing with sftp"),
    ("ansible_scp_extra_args", "sluice copies nothing with scp"),
    (
        "ansible_ssh_retries",
        "sluice retries steps as the plan says",
    ),
    ("ansible_timeout", "the plan's step timeouts apply"),
    (
        "ansible_shell_type",
        "commands run with the login user's shell",
    ),
    (
        "ansible_shell_executable",
        "commands run with the login user's shell",
    ),
];

/// Sets a group variable from an Ansible inventory: `ansible_group_priority` is the group's
/// priority, not a variable (as in Ansible's `Group.set_variable`).
pub fn set_group_var(
    b: &mut Builder,
    g: usize,
    key: &str,
    value: Value,
    origin: Option<Origin>,
) -> Result<(), Diagnostic> {
    if key != "ansible_group_priority" {
        b.set_group_var(g, key.to_string(), value, Layer::Inventory, origin);
        return Ok(());
    }
    let priority = match &value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match priority {
        Some(p) => {
            b.groups[g].priority = p;
            Ok(())
        }
        None => {
            let mut d = Diagnostic::error(format!(
                "ansible_group_priority of group `{}` is {value}, not a whole number",
                b.groups[g].name
            ));
            if let Some(o) = origin {
                d = d.at(&o.file, o.loc);
            }
            Err(d)
        }
    }
}

/// Fills every host's connection from its merged variables and reports what cannot be used.
pub fn resolve_connections(inv: &mut Inventory, diags: &mut Diagnostics) {
    let mut reported = BTreeSet::new();
    drop_secrets(inv, diags, &mut reported);
    for h in 0..inv.hosts.len() {
        let mut problems = Vec::new();
        let connection = {
            let vars = inv.host_vars_with_origins(h);
            let mut reader = HostVars {
                vars: &vars,
                problems: &mut problems,
            };
            reader.connection()
        };
        inv.hosts[h].connection = connection;
        for p in problems {
            let key = (
                p.origin
                    .as_ref()
                    .map(|o| (o.file.path.clone(), o.loc.offset)),
                p.key.clone(),
            );
            if reported.insert(key) {
                diags.push(p.into_diagnostic(&inv.hosts[h].name));
            }
        }
    }
}

type Reported = BTreeSet<(Option<(String, usize)>, String)>;

/// Removes password values from every layer, reporting each where it was written.
fn drop_secrets(inv: &mut Inventory, diags: &mut Diagnostics, reported: &mut Reported) {
    let mut report = |key: &str, origin: Option<&Origin>, owner: &str| {
        let id = (
            origin.map(|o| (o.file.path.clone(), o.loc.offset)),
            key.to_string(),
        );
        if !reported.insert(id) {
            return;
        }
        let mut d = Diagnostic::error(format!(
            "{key} (set for {owner}): sluice takes no password from an inventory; the value is not kept"
        ))
        .with_help("log in with an SSH key or agent; for sudo, name a secret in the plan's `become_password`");
        if let Some(o) = origin {
            d = d.at(&o.file, o.loc);
        }
        diags.push(d);
    };
    for g in &mut inv.groups {
        for key in SECRETS {
            if g.vars.remove(*key).is_some() | g.file_vars.remove(*key).is_some() {
                report(key, g.origins.get(*key), &format!("group `{}`", g.name));
            }
        }
    }
    for h in &mut inv.hosts {
        for key in SECRETS {
            if h.vars.remove(*key).is_some() | h.file_vars.remove(*key).is_some() {
                report(key, h.origins.get(*key), &format!("host `{}`", h.name));
            }
        }
    }
}

struct Problem {
    key: String,
    value: String,
    origin: Option<Origin>,
    message: String,
    help: String,
    error: bool,
}

impl Problem {
    fn into_diagnostic(self, host: &str) -> Diagnostic {
        let text = format!(
            "{} = {} (host `{host}`): {}",
            self.key, self.value, self.message
        );
        let mut d = if self.error {
            Diagnostic::error(text)
        } else {
            Diagnostic::warning(crate::warning::PlanWarning::Inventory { message: text })
        };
        if let Some(o) = &self.origin {
            d = d.at(&o.file, o.loc);
        }
        if !self.help.is_empty() {
            d = d.with_help(self.help);
        }
        d
    }
}

type Merged<'a> = std::collections::BTreeMap<String, (&'a Value, Option<&'a Origin>)>;

struct HostVars<'a, 'v> {
    vars: &'a Merged<'v>,
    problems: &'a mut Vec<Problem>,
}

impl HostVars<'_, '_> {
    /// The first of `names` that is set, with its value's text (numbers as written).
    fn text(&mut self, names: &[&str]) -> Option<String> {
        let (key, (value, _)) = names.iter().find_map(|n| self.vars.get_key_value(*n))?;
        match value {
            Value::String(s) if s.contains("{{") => {
                self.refuse(
                    key,
                    "is a Jinja2 template, which sluice does not evaluate",
                    "write the value itself",
                );
                None
            }
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Null => None,
            _ => {
                self.refuse(key, "must be text", "");
                None
            }
        }
    }

    fn refuse(&mut self, key: &str, message: &str, help: &str) {
        self.problem(key, message, help, true);
    }

    fn problem(&mut self, key: &str, message: &str, help: &str, error: bool) {
        let (value, origin) = self.vars.get(key).copied().unzip();
        self.problems.push(Problem {
            key: key.to_string(),
            value: value.map(|v| v.to_string()).unwrap_or_default(),
            origin: origin.flatten().cloned(),
            message: message.to_string(),
            help: help.to_string(),
            error,
        });
    }

    fn connection(&mut self) -> super::ConnectionDecl {
        let mut c = super::ConnectionDecl {
            address: self.text(&["ansible_host", "ansible_ssh_host"]),
            user: self.text(&["ansible_user", "ansible_ssh_user"]),
            identity_files: self
                .text(&["ansible_ssh_private_key_file", "ansible_private_key_file"])
                .map(|f| vec![f]),
            workdir: self.text(&["sluice_workdir"]),
            ..Default::default()
        };
        if let Some(port) = self.text(&["ansible_port", "ansible_ssh_port"]) {
            match port.parse::<u16>() {
                Ok(p) if p > 0 => c.port = Some(p),
                _ => {
                    let key = if self.vars.contains_key("ansible_port") {
                        "ansible_port"
                    } else {
                        "ansible_ssh_port"
                    };
                    self.refuse(key, "is not a port between 1 and 65535", "");
                }
            }
        }
        c.transport = self.transport();
        c.become_all = self.become_all();
        let ssh = self.ssh_args();
        c.proxy_jump = ssh.proxy_jump;
        c.known_hosts = ssh.known_hosts;
        c.host_key_checking = ssh.host_key_checking;
        for (key, help) in REFUSED {
            if self.vars.contains_key(*key) {
                self.refuse(key, "is not supported", help);
            }
        }
        let refused_prefixed: Vec<String> = self
            .vars
            .keys()
            .filter(|k| REFUSED_PREFIXES.iter().any(|p| k.starts_with(p)))
            .cloned()
            .collect();
        for key in refused_prefixed {
            self.refuse(
                &key,
                "configures a connection type sluice does not have",
                "remove it",
            );
        }
        for (key, why) in UNUSED {
            if self.vars.contains_key(*key) {
                self.problem(key, &format!("is not used: {why}"), "", false);
            }
        }
        c
    }

    fn transport(&mut self) -> Option<TransportKind> {
        let kind = self.text(&["ansible_connection"])?;
        match kind.trim_start_matches("ansible.builtin.") {
            "ssh" | "smart" | "paramiko" | "paramiko_ssh" => Some(TransportKind::Ssh),
            "local" => Some(TransportKind::Local),
            _ => {
                self.refuse(
                    "ansible_connection",
                    "is a connection type sluice does not have",
                    "sluice reaches hosts over SSH (`ssh`) or runs on the controller (`local`)",
                );
                None
            }
        }
    }

    fn become_all(&mut self) -> Option<HostBecome> {
        if let Some(method) = self.text(&["ansible_become_method"])
            && method.trim_start_matches("ansible.builtin.") != "sudo"
        {
            self.refuse(
                "ansible_become_method",
                "is not supported",
                "sluice becomes users with sudo only",
            );
        }
        let (_, (value, _)) = self.vars.get_key_value("ansible_become")?;
        match ansible_boolean(value) {
            Some(true) => Some(HostBecome {
                user: self.text(&["ansible_become_user"]),
            }),
            Some(false) => None,
            None => {
                self.refuse("ansible_become", "is not a boolean", "write true or false");
                None
            }
        }
    }

    /// What sluice honours of the ssh arguments (see [`SshArgs`]).
    fn ssh_args(&mut self) -> SshArgs {
        let mut found = SshArgs::default();
        for key in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
            let Some(args) = self.text(&[key]) else {
                continue;
            };
            match parse_ssh_args(&args) {
                Ok(parsed) => found.merge(parsed),
                Err(what) => {
                    let lower = what.to_ascii_lowercase();
                    let help = if lower.contains("proxycommand") {
                        "write the jump host as `-J user@bastion` (ProxyJump) instead"
                    } else if lower.contains("stricthostkeychecking") {
                        "sluice never turns host key checking off from an Ansible inventory; `-o StrictHostKeyChecking=accept-new` learns new keys"
                    } else {
                        "sluice reads ProxyJump (`-J`), UserKnownHostsFile and StrictHostKeyChecking (yes, accept-new) from ssh arguments; put other options in ~/.ssh/config"
                    };
                    self.refuse(
                        key,
                        &format!("has `{what}`, which sluice does not support"),
                        help,
                    );
                }
            }
        }
        found
    }
}

/// The ssh options sluice honours from `ansible_ssh_common_args` / `ansible_ssh_extra_args`.
#[derive(Debug, Default, PartialEq, Eq)]
struct SshArgs {
    /// `-J HOST[,HOST]`, `-o ProxyJump=HOST`.
    proxy_jump: Option<Vec<String>>,
    /// `-o UserKnownHostsFile=PATH [PATH]`.
    known_hosts: Option<Vec<String>>,
    /// `-o StrictHostKeyChecking=yes|accept-new`.
    host_key_checking: Option<HostKeyChecking>,
}

impl SshArgs {
    fn merge(&mut self, other: SshArgs) {
        self.proxy_jump = other.proxy_jump.or(self.proxy_jump.take());
        self.known_hosts = other.known_hosts.or(self.known_hosts.take());
        self.host_key_checking = other.host_key_checking.or(self.host_key_checking.take());
    }
}

/// The options of an ssh argument string, or the first argument sluice does not honour.
fn parse_ssh_args(args: &str) -> Result<SshArgs, String> {
    let words: Vec<String> = shell_words::split(args)
        .map_err(|e| format!("{args}` ({e})"))?
        .into_iter()
        .map(|w| w.text)
        .collect();
    let mut found = SshArgs::default();
    let mut i = 0;
    let list = |text: &str, sep: char| -> Vec<String> {
        text.split(sep)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    while i < words.len() {
        let w = &words[i];
        let next = words.get(i + 1);
        if w == "-J" {
            found.proxy_jump = Some(list(next.ok_or("-J")?, ','));
            i += 2;
        } else if let Some(h) = w.strip_prefix("-J") {
            found.proxy_jump = Some(list(h, ','));
            i += 1;
        } else if let Some(rest) = w.strip_prefix("-o") {
            let (option, used) = if rest.is_empty() {
                (next.ok_or("-o")?.clone(), 2)
            } else {
                (rest.to_string(), 1)
            };
            let refused = || format!("-o {option}");
            let (name, value) = option.split_once(['=', ' ']).ok_or_else(refused)?;
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "proxyjump" => found.proxy_jump = Some(list(value, ',')),
                "userknownhostsfile" => found.known_hosts = Some(list(value, ' ')),
                "stricthostkeychecking" => {
                    found.host_key_checking = match value.to_ascii_lowercase().as_str() {
                        "yes" => Some(HostKeyChecking::Strict),
                        "accept-new" => Some(HostKeyChecking::AcceptNew),
                        _ => return Err(refused()),
                    }
                }
                _ => return Err(refused()),
            }
            i += used;
        } else {
            return Err(w.clone());
        }
    }
    Ok(found)
}

/// Ansible's `boolean()`: true, yes, on, 1, y, t and their opposites, any case.
fn ansible_boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "1" | "true" | "t" => Some(true),
            "n" | "no" | "off" | "0" | "false" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_ssh_arguments() {
        let jumps = |a: &str| parse_ssh_args(a).map(|s| s.proxy_jump);
        assert_eq!(jumps("-J bastion"), Ok(Some(vec!["bastion".into()])));
        assert_eq!(
            jumps("-Jme@b1,b2"),
            Ok(Some(vec!["me@b1".into(), "b2".into()]))
        );
        assert_eq!(
            jumps("-o ProxyJump=me@b:2222"),
            Ok(Some(vec!["me@b:2222".into()]))
        );
        assert_eq!(jumps("-o 'ProxyJump b'"), Ok(Some(vec!["b".into()])));
        assert_eq!(jumps("-oProxyJump=b"), Ok(Some(vec!["b".into()])));
        assert_eq!(jumps(""), Ok(None));
        let both =
            parse_ssh_args("-o UserKnownHostsFile=/k -o StrictHostKeyChecking=accept-new").unwrap();
        assert_eq!(both.known_hosts, Some(vec!["/k".into()]));
        assert_eq!(both.host_key_checking, Some(HostKeyChecking::AcceptNew));
        assert_eq!(
            parse_ssh_args("-o StrictHostKeyChecking=no"),
            Err("-o StrictHostKeyChecking=no".into())
        );
        assert!(parse_ssh_args("-o ProxyCommand=\"ssh -W %h:%p b\"").is_err());
        assert_eq!(parse_ssh_args("-C"), Err("-C".into()));
    }

    #[test]
    fn ansible_booleans() {
        assert_eq!(ansible_boolean(&Value::from("Yes")), Some(true));
        assert_eq!(ansible_boolean(&Value::from("off")), Some(false));
        assert_eq!(ansible_boolean(&Value::from(1)), Some(true));
        assert_eq!(ansible_boolean(&Value::from("maybe")), None);
    }
}
