//! `notify:` webhooks against a real HTTP receiver (hyper, on 127.0.0.1): CloudEvents 1.0
//! payloads for the subscribed events only, signed with the plan secret's HMAC-SHA256 and
//! verified here; a receiver that is down or too slow neither fails nor holds up the run, and
//! the failed delivery is recorded; an unknown event name is a located error. A URL held in a
//! secret (`url_secret`) is used, and is in no output, artifact, review, record or export.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use http_body_util::BodyExt;

mod support;
use support::sluice;

const KEY: &str = "hook-key-0f9c2e";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A real HTTP/1.1 server on 127.0.0.1 that answers 200 after `delay`, in a thread of its own.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(delay: Duration) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let store = got.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let store = store.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(
                            move |req: hyper::Request<hyper::body::Incoming>| {
                                let store = store.clone();
                                async move {
                                    let path = req.uri().to_string();
                                    let headers = req
                                        .headers()
                                        .iter()
                                        .map(|(k, v)| {
                                            (k.to_string(), v.to_str().unwrap_or("").to_string())
                                        })
                                        .collect();
                                    let body = req.into_body().collect().await?.to_bytes().to_vec();
                                    tokio::time::sleep(delay).await;
                                    store.lock().unwrap().push(Received {
                                        path,
                                        headers,
                                        body,
                                    });
                                    Ok::<_, hyper::Error>(hyper::Response::new(
                                        http_body_util::Full::new(hyper::body::Bytes::from_static(
                                            b"ok",
                                        )),
                                    ))
                                }
                            },
                        );
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    });
                }
            });
        });
        Receiver {
            addr: rx.recv().unwrap(),
            got,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// Two local hosts in two waves; `install` fails on a host whose directory has a `fail` file
/// and is undone, so a failing rest wave is rolled back.
fn setup(dir: &Path, notify: &str, fail_on: Option<&str>) -> (PathBuf, PathBuf) {
    for h in ["h1", "h2"] {
        std::fs::create_dir_all(dir.join(h)).unwrap();
    }
    if let Some(h) = fail_on {
        std::fs::write(dir.join(h).join("fail"), "").unwrap();
    }
    let inventory = dir.join("inv.yaml");
    std::fs::write(
        &inventory,
        format!(
            "hosts:\n  h1: {{ transport: local, workdir: {0}/h1 }}\n  h2: {{ transport: local, workdir: {0}/h2 }}\n",
            dir.display()
        ),
    )
    .unwrap();
    let plan = dir.join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            r#"name: notified
targets: [h1, h2]
secrets:
  hook_key: {{ env: SLUICE_TEST_HOOK_KEY }}
waves:
  - {{ name: canary, size: 1 }}
  - {{ name: rest, size: 100% }}
failure: {{ max_failed: 0, action: rollback, rollback_scope: wave }}
{notify}
steps:
  - {{ id: install, run: 'test ! -e fail', undo: 'true' }}
"#
        ),
    )
    .unwrap();
    (plan, inventory)
}

