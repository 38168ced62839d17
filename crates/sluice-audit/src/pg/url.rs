//! A PostgreSQL store's address: the URL as given (never with a password), and the connection
//! settings built from it and the environment as libpq would: `PGHOST`, `PGPORT`, `PGUSER`,
//! `PGDATABASE` fill what the URL leaves out, and the password comes from `PGPASSWORD` or the
//! password file (`PGPASSFILE`, else `~/.pgpass`), never from the command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_postgres::config::Host;

use crate::error::AuditError;

/// A `postgres://` URL without a password, as the operator wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreUrl {
    text: String,
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl StoreUrl {
    /// Checks a URL: `postgres://` or `postgresql://`, readable by the client, and without a
    /// password (which would show in process listings and shell history).
    pub fn parse(text: &str) -> Result<StoreUrl, AuditError> {
        let bad = |reason: &str| AuditError::BadStoreUrl {
            url: redacted(text),
            reason: reason.to_string(),
        };
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err(bad(
                "expected a PostgreSQL URL (`postgres://USER@HOST/DATABASE`) or `redb:DIR`",
            ));
        }
        let config: tokio_postgres::Config = text.parse().map_err(|e| bad(&format!("{e}")))?;
        if config.get_password().is_some() {
            return Err(bad(
                "the URL holds a password, which would show in process listings and shell history; \
                 remove it and set PGPASSWORD or put it in ~/.pgpass (mode 0600)",
            ));
        }
        Ok(StoreUrl {
            text: text.to_string(),
        })
    }

    /// The URL as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The connection settings: the URL, completed from the environment (`env`) and the
    /// password file.
    pub(crate) fn config(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<tokio_postgres::Config, AuditError> {
        let mut config: tokio_postgres::Config =
            self.text.parse().map_err(|e| AuditError::BadStoreUrl {
                url: self.text.clone(),
                reason: format!("{e}"),
            })?;
        if config.get_hosts().is_empty() {
            match env("PGHOST") {
                Some(host) => {
                    config.host(&host);
                }
                None => {
                    config.host_path("/var/run/postgresql");
                }
            }
        }
        if config.get_ports().is_empty()
            && let Some(port) = env("PGPORT").and_then(|p| p.parse().ok())
        {
            config.port(port);
        }
        if config.get_user().is_none() {
            let user = env("PGUSER").unwrap_or_else(crate::identity::operator_name);
            config.user(&user);
        }
        if config.get_dbname().is_none()
            && let Some(db) = env("PGDATABASE")
        {
            config.dbname(&db);
        }
        if let Some(password) = env("PGPASSWORD") {
            config.password(password);
        } else if let Some(password) = password_from_file(&config, env) {
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("sluice");
        // A dead database is noticed by the keepalives of an idle connection too.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        Ok(config)
    }
}

/// The URL with any password replaced by `***`, for messages about a refused URL.
fn redacted(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => text.to_string(),
        },
        None => text.to_string(),
    }
}

/// The password for this connection from the password file, as libpq reads it: `PGPASSFILE`,
/// else `~/.pgpass`; lines `host:port:database:user:password` with `*` matching anything and
/// `\:`/`\\` escapes; the first matching line wins; a file others may read is ignored.
fn password_from_file(
    config: &tokio_postgres::Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let path = env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".pgpass")))?;
    if !private_file(&path) {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first()? {
        Host::Tcp(name) => name.clone(),
        Host::Unix(_) => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user()?.to_string();
    let db = config.get_dbname().unwrap_or(&user).to_string();
    let wanted = [host, port, db, user];
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass_line(line);
            if fields.len() != 5 {
                return None;
            }
            let matches = fields
                .iter()
                .zip(&wanted)
                .all(|(field, want)| field == "*" || field == want);
            matches.then(|| fields[4].clone())
        })
}

fn private_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o077 == 0)
}

fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(field)) = (chars.next(), fields.last_mut()) {
                    field.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_url_with_a_password_is_refused_without_echoing_it() {
        let err = StoreUrl::parse("postgres://sluice:hunter2@db/sluice").unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("PGPASSWORD") && text.contains(".pgpass"),
            "{text}"
        );
        assert!(StoreUrl::parse("postgres://sluice@db/sluice").is_ok());
        assert!(StoreUrl::parse("mysql://x@db/y").is_err());
    }

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:sluice:wrong\ndb\\:x:*:sluice:sluice:p\\:w\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let url = StoreUrl::parse("postgres://sluice@db%3Ax/sluice").unwrap();
        let path = file.to_string_lossy().into_owned();
        let env = move |name: &str| (name == "PGPASSFILE").then(|| path.clone());
        let config = url.config(&env).unwrap();
        assert_eq!(config.get_password(), Some(&b"p:w"[..]));
        // A file others can read is ignored, as libpq does.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(url.config(&env).unwrap().get_password(), None);
    }
}
