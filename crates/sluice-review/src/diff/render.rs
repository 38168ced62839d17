//! `sluice plan diff` as text and as Markdown (the JSON is [`PlanDiff`] itself).

use std::fmt::Write;

use super::*;
use crate::hosts::HostOrder;
use crate::markdown::{code, escape};

/// Which human format to write; the two differ only in markup.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Markup {
    Text,
    Markdown,
}

pub fn text(diff: &PlanDiff) -> String {
    write(diff, Markup::Text)
}

pub fn markdown(diff: &PlanDiff) -> String {
    write(diff, Markup::Markdown)
}

fn write(diff: &PlanDiff, m: Markup) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_diff(diff, m, &mut out);
    out
}

/// Writes `text` escaped for the markup.
fn t(m: Markup, text: &str) -> String {
    match m {
        Markup::Text => text.to_string(),
        Markup::Markdown => escape(text),
    }
}

fn value(m: Markup, v: &Option<String>) -> String {
    match (m, v) {
        (Markup::Text, Some(v)) => v.clone(),
        (Markup::Markdown, Some(v)) => code(v),
        (_, None) => "(none)".into(),
    }
}

fn heading(o: &mut String, m: Markup, title: &str) -> std::fmt::Result {
    match m {
        Markup::Text => writeln!(o, "\n{title}"),
        Markup::Markdown => writeln!(o, "\n## {title}\n"),
    }
}

/// A list item at `depth` (0 or 1).
fn item(o: &mut String, m: Markup, depth: usize, text: &str) -> std::fmt::Result {
    match m {
        Markup::Text => writeln!(o, "{:w$}{text}", "", w = 2 + 2 * depth),
        Markup::Markdown => writeln!(o, "{:w$}- {text}", "", w = 2 * depth),
    }
}

fn change_line(m: Markup, c: &FieldChange) -> String {
    format!(
        "{}: {} → {}",
        t(m, &c.field),
        value(m, &c.old),
        value(m, &c.new)
    )
}

fn unified(o: &mut String, m: Markup, c: &CommandChange) -> std::fmt::Result {
    match m {
        Markup::Text => {
            writeln!(o, "    {}:", c.what)?;
            for line in c.unified_diff.lines() {
                writeln!(o, "      {line}")?;
            }
            Ok(())
        }
        Markup::Markdown => {
            let fence = if c.unified_diff.contains("```") {
                "~~~~"
            } else {
                "```"
            };
            writeln!(
                o,
                "  - {}:\n\n{fence}diff\n{}{fence}\n",
                code(&c.what),
                c.unified_diff
            )
        }
    }
}

fn write_diff(d: &PlanDiff, m: Markup, o: &mut String) -> std::fmt::Result {
    let title = format!(
        "Plan diff: {} ({}) → {} ({})",
        d.old.name, d.old.plan_hash, d.new.name, d.new.plan_hash
    );
    match m {
        Markup::Text => writeln!(o, "{title}")?,
        Markup::Markdown => writeln!(o, "# {}", escape(&title))?,
    }
    if d.identical {
        let line = "No differences: both artifacts are the same plan (same plan hash).";
        return match m {
            Markup::Text => writeln!(o, "{line}"),
            Markup::Markdown => writeln!(o, "\n{line}"),
        };
    }
    if !d.summary.is_empty() {
        heading(o, m, "Summary")?;
        for c in &d.summary {
            item(o, m, 0, &change_line(m, c))?;
        }
    }
    write_hosts(d, m, o)?;
    if !d.waves.is_empty() {
        heading(o, m, "Waves")?;
        for w in &d.waves {
            let head = match w.change {
                Change::Added => format!("added wave {}", t(m, &w.wave)),
                Change::Removed => format!("removed wave {}", t(m, &w.wave)),
                Change::Changed => format!("wave {}", t(m, &w.wave)),
            };
            item(o, m, 0, &head)?;
            for c in &w.fields {
                item(o, m, 1, &change_line(m, c))?;
            }
        }
    }
    write_steps(d, m, o)?;
    write_health(d, m, o)?;
    if !d.failure.is_empty() {
        heading(o, m, "Failure policy")?;
        for c in &d.failure {
            item(o, m, 0, &change_line(m, c))?;
        }
    }
    if d.other {
        heading(o, m, "Other")?;
        item(
            o,
            m,
            0,
            "the plan hashes differ, but in nothing this diff compares (compare the JSON)",
        )?;
    }
    Ok(())
}

fn write_hosts(d: &PlanDiff, m: Markup, o: &mut String) -> std::fmt::Result {
    let h = &d.hosts;
    let order = HostOrder::from_names(&d.host_order);
    if h.added.is_empty() && h.removed.is_empty() && h.moved.is_empty() && h.changed.is_empty() {
        return Ok(());
    }
    heading(o, m, "Hosts")?;
    for a in &h.added {
        item(
            o,
            m,
            0,
            &format!("added {} (wave {})", t(m, &a.host), t(m, &a.wave)),
        )?;
    }
    for r in &h.removed {
        item(
            o,
            m,
            0,
            &format!("removed {} (was in wave {})", t(m, &r.host), t(m, &r.wave)),
        )?;
    }
    for mv in &h.moved {
        item(
            o,
            m,
            0,
            &format!(
                "moved {}: wave {} → wave {}",
                t(m, &mv.host),
                t(m, &mv.from),
                t(m, &mv.to)
            ),
        )?;
    }
    for c in &h.changed {
        item(
            o,
            m,
            0,
            &format!(
                "{}: {}",
                t(m, &order.compact(&c.hosts)),
                change_line(m, &c.change)
            ),
        )?;
    }
    Ok(())
}

fn write_steps(d: &PlanDiff, m: Markup, o: &mut String) -> std::fmt::Result {
    if d.steps.is_empty() {
        return Ok(());
    }
    heading(o, m, "Steps")?;
    for s in &d.steps {
        let head = match s.change {
            Change::Added => format!("added step {}", t(m, &s.step)),
            Change::Removed => format!("removed step {}", t(m, &s.step)),
            Change::Changed => format!("step {}", t(m, &s.step)),
        };
        item(o, m, 0, &head)?;
        for c in &s.fields {
            item(o, m, 1, &change_line(m, c))?;
        }
        for c in &s.commands {
            unified(o, m, c)?;
        }
    }
    Ok(())
}

fn write_health(d: &PlanDiff, m: Markup, o: &mut String) -> std::fmt::Result {
    let h = &d.health;
    if h.rules.is_empty() && h.added.is_empty() && h.removed.is_empty() && h.changed.is_empty() {
        return Ok(());
    }
    heading(o, m, "Health checks")?;
    for c in &h.rules {
        item(o, m, 0, &change_line(m, c))?;
    }
    for a in &h.added {
        item(o, m, 0, &format!("added check {}", t(m, a)))?;
    }
    for r in &h.removed {
        item(o, m, 0, &format!("removed check {}", t(m, r)))?;
    }
    if !h.changed.is_empty() {
        item(o, m, 0, "changed checks")?;
        for c in &h.changed {
            unified(o, m, c)?;
        }
    }
    Ok(())
}
