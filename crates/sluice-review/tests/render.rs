//! The review's formats as a specification: escaping of what a plan controls, the failure
//! policy's sentences, and the facts every format names.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use jiff::tz::TimeZone;
use sluice_review::{Clock, Format, Review, ReviewInput, approvals, build, render};

const INVENTORY: &str = "
hosts:
  web-1: { address: 10.0.0.11 }
  web-2: { address: 10.0.0.12 }
  web-3: { address: 10.0.0.13 }
  web-4: { address: 10.0.0.14 }
groups:
  web: { hosts: [web-1, web-2, web-3, web-4] }
";

fn review(plan: &str) -> Review {
    let compiled =
        sluice_plan::compile_sources(("plan.yaml", plan), ("inventory.yaml", INVENTORY), &[])
            .unwrap();
    build(ReviewInput {
        plan: &compiled.artifact,
        compile_warnings: Vec::new(),
        clock: Clock {
            now: "2026-11-01T00:00:00Z".parse().unwrap(),
            local: TimeZone::UTC,
        },
        approvals: approvals::not_checked("test"),
        promotion_evidence: None,
    })
}

fn sentences(plan: &str) -> Vec<String> {
    review(plan)
        .waves
        .into_iter()
        .map(|w| w.on_failure)
        .collect()
}

const WAVES: &str = r#"
name: p
targets: [web]
waves: [{ name: canary, size: 1 }, { name: early, size: 1 }, { name: rest, size: 100%, concurrency: 1 }]
steps:
  - { id: a, run: "true", undo: "true" }
"#;

#[test]
fn failure_policy_in_plain_words() {
    assert_eq!(
        sentences(WAVES),
        [
            "If the one host of wave canary fails, that host is rolled back and nothing else starts.",
            "If the one host of wave early fails, that host is rolled back and nothing else starts.",
            "If any of the 2 hosts of wave rest fails, no further host of it starts, those that \
             started are rolled back and nothing else starts.",
        ]
    );
    let run_scope =
        format!("{WAVES}failure: {{ max_failed: 0, action: rollback, rollback_scope: run }}\n");
    assert_eq!(
        sentences(&run_scope)[2],
        "If any of the 2 hosts of wave rest fails, no further host of it starts, those that \
         started are rolled back, then waves early and canary (newest first), and nothing else \
         starts."
    );
    let halt = format!("{WAVES}failure: {{ max_failed: 50%, action: halt }}\n");
    assert_eq!(
        sentences(&halt)[2],
        "If more than 1 of the 2 hosts of wave rest fail, no further host of it starts, nothing \
         is rolled back and nothing else starts: the run stops for a person to look. A single \
         failed host is tolerated: the run goes on and ends `tolerated` (exit 6), not \
         `succeeded`."
    );
    let go_on = format!("{WAVES}failure: {{ max_failed: 0, action: continue }}\n");
    let s = sentences(&go_on);
    assert_eq!(
        s[0],
        "If the one host of wave canary fails, the wave is recorded as failed, nothing is rolled \
         back and the run goes on with wave early."
    );
    assert_eq!(
        s[2],
        "If any of the 2 hosts of wave rest fails, the wave is recorded as failed, nothing is \
         rolled back and the run ends as failed."
    );
    let tolerant = format!("{WAVES}failure: {{ max_failed: 2, action: rollback }}\n");
    assert_eq!(
        sentences(&tolerant)[2],
        "Wave rest tolerates failures on all of its 2 host(s): whatever happens there, the run \
         ends without rolling back; with failed hosts it ends `tolerated` (exit 6), not \
         `succeeded`."
    );
}

/// Everything from the plan is text in the HTML: a description or command cannot add markup,
/// let alone a script (the page's policy would refuse it anyway).
#[test]
fn html_escapes_what_the_plan_says() {
    let plan = r#"
name: "<script>alert(1)</script>"
description: "a \"quoted\" & <b>bold</b> change"
targets: [web]
steps:
  - { id: a, run: "echo '<img src=x onerror=alert(1)>' > /tmp/x", undo: "true" }
"#;
    let html = render(&review(plan), Format::Html).unwrap();
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<b>bold"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("a &quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt; change"));
    assert!(html.contains("echo &#39;&lt;img src=x onerror=alert(1)&gt;&#39; &gt; /tmp/x"));
    assert!(
        html.contains("default-src 'none'"),
        "the page may load nothing"
    );
}

/// A `|` cannot break a Markdown table and backticks cannot end a code block early.
#[test]
fn markdown_survives_pipes_and_backticks() {
    let plan = r#"
name: "a | b"
targets: [web]
steps:
  - { id: a, run: "echo ``` | tr a b", undo: "true" }
"#;
    let md = render(&review(plan), Format::Markdown).unwrap();
    assert!(md.starts_with("# Change review: a \\| b\n"), "{md}");
    assert!(md.contains("````sh\necho ``` | tr a b\n````"), "{md}");
}

