//! The HTML sections after the waves: steps (with the step graph), health checks, per-host
//! differences, hosts and approvals.

use std::fmt::Write;

use super::{esc, graph};
use crate::hosts::{HostOrder, count};
use crate::model::*;
use crate::phrases;

/// A form's text with its holes as marked spans.
fn form_html(form: &Form) -> String {
    form.pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => esc(t),
            Piece::HostName => {
                "<span class=\"hole\" title=\"each host's own name\">host.name</span>".into()
            }
            Piece::HostAddress => {
                "<span class=\"hole\" title=\"each host's own address\">host.address</span>".into()
            }
        })
        .collect()
}

/// A command: one block, or one block per form with the hosts it is for.
fn command(o: &mut String, view: &CommandView, order: &HostOrder) -> std::fmt::Result {
    match view.forms.as_slice() {
        [only] => writeln!(o, "<pre class=\"cmd\">{}</pre>", form_html(only)),
        forms => {
            writeln!(
                o,
                "<p class=\"forms\">Not the same on every host: {} forms.</p>",
                forms.len()
            )?;
            for f in forms {
                writeln!(
                    o,
                    "<p class=\"for\">On {} ({}):</p><pre class=\"cmd\">{}</pre>",
                    esc(&order.compact(&f.hosts)),
                    count(f.hosts.len()),
                    form_html(f)
                )?;
            }
            Ok(())
        }
    }
}

/// The backup gate, a phase of its own before the waves.
pub fn backups(r: &Review, o: &mut String) -> std::fmt::Result {
    if r.backups.is_empty() {
        return Ok(());
    }
    let order = HostOrder::of(r);
    writeln!(o, "<section id=\"backups\">\n<h2>Backups</h2>")?;
    writeln!(o, "<p>{}</p>", esc(phrases::BACKUP_PHASE))?;
    for b in &r.backups {
        writeln!(
            o,
            "<article class=\"card step\" id=\"backup-{}\">",
            esc(&b.id)
        )?;
        writeln!(o, "<h3><code>{}</code></h3>", esc(&b.id))?;
        writeln!(
            o,
            "<p class=\"attrs\">{}</p>",
            phrases::backup_attributes(b)
                .iter()
                .map(|a| format!("<span class=\"tag\">{}</span>", esc(a)))
                .collect::<Vec<_>>()
                .join(" ")
        )?;
        writeln!(o, "<h4>Backs up</h4>")?;
        command(o, &b.run, &order)?;
        writeln!(o, "<h4>Verifies</h4>")?;
        command(o, &b.verify, &order)?;
        writeln!(o, "</article>")?;
    }
    writeln!(o, "</section>")
}

pub fn steps(r: &Review, o: &mut String) -> std::fmt::Result {
    let order = HostOrder::of(r);
    writeln!(o, "<section id=\"steps\">\n<h2>Steps</h2>")?;
    writeln!(
        o,
        "<p>Each host runs these steps in order; an arrow means \"runs after\". A step that \
         fails ends that host's run. On rollback, the undo commands of the steps that ran are \
         run in reverse order.</p>"
    )?;
    graph::steps(r, o)?;
    for s in &r.steps {
        writeln!(
            o,
            "<article class=\"card step\" id=\"step-{}\">",
            esc(&s.id)
        )?;
        writeln!(o, "<h3><code>{}</code></h3>", esc(&s.id))?;
        writeln!(
            o,
            "<p class=\"attrs\">{}</p>",
            phrases::step_attributes(s)
                .iter()
                .map(|a| format!("<span class=\"tag\">{}</span>", esc(a)))
                .collect::<Vec<_>>()
                .join(" ")
        )?;
        writeln!(o, "<h4>Runs</h4>")?;
        command(o, &s.run, &order)?;
        if let Some(skip) = &s.skip_if {
            writeln!(o, "<h4>Skipped when this succeeds first</h4>")?;
            command(o, skip, &order)?;
        }
        match &s.undo {
            Some(undo) => {
                writeln!(o, "<h4>Undo, on rollback</h4>")?;
                command(o, undo, &order)?;
            }
            None if s.register.is_some() => writeln!(
                o,
                "<p class=\"note\">No undo: the step only reads (it registers <code>{}</code> \
                 for later steps).</p>",
                esc(s.register.as_deref().unwrap_or(""))
            )?,
            None => writeln!(
                o,
                "<p class=\"no-undo\">No undo: a rollback leaves this step's change in \
                 place.</p>"
            )?,
        }
        writeln!(o, "</article>")?;
    }
    writeln!(o, "</section>")
}

