//! `notify:`: the webhooks a plan sends run events to, read and checked here (sent by
//! sluice-notify). A target is `{ url | url_secret, events, secret? }`: the URL is checked like
//! a health check's (`http://` or `https://`, a host, no user name or password), or
//! `url_secret` names a declared secret whose value is the URL (an incoming-webhook URL is a
//! credential: then only the name is in the artifact); each event must be one of
//! [`NotifyEvent`] (an unknown name is a located error with the nearest known one), and
//! `secret` must name a secret the plan declares (its value signs the payload; only the name
//! is in the artifact).

use serde::{Deserialize, Serialize};
use sluice_model::NotifyEvent;

use crate::node::Node;
use crate::schema::{Reader, nearest};

const TARGET_KEYS: &[&str] = &["url", "url_secret", "events", "secret"];

/// Where a webhook is sent. Serialized flat (`"url": …` or `"url_secret": …`), so the
/// artifacts of plans with a plain `url` keep their bytes and hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Endpoint {
    /// The URL as the plan writes it.
    #[serde(rename = "url")]
    Url(String),
    /// The name of a declared plan secret whose value is the URL, read only at run time.
    #[serde(rename = "url_secret")]
    Secret(String),
}

impl Endpoint {
    /// What a review may show of it: `scheme://host:port/path` of a URL (never its query
    /// string, which often carries a token), or `<secret NAME>`.
    pub fn shown(&self) -> String {
        match self {
            Endpoint::Url(url) => shown_url(url),
            Endpoint::Secret(name) => format!("<secret {name}>"),
        }
    }

    /// What a failed delivery may name: `scheme://host:port` of a URL, or `<secret NAME>`.
    pub fn origin(&self) -> String {
        match self {
            Endpoint::Url(url) => {
                let shown = shown_url(url);
                let (scheme, rest) = shown.split_once("://").unwrap_or(("", &shown));
                let authority = rest.split('/').next().unwrap_or(rest);
                format!("{scheme}://{authority}")
            }
            Endpoint::Secret(name) => format!("<secret {name}>"),
        }
    }
}

/// `scheme://host:port/path` of a checked URL: the port written out (80 or 443 when the URL
/// names none), the query string, a user name and a fragment dropped.
fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // Checked URLs hold no user name; dropping one anyway keeps a credential out of the review.
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    if has_port {
        format!("{scheme}://{authority}{path}")
    } else {
        let port = if scheme == "https" { 443 } else { 80 };
        format!("{scheme}://{authority}:{port}{path}")
    }
}

/// One webhook of a plan's `notify:`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTarget {
    #[serde(flatten)]
    pub endpoint: Endpoint,
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
        let endpoint = match (f.get("url"), f.get("url_secret")) {
            (Some(n), None) => r.as_str(n, &format!("{context}.url")).and_then(|url| {
                match crate::url::check_url(&url) {
                    Ok(()) => Some(Endpoint::Url(url)),
                    Err(problem) => {
                        let help = problem
                            .help()
                            .unwrap_or("write it as http(s)://HOST[:PORT]/PATH");
                        r.error_help(n.loc, format!("{context}.url: {problem}"), help);
                        None
                    }
                }
            }),
            (None, Some(n)) => declared_secret(r, n, &format!("{context}.url_secret"), secrets)
                .map(Endpoint::Secret),
            (Some(_), Some(n)) => {
                r.error_help(
                    n.loc,
                    format!("{context} has both `url` and `url_secret`"),
                    "keep one: `url_secret` when the URL itself is a credential",
                );
                None
            }
            (None, None) => {
                r.error_help(
                    f.loc,
                    format!("{context} has no `url`"),
                    "add `url: https://…`, or `url_secret: NAME` naming a declared secret whose value is the URL",
                );
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
        let secret = f
            .get("secret")
            .and_then(|n| declared_secret(r, n, &format!("{context}.secret"), secrets));
        if let Some(endpoint) = endpoint {
            out.push(NotifyTarget {
                endpoint,
                events,
                secret,
            });
        }
    }
    out
}

/// The secret name at `node`; a name the plan does not declare is a located error.
fn declared_secret(r: &mut Reader, node: &Node, key: &str, secrets: &[&str]) -> Option<String> {
    let name = r.as_str(node, key)?;
    if !secrets.contains(&name.as_str()) {
        let help = if secrets.is_empty() {
            format!(
                "no secret is declared; add it under `secrets`, e.g. `{name}: {{ env: WEBHOOK_KEY }}`"
            )
        } else {
            format!("declared secrets: {}", secrets.join(", "))
        };
        r.error_help(
            node.loc,
            format!("{key} names `{name}`, which is not declared under `secrets`"),
            help,
        );
    }
    Some(name)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_url_is_shown_without_query_or_user_and_with_its_port() {
        let shown = |u: &str| Endpoint::Url(u.into()).shown();
        assert_eq!(
            shown("https://hooks.example.com/a/b?token=t0k"),
            "https://hooks.example.com:443/a/b"
        );
        assert_eq!(shown("http://10.0.0.1:8080?x=1"), "http://10.0.0.1:8080/");
        assert_eq!(shown("http://u:p@[::1]/p"), "http://[::1]:80/p");
        assert_eq!(
            Endpoint::Url("https://h:8443/x/y?z".into()).origin(),
            "https://h:8443"
        );
        assert_eq!(Endpoint::Secret("hook".into()).shown(), "<secret hook>");
        assert_eq!(Endpoint::Secret("hook".into()).origin(), "<secret hook>");
    }

    #[test]
    fn both_endpoints_serialize_flat_and_read_back() {
        for (endpoint, key) in [
            (Endpoint::Url("http://h/x".into()), "url"),
            (Endpoint::Secret("hook".into()), "url_secret"),
        ] {
            let target = NotifyTarget {
                endpoint,
                events: vec![NotifyEvent::RunFinished],
                secret: None,
            };
            let json = serde_json::to_value(&target).unwrap();
            assert!(json.get(key).is_some_and(|v| v.is_string()), "{json}");
            let back: NotifyTarget = serde_json::from_value(json).unwrap();
            assert_eq!(back, target);
        }
    }
}
