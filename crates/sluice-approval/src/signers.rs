//! OpenSSH `allowed_signers` files (ssh-keygen(1), "ALLOWED SIGNERS"): who may sign, with which
//! key, for which namespaces, in which period.
//!
//! Each line is `principals [options] keytype base64 [comment]`; `#` lines and blank lines are
//! comments. `principals` is a comma-separated list of patterns (`*`, `?`), optionally in double
//! quotes. Options, comma-separated, no spaces outside double quotes:
//! `namespaces="p1,p2"` (patterns the signature's namespace must match), `valid-after=TIME`,
//! `valid-before=TIME` (`YYYYMMDD[Z]` or `YYYYMMDDHHMM[SS][Z]`, local time unless `Z`), and
//! `cert-authority`, which sluice does not support (its lines are refused when read, not skipped).

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use russh::keys::ssh_key::{PublicKey, public::KeyData};

/// A parsed `allowed_signers` file.
#[derive(Clone, Debug, Default)]
pub struct AllowedSigners {
    entries: Vec<SignerEntry>,
}

/// One line: who, which key, where and when it may sign.
#[derive(Clone, Debug)]
pub struct SignerEntry {
    /// The principal patterns of the line, in order.
    pub principals: Vec<String>,
    pub key: KeyData,
    /// `namespaces=`; empty when the line does not restrict them.
    pub namespaces: Vec<String>,
    pub valid_after: Option<Timestamp>,
    pub valid_before: Option<Timestamp>,
    /// 1-based line number, for messages.
    pub line: usize,
}

impl SignerEntry {
    /// The principal an approval by this key is recorded under: the principals field as written
    /// (a single name in the usual case).
    pub fn principal(&self) -> String {
        self.principals.join(",")
    }
}

/// A line that is not an allowed signer.
#[derive(Debug, thiserror::Error)]
pub enum SignersError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {problem}")]
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// Why a key may not sign here and now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerMiss {
    /// No line holds the key.
    UnknownKey,
    /// Lines hold the key, but none allows the namespace.
    Namespace { namespace: String },
    /// The key's lines are not valid yet at `at`.
    NotYetValid { from: Timestamp },
    /// The key's lines stopped being valid before `at`.
    Expired { until: Timestamp },
}

impl std::fmt::Display for SignerMiss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignerMiss::UnknownKey => f.write_str("the signing key is not in allowed_signers"),
            SignerMiss::Namespace { namespace } => write!(
                f,
                "allowed_signers does not let this key sign for namespace {namespace}"
            ),
            SignerMiss::NotYetValid { from } => {
                write!(f, "allowed_signers lets this key sign only from {from}")
            }
            SignerMiss::Expired { until } => {
                write!(f, "allowed_signers let this key sign only until {until}")
            }
        }
    }
}

impl AllowedSigners {
    pub fn read(path: &Path) -> Result<AllowedSigners, SignersError> {
        let text = std::fs::read_to_string(path).map_err(|source| SignersError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        AllowedSigners::parse(&text, path)
    }

    /// Parses the text of a file (`path` names it in messages).
    pub fn parse(text: &str, path: &Path) -> Result<AllowedSigners, SignersError> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let entry = parse_line(line, i + 1).map_err(|problem| SignersError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                problem,
            })?;
            entries.push(entry);
        }
        Ok(AllowedSigners { entries })
    }

    pub fn entries(&self) -> &[SignerEntry] {
        &self.entries
    }

    /// The line that lets `key` sign for `namespace` at `at`, or why none does.
    pub fn find(
        &self,
        key: &KeyData,
        namespace: &str,
        at: Timestamp,
    ) -> Result<&SignerEntry, SignerMiss> {
        let mut miss = SignerMiss::UnknownKey;
        for entry in self.entries.iter().filter(|e| &e.key == key) {
            if !entry.namespaces.is_empty()
                && !entry
                    .namespaces
                    .iter()
                    .any(|p| pattern_matches(p, namespace))
            {
                miss = SignerMiss::Namespace {
                    namespace: namespace.to_string(),
                };
                continue;
            }
            if let Some(from) = entry.valid_after.filter(|from| at < *from) {
                miss = SignerMiss::NotYetValid { from };
                continue;
            }
            if let Some(until) = entry.valid_before.filter(|until| at >= *until) {
                miss = SignerMiss::Expired { until };
                continue;
            }
            return Ok(entry);
        }
        Err(miss)
    }
}

/// Splits a line into fields on spaces, keeping double-quoted runs whole.
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ' ' | '\t' if !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn parse_line(line: &str, number: usize) -> Result<SignerEntry, String> {
    let fields = fields(line);
    let Some(principals) = fields.first() else {
        return Err("empty line".into());
    };
    let principals: Vec<String> = principals
        .trim_matches('"')
        .split(',')
        .map(str::to_string)
        .filter(|p| !p.is_empty())
        .collect();
    if principals.is_empty() {
        return Err("no principal".into());
    }
    let (options, key_at) = match fields.get(1) {
        Some(f) if is_key_type(f) => (None, 1),
        Some(f) => (Some(f.as_str()), 2),
        None => return Err("no key".into()),
    };
    let (Some(kind), Some(base64)) = (fields.get(key_at), fields.get(key_at + 1)) else {
        return Err("expected `principals [options] keytype base64-key`".into());
    };
    let key = PublicKey::from_openssh(&format!("{kind} {base64}"))
        .map_err(|e| format!("not a public key ({e})"))?
        .key_data()
        .clone();
    let mut entry = SignerEntry {
        principals,
        key,
        namespaces: Vec::new(),
        valid_after: None,
        valid_before: None,
        line: number,
    };
    if let Some(options) = options {
        for option in split_options(options) {
            let (name, value) = match option.split_once('=') {
                Some((n, v)) => (
                    n.to_ascii_lowercase(),
                    Some(v.trim_matches('"').to_string()),
                ),
                None => (option.to_ascii_lowercase(), None),
            };
            match (name.as_str(), value) {
                ("namespaces", Some(v)) => {
                    entry.namespaces = v.split(',').map(str::to_string).collect();
                }
                ("valid-after", Some(v)) => entry.valid_after = Some(timestamp(&v)?),
                ("valid-before", Some(v)) => entry.valid_before = Some(timestamp(&v)?),
                ("cert-authority", None) => {
                    return Err(
                        "cert-authority lines are not supported by sluice: list each approver's key".into(),
                    );
                }
                (other, _) => return Err(format!("unknown option `{other}`")),
            }
        }
    }
    Ok(entry)
}