pub fn health(r: &Review, o: &mut String) -> std::fmt::Result {
    let order = HostOrder::of(r);
    let h = &r.health;
    writeln!(o, "<section id=\"health\">\n<h2>Health checks</h2>")?;
    if h.checks.is_empty() {
        return writeln!(
            o,
            "<p class=\"no-undo\">None: a host counts as healthy as soon as its steps \
             succeed.</p>\n</section>"
        );
    }
    writeln!(
        o,
        "<p>A host is healthy when every check passes in the same round: {}.</p>",
        esc(&phrases::health_rules(h))
    )?;
    for c in &h.checks {
        writeln!(o, "<article class=\"card check\">")?;
        let kind = match c.kind {
            CheckKind::Run => "a command on the host; exit 0 is healthy".to_string(),
            CheckKind::Http => format!(
                "an HTTP GET from the controller; {}",
                phrases::http_expectation(c)
            ),
            CheckKind::Tcp => "a TCP connection from the controller".to_string(),
        };
        writeln!(
            o,
            "<h3><code>{}</code></h3><p class=\"attrs\">{}</p>",
            esc(&c.name),
            esc(&kind)
        )?;
        command(o, &c.target, &order)?;
        writeln!(o, "</article>")?;
    }
    writeln!(o, "</section>")
}

pub fn differences(r: &Review, o: &mut String) -> std::fmt::Result {
    let order = HostOrder::of(r);
    let d = &r.differences;
    writeln!(
        o,
        "<section id=\"differences\">\n<h2>Per-host differences</h2>"
    )?;
    match d.command_groups.as_slice() {
        [all] => writeln!(
            o,
            "<p>All {} run the same commands, apart from their own name and address.</p>",
            count(all.len())
        )?,
        groups => {
            writeln!(
                o,
                "<p>The hosts fall into {} groups; the hosts of a group run the same commands:</p><ul>",
                groups.len()
            )?;
            for g in groups {
                writeln!(
                    o,
                    "<li>{} ({})</li>",
                    esc(&order.compact(g)),
                    count(g.len())
                )?;
            }
            let what: Vec<String> = d
                .commands
                .iter()
                .map(|c| format!("{} ({} forms)", esc(&c.what), c.forms))
                .collect();
            writeln!(o, "</ul><p>They differ in: {}.</p>", what.join(", "))?;
        }
    }
    let rows: Vec<(&str, &ValueDifference)> = d
        .vars
        .iter()
        .map(|v| ("variable", v))
        .chain(d.connection.iter().map(|v| ("connection", v)))
        .collect();
    if rows.is_empty() {
        writeln!(
            o,
            "<p>Variables and connection settings are the same on every host (addresses \
             aside).</p>"
        )?;
    } else {
        writeln!(
            o,
            "<div class=\"table\"><table class=\"stack\"><thead><tr><th>Setting</th>\
             <th>Value</th><th>Hosts</th></tr></thead><tbody>"
        )?;
        for (kind, v) in rows {
            for g in &v.values {
                writeln!(
                    o,
                    "<tr><td data-label=\"Setting\">{kind} <code>{}</code></td>\
                     <td data-label=\"Value\"><code>{}</code></td>\
                     <td data-label=\"Hosts\">{}</td></tr>",
                    esc(&v.name),
                    esc(&g.value),
                    esc(&order.compact(&g.hosts))
                )?;
            }
        }
        writeln!(o, "</tbody></table></div>")?;
    }
    writeln!(o, "</section>")
}

