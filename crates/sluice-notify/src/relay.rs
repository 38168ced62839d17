//! The relay in a run's event stream and the [`Notifier`] behind it: facts in, deliveries
//! spawned, failures out as `notification_failed` facts.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use sluice_model::{Event, Fact, NotificationFailed, NotifyEvent};
use sluice_plan::notify::{Endpoint, NotifyTarget};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::{Id, JoinSet};

use crate::deliver::{Delivery, DeliveryPolicy, deliver};
use crate::event::{cloud_event, event_of};

/// What the payloads say about the run.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub run_id: String,
    pub plan_name: String,
    pub plan_hash: String,
    /// The controller's name: the CloudEvents `source` is `sluice://CONTROLLER/runs/RUN`.
    pub controller: String,
}

/// A delivery in flight, to report if it fails or is given up.
struct Pending {
    event: NotifyEvent,
    event_id: String,
    endpoint: String,
    target: u32,
    attempts: Arc<AtomicU32>,
}

/// Sends a run's events to its webhooks; see the crate doc.
pub struct Notifier {
    targets: Vec<NotifyTarget>,
    /// The value of each secret the targets name (signing keys, URLs held in secrets), by name.
    secret_values: HashMap<String, String>,
    info: RunInfo,
    redact: Box<dyn Fn(&str) -> String + Send + Sync>,
    client: reqwest::Client,
    policy: DeliveryPolicy,
    sent: u64,
    tasks: JoinSet<Result<(), String>>,
    pending: HashMap<Id, Pending>,
    failed: Vec<NotificationFailed>,
}

impl Notifier {
    /// A notifier for `targets`, with the values of the secrets they name in `secret_values`
    /// (secret name → value: signing keys, and URLs given by `url_secret`), with every payload
    /// passed through `redact` before it is signed and sent.
    pub fn new(
        targets: Vec<NotifyTarget>,
        secret_values: HashMap<String, String>,
        info: RunInfo,
        redact: Box<dyn Fn(&str) -> String + Send + Sync>,
        policy: DeliveryPolicy,
    ) -> Result<Notifier, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(policy.timeout)
            .build()?;
        Ok(Notifier {
            targets,
            secret_values,
            info,
            redact,
            client,
            policy,
            sent: 0,
            tasks: JoinSet::new(),
            pending: HashMap::new(),
            failed: Vec::new(),
        })
    }

    /// Queues `fact` to every target that wants its event; never waits.
    pub fn observe(&mut self, fact: &Fact) {
        self.reap();
        let Some(event) = event_of(fact) else {
            return;
        };
        for (i, target) in self.targets.iter().enumerate() {
            if !target.events.contains(&event) {
                continue;
            }
            self.sent += 1;
            let event_id = format!("{}-{}", self.info.run_id, self.sent);
            let body = (self.redact)(&cloud_event(&self.info, &event_id, event, fact).to_string());
            let signature = target
                .secret
                .as_ref()
                .and_then(|name| self.secret_values.get(name))
                .map(|key| crate::signature::sign(key.as_bytes(), body.as_bytes()));
            let attempts = Arc::new(AtomicU32::new(0));
            let url = resolve(&target.endpoint, &self.secret_values);
            let (client, policy) = (self.client.clone(), self.policy);
            let delivery = attempts.clone();
            let handle = self.tasks.spawn(async move {
                let delivery = Delivery {
                    url: url?,
                    body,
                    signature,
                    attempts: delivery,
                };
                deliver(&client, policy, &delivery).await
            });
            self.pending.insert(
                handle.id(),
                Pending {
                    event,
                    event_id,
                    endpoint: target.endpoint.origin(),
                    target: u32::try_from(i).unwrap_or(u32::MAX),
                    attempts,
                },
            );
        }
    }

    /// Collects the deliveries that ended so far.
    fn reap(&mut self) {
        while let Some(done) = self.tasks.try_join_next_with_id() {
            self.settled(done);
        }
    }

    fn settled(&mut self, done: Result<(Id, Result<(), String>), tokio::task::JoinError>) {
        let (id, reason) = match done {
            Ok((id, Ok(()))) => {
                self.pending.remove(&id);
                return;
            }
            Ok((id, Err(reason))) => (id, reason),
            Err(join) => (join.id(), format!("the delivery task ended: {join}")),
        };
        if let Some(p) = self.pending.remove(&id) {
            self.failed.push(failure(p, reason));
        }
    }

    /// Waits at most the policy's `settle` bound for deliveries in flight, gives up on the
    /// rest, and returns every delivery that failed.
    pub async fn finish(mut self) -> Vec<NotificationFailed> {
        let deadline = tokio::time::Instant::now() + self.policy.settle;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id()).await {
                Ok(Some(done)) => self.settled(done),
                Ok(None) => break,
                Err(_) => {
                    self.tasks.abort_all();
                    let reason = format!(
                        "still being delivered {:?} after the run's last event; given up",
                        self.policy.settle
                    );
                    let mut left: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
                    left.sort_by(|a, b| a.event_id.cmp(&b.event_id));
                    for p in left {
                        self.failed.push(failure(p, reason.clone()));
                    }
                    break;
                }
            }
        }
        self.failed
    }
}

fn failure(p: Pending, reason: String) -> NotificationFailed {
    NotificationFailed {
        event: p.event,
        event_id: p.event_id,
        endpoint: p.endpoint,
        target: p.target,
        attempts: p.attempts.load(Ordering::Relaxed),
        reason,
    }
}

/// The URL to POST to: the plan's, or the value of the secret that holds it. A value that is
/// missing or not an `http(s)://` URL is a failed delivery that names the secret only.
fn resolve(endpoint: &Endpoint, secret_values: &HashMap<String, String>) -> Result<String, String> {
    match endpoint {
        Endpoint::Url(url) => Ok(url.clone()),
        Endpoint::Secret(name) => match secret_values.get(name) {
            Some(url) if sluice_plan::url::check_url(url.trim()).is_ok() => {
                Ok(url.trim().to_string())
            }
            Some(_) => Err(format!(
                "the value of secret {name} is not an http:// or https:// URL with a host \
                 (and no user name, password or #fragment)"
            )),
            None => Err(format!("secret {name} has no value in this run")),
        },
    }
}

/// Passes every event from `events` on to `out` unchanged, handing each fact to `notifier`.
/// When `events` ends (or after `run_finished`), waits for the deliveries (at most the bound), passes a
/// `notification_failed` event on for each that failed, and returns them for the record.
pub async fn relay(
    mut events: UnboundedReceiver<Event>,
    out: UnboundedSender<Event>,
    mut notifier: Option<Notifier>,
) -> Vec<NotificationFailed> {
    let mut last: Option<(u64, String)> = None;
    while let Some(event) = events.recv().await {
        if let Some(n) = notifier.as_mut() {
            n.observe(&event.fact);
        }
        last = Some((event.seq, event.run.clone()));
        let finished = matches!(event.fact, Fact::RunFinished(_));
        // The display may be gone (its end is not the run's): the relay carries on regardless.
        let _ = out.send(event);
        // Other senders (a Ctrl-C handler) may outlive the run: its end is the stream's end.
        if finished {
            break;
        }
    }
    let Some(notifier) = notifier else {
        return Vec::new();
    };
    let failed = notifier.finish().await;
    let (mut seq, run) = last.unwrap_or_default();
    for f in &failed {
        seq += 1;
        let _ = out.send(Event {
            seq,
            at: jiff::Timestamp::now(),
            run: run.clone(),
            fact: Fact::NotificationFailed(f.clone()),
        });
    }
    failed
}
