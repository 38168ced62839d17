//! The review as one self-contained HTML page: inline CSS and SVG, no script, no request.
//!
//! It must work from a `file://` URL and offline, print to a readable PDF, and be read by a
//! change-board member who has never used sluice, at 1280 px and on a phone. So:
//! - a Content-Security-Policy of `default-src 'none'` (styles inline only, images `data:`
//!   only): the page cannot load anything, and text from a plan could not run as script even
//!   if escaping failed — [`esc`] escapes every value from the plan;
//! - every section says in a sentence what it shows; the failure policy is written out per wave;
//! - commands wrap instead of scrolling, tables become stacked cards on narrow screens, and the
//!   print stylesheet drops the navigation and keeps cards whole.
//!
//! [`graph`] draws the waves, and the step graph and the stage graph as SVG (laid out by
//! [`layout`]); [`sections`] writes the steps, health
//! checks, differences, hosts and approvals.

mod graph;
mod layout;
mod sections;

use std::fmt::Write;

use crate::hosts::count;
use crate::model::*;
use crate::phrases::{self, format_duration_ms as duration};

const STYLE: &str = include_str!("style.css");

/// The page's policy: nothing may be fetched, no script may run.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A message from sluice with `code` spans: escaped, and the spans set as code when the
/// backticks pair up.
fn esc_message(text: &str) -> String {
    phrases::code_spans(text)
        .into_iter()
        .map(|(part, is_code)| {
            if is_code {
                format!("<code>{}</code>", esc(part))
            } else {
                esc(part)
            }
        })
        .collect()
}

pub fn render(review: &Review) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_page(review, &mut out);
    out
}

fn write_page(r: &Review, o: &mut String) -> std::fmt::Result {
    let name = esc(&r.summary.name);
    writeln!(o, "<!doctype html>\n<html lang=\"en\">\n<head>")?;
    writeln!(o, "<meta charset=\"utf-8\">")?;
    writeln!(
        o,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    )?;
    writeln!(
        o,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
    )?;
    writeln!(o, "<title>Change review: {name}</title>")?;
    writeln!(o, "<style>\n{STYLE}</style>\n</head>\n<body>")?;
    write_header(r, o)?;
    writeln!(o, "<main>")?;
    write_nav(r, o)?;
    write_overview(r, o)?;
    write_warnings(r, o)?;
    sections::backups(r, o)?;
    if r.stages.is_empty() {
        write_plan(r, o)?;
    } else {
        sections::stage_graph(r, o)?;
        for stage in &r.stages {
            sections::stage(r, stage, o, write_plan)?;
        }
    }
    sections::differences(r, o)?;
    sections::hosts(r, o)?;
    sections::approvals(r, o)?;
    writeln!(
        o,
        "<footer><p>{}</p><p>Rendered by sluice from plan artifact <code>{}</code>. \
         Apply exactly this plan with <code>sluice apply --plan FILE</code>; a plan whose \
         hash differs is a different plan.</p></footer>",
        esc(phrases::LEGEND),
        esc(&r.summary.plan_hash)
    )?;
    writeln!(o, "</main>\n</body>\n</html>")
}

/// The sections of a plan without stages, or of one stage: waves, steps, health checks.
fn write_plan(r: &Review, o: &mut String) -> std::fmt::Result {
    write_waves(r, o)?;
    sections::steps(r, o)?;
    sections::health(r, o)
}