fn apply(store: &Path, plan: &Path, inventory: &Path) -> Output {
    sluice()
        .env("SLUICE_STATE_DIR", store)
        .env("SLUICE_TEST_HOOK_KEY", KEY)
        .arg("apply")
        .arg(plan)
        .arg("-i")
        .arg(inventory)
        .args(["--yes", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The run's records, as `sluice show RUN --json` prints them.
fn records(store: &Path, out: &Output) -> Vec<serde_json::Value> {
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    let run = first["run"].as_str().unwrap();
    let shown = sluice()
        .env("SLUICE_STATE_DIR", store)
        .args(["show", run, "--json"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&shown.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn subscribed_events_arrive_as_signed_cloudevents() {
    let receiver = Receiver::start(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let notify = format!(
        "notify:\n  - {{ url: '{}', events: [wave_failed, run_finished], secret: hook_key }}\n  - {{ url: '{}', events: [rollback_started] }}",
        receiver.url("/hooks/a?token=t0k"),
        receiver.url("/hooks/b")
    );
    let (plan, inventory) = setup(dir.path(), &notify, Some("h2"));
    let store = tempfile::tempdir().unwrap();
    let out = apply(store.path(), &plan, &inventory);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut got = receiver.received();
    got.sort_by_key(|r| r.path.clone());
    let kinds: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            (r.path.clone(), v["type"].as_str().unwrap().to_string())
        })
        .collect();
    let mut a: Vec<&str> = kinds
        .iter()
        .filter(|(p, _)| p.starts_with("/hooks/a"))
        .map(|(_, t)| t.as_str())
        .collect();
    a.sort();
    assert_eq!(
        a,
        ["io.sluice.run_finished", "io.sluice.wave_failed"],
        "{kinds:?}"
    );
    let b: Vec<&str> = kinds
        .iter()
        .filter(|(p, _)| p == "/hooks/b")
        .map(|(_, t)| t.as_str())
        .collect();
    assert_eq!(b, ["io.sluice.rollback_started"]);

    for r in &got {
        assert_eq!(r.headers["content-type"], "application/cloudevents+json");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["specversion"], "1.0");
        for field in ["id", "source", "time", "type"] {
            assert!(v[field].is_string(), "{field} in {v}");
        }
        assert_eq!(v["data"]["plan"], "notified");
        assert!(
            !String::from_utf8_lossy(&r.body).contains(KEY),
            "no secret in a payload"
        );
        match r.headers.get("x-sluice-signature") {
            Some(sig) => {
                assert!(r.path.starts_with("/hooks/a"));
                let mut mac =
                    hmac::Hmac::<sha2_hmac::Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
                mac.update(&r.body);
                let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
                assert_eq!(sig, &expected, "the signature verifies");
            }
            None => assert_eq!(r.path, "/hooks/b", "only the target with a secret signs"),
        }
    }
    let finished = got
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap())
        .find(|v| v["type"] == "io.sluice.run_finished")
        .unwrap();
    assert_eq!(finished["data"]["fact"]["status"], "rolled_back");
    assert!(
        records(store.path(), &out)
            .iter()
            .all(|r| r["kind"] != "notification_failed")
    );
}

#[test]
fn a_receiver_that_is_down_does_not_fail_the_run_and_is_recorded() {
    // A port with nothing listening: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let notify = format!(
        "notify:\n  - {{ url: 'http://127.0.0.1:{port}/secret-path/t0k', events: [run_finished], secret: hook_key }}"
    );
    let (plan, inventory) = setup(dir.path(), &notify, None);
    let store = tempfile::tempdir().unwrap();
    let out = apply(store.path(), &plan, &inventory);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let failed: Vec<serde_json::Value> = records(store.path(), &out)
        .into_iter()
        .filter(|r| r["kind"] == "notification_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["event"], "run_finished");
    assert_eq!(failed[0]["attempts"], 3);
    assert_eq!(failed[0]["endpoint"], format!("http://127.0.0.1:{port}"));
    assert!(
        !failed[0].to_string().contains("t0k"),
        "the URL's path is not recorded"
    );
    // The event stream shows it too, after run_finished.
    let events = support::events(&out);
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "notification_failed", "{events:?}");
    assert_eq!(events[events.len() - 2]["kind"], "run_finished");
    assert_eq!(
        last["seq"],
        events[events.len() - 2]["seq"].as_u64().unwrap() + 1
    );
}

#[test]
fn a_slow_receiver_does_not_hold_up_the_run_beyond_the_bound() {
    let receiver = Receiver::start(Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let notify = format!(
        "notify:\n  - {{ url: '{}', events: [run_finished] }}",
        receiver.url("/slow")
    );
    let (plan, inventory) = setup(dir.path(), &notify, None);
    let store = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = apply(store.path(), &plan, &inventory);
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The run itself takes well under a second; the end waits at most 5 s for webhooks.
    assert!(took < Duration::from_secs(5 + 4), "took {took:?}");
    let failed: Vec<serde_json::Value> = records(store.path(), &out)
        .into_iter()
        .filter(|r| r["kind"] == "notification_failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["reason"].as_str().unwrap().contains("given up"),
        "{failed:?}"
    );
}

#[test]
fn an_unknown_event_is_a_located_error_and_notify_is_absent_when_unused() {
    let dir = tempfile::tempdir().unwrap();
    let (plan, inventory) = setup(
        dir.path(),
        "notify:\n  - { url: 'http://127.0.0.1:9/x', events: [run_finished, wave_failled] }",
        None,
    );
    let out = sluice()
        .arg("validate")
        .arg(&plan)
        .arg("-i")
        .arg(&inventory)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown event `wave_failled`"), "{stderr}");
    assert!(stderr.contains("did you mean `wave_failed`"), "{stderr}");
    assert!(stderr.contains("plan.yaml:10:59"), "located: {stderr}");

    let (plan, inventory) = setup(dir.path(), "", None);
    let out = sluice()
        .args(["plan", "--json"])
        .arg(&plan)
        .arg("-i")
        .arg(&inventory)
        .output()
        .unwrap();
    let artifact: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(artifact.get("notify").is_none());
}

/// Every place a run's facts or its plan can be read from: the run's own output, the artifact,
/// the reviews, `show --json` and `audit export`.
fn everything_said(store: &Path, out: &Output, plan: &Path, inventory: &Path) -> String {
    let mut all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for args in [
        &["plan", "--json"][..],
        &["plan", "--format", "json"][..],
        &["plan", "--format", "markdown"][..],
        &["plan", "--format", "html"][..],
    ] {
        let said = sluice()
            .env("SLUICE_STATE_DIR", store)
            .args(args)
            .arg(plan)
            .arg("-i")
            .arg(inventory)
            .output()
            .unwrap();
        assert_eq!(said.status.code(), Some(0), "{args:?}");
        all.push_str(&String::from_utf8_lossy(&said.stdout));
    }
    let export = sluice()
        .env("SLUICE_STATE_DIR", store)
        .args(["audit", "export"])
        .output()
        .unwrap();
    assert_eq!(export.status.code(), Some(0));
    all.push_str(&String::from_utf8_lossy(&export.stdout));
    for r in records(store, out) {
        all.push_str(&r.to_string());
    }
    all
}

/// The example playbook's chat webhook comes from a secret: the receiver gets the event at the
/// secret's URL, and the URL's token is nowhere sluice writes, debug logs included.
#[test]
fn a_webhook_url_held_in_a_secret_is_used_and_shown_nowhere() {
    let receiver = Receiver::start(Duration::ZERO);
    let token = "XyZtok3n-b7d1";
    let hook = receiver.url(&format!("/services/T0/B0/{token}"));
    let cwd = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let plan = repo.join("playbooks/notify-example.yaml");
    let inventory = repo.join("inventory/demo.yaml");
    let out = sluice()
        .current_dir(cwd.path())
        .env("SLUICE_STATE_DIR", store.path())
        .env("SLUICE_CHAT_HOOK", &hook)
        .env("SLUICE_WEBHOOK_KEY", KEY)
        .arg("apply")
        .arg(&plan)
        .arg("-i")
        .arg(&inventory)
        .args(["--yes", "--json", "-vv"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].path, format!("/services/T0/B0/{token}"));
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "io.sluice.run_finished");
    assert_eq!(body["data"]["fact"]["status"], "succeeded");
    assert!(!String::from_utf8_lossy(&got[0].body).contains(token));

    // The other webhook (127.0.0.1:8089) has no receiver here: its failure names its origin.
    for failed in records(store.path(), &out)
        .iter()
        .filter(|r| r["kind"] == "notification_failed")
    {
        assert_eq!(failed["target"], 1, "{failed}");
    }
    let said = everything_said(store.path(), &out, &plan, &inventory);
    assert!(said.contains("<secret chat_hook>"), "the review names it");
    assert!(!said.contains(token), "the URL's token leaked");
    assert!(!said.contains("/services/T0"), "the URL's path leaked");
}

/// A URL held in a secret that cannot be reached, or that is no URL, is a failed delivery
/// naming only the secret; the run's outcome stands.
#[test]
fn a_failed_delivery_to_a_secret_url_names_only_the_secret() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let notify = "notify:\n  - { url_secret: hook_key, events: [run_finished] }";
    let (plan, inventory) = setup(dir.path(), notify, None);
    for (value, reason) in [
        (
            format!("http://127.0.0.1:{port}/hooks/XyZdown"),
            "error sending request",
        ),
        (
            "ftp://XyZdown".to_string(),
            "the value of secret hook_key is not an http:// or https:// URL",
        ),
    ] {
        let store = tempfile::tempdir().unwrap();
        let out = sluice()
            .env("SLUICE_STATE_DIR", store.path())
            .env("SLUICE_TEST_HOOK_KEY", &value)
            .arg("apply")
            .arg(&plan)
            .arg("-i")
            .arg(&inventory)
            .args(["--yes", "--json", "-vv"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let failed: Vec<serde_json::Value> = records(store.path(), &out)
            .into_iter()
            .filter(|r| r["kind"] == "notification_failed")
            .collect();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0]["endpoint"], "<secret hook_key>");
        let why = failed[0]["reason"].as_str().unwrap();
        assert!(why.contains(reason), "{why}");
        let said = everything_said(store.path(), &out, &plan, &inventory);
        assert!(!said.contains("XyZdown"), "the secret URL leaked: {value}");
    }
}
