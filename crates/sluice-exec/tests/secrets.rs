//! Secrets in the executor: values travel beside commands, never in them; a value registered
//! from output that held a secret is secret itself, in every command, event, record and report;
//! the journal is told of every secret form before a fact could carry it.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use sluice_exec::testkit::{PlanBuilder, Reply, ScriptedTransport, StepDef};
use sluice_exec::*;
use sluice_plan::{RenderedCommand, Segment, TransportKind};
use tokio::sync::mpsc;

const TOKEN: &str = "s3cr3t-tok";
/// What the host answers `login`: a session id with the token in it.
const SESSION: &str = "session-s3cr3t-tok-42";

/// What the journal saw, in order: values it was told to treat as secret, and facts.
#[derive(Debug)]
enum Entry {
    Secret(String),
    Fact(Box<Fact>),
}

#[derive(Default)]
struct Recorder {
    entries: Mutex<Vec<Entry>>,
}

impl Journal for Recorder {
    fn record<'a>(&'a self, fact: &'a Fact) -> JournalFuture<'a> {
        self.entries
            .lock()
            .unwrap()
            .push(Entry::Fact(Box::new(fact.clone())));
        Box::pin(std::future::ready(Ok(())))
    }

    fn treat_as_secret(&self, value: &str) {
        self.entries
            .lock()
            .unwrap()
            .push(Entry::Secret(value.to_string()));
    }
}

fn text(t: &str) -> Segment {
    Segment::Text(t.into())
}

fn session() -> Segment {
    Segment::Registered {
        name: "session".into(),
        step: "login".into(),
        quote: true,
    }
}

/// `login` echoes a session id holding the token and registers it; `use` passes the session on
/// and fails, so the wave is rolled back and `use`'s undo passes it on too.
fn plan() -> sluice_plan::PlanArtifact {
    let login = RenderedCommand {
        segments: vec![
            text("login --token "),
            Segment::Secret {
                name: "tok".into(),
                quote: true,
            },
        ],
    };
    let use_it = RenderedCommand {
        segments: vec![text("use "), session()],
    };
    let revoke = RenderedCommand {
        segments: vec![text("revoke "), session()],
    };
    PlanBuilder::new("taint")
        .local_hosts(&["h1"], std::path::Path::new("/x"))
        .step(
            StepDef::new("login", "x")
                .run_cmd(login)
                .register("session"),
        )
        .step(
            StepDef::new("use", "x")
                .run_cmd(use_it)
                .undo_cmd(revoke)
                .after(&["login"]),
        )
        .wave("only", &["h1"], 1, 0)
        .build()
}

/// Issue 11: a value registered from output that contained a secret was shown in clear when a
/// later step or undo used it (`step_intent`/`undo_intent` commands, output echoing it).
#[tokio::test(start_paused = true)]
async fn a_value_registered_from_a_secret_is_secret_in_every_command_event_and_record() {
    let t = ScriptedTransport::new(|_, cmd| match cmd {
        c if c.starts_with("login") => Reply::ok().stdout(&format!("{SESSION}\n")),
        // The host echoes what it got, so the output holds the session too.
        c if c.starts_with("use") => Reply::exit(1).stdout(&format!("bad {c}\n")),
        c => Reply::ok().stdout(&format!("did {c}\n")),
    });
    let recorder = Arc::new(Recorder::default());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let executor = Executor {
        artifact: Arc::new(plan()),
        transports: Transports::new().with(TransportKind::Local, Arc::new(t.clone())),
        secrets: Secrets::from_values([("tok".to_string(), TOKEN.to_string())].into()),
        shutdown: Shutdown::new(),
        approver: None,
        options: RunOptions {
            journal: JournalHandle::new(recorder.clone()),
            ..RunOptions::default()
        },
    };
    let report = executor.run(Emitter::new("taint-run", tx)).await;
    assert_eq!(report.status, RunStatus::RolledBack);

    // The session reached the host only beside the commands, as a secret variable.
    let sent = t.sent();
    let commands: Vec<&str> = sent.iter().map(|s| s.command.as_str()).collect();
    assert_eq!(
        commands,
        [
            r#"login --token "${__sluice_s1}""#,
            r#"use "${__sluice_s1}""#,
            r#"revoke "${__sluice_s1}""#
        ]
    );
    for (s, value) in sent.iter().zip([TOKEN, SESSION, SESSION]) {
        assert_eq!(s.secrets, [("__sluice_s1".to_string(), value.to_string())]);
    }

    // Shown and recorded as `***`, whole: not the token inside it, not the rest of it.
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(serde_json::to_string(&e).unwrap());
    }
    let shown = format!(
        "{}\n{}",
        events.join("\n"),
        serde_json::to_string(&report).unwrap()
    );
    for part in [TOKEN, "session-", "-42"] {
        assert!(!shown.contains(part), "{part:?} shown: {shown}");
    }
    let intents: Vec<String> = events
        .iter()
        .filter(|e| e.contains("\"step_intent\"") || e.contains("\"undo_intent\""))
        .map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap()["command"].to_string())
        .collect();
    assert_eq!(
        intents,
        [r#""login --token ***""#, r#""use ***""#, r#""revoke ***""#]
    );

    // The journal learnt the session (and its quoted forms) before the fact of the step whose
    // output held it; the facts it got are masked already.
    let entries = recorder.entries.lock().unwrap();
    let told = entries
        .iter()
        .position(|e| matches!(e, Entry::Secret(v) if v == SESSION))
        .expect("the journal is told of the tainted value");
    let login_result = entries
        .iter()
        .position(|e| matches!(e, Entry::Fact(f) if matches!(&**f, Fact::StepResult(r) if r.step == "login")))
        .unwrap();
    assert!(told < login_result, "{entries:?}");
    assert!(
        entries
            .iter()
            .any(|e| matches!(e, Entry::Secret(v) if v == TOKEN)),
        "the run's secrets are given to the journal at start"
    );
    for entry in entries.iter() {
        if let Entry::Fact(f) = entry {
            let json = serde_json::to_string(f).unwrap();
            assert!(
                !json.contains("session-") && !json.contains(TOKEN),
                "{json}"
            );
        }
    }
}

/// A registered value that holds no secret stays an ordinary value: written into the command,
/// shown as it is.
#[tokio::test(start_paused = true)]
async fn a_value_registered_without_a_secret_stays_inline_and_shown() {
    let t = ScriptedTransport::new(|_, cmd| match cmd {
        c if c.starts_with("login") => Reply::ok().stdout("plain-session\n"),
        _ => Reply::ok(),
    });
    let (tx, _rx) = mpsc::unbounded_channel();
    let executor = Executor {
        artifact: Arc::new(plan()),
        transports: Transports::new().with(TransportKind::Local, Arc::new(t.clone())),
        secrets: Secrets::from_values([("tok".to_string(), TOKEN.to_string())].into()),
        shutdown: Shutdown::new(),
        approver: None,
        options: RunOptions::default(),
    };
    let report = executor.run(Emitter::new("plain-run", tx)).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    let sent = t.sent();
    assert_eq!(sent[1].command, "use plain-session");
    assert!(sent[1].secrets.is_empty());
}