fn is_key_type(field: &str) -> bool {
    field.starts_with("ssh-")
        || field.starts_with("ecdsa-sha2-")
        || field.starts_with("sk-")
        || field.contains("@openssh.com")
}

/// Options split on commas outside double quotes.
fn split_options(options: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in options.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter().filter(|o| !o.is_empty()).collect()
}

/// `YYYYMMDD[Z]` or `YYYYMMDDHHMM[SS][Z]`: UTC with `Z`, else the controller's local time.
fn timestamp(text: &str) -> Result<Timestamp, String> {
    let bad = || format!("`{text}` is not a time (YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z])");
    let (digits, utc) = match text.strip_suffix(['Z', 'z']) {
        Some(d) => (d, true),
        None => (text, false),
    };
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let part = |from: usize, to: usize| -> Result<i16, String> {
        digits
            .get(from..to)
            .and_then(|d| d.parse().ok())
            .ok_or_else(bad)
    };
    let (year, month, day) = (part(0, 4)?, part(4, 6)?, part(6, 8)?);
    let (hour, minute, second) = match digits.len() {
        8 => (0, 0, 0),
        12 => (part(8, 10)?, part(10, 12)?, 0),
        14 => (part(8, 10)?, part(10, 12)?, part(12, 14)?),
        _ => return Err(bad()),
    };
    let civil = jiff::civil::DateTime::new(
        year,
        i8::try_from(month).map_err(|_| bad())?,
        i8::try_from(day).map_err(|_| bad())?,
        i8::try_from(hour).map_err(|_| bad())?,
        i8::try_from(minute).map_err(|_| bad())?,
        i8::try_from(second).map_err(|_| bad())?,
        0,
    )
    .map_err(|_| bad())?;
    let zone = if utc {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::system()
    };
    civil
        .to_zoned(zone)
        .map(|z| z.timestamp())
        .map_err(|_| bad())
}

/// OpenSSH pattern matching: `*` any run, `?` one character; a leading `!` negates (a negated
/// pattern never admits on its own).
fn pattern_matches(pattern: &str, text: &str) -> bool {
    if pattern.starts_with('!') {
        return false;
    }
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJbqjmHPSTWgv1aRAqlVbUW+uCEiTIikLaNbo/EiEIS3";

    fn key() -> KeyData {
        PublicKey::from_openssh(KEY).unwrap().key_data().clone()
    }

    #[test]
    fn lines_with_and_without_options_are_read() {
        let text = format!(
            "# approvers\nalice@example.com {KEY} alice\n\n\"bob@example.com\" namespaces=\"sluice-approval,git\",valid-after=20260101Z,valid-before=\"20270101000000Z\" {KEY}\n"
        );
        let signers = AllowedSigners::parse(&text, Path::new("allowed_signers")).unwrap();
        let [a, b] = signers.entries() else {
            panic!("{:?}", signers.entries())
        };
        assert_eq!((a.principal(), a.line), ("alice@example.com".into(), 2));
        assert_eq!(b.principal(), "bob@example.com");
        assert_eq!(b.namespaces, ["sluice-approval", "git"]);
        assert_eq!(
            b.valid_before,
            Some("2027-01-01T00:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn namespaces_and_validity_decide() {
        let text = format!("carol namespaces=\"git\" {KEY}\ndave valid-after=20990101Z {KEY}\n");
        let signers = AllowedSigners::parse(&text, Path::new("s")).unwrap();
        let now: Timestamp = "2026-11-30T00:00:00Z".parse().unwrap();
        let miss = signers.find(&key(), "sluice-approval", now).unwrap_err();
        assert!(matches!(miss, SignerMiss::NotYetValid { .. }), "{miss:?}");
        let later: Timestamp = "2100-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            signers
                .find(&key(), "sluice-approval", later)
                .unwrap()
                .principal(),
            "dave"
        );
        assert_eq!(
            signers.find(&key(), "git", now).unwrap().principal(),
            "carol"
        );
    }

    #[test]
    fn bad_lines_name_the_line_and_the_problem() {
        for (text, problem) in [
            (format!("x cert-authority {KEY}"), "cert-authority"),
            (format!("x frobnicate=1 {KEY}"), "unknown option"),
            ("x ssh-ed25519 AAAA".to_string(), "not a public key"),
            (format!("x valid-after=2026 {KEY}"), "not a time"),
        ] {
            let err = AllowedSigners::parse(&format!("\n{text}\n"), Path::new("f"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("f:2:") && err.contains(problem), "{err}");
        }
    }
}