fn write_header(r: &Review, o: &mut String) -> std::fmt::Result {
    let s = &r.summary;
    writeln!(o, "<header class=\"page\">")?;
    writeln!(o, "<p class=\"kicker\">Change review</p>")?;
    writeln!(o, "<h1>{}</h1>", esc(&s.name))?;
    if let Some(d) = &s.description {
        writeln!(o, "<p class=\"lead\">{}</p>", esc(d))?;
    }
    writeln!(o, "<dl class=\"summary\">")?;
    let row = |o: &mut String, k: &str, v: String| writeln!(o, "<dt>{k}</dt><dd>{v}</dd>");
    row(o, "Ticket", esc(s.ticket.as_deref().unwrap_or("(none)")))?;
    row(o, "Inventory", esc(&phrases::planned_for(s)))?;
    if let Some(line) = phrases::promotion_line(s) {
        row(o, "Promotion", esc(&line))?;
    }
    row(
        o,
        "Plan hash",
        format!("<code class=\"hash\">{}</code>", esc(&s.plan_hash)),
    )?;
    let mut window = esc(&phrases::window_line(s));
    for line in s.window.iter().flat_map(phrases::opening_lines) {
        window = format!("{window}<br>{}", esc(&line));
    }
    let state = s.window.as_ref().map_or("none", |w| match w.state {
        WindowState::Open => "open",
        WindowState::Upcoming => "upcoming",
        WindowState::Ended => "ended",
    });
    row(
        o,
        "Window",
        format!("<span class=\"window {state}\">{window}</span>"),
    )?;
    row(o, "Judged at", esc(&crate::when::utc(s.judged_at)))?;
    row(
        o,
        "Targets",
        format!(
            "{} in {} wave(s), {} step(s) per host",
            count(s.host_count),
            s.wave_count,
            s.step_count
        ),
    )?;
    row(o, "Estimate", esc(&phrases::estimate_line(&s.estimate)))?;
    if !s.secrets.is_empty() {
        let names: Vec<String> = s
            .secrets
            .iter()
            .map(|x| format!("<code>{}</code> ({})", esc(&x.name), esc(&x.from)))
            .collect();
        row(
            o,
            "Secrets",
            format!(
                "{} — read at run time, never shown or stored",
                names.join(", ")
            ),
        )?;
    }
    if !s.notify.is_empty() {
        let lines: Vec<String> = s
            .notify
            .iter()
            .map(|n| esc(&phrases::notify_line(n)))
            .collect();
        row(o, "Webhooks", lines.join("<br>"))?;
    }
    if let Some(name) = &s.become_password {
        row(
            o,
            "Sudo password",
            format!(
                "from secret <code>{}</code>, sent only when sudo asks",
                esc(name)
            ),
        )?;
    }
    if s.host_lease {
        row(o, "Leases", esc(phrases::HOST_LEASE))?;
    }
    let approvals = match r.approvals.recorded.len() {
        0 => esc_message(&phrases::approvals_source(&r.approvals)),
        n => format!("<a href=\"#approvals\">{n} recorded</a>"),
    };
    row(o, "Approvals", approvals)?;
    row(
        o,
        "Warnings",
        match r.warnings.len() {
            0 => "none".to_string(),
            n => format!("<a href=\"#warnings\" class=\"warn-count\">{n}</a>"),
        },
    )?;
    writeln!(o, "</dl>\n</header>")
}

fn write_nav(r: &Review, o: &mut String) -> std::fmt::Result {
    let mut links = vec![("overview", "How it runs")];
    if !r.warnings.is_empty() {
        links.push(("warnings", "Warnings"));
    }
    if !r.backups.is_empty() {
        links.push(("backups", "Backups"));
    }
    if r.stages.is_empty() {
        links.extend([
            ("waves", "Waves"),
            ("steps", "Steps"),
            ("health", "Health checks"),
        ]);
    } else {
        links.push(("stages", "Stages"));
    }
    links.extend([
        ("differences", "Per-host differences"),
        ("hosts", "Hosts"),
        ("approvals", "Approvals"),
    ]);
    write!(o, "<nav aria-label=\"Sections\"><ul>")?;
    for (id, label) in links {
        write!(o, "<li><a href=\"#{id}\">{label}</a></li>")?;
    }
    writeln!(o, "</ul></nav>")
}

