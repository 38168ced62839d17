//! One connection to the database, usable from synchronous code on any thread.
//!
//! The client is `tokio-postgres`. Its connection task (the socket) runs on a private
//! single-thread tokio runtime that lives on its own thread for the life of the process; the
//! client's requests are plain channel messages to that task, so the store's methods wait for
//! them with `futures::executor::block_on` wherever they are called: on the group commit's
//! writer thread, or on a worker of the CLI's tokio runtime (as the redb store's disk writes
//! do). The synchronous `postgres` crate is not used because it runs its own runtime's
//! `block_on` on the caller's thread, which panics inside a tokio runtime, and so does dropping
//! it there.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::audit_log::OpenMode;
use crate::error::{AuditError, StoreName};

/// Waits for a client future on the calling thread.
pub(crate) fn block<F: Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

/// The runtime that drives every connection's socket, started on first use; an error names
/// `store`, the store it was started for.
pub(crate) fn runtime(store: &StoreName) -> Result<&'static tokio::runtime::Handle, AuditError> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Handle, String>> = OnceLock::new();
    let started = RUNTIME.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("sluice-pg".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .map_err(|e| e.to_string())?;
        Ok(handle)
    });
    started.as_ref().map_err(|reason| AuditError::Database {
        store: store.clone(),
        reason: format!("cannot start the database client's thread: {reason}"),
        unreachable: false,
    })
}

/// TLS for connections that use it (`sslmode=prefer`, the default, or `require`): rustls with
/// ring, trusting the system's certificate store and the file `PGSSLROOTCERT` names. An error
/// names `store`, the store it was set up for.
pub(crate) fn tls(store: &StoreName) -> Result<MakeRustlsConnect, AuditError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A system certificate rustls cannot use is skipped, as every TLS client does.
            let _ = roots.add(cert);
        }
        if let Some(path) = std::env::var_os("PGSSLROOTCERT") {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(&path)
                .map_err(|e| format!("PGSSLROOTCERT {}: {e}", path.to_string_lossy()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("PGSSLROOTCERT: {e}"))?;
                roots.add(cert).map_err(|e| format!("PGSSLROOTCERT: {e}"))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    });
    match config {
        Ok(config) => Ok(MakeRustlsConnect::new((**config).clone())),
        Err(reason) => Err(AuditError::Database {
            store: store.clone(),
            reason: format!("TLS: {reason}"),
            unreachable: false,
        }),
    }
}

/// An error of the client, with the database's own message when there is one, and whether
/// it means the database cannot be reached (so a run stops, and resumes later).
pub(crate) fn db_error(store: &StoreName, err: &tokio_postgres::Error) -> AuditError {
    let (reason, unreachable) = match err.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let mut reason = db.message().to_string();
            if let Some(detail) = db.detail() {
                reason.push_str(&format!(" ({detail})"));
            }
            // Class 08: connection exception; 57: operator intervention (shutdown, restart).
            (reason, code.starts_with("08") || code.starts_with("57"))
        }
        None => {
            let mut reason = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                reason.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            (reason, true)
        }
    };
    AuditError::Database {
        store: store.clone(),
        reason,
        unreachable,
    }
}

/// An open connection and the store it belongs to (for its errors).
pub(crate) struct Connection {
    client: Client,
    store: StoreName,
}

impl Connection {
    /// Connects, then makes every commit of the session synchronous, and a reader's session
    /// read-only.
    pub(crate) fn open(
        config: &tokio_postgres::Config,
        mode: OpenMode,
        store: &StoreName,
    ) -> Result<Connection, AuditError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let config = config.clone();
        let tls = tls(store)?;
        runtime(store)?.spawn(async move {
            let connected = match config.connect(tls).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        // Ends when the client is dropped or the database goes away; the
                        // client's next request then fails as closed.
                        let _ = connection.await;
                    });
                    Ok(client)
                }
                Err(err) => Err(err),
            };
            let _ = sender.send(connected);
        });
        let client = match block(receiver) {
            Ok(Ok(client)) => client,
            Ok(Err(err)) => return Err(db_error(store, &err)),
            Err(_) => {
                return Err(AuditError::Database {
                    store: store.clone(),
                    reason: "the database client's thread stopped".into(),
                    unreachable: true,
                });
            }
        };
        let conn = Connection {
            client,
            store: store.clone(),
        };
        let mut setup = String::from("SET synchronous_commit = on;");
        if mode == OpenMode::ReadOnly {
            setup.push_str("SET default_transaction_read_only = on;");
        }
        conn.batch(&setup)?;
        Ok(conn)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    pub(crate) fn err(&self, err: &tokio_postgres::Error) -> AuditError {
        db_error(&self.store, err)
    }

    pub(crate) fn batch(&self, sql: &str) -> Result<(), AuditError> {
        block(self.client.batch_execute(sql)).map_err(|e| self.err(&e))
    }

    pub(crate) fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, AuditError> {
        block(self.client.query(sql, params)).map_err(|e| self.err(&e))
    }

    /// Starts a read-only, repeatable-read transaction: one consistent moment of the store.
    pub(crate) fn snapshot(&mut self) -> Result<(Transaction<'_>, &StoreName), AuditError> {
        let Connection { client, store } = self;
        let txn = block(
            client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start(),
        )
        .map_err(|e| db_error(store, &e))?;
        Ok((txn, store))
    }

    /// Starts a transaction (rolled back if dropped without a commit).
    pub(crate) fn transaction(&mut self) -> Result<(Transaction<'_>, &StoreName), AuditError> {
        let Connection { client, store } = self;
        let txn = block(client.transaction()).map_err(|e| db_error(store, &e))?;
        Ok((txn, store))
    }
}
