//! One payload to one webhook: POSTed, retried with exponential backoff on a connection
//! failure, a timeout or a status other than 2xx.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::event::CONTENT_TYPE;
use crate::signature;

/// How hard delivery tries.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryPolicy {
    /// Attempts per payload (1 = no retry).
    pub attempts: u32,
    /// Before the second attempt; doubled before each later one.
    pub backoff: Duration,
    /// Per attempt, connecting included.
    pub timeout: Duration,
    /// How long the end of a run waits for deliveries still in flight.
    pub settle: Duration,
}

impl Default for DeliveryPolicy {
    /// 3 attempts, 500 ms then 1 s apart, 5 s each; at most 5 s of waiting at the run's end.
    fn default() -> Self {
        DeliveryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
            settle: Duration::from_secs(5),
        }
    }
}

/// A payload ready to send.
pub struct Delivery {
    pub url: String,
    pub body: String,
    /// The signature header's value, when the target signs.
    pub signature: Option<String>,
    /// Attempts made so far, read when the delivery is given up at the run's end.
    pub attempts: Arc<AtomicU32>,
}

/// Sends `delivery`; `Err` with why the last attempt failed.
pub async fn deliver(
    client: &reqwest::Client,
    policy: DeliveryPolicy,
    delivery: &Delivery,
) -> Result<(), String> {
    let mut last = String::from("not attempted");
    let mut wait = policy.backoff;
    for attempt in 1..=policy.attempts.max(1) {
        delivery.attempts.store(attempt, Ordering::Relaxed);
        let mut request = client
            .post(&delivery.url)
            .timeout(policy.timeout)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(delivery.body.clone());
        if let Some(sig) = &delivery.signature {
            request = request.header(signature::HEADER, sig);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => last = format!("HTTP {}", response.status().as_u16()),
            Err(e) => last = describe(e, policy.timeout),
        }
        if attempt < policy.attempts {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
    }
    Err(last)
}

/// Why a request failed, without its URL (a webhook's path often holds a token).
fn describe(err: reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("timed out after {timeout:?}");
    }
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