pub fn hosts(r: &Review, o: &mut String) -> std::fmt::Result {
    writeln!(
        o,
        "<section id=\"hosts\">\n<h2>Hosts ({})</h2>",
        r.hosts.len()
    )?;
    writeln!(
        o,
        "<p>Every targeted host, in the order the waves take them.</p>\
         <div class=\"table\"><table class=\"stack\"><thead><tr><th>Host</th><th>Wave</th>\
         <th>Address</th><th>Port</th><th>User</th><th>Via</th></tr></thead><tbody>"
    )?;
    for h in &r.hosts {
        writeln!(
            o,
            "<tr><td data-label=\"Host\"><strong>{}</strong></td><td data-label=\"Wave\">{}</td>\
             <td data-label=\"Address\">{}</td><td data-label=\"Port\">{}</td>\
             <td data-label=\"User\">{}</td><td data-label=\"Via\">{}</td></tr>",
            esc(&h.name),
            esc(&h.wave),
            esc(&h.address),
            h.port,
            esc(h.user.as_deref().unwrap_or("—")),
            esc(&if h.via.is_empty() {
                "—".to_string()
            } else {
                h.via.join(" → ")
            })
        )?;
    }
    writeln!(o, "</tbody></table></div>\n</section>")
}

pub fn approvals(r: &Review, o: &mut String) -> std::fmt::Result {
    writeln!(o, "<section id=\"approvals\">\n<h2>Approvals</h2>")?;
    writeln!(
        o,
        "<p>Approvals recorded for exactly this plan hash: {}.</p>",
        super::esc_message(&phrases::approvals_source(&r.approvals))
    )?;
    if !r.approvals.recorded.is_empty() {
        writeln!(o, "<ul>")?;
        for a in &r.approvals.recorded {
            writeln!(o, "<li>{}</li>", esc(&phrases::approval_line(a)))?;
        }
        writeln!(o, "</ul>")?;
    }
    writeln!(o, "</section>")
}

/// The stage graph, drawn and as a table: each stage, what it waits for, its targets and its
/// waves.
pub fn stage_graph(r: &Review, o: &mut String) -> std::fmt::Result {
    writeln!(o, "<section id=\"stages\">\n<h2>Stages</h2>")?;
    writeln!(
        o,
        "<p>{} stage(s), {}. A stage starts when every host of each stage it waits for has \
         finished.</p>",
        r.stages.len(),
        esc(&phrases::stage_concurrency(r.stage_concurrency))
    )?;
    graph::stages(r, o)?;
    // The table says in words what the drawing shows (a screen reader reads an SVG as its title
    // only) and links each stage to its section.
    writeln!(
        o,
        "<table><thead><tr><th>#</th><th>Stage</th><th>Waits for</th><th>Targets</th>\
         <th>Hosts</th><th>Waves</th></tr></thead><tbody>"
    )?;
    for s in &r.stages {
        writeln!(
            o,
            "<tr><td>{}</td><td><a href=\"#stage-{}\">{}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            s.number,
            s.number,
            esc(&s.name),
            esc(&phrases::stage_after(&s.after)),
            esc(&s.targets.join(", ")),
            esc(&crate::hosts::count(s.hosts.len())),
            esc(&phrases::stage_waves(&s.waves))
        )?;
    }
    writeln!(o, "</tbody></table>\n</section>")
}

/// One stage: a heading, then the sections `plan` writes for the stage's own review, their
/// anchors prefixed with the stage's number so that every id on the page stays unique.
pub fn stage(
    r: &Review,
    stage: &StageView,
    o: &mut String,
    plan: fn(&Review, &mut String) -> std::fmt::Result,
) -> std::fmt::Result {
    writeln!(
        o,
        "<section id=\"stage-{}\" class=\"stage\">\n<h2>Stage {}. {}</h2>",
        stage.number,
        stage.number,
        esc(&stage.name)
    )?;
    writeln!(
        o,
        "<p>Targets {} ({}); {}; {}.</p>",
        esc(&stage.targets.join(", ")),
        esc(&crate::hosts::count(stage.hosts.len())),
        esc(&phrases::stage_after(&stage.after)),
        esc(&phrases::stage_estimate(stage))
    )?;
    let mut inner = String::new();
    plan(&r.for_stage(stage), &mut inner)?;
    let n = stage.number;
    let inner = inner
        .replace("<section id=\"", &format!("<section id=\"stage-{n}-"))
        // The stage's step graph: its title and arrowhead ids (and what refers to them).
        .replace("steps-title", &format!("stage-{n}-steps-title"))
        .replace("steps-arrow", &format!("stage-{n}-steps-arrow"));
    o.push_str(&inner);
    writeln!(o, "<p class=\"onfail\">{}</p>", esc(&stage.on_failure))?;
    writeln!(o, "</section>")
}
