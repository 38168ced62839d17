//! Throwaway PostgreSQL clusters for tests and benchmarks: `initdb` in a temporary directory,
//! the server started with `pg_ctl` on a private port on 127.0.0.1 and a private unix socket
//! directory, stopped (immediately) and deleted on drop. Never a dependency of a shipping crate.
//!
//! Debian's `postgresql` package puts the server binaries in `/usr/lib/postgresql/VERSION/bin`,
//! not on `PATH`; `SLUICE_PG_BIN` names another directory. initdb and the server refuse to run
//! as root, so a root test process runs them as the `postgres` system user (`runuser`), with
//! the temporary directory handed to that user.
//!
//! Authentication: the superuser `sluice` connects over the unix socket without a password
//! (`trust`, what in-process tests use) and over TCP with the password [`PASSWORD`]
//! (`scram-sha-256`, what tests of `PGPASSWORD` and `~/.pgpass` use).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The superuser's password over TCP.
pub const PASSWORD: &str = "sluice-test-password";

/// Why a cluster could not start; each says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (or $SLUICE_PG_BIN): install them with `apt-get install -y postgresql` (scripts/test.sh does)"
    )]
    NotInstalled,
    #[error(
        "the tests run as root and initdb refuses root: the `postgres` system user is needed (apt-get install -y postgresql creates it)"
    )]
    NoPostgresUser,
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} failed ({status}):\n{output}")]
    Command {
        what: String,
        status: String,
        output: String,
    },
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
}

impl PgCluster {
    /// Creates and starts a cluster with a database `sluice`.
    pub fn start() -> Result<PgCluster, PgError> {
        let bin = bin_dir().ok_or(PgError::NotInstalled)?;
        let dir = tempfile::Builder::new()
            .prefix("sluice-pg-")
            .tempdir()
            .map_err(|source| io("creating the cluster directory", source))?;
        let as_root = is_root();
        if as_root {
            run(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(dir.path()),
                "chown of the cluster directory to postgres",
            )
            .map_err(|_| PgError::NoPostgresUser)?;
        }
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{PASSWORD}\n"))
            .map_err(|source| io("writing the password file", source))?;
        if as_root {
            run(
                Command::new("chown").arg("postgres:postgres").arg(&pwfile),
                "chown of the password file",
            )?;
        }
        let port = free_port()?;
        let cluster = PgCluster {
            dir,
            bin,
            port,
            running: false,
        };
        let data = cluster.data_dir();
        cluster.server_command("initdb", |c| {
            c.arg("-D")
                .arg(&data)
                .args(["-U", "sluice", "-E", "UTF8", "--no-sync"])
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display()));
        })?;
        let mut cluster = cluster;
        cluster.pg_ctl_start()?;
        cluster.psql("postgres", "CREATE DATABASE sluice")?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory holding the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` over the unix socket (no password needed).
    pub fn socket_url(&self, db: &str) -> String {
        format!(
            "postgres://sluice@localhost/{db}?host={}&port={}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// The URL of database `db` over TCP on 127.0.0.1 (the password is [`PASSWORD`]).
    pub fn tcp_url(&self, db: &str) -> String {
        format!("postgres://sluice@127.0.0.1:{}/{db}", self.port)
    }

    /// The URL of the database `sluice` over the unix socket.
    pub fn url(&self) -> String {
        self.socket_url("sluice")
    }

    /// Creates another database and returns its socket URL.
    pub fn create_database(&self, name: &str) -> Result<String, PgError> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.socket_url(name))
    }

    /// Runs SQL with `psql` in database `db` as the superuser; returns its output (unaligned,
    /// tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, PgError> {
        let socket = self.socket_dir().to_path_buf();
        let port = self.port.to_string();
        let output = self.server_command_output("psql", |c| {
            c.arg("-h")
                .arg(&socket)
                .args(["-p", &port, "-U", "sluice", "-d", db])
                .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql]);
        })?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// Stops the server (fast shutdown: connections are closed).
    pub fn stop(&mut self) -> Result<(), PgError> {
        let data = self.data_dir();
        self.server_command("pg_ctl", |c| {
            c.arg("-D").arg(&data).args(["-m", "fast", "-w", "stop"]);
        })?;
        self.running = false;
        Ok(())
    }

    /// Starts a stopped server again on the same port.
    pub fn restart(&mut self) -> Result<(), PgError> {
        self.pg_ctl_start()
    }

    fn pg_ctl_start(&mut self) -> Result<(), PgError> {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.socket_dir().display()
        );
        self.server_command("pg_ctl", |c| {
            c.arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &options, "-w", "-t", "60", "start"]);
        })?;
        self.running = true;
        Ok(())
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn server_command(
        &self,
        program: &str,
        args: impl FnOnce(&mut Command),
    ) -> Result<(), PgError> {
        self.server_command_output(program, args).map(|_| ())
    }

    /// Runs one of the server's programs, as the `postgres` user when this process is root.
    fn server_command_output(
        &self,
        program: &str,
        args: impl FnOnce(&mut Command),
    ) -> Result<Output, PgError> {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command.current_dir(self.dir.path());
        args(&mut command);
        run(&mut command, program)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let _ = self.server_command("pg_ctl", |c| {
                c.arg("-D")
                    .arg(&data)
                    .args(["-m", "immediate", "-w", "stop"]);
            });
        }
    }
}

fn io(what: &str, source: std::io::Error) -> PgError {
    PgError::Io {
        what: what.to_string(),
        source,
    }
}

fn run(command: &mut Command, what: &str) -> Result<Output, PgError> {
    let output = command.output().map_err(|source| io(what, source))?;
    if output.status.success() {
        return Ok(output);
    }
    Err(PgError::Command {
        what: what.to_string(),
        status: output.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `$SLUICE_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin` with `initdb`.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SLUICE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A port nothing listens on now (the kernel's pick for an ephemeral bind).
fn free_port() -> Result<u16, PgError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|source| io("finding a free port", source))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| io("finding a free port", source))
}
