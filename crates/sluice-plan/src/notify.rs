//! `notify:`: the webhooks a plan sends run events to, read and checked here (sent by
//! sluice-notify). A target is `{ url, events, secret? }`: the URL is checked like a health
//! check's (`http://` or `https://`, a host, no user name or password), each event must be one
//! of [`NotifyEvent`] (an unknown name is a located error with the nearest known one), and
//! `secret` must name a secret the plan declares (its value signs the payload; only the name
//! is in the artifact).

use serde::{Deserialize, Serialize};
use sluice_model::NotifyEvent;

use crate::node::Node;
use crate::schema::{Reader, nearest};

const TARGET_KEYS: &[&str] = &["url", "events", "secret"];

/// One webhook of a plan's `notify:`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTarget {
    pub url: String,
    /// The events it receives, in the plan's order, without repeats.
    pub events: Vec<NotifyEvent>,
    /// The plan secret whose value keys the payload's HMAC-SHA256 signature; never the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Reads `notify:`; `secrets` are the names the plan declares.
pub(crate) fn read_notify(r: &mut Reader, node: &Node, secrets: &[&str]) -> Vec<NotifyTarget> {
    let mut out = Vec::new();
    for (i, item) in r.as_seq(node, "notify").iter().enumerate() {
        let context = format!("notify[{i}]");
        let Some(f) = r.fields(item, TARGET_KEYS, &context) else {
            continue;
        };
        let url = match f.get("url") {
            Some(n) => r.as_str(n, &format!("{context}.url")).and_then(|url| {
                match crate::url::check_url(&url) {
                    Ok(()) => Some(url),
                    Err(problem) => {
                        let help = problem
                            .help()
                            .unwrap_or("write it as http(s)://HOST[:PORT]/PATH");
                        r.error_help(n.loc, format!("{context}.url: {problem}"), help);
                        None
                    }
                }
            }),
            None => {
                r.error(f.loc, format!("{context} has no `url`"));
                None
            }
        };
        let events = match f.get("events") {
            Some(n) => read_events(r, n, &context),
            None => {
                r.error_help(
                    f.loc,
                    format!("{context} has no `events`"),
                    expected_events(),
                );
                Vec::new()
            }
        };
        let secret = f.get("secret").and_then(|n| {
            let name = r.as_str(n, &format!("{context}.secret"))?;
            if !secrets.contains(&name.as_str()) {
                let help = if secrets.is_empty() {
                    format!("no secret is declared; add it under `secrets`, e.g. `{name}: {{ env: WEBHOOK_KEY }}`")
                } else {
                    format!("declared secrets: {}", secrets.join(", "))
                };
                r.error_help(
                    n.loc,
                    format!("{context}.secret names `{name}`, which is not declared under `secrets`"),
                    help,
                );
            }
            Some(name)
        });
        if let Some(url) = url {
            out.push(NotifyTarget {
                url,
                events,
                secret,
            });
        }
    }
    out
}

fn read_events(r: &mut Reader, node: &Node, context: &str) -> Vec<NotifyEvent> {
    let names: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.as_str()).collect();
    let mut events = Vec::new();
    let listed = r.as_str_list(node, &format!("{context}.events"));
    if listed.is_empty() {
        r.error_help(
            node.loc,
            format!("{context}.events lists no event"),
            expected_events(),
        );
    }
    for (name, loc) in listed {
        match NotifyEvent::ALL.iter().find(|e| e.as_str() == name) {
            Some(e) if !events.contains(e) => events.push(*e),
            Some(_) => {}
            None => {
                let help = match nearest(&name, &names) {
                    Some(near) => format!("did you mean `{near}`? {}", expected_events()),
                    None => expected_events(),
                };
                r.error_help(loc, format!("{context}: unknown event `{name}`"), help);
            }
        }
    }
    events
}

fn expected_events() -> String {
    let names: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.as_str()).collect();
    format!("events: {}", names.join(", "))
}
