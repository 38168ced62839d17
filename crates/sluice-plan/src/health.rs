//! Reading the plan's `health:` section: the shared policy and each check, with the options of
//! an `http:` check (expected status, body match, redirects, TLS trust; docs/plan-format.md).

use std::path::Path;

use crate::artifact::{CaFile, HealthPolicy, HttpOptions};
use crate::model::{CheckDecl, ProbeDecl, Template};
use crate::node::Node;
use crate::plan::{nonzero_duration, template};
use crate::schema::{Fields, Reader};

/// Defaults documented in docs/plan-format.md.
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;
pub const DEFAULT_HEALTH_INTERVAL_MS: u64 = 2_000;
pub const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 5_000;

const HEALTH_KEYS: &[&str] = &["checks", "retries", "interval", "timeout"];
const CHECK_KEYS: &[&str] = &[
    "name",
    "run",
    "http",
    "tcp",
    "expect_status",
    "body_contains",
    "follow_redirects",
    "insecure",
    "ca_file",
];
/// Keys that only mean something on an `http:` check.
const HTTP_ONLY_KEYS: &[&str] = &[
    "expect_status",
    "body_contains",
    "follow_redirects",
    "insecure",
    "ca_file",
];

/// The health policy of a plan that writes none.
pub(crate) fn default_health() -> HealthPolicy {
    HealthPolicy {
        retries: DEFAULT_HEALTH_RETRIES,
        interval_ms: DEFAULT_HEALTH_INTERVAL_MS,
        timeout_ms: DEFAULT_HEALTH_TIMEOUT_MS,
    }
}

/// Reads a `health` block; each key it leaves out (`checks` among them) keeps its value in
/// `base` and `base_checks` (a stage's block over the plan's).
pub(crate) fn read_health(
    r: &mut Reader,
    node: Option<&Node>,
    base: &HealthPolicy,
    base_checks: &[CheckDecl],
) -> (HealthPolicy, Vec<CheckDecl>) {
    let mut policy = base.clone();
    let mut checks = Vec::new();
    let Some(f) = node.and_then(|n| r.fields(n, HEALTH_KEYS, "health")) else {
        return (policy, base_checks.to_vec());
    };
    if f.get("checks").is_none() {
        checks = base_checks.to_vec();
    }
    if let Some(n) = f
        .get("retries")
        .and_then(|n| r.as_count(n, "health: retries"))
    {
        policy.retries = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(ms) = f
        .get("interval")
        .and_then(|n| r.as_duration(n, "health: interval"))
    {
        policy.interval_ms = ms;
    }
    if let Some(ms) = f
        .get("timeout")
        .and_then(|n| nonzero_duration(r, n, "health: timeout"))
    {
        policy.timeout_ms = ms;
    }
    for (i, item) in f
        .get("checks")
        .map(|n| r.as_seq(n, "health: checks"))
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let context = format!("health check {}", i + 1);
        let Some(c) = r.fields(item, CHECK_KEYS, &context) else {
            continue;
        };
        let name = c
            .get("name")
            .and_then(|n| r.as_str(n, &context))
            .unwrap_or_else(|| format!("check-{}", i + 1));
        let named = format!("health check `{name}`");
        let run = template(r, &c, "run", &named);
        let http = template(r, &c, "http", &named);
        let tcp = template(r, &c, "tcp", &named);
        let probe = match (run, http, tcp) {
            (Some(t), None, None) => probe_only(r, &c, &named, ProbeDecl::Run(t)),
            (None, Some(url), None) => read_http(r, &c, &named, url),
            (None, None, Some(t)) => probe_only(r, &c, &named, ProbeDecl::Tcp(t)),
            _ => {
                r.error_help(
                    item.loc,
                    format!("health check `{name}` needs exactly one probe"),
                    "write one of `run:`, `http:` or `tcp:`",
                );
                continue;
            }
        };
        if checks.iter().any(|c: &CheckDecl| c.name == name) {
            r.error(item.loc, format!("two health checks are named `{name}`"));
        }
        checks.push(CheckDecl { name, probe });
    }
    (policy, checks)
}

/// A `run:` or `tcp:` probe: the keys of an `http:` check are errors there.
fn probe_only(r: &mut Reader, c: &Fields, named: &str, probe: ProbeDecl) -> ProbeDecl {
    for key in HTTP_ONLY_KEYS {
        if let Some(n) = c.get(key) {
            r.error_help(
                n.loc,
                format!("{named}: `{key}` is only for `http:` checks"),
                format!("remove `{key}`"),
            );
        }
    }
    probe
}

/// An `http:` probe and its options.
fn read_http(r: &mut Reader, c: &Fields, named: &str, url: Template) -> ProbeDecl {
    let expect_status = c.get("expect_status").and_then(|n| {
        let status = r.as_count(n, &format!("{named}: expect_status"))?;
        match u16::try_from(status) {
            Ok(s) if (100..=599).contains(&s) => Some(s),
            _ => {
                r.error(
                    n.loc,
                    format!("{named}: expect_status must be an HTTP status (100-599)"),
                );
                None
            }
        }
    });
    let flag = |r: &mut Reader, key: &str| {
        c.get(key)
            .and_then(|n| r.as_bool(n, &format!("{named}: {key}")))
            .unwrap_or(false)
    };
    let follow_redirects = flag(r, "follow_redirects");
    let insecure = flag(r, "insecure");
    let body_contains = c.get("body_contains").and_then(|n| {
        let text = r.as_str(n, &format!("{named}: body_contains"))?;
        if text.is_empty() {
            r.error_help(
                n.loc,
                format!("{named}: `body_contains` is empty"),
                "write the text the response body must contain, or remove the key",
            );
        }
        Some(text)
    });
    let ca_file = c.get("ca_file").and_then(|n| read_ca_file(r, n, named));
    let plain_http = url.text.trim_start().starts_with("http://");
    for key in ["insecure", "ca_file"] {
        if let Some(n) = c.get(key)
            && plain_http
        {
            r.error_help(
                n.loc,
                format!("{named}: `{key}` is for https:// URLs; this check uses http://"),
                format!("use an https:// URL, or remove `{key}`"),
            );
        }
    }
    if insecure && let Some(n) = c.get("ca_file") {
        r.error_help(
            n.loc,
            format!("{named}: `insecure: true` and `ca_file` contradict each other"),
            "keep `ca_file` to verify the certificate against that authority",
        );
    }
    ProbeDecl::Http {
        url,
        expect_status,
        options: HttpOptions {
            body_contains,
            follow_redirects,
            insecure,
            ca_file,
        },
    }
}

/// The `ca_file:` of a check, read relative to the plan file; it must hold a PEM certificate.
fn read_ca_file(r: &mut Reader, node: &Node, named: &str) -> Option<CaFile> {
    let path = r.as_str(node, &format!("{named}: ca_file"))?;
    let full = Path::new(&r.file.path)
        .parent()
        .unwrap_or(Path::new("."))
        .join(&path);
    match std::fs::read_to_string(&full) {
        Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => Some(CaFile { path, pem }),
        Ok(_) => {
            r.error_help(
                node.loc,
                format!("{named}: ca_file {} holds no certificate", full.display()),
                "give a PEM file with `-----BEGIN CERTIFICATE-----` blocks",
            );
            None
        }
        Err(e) => {
            r.error_help(
                node.loc,
                format!("{named}: cannot read ca_file {}: {e}", full.display()),
                "the path is relative to the plan file",
            );
            None
        }
    }
}
