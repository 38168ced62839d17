//! Writing the metrics file atomically, the way node_exporter's textfile collector expects.

use std::io::Write;
use std::path::Path;

use crate::error::MetricsError;

/// Writes `text` to `path` atomically: into a temporary file in the same directory (a rename
/// is atomic only within one file system), flushed to disk, made readable by the collector's
/// user (temporary files are created 0600), then renamed over `path`. The temporary name does
/// not end in `.prom`, so the collector never reads it half-written.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), MetricsError> {
    let failed = |source: std::io::Error| MetricsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".sluice-metrics-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.as_file().sync_all().map_err(failed)?;
    set_readable(file.as_file()).map_err(failed)?;
    file.persist(path).map_err(|e| failed(e.error))?;
    Ok(())
}

#[cfg(unix)]
fn set_readable(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_readable(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.prom");
        std::fs::write(&path, "old\n").unwrap();
        write_atomically(&path, "new 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new 1\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope/sluice.prom");
        let err = write_atomically(&path, "x 1\n").unwrap_err();
        assert!(err.to_string().contains("nope/sluice.prom"), "{err}");
    }
}
