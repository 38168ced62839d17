//! docs/json-events.md against the types: the vocabulary tables are the generated ones, every
//! fact kind has its section and no section names a kind that does not exist, every example
//! line is an event of its section's kind whose fields are exactly the type's, and
//! `Fact::host` of every example is its top-level `host` field.

// Tests may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use sluice_model::reference::{BEGIN, END, vocabulary_tables};
use sluice_model::{Event, Fact};

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/json-events.md")
}

fn doc() -> String {
    std::fs::read_to_string(doc_path()).expect("docs/json-events.md is readable")
}

#[test]
fn the_vocabulary_tables_are_generated_from_the_types() {
    let text = doc();
    let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        panic!("docs/json-events.md lacks the generated section markers {BEGIN:?} / {END:?}");
    };
    let current = &text[start..end + END.len()];
    let generated = vocabulary_tables();
    if current != generated {
        if std::env::var_os("SLUICE_BLESS").is_some() {
            let updated = format!("{}{generated}{}", &text[..start], &text[end + END.len()..]);
            std::fs::write(doc_path(), updated).expect("docs/json-events.md is writable");
            return;
        }
        panic!(
            "docs/json-events.md's vocabulary tables differ from the types; run `SLUICE_BLESS=1 cargo test -p sluice-model --test docs` and review the diff"
        );
    }
}

/// The kinds a `### ` heading names: `### \`a\` / \`b\``.
fn heading_kinds(line: &str) -> Vec<String> {
    line.trim_start_matches('#')
        .split('/')
        .map(|part| part.trim().trim_matches('`').to_string())
        .collect()
}

/// (kinds of the section, example lines) for every `### ` section under `## Facts`.
fn sections(text: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let facts = text
        .split("\n## ")
        .find(|part| part.starts_with("Facts"))
        .expect("docs/json-events.md has a `## Facts` section");
    let mut out: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    let mut in_json = false;
    for line in facts.lines() {
        if line.starts_with("### ") {
            out.push((heading_kinds(line), Vec::new()));
        } else if line.starts_with("```json") {
            in_json = true;
        } else if line.starts_with("```") {
            in_json = false;
        } else if in_json
            && !line.trim().is_empty()
            && let Some((_, examples)) = out.last_mut()
        {
            examples.push(line.to_string());
        }
    }
    out
}

#[test]
fn every_fact_kind_has_its_section_and_every_section_is_a_kind() {
    let documented: BTreeSet<String> = sections(&doc())
        .into_iter()
        .flat_map(|(kinds, _)| kinds)
        .collect();
    let defined: BTreeSet<String> = Fact::KINDS.iter().map(|k| k.to_string()).collect();
    let missing: Vec<_> = defined.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&defined).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "kinds not documented: {missing:?}; documented but not defined: {unknown:?}"
    );
}

#[test]
fn every_example_is_an_event_of_its_section_with_exactly_the_types_fields() {
    for (kinds, examples) in sections(&doc()) {
        assert!(!examples.is_empty(), "section {kinds:?} has no example");
        for line in examples {
            let value: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{kinds:?}: not JSON ({e}): {line}"));
            let event: Event = serde_json::from_value(value.clone())
                .unwrap_or_else(|e| panic!("{kinds:?}: not an event ({e}): {line}"));
            assert!(
                kinds.iter().any(|k| k == event.fact.kind()),
                "{kinds:?}: the example is a {}",
                event.fact.kind()
            );
            // Serialized back, the event has the example's fields and no others.
            let again = serde_json::to_value(&event).expect("an event serializes");
            let keys = |v: &serde_json::Value| -> BTreeSet<String> {
                v.as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default()
            };
            assert_eq!(keys(&again), keys(&value), "{kinds:?}: {line}");
        }
    }
}

#[test]
fn every_value_of_every_vocabulary_is_in_the_document() {
    let text = doc();
    for (vocabulary, value) in sluice_model::reference::all_values() {
        assert!(
            text.contains(&format!("| `{value}` |")),
            "{vocabulary}::{value} is not listed in docs/json-events.md"
        );
    }
}

/// `Fact::host` (what the PostgreSQL store files a record under) is the serialized fact's
/// top-level `host`, for every kind: each example is checked as every kind whose payload it
/// fills (the kinds a section groups share theirs), and every kind must have been checked, so
/// a kind added without its answer in `Fact::host` fails.
#[test]
fn the_host_of_every_fact_is_its_top_level_host_field() {
    let mut checked = BTreeSet::new();
    for (kinds, examples) in sections(&doc()) {
        for line in examples {
            let mut value: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{kinds:?}: not JSON ({e}): {line}"));
            for kind in Fact::KINDS {
                value["kind"] = serde_json::Value::from(*kind);
                // A kind whose payload the example does not fill is checked by another.
                let Ok(fact) = serde_json::from_value::<Fact>(value.clone()) else {
                    continue;
                };
                let wire = serde_json::to_value(&fact).expect("a fact serializes");
                assert_eq!(
                    fact.host(),
                    wire.get("host").and_then(|h| h.as_str()),
                    "{kind}: {line}"
                );
                checked.insert(fact.kind());
            }
        }
    }
    let all: BTreeSet<&str> = Fact::KINDS.iter().copied().collect();
    assert_eq!(checked, all, "kinds without an example to check");
}
