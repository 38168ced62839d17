//! Where the store lives: `--state-dir`, else `SLUICE_STATE_DIR`, else `~/.local/state/sluice`.

use std::path::{Path, PathBuf};

use crate::error::AuditError;

/// The file name of the store inside the state directory.
pub const STORE_FILE: &str = "audit.redb";

/// Resolves the state directory: an explicit path wins, then `SLUICE_STATE_DIR`, then the XDG
/// state directory (`$XDG_STATE_HOME/sluice`, else `$HOME/.local/state/sluice`).
pub fn resolve_state_dir(explicit: Option<&Path>) -> Result<PathBuf, AuditError> {
    resolve_with(explicit, |name| std::env::var_os(name))
}

fn resolve_with(
    explicit: Option<&Path>,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<PathBuf, AuditError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let set = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("SLUICE_STATE_DIR") {
        return Ok(dir);
    }
    if let Some(xdg) = set("XDG_STATE_HOME") {
        return Ok(xdg.join("sluice"));
    }
    set("HOME")
        .map(|home| home.join(".local/state/sluice"))
        .ok_or(AuditError::NoStateDir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<std::ffi::OsString> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.into())
        }
    }

    #[test]
    fn explicit_path_wins_over_environment() {
        let dir = resolve_with(Some(Path::new("/x")), env_of(&[("SLUICE_STATE_DIR", "/y")]));
        assert_eq!(dir.ok(), Some(PathBuf::from("/x")));
    }

    #[test]
    fn environment_then_xdg_then_home() {
        let env = env_of(&[("SLUICE_STATE_DIR", "/y"), ("HOME", "/home/op")]);
        assert_eq!(resolve_with(None, env).ok(), Some(PathBuf::from("/y")));
        let env = env_of(&[("XDG_STATE_HOME", "/xdg"), ("HOME", "/home/op")]);
        assert_eq!(
            resolve_with(None, env).ok(),
            Some(PathBuf::from("/xdg/sluice"))
        );
        let env = env_of(&[("SLUICE_STATE_DIR", ""), ("HOME", "/home/op")]);
        assert_eq!(
            resolve_with(None, env).ok(),
            Some(PathBuf::from("/home/op/.local/state/sluice"))
        );
        assert!(matches!(
            resolve_with(None, env_of(&[])),
            Err(AuditError::NoStateDir)
        ));
    }
}
