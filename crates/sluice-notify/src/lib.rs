//! Webhook notifications of a run (`notify:` in a plan): which facts become which events, the
//! CloudEvents 1.0 payload, its signature, delivery with retries, and the relay that sits in
//! the run's event stream.
//!
//! 1. [`relay`] passes every event of the run on to the display unchanged and hands each fact
//!    to the [`Notifier`], which never waits: a fact that matches a subscription is queued.
//! 2. [`event`]: a fact is a [`NotifyEvent`] (an approval gate waiting, a wave failed, a
//!    rollback started or failed, the window closing, the run finished) and its CloudEvents
//!    payload; [`signature`] signs it with HMAC-SHA256 when the target names a secret.
//! 3. [`deliver`]: each payload is POSTed in its own task, retried with backoff.
//! 4. When the run's events end, the relay waits at most a bound for deliveries still in
//!    flight, then gives up on them; every delivery that failed becomes a
//!    `notification_failed` fact, passed on like the others, for the caller to record.
//!
//! **Invariant:** a webhook never blocks, slows or fails the run; the only wait is the bound
//! at its end. A payload carries no secret value: facts carry none (the executor's invariant),
//! and the body is redacted again before it is signed.

pub mod deliver;
pub mod event;
pub mod relay;
pub mod signature;

pub use deliver::DeliveryPolicy;
pub use relay::{Notifier, RunInfo, relay};
pub use sluice_model::NotifyEvent;