/// How the change runs, in a paragraph, and what happens on failure.
fn write_overview(r: &Review, o: &mut String) -> std::fmt::Result {
    let s = &r.summary;
    let host_steps = r.steps.iter().filter(|x| x.run_once_on.is_none()).count();
    writeln!(
        o,
        "<section id=\"overview\">\n<h2>How this change runs</h2>"
    )?;
    let once = r.steps.len() - host_steps;
    let once_text = if once > 0 {
        format!(
            " First, {once} step(s) run once, on {}.",
            esc(r
                .steps
                .iter()
                .find_map(|x| x.run_once_on.as_deref())
                .unwrap_or(""))
        )
    } else {
        String::new()
    };
    writeln!(
        o,
        "<p>sluice changes {} in {} wave(s), one wave after the other.{once_text} On each host \
         it runs the {host_steps} step(s) below in order; after the last step it checks the \
         host's health. A wave that has more failed hosts than it tolerates is not followed \
         by the next one: the failure policy below applies.</p>",
        count(s.host_count),
        s.wave_count
    )?;
    graph::waves(r, o)?;
    writeln!(
        o,
        "<div class=\"policy\"><h3>If something fails</h3><p>{}</p><ul>",
        esc(&r.failure.failed_host)
    )?;
    for w in &r.waves {
        writeln!(o, "<li>{}</li>", esc(&w.on_failure))?;
    }
    if let Some(x) = &r.failure.run_once {
        writeln!(o, "<li>{}</li>", esc(x))?;
    }
    writeln!(
        o,
        "</ul><p class=\"note\">The plan's rule: tolerate {}; beyond that, {}.</p></div>",
        esc(&r.failure.budget),
        phrases::action_words(&r.failure)
    )?;
    writeln!(o, "</section>")
}

fn write_warnings(r: &Review, o: &mut String) -> std::fmt::Result {
    if r.warnings.is_empty() {
        return Ok(());
    }
    writeln!(
        o,
        "<section id=\"warnings\" class=\"warnings\">\n<h2>Warnings ({})</h2>",
        r.warnings.len()
    )?;
    writeln!(
        o,
        "<p>The plan is valid, but a reviewer should know these.</p><ul>"
    )?;
    for w in &r.warnings {
        write!(
            o,
            "<li><code class=\"code\">{}</code> {}",
            esc(w.warning.code()),
            esc_message(&w.message)
        )?;
        if let Some(help) = &w.help {
            write!(o, "<br><span class=\"help\">{}</span>", esc_message(help))?;
        }
        writeln!(o, "</li>")?;
    }
    writeln!(o, "</ul>\n</section>")
}

fn write_waves(r: &Review, o: &mut String) -> std::fmt::Result {
    writeln!(o, "<section id=\"waves\">\n<h2>Waves</h2>")?;
    writeln!(
        o,
        "<p>Hosts are changed in these groups, in this order. \"At once\" is how many hosts of \
         the wave are changed at the same time; \"tolerates\" is how many of them may fail \
         before the wave counts as failed.</p>"
    )?;
    for w in &r.waves {
        writeln!(o, "<article class=\"card wave\">")?;
        writeln!(
            o,
            "<h3><span class=\"num\">{}</span> {}</h3>",
            w.number,
            esc(&w.name)
        )?;
        writeln!(o, "<dl class=\"facts\">")?;
        writeln!(
            o,
            "<dt>Hosts</dt><dd>{}</dd><dt>At once</dt><dd>{}</dd><dt>Tolerates</dt><dd>{} \
             failed</dd><dt>Before</dt><dd>{}</dd><dt>After</dt><dd>{}</dd><dt>Takes</dt>\
             <dd>up to about {}</dd>",
            w.hosts.len(),
            w.concurrency,
            w.max_failed,
            if w.approval {
                "<strong>waits for an approval</strong>"
            } else {
                "starts at once"
            },
            match (w.pause_ms, w.number == r.waves.len()) {
                (Some(ms), true) if w.pause_holds_stages => format!(
                    "pause {}, then the stages that wait for this one",
                    duration(ms)
                ),
                (_, true) if w.stage.is_some() => "the stage ends".to_string(),
                (_, true) => "the run ends".to_string(),
                (Some(ms), false) => format!("pause {}", duration(ms)),
                (None, false) => "next wave starts at once".to_string(),
            },
            duration(w.estimate_ms)
        )?;
        writeln!(o, "</dl>")?;
        writeln!(
            o,
            "<p class=\"hostlist\">{}</p>",
            w.hosts
                .iter()
                .map(|h| format!("<span class=\"host\">{}</span>", esc(h)))
                .collect::<Vec<_>>()
                .join(" ")
        )?;
        writeln!(o, "<p class=\"onfail\">{}</p>", esc(&w.on_failure))?;
        writeln!(o, "</article>")?;
    }
    writeln!(o, "</section>")
}
