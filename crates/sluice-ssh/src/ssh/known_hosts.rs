//! known_hosts files: lookup (plain, hashed, `[host]:port`, wildcards, `@revoked`) and the
//! atomic append that `accept-new` needs (an exclusive `File::lock`, across processes).
//!
//! The rules follow OpenSSH's `sshd(8)` "SSH_KNOWN_HOSTS FILE FORMAT": a host on a non-default
//! port is written `[host]:port`; `|1|salt|hash` entries are HMAC-SHA1 of that name; a line
//! marked `@revoked` refuses its key for every host; `@cert-authority` lines are ignored (sluice
//! does not accept host certificates).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;

/// What the known_hosts files say about the key a host presented.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A line for this host holds exactly this key.
    Trusted,
    /// No line names this host.
    Unknown,
    /// Lines name this host, but with other keys; `expected` is the first one's fingerprint.
    Changed { expected: String, file: PathBuf },
    /// The key is marked `@revoked`.
    Revoked { file: PathBuf },
}

/// The name a host is recorded under: `host` on port 22, `[host]:port` otherwise.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// SHA256 fingerprint as OpenSSH prints it (`SHA256:...`).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Looks `key` up for `host`:`port` in `files` (missing files count as empty).
pub fn check(files: &[PathBuf], host: &str, port: u16, key: &PublicKey) -> Verdict {
    let name = host_pattern(host, port);
    let mut changed = None;
    let mut trusted = false;
    for file in files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines() {
            let Some(entry) = Entry::parse(line) else {
                continue;
            };
            let same_key = entry.key.key_data() == key.key_data();
            match entry.marker {
                Marker::Revoked if same_key => return Verdict::Revoked { file: file.clone() },
                Marker::Revoked | Marker::CertAuthority => continue,
                Marker::None => {}
            }
            if !entry.matches(&name) {
                continue;
            }
            if same_key {
                trusted = true;
            } else if changed.is_none() {
                changed = Some(Verdict::Changed {
                    expected: fingerprint(&entry.key),
                    file: file.clone(),
                });
            }
        }
    }
    // A revoked key was returned above; any matching line trusts the key, as OpenSSH does when a
    // host has several keys on record.
    if trusted {
        Verdict::Trusted
    } else {
        changed.unwrap_or(Verdict::Unknown)
    }
}

/// Serialises appends within this process; the file lock (`File::lock`) across processes.
static APPEND_LOCK: Mutex<()> = Mutex::new(());

/// Appends `[host]:port key` to `file` unless a line for this host already holds the key.
/// Safe under many concurrent connections: one writer at a time, each line one `write`.
pub fn append(file: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    let _guard = APPEND_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(parent) = file.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent)?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(file)?;
    // `flock(2)` on Linux: released when `f` is closed.
    f.lock()?;
    // Another connection (or process) may have recorded it while we waited for the lock.
    if check(&[file.to_path_buf()], host, port, key) == Verdict::Trusted {
        return Ok(());
    }
    let existing = fs::read(file)?;
    let mut line = String::new();
    if existing.last().is_some_and(|&b| b != b'\n') {
        line.push('\n');
    }
    let openssh = key
        .to_openssh()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    // Drop the comment: it is the server's, not ours.
    let mut parts = openssh.split_whitespace();
    let (alg, data) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    line.push_str(&format!("{} {alg} {data}\n", host_pattern(host, port)));
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

#[derive(Debug, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

struct Entry<'a> {
    marker: Marker,
    hosts: &'a str,
    key: PublicKey,
}

impl<'a> Entry<'a> {
    fn parse(line: &'a str) -> Option<Entry<'a>> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next()?;
        let marker = match first {
            "@revoked" => Marker::Revoked,
            "@cert-authority" => Marker::CertAuthority,
            _ => Marker::None,
        };
        if marker != Marker::None {
            first = fields.next()?;
        }
        let alg = fields.next()?;
        let data = fields.next()?;
        let key = PublicKey::from_openssh(&format!("{alg} {data}")).ok()?;
        Some(Entry {
            marker,
            hosts: first,
            key,
        })
    }

    /// OpenSSH semantics: any positive pattern matches and no negated pattern matches.
    fn matches(&self, name: &str) -> bool {
        let mut hit = false;
        for pattern in self.hosts.split(',') {
            if let Some(hashed) = pattern.strip_prefix("|1|") {
                hit |= hashed_matches(hashed, name);
            } else if let Some(negated) = pattern.strip_prefix('!') {
                if wildcard(negated, name) {
                    return false;
                }
            } else {
                hit |= wildcard(pattern, name);
            }
        }
        hit
    }
}

fn hashed_matches(salt_and_hash: &str, name: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// `*` and `?` glob, case-insensitive (host names are); also used for ssh_config `Host`.
pub(crate) fn wildcard(pattern: &str, name: &str) -> bool {
    glob(pattern, name, true)
}

/// `*` and `?` matching, `ignore_case` for host names, exact for file names.
pub(crate) fn glob(pattern: &str, name: &str, ignore_case: bool) -> bool {
    fn go(p: &[u8], n: &[u8], ic: bool) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n, ic) || (!n.is_empty() && go(p, &n[1..], ic)),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..], ic),
            (Some(a), Some(b)) if a == b || (ic && a.eq_ignore_ascii_case(b)) => {
                go(&p[1..], &n[1..], ic)
            }
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes(), ignore_case)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    fn check_text(text: &str, host: &str, port: u16, k: &str) -> Verdict {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        fs::write(&path, text).unwrap();
        match check(&[path], host, port, &key(k)) {
            Verdict::Changed { expected, .. } => Verdict::Changed {
                expected,
                file: PathBuf::new(),
            },
            Verdict::Revoked { .. } => Verdict::Revoked {
                file: PathBuf::new(),
            },
            v => v,
        }
    }

    #[test]
    fn plain_bracketed_and_wildcard_entries() {
        let text = format!("[h]:2222 {KEY_A}\nweb-* {KEY_B} comment\n");
        assert_eq!(check_text(&text, "h", 2222, KEY_A), Verdict::Trusted);
        assert_eq!(check_text(&text, "h", 22, KEY_A), Verdict::Unknown);
        assert_eq!(check_text(&text, "web-7", 22, KEY_B), Verdict::Trusted);
        assert!(matches!(
            check_text(&text, "h", 2222, KEY_B),
            Verdict::Changed { .. }
        ));
    }

    #[test]
    fn hashed_entry_matches_only_its_host() {
        // From russh's own test: |1|...| hashes "example.com".
        let text =
            format!("|1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak= {KEY_B}\n");
        assert_eq!(
            check_text(&text, "example.com", 22, KEY_B),
            Verdict::Trusted
        );
        assert_eq!(
            check_text(&text, "example.org", 22, KEY_B),
            Verdict::Unknown
        );
    }

    #[test]
    fn revoked_key_is_refused_even_when_also_listed() {
        let text = format!("h {KEY_A}\n@revoked * {KEY_A}\n");
        assert!(matches!(
            check_text(&text, "h", 22, KEY_A),
            Verdict::Revoked { .. }
        ));
    }

    #[test]
    fn append_is_idempotent_and_well_formed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        append(&path, "h", 2200, &key(KEY_A)).unwrap();
        append(&path, "h", 2200, &key(KEY_A)).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("[h]:2200 {KEY_A}\n"));
    }
}
