//! Glue between a run and its `notify:` webhooks (sluice-notify): the notifier for a run, and
//! the record of the deliveries that failed.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_audit::{AuditLog, Redactor};
use sluice_exec::Secrets;
use sluice_model::{Fact, NotificationFailed};
use sluice_notify::{DeliveryPolicy, Notifier, RunInfo};
use sluice_plan::PlanArtifact;
use sluice_plan::notify::Endpoint;

use crate::console::Console;

/// The notifier of a run of `artifact`, or `None` when the plan notifies nobody. A client that
/// cannot be built (no TLS roots) is reported and the run goes on without webhooks: a webhook
/// never fails a run.
pub fn notifier(
    run_id: &str,
    artifact: &PlanArtifact,
    secrets: &Secrets,
    redactor: &Arc<Redactor>,
    console: &Console,
) -> Option<Notifier> {
    if artifact.notify.is_empty() {
        return None;
    }
    // Signing keys, and URLs held in secrets (`url_secret`).
    let secret_values: HashMap<String, String> = artifact
        .notify
        .iter()
        .flat_map(|t| {
            let url = match &t.endpoint {
                Endpoint::Secret(name) => Some(name),
                Endpoint::Url(_) => None,
            };
            t.secret.iter().chain(url)
        })
        .filter_map(|name| Some((name.clone(), secrets.values().get(name)?.clone())))
        .collect();
    let info = RunInfo {
        run_id: run_id.to_string(),
        plan_name: artifact.name.clone(),
        plan_hash: artifact.plan_hash.clone(),
        controller: sluice_audit::controller_name(),
    };
    let redactor = Arc::clone(redactor);
    let redact = Box::new(move |text: &str| redactor.redact_str(text));
    match Notifier::new(
        artifact.notify.clone(),
        secret_values,
        info,
        redact,
        DeliveryPolicy::default(),
    ) {
        Ok(n) => Some(n),
        Err(e) => {
            console.error(format!(
                "webhooks disabled for this run: cannot start the HTTP client: {e}"
            ));
            None
        }
    }
}

/// Records each failed delivery in the run's audit trail (after its end). A record that fails
/// is reported; the run's outcome stands.
pub async fn record(log: Arc<AuditLog>, run_id: String, failed: Vec<NotificationFailed>) {
    if failed.is_empty() {
        return;
    }
    let recorded = tokio::task::spawn_blocking(move || {
        failed
            .into_iter()
            .map(|f| log.append(&run_id, Fact::NotificationFailed(f)).err())
            .find_map(|e| e)
    })
    .await;
    if let Ok(Some(e)) = recorded {
        tracing::warn!("a failed webhook delivery could not be recorded: {e}");
    }
}