/// The summary facts a board checks are in every human format.
#[test]
fn every_format_names_the_plan_inventory_hash_and_window() {
    let plan = r#"
name: facts
ticket: CHG-7
targets: [web]
window: { start: 2026-11-28T22:00:00Z, end: 2026-11-29T02:00:00Z }
secrets: { pw: { env: SUDO_PW } }
become_password: pw
steps:
  - { id: a, run: "true", undo: "true", become: true }
"#;
    let r = review(plan);
    for format in [Format::Text, Format::Markdown, Format::Html, Format::Json] {
        let out = render(&r, format).unwrap();
        for fact in [
            "facts",
            "CHG-7",
            "inventory.yaml",
            r.summary.plan_hash.as_str(),
            "2026-11-28 22:00 UTC",
            "pw",
        ] {
            assert!(out.contains(fact), "{format:?} lacks {fact}");
        }
    }
    let text = render(&r, Format::Text).unwrap();
    assert!(text.contains("Become     sudo password from secret pw (sent only when sudo asks)"));
}

/// The HTML draws the stage graph: one box per stage with its name, targets, host count and
/// waves, one arrow per `after` (a diamond: `fan-a` and `fan-b` both wait for `first`, `last`
/// waits for both), and nothing of it for a plan without stages.
#[test]
fn html_draws_one_box_per_stage_and_one_arrow_per_after() {
    let plan = r#"
name: diamond
stages:
  - { name: first, targets: [web-1], steps: [{ id: a, run: "true" }] }
  - name: fan-a
    targets: [web-2, web-3]
    waves: [{ name: canary, size: 1 }, { name: rest, size: 100% }]
    steps: [{ id: b, run: "true" }]
  - { name: fan-b, targets: [web-3], after: [first], steps: [{ id: c, run: "true" }] }
  - { name: last, targets: [web], after: [fan-a, fan-b], steps: [{ id: d, run: "true" }] }
"#;
    let html = render(&review(plan), Format::Html).unwrap();
    let start = html
        .find("<figure class=\"graph stage-graph\">")
        .expect("the stage graph is drawn");
    let figure = &html[start..start + html[start..].find("</figure>").unwrap()];
    assert!(figure.contains("<svg"), "{figure}");
    assert_eq!(figure.matches("<g class=\"node\">").count(), 4, "{figure}");
    assert_eq!(
        figure.matches("<path class=\"edge\"").count(),
        4,
        "{figure}"
    );
    for text in [
        ">1. first<",
        ">2. fan-a<",
        ">3. fan-b<",
        ">4. last<",
        ">web-2, web-3 · 2 hosts<",
        ">canary (1), rest (1)<",
        ">web · 4 hosts<",
        ">one wave<",
    ] {
        assert!(figure.contains(text), "{text} not in {figure}");
    }
    // The page's ids stay unique next to the step graphs of the stages.
    assert_eq!(html.matches("id=\"stages-arrow\"").count(), 1);
    let ids: Vec<&str> = html
        .split(" id=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "duplicate ids: {ids:?}");
    assert!(html.contains("id=\"stage-2-steps-arrow\""), "{html}");

    let flat = "name: flat\ntargets: [web]\nsteps: [{ id: a, run: \"true\" }]\n";
    let html = render(&review(flat), Format::Html).unwrap();
    assert!(!html.contains("stage-graph"));
}

/// The pause of a stage's last wave holds the stages that wait for it: every format shows it as
/// such (not "before the next wave"), the HTML says the stage (not the run) ends, and a pause on
/// a stage nothing waits for shows nothing, as after a plan's last wave.
#[test]
fn a_pause_after_a_stage_s_last_wave_is_shown_as_holding_the_stages_after_it() {
    let plan = r#"
name: paused
stages:
  - name: first
    targets: [web-1]
    waves: [{ name: all, size: 100%, pause: 90s }]
    steps: [{ id: a, run: "true" }]
  - name: second
    targets: [web-2]
    waves: [{ name: all, size: 100%, pause: 90s }]
    steps: [{ id: b, run: "true" }]
"#;
    let r = review(plan);
    let text = render(&r, Format::Text).unwrap();
    assert_eq!(
        text.matches("then pauses 1m30s before the stages that wait for this one")
            .count(),
        1,
        "{text}"
    );
    assert!(!text.contains("before the next wave"), "{text}");
    let markdown = render(&r, Format::Markdown).unwrap();
    assert!(
        markdown.contains("| 1m30s, holding the stages that wait for this one |"),
        "{markdown}"
    );
    let html = render(&r, Format::Html).unwrap();
    assert!(
        html.contains("pause 1m30s, then the stages that wait for this one"),
        "{html}"
    );
    assert!(html.contains("the stage ends"), "{html}");
    let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json).unwrap()).unwrap();
    let waves = &json["stages"];
    assert_eq!(waves[0]["waves"][0]["pause_holds_stages"], true, "{json}");
    assert_eq!(waves[0]["waves"][0]["pause_ms"], 90_000);
    assert_eq!(waves[1]["waves"][0]["pause_ms"], serde_json::Value::Null);
    assert_eq!(waves[1]["waves"][0]["stage"], "second");
}
