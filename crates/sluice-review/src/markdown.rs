//! The review as GitHub/GitLab-flavoured Markdown, to paste into a ticket: tables for the
//! summary, waves and hosts, fenced blocks for commands. Every value from the plan is escaped,
//! so a `|` in a command cannot break a table and a `*` in a description cannot turn bold.

use std::fmt::Write;

use crate::hosts::{HostOrder, count};
use crate::model::*;
use crate::phrases::{self, format_duration_ms as duration};

pub fn render(review: &Review) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_review(review, &mut out);
    out
}

/// Text outside code: Markdown's punctuation is escaped, line breaks become `<br>` (tables).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '~' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("<br>"),
            '\r' => {}
            _ => out.push(c),
        }
    }
    out
}

/// A message from sluice with `code` spans: the spans as code when the backticks pair up, the
/// rest escaped.
pub fn message(text: &str) -> String {
    phrases::code_spans(text)
        .into_iter()
        .map(|(part, is_code)| if is_code { code(part) } else { escape(part) })
        .collect()
}

/// Inline code that survives backticks inside it (a longer fence, padded) and table pipes.
pub fn code(text: &str) -> String {
    let longest = longest_run(text, '`');
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') || longest > 0 {
        " "
    } else {
        ""
    };
    let text = text.replace('|', "\\|").replace('\n', " ");
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// A fenced block whose fence is longer than any run of backticks in `text`.
fn block(o: &mut String, text: &str) -> std::fmt::Result {
    let fence = "`".repeat((longest_run(text, '`') + 1).max(3));
    writeln!(o, "{fence}sh\n{text}\n{fence}\n")
}

fn longest_run(text: &str, c: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for x in text.chars() {
        run = if x == c { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

fn write_review(r: &Review, o: &mut String) -> std::fmt::Result {
    let order = HostOrder::of(r);
    write_summary(r, o)?;
    write_warnings(r, o)?;
    write_backups(r, o, &order)?;
    if r.stages.is_empty() {
        write_plan(r, o, &order)?;
    } else {
        write_stage_graph(r, o)?;
        for stage in &r.stages {
            writeln!(
                o,
                "# Stage {}. {}\n\nTargets {} ({}); {}; {}.\n",
                stage.number,
                escape(&stage.name),
                escape(&stage.targets.join(", ")),
                count(stage.hosts.len()),
                escape(&phrases::stage_after(&stage.after)),
                escape(&phrases::stage_estimate(stage))
            )?;
            write_plan(&r.for_stage(stage), o, &order)?;
            writeln!(o, "{}\n", escape(&stage.on_failure))?;
        }
    }
    write_differences(r, o, &order)?;
    write_hosts(r, o)?;
    writeln!(o, "---\n\n{}", escape(phrases::LEGEND))
}

/// The stage graph as a table: each stage, what it waits for, its targets and waves.
fn write_stage_graph(r: &Review, o: &mut String) -> std::fmt::Result {
    writeln!(
        o,
        "## Stages\n\n{} stage(s), {}.\n",
        r.stages.len(),
        phrases::stage_concurrency(r.stage_concurrency)
    )?;
    writeln!(o, "| # | Stage | Waits for | Targets | Hosts | Waves |")?;
    writeln!(o, "|---|---|---|---|---|---|")?;
    for s in &r.stages {
        writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            s.number,
            escape(&s.name),
            escape(&phrases::stage_after(&s.after)),
            escape(&s.targets.join(", ")),
            count(s.hosts.len()),
            escape(&phrases::stage_waves(&s.waves))
        )?;
    }
    writeln!(o)
}

/// The sections of a plan without stages, or of one stage: waves, steps, checks, failure.
fn write_plan(r: &Review, o: &mut String, order: &HostOrder) -> std::fmt::Result {
    write_waves(r, o)?;
    let (once, every): (Vec<&StepView>, Vec<&StepView>) =
        r.steps.iter().partition(|s| s.run_once_on.is_some());
    if !once.is_empty() {
        writeln!(o, "## Run once, before the first wave\n")?;
        for s in once {
            write_step(o, s, order)?;
        }
    }
    writeln!(o, "## Steps, on every host in this order\n")?;
    for s in every {
        write_step(o, s, order)?;
    }
    write_health(r, o, order)?;
    writeln!(o, "## On failure\n")?;
    writeln!(
        o,
        "Tolerate {}; beyond that: {}.\n",
        escape(&r.failure.budget),
        phrases::action_words(&r.failure)
    )?;
    for w in &r.waves {
        writeln!(o, "- {}", escape(&w.on_failure))?;
    }
    if let Some(s) = &r.failure.run_once {
        writeln!(o, "- {}", escape(s))?;
    }
    writeln!(o, "\n{}\n", escape(&r.failure.failed_host))
}

fn write_summary(r: &Review, o: &mut String) -> std::fmt::Result {
    let s = &r.summary;
    writeln!(o, "# Change review: {}\n", escape(&s.name))?;
    if let Some(d) = &s.description {
        writeln!(o, "{}\n", escape(d))?;
    }
    let mut window = escape(&phrases::window_line(s));
    for line in s.window.iter().flat_map(phrases::opening_lines) {
        window = format!("{window}<br>{}", escape(&line));
    }
    let mut rows = vec![
        ("Ticket", escape(s.ticket.as_deref().unwrap_or("(none)"))),
        ("Inventory", escape(&phrases::planned_for(s))),
        ("Plan hash", code(&s.plan_hash)),
        ("Window", window),
        ("Judged at", escape(&crate::when::utc(s.judged_at))),
        (
            "Targets",
            format!(
                "{} in {} wave(s), {} step(s)",
                count(s.host_count),
                s.wave_count,
                s.step_count
            ),
        ),
        ("Estimate", escape(&phrases::estimate_line(&s.estimate))),
    ];
    if let Some(line) = phrases::promotion_line(s) {
        rows.insert(2, ("Promotion", escape(&line)));
    }
    if !s.secrets.is_empty() {
        let names: Vec<String> = s
            .secrets
            .iter()
            .map(|x| format!("{} = \\*\\*\\* ({})", code(&x.name), escape(&x.from)))
            .collect();
        rows.push(("Secrets", names.join(", ")));
    }
    if !s.notify.is_empty() {
        let lines: Vec<String> = s
            .notify
            .iter()
            .map(|n| escape(&phrases::notify_line(n)))
            .collect();
        rows.push(("Webhooks", lines.join("<br>")));
    }
    if let Some(name) = &s.become_password {
        rows.push((
            "Become",
            format!(
                "sudo password from secret {} (sent only when sudo asks)",
                code(name)
            ),
        ));
    }
    if s.host_lease {
        rows.push(("Leases", escape(phrases::HOST_LEASE)));
    }
    let mut approvals = message(&phrases::approvals_source(&r.approvals));
    for a in &r.approvals.recorded {
        approvals.push_str("<br>");
        approvals.push_str(&escape(&phrases::approval_line(a)));
    }
    rows.push(("Approvals", approvals));
    writeln!(o, "| | |\n|---|---|")?;
    for (k, v) in rows {
        writeln!(o, "| **{k}** | {v} |")?;
    }
    writeln!(o)
}

/// The backup gate, a phase of its own before the waves.
fn write_backups(r: &Review, o: &mut String, order: &HostOrder) -> std::fmt::Result {
    if r.backups.is_empty() {
        return Ok(());
    }
    writeln!(o, "## Backups\n\n{}\n", message(phrases::BACKUP_PHASE))?;
    for b in &r.backups {
        writeln!(
            o,
            "### {} — {}\n",
            code(&b.id),
            escape(&phrases::backup_attributes(b).join("; "))
        )?;
        write_command(o, "run", Some(&b.run), order)?;
        write_command(o, "verify", Some(&b.verify), order)?;
    }
    Ok(())
}

fn write_warnings(r: &Review, o: &mut String) -> std::fmt::Result {
    if r.warnings.is_empty() {
        return writeln!(o, "## Warnings\n\nNone.\n");
    }
    writeln!(o, "## Warnings ({})\n", r.warnings.len())?;
    for w in &r.warnings {
        write!(o, "- ⚠️ {} {}", code(w.warning.code()), message(&w.message))?;
        match &w.help {
            Some(help) => writeln!(o, " — *{}*", message(help))?,
            None => writeln!(o)?,
        }
    }
    writeln!(o)
}

fn write_waves(r: &Review, o: &mut String) -> std::fmt::Result {
    writeln!(o, "## Waves\n")?;
    writeln!(
        o,
        "| # | Wave | Hosts | At once | Tolerates | Approval first | Pause after | Estimate |"
    )?;
    writeln!(o, "|---|---|---|---|---|---|---|---|")?;
    for w in &r.waves {
        writeln!(
            o,
            "| {} | {} | {} ({}) | {} | {} | {} | {} | {} |",
            w.number,
            escape(&w.name),
            escape(&w.hosts.join(", ")),
            w.hosts.len(),
            w.concurrency,
            w.max_failed,
            if w.approval { "yes" } else { "no" },
            match w.pause_ms {
                Some(ms) if w.pause_holds_stages => format!(
                    "{}, holding the stages that wait for this one",
                    duration(ms)
                ),
                Some(ms) => duration(ms),
                None => "—".to_string(),
            },
            duration(w.estimate_ms)
        )?;
    }
    writeln!(o)
}

fn write_step(o: &mut String, s: &StepView, order: &HostOrder) -> std::fmt::Result {
    writeln!(
        o,
        "### {} — {}\n",
        code(&s.id),
        escape(&phrases::step_attributes(s).join("; "))
    )?;
    write_command(o, "run", Some(&s.run), order)?;
    match &s.undo {
        Some(u) => write_command(o, "undo", Some(u), order)?,
        None if s.register.is_none() => writeln!(o, "**undo:** none\n")?,
        None => {}
    }
    write_command(o, "skip_if", s.skip_if.as_ref(), order)
}

fn write_command(
    o: &mut String,
    label: &str,
    view: Option<&CommandView>,
    order: &HostOrder,
) -> std::fmt::Result {
    let Some(view) = view else { return Ok(()) };
    match view.forms.as_slice() {
        [] => Ok(()),
        [only] => {
            writeln!(o, "**{label}:**\n")?;
            block(o, &phrases::form_text(only))
        }
        forms => {
            writeln!(o, "**{label}:** {} forms\n", forms.len())?;
            for f in forms {
                writeln!(
                    o,
                    "*{} ({}):*\n",
                    escape(&order.compact(&f.hosts)),
                    count(f.hosts.len())
                )?;
                block(o, &phrases::form_text(f))?;
            }
            Ok(())
        }
    }
}

fn write_health(r: &Review, o: &mut String, order: &HostOrder) -> std::fmt::Result {
    writeln!(o, "## Health checks\n")?;
    writeln!(o, "{}.\n", escape(&phrases::health_rules(&r.health)))?;
    if r.health.checks.is_empty() {
        return writeln!(o, "None.\n");
    }
    writeln!(o, "| Check | Hosts | What |\n|---|---|---|")?;
    for c in &r.health.checks {
        for f in &c.target.forms {
            let hosts = if c.target.forms.len() == 1 {
                "all".to_string()
            } else {
                escape(&order.compact(&f.hosts))
            };
            writeln!(
                o,
                "| {} | {hosts} | {} |",
                escape(&c.name),
                code(&phrases::check_phrase(c, &phrases::form_text(f)))
            )?;
        }
    }
    writeln!(o)
}

fn write_differences(r: &Review, o: &mut String, order: &HostOrder) -> std::fmt::Result {
    let d = &r.differences;
    writeln!(o, "## Per-host differences\n")?;
    match d.command_groups.as_slice() {
        [all] => writeln!(
            o,
            "All {} run the same commands (apart from their own name and address).\n",
            count(all.len())
        )?,
        groups => {
            writeln!(o, "| Hosts with the same commands | Count |\n|---|---|")?;
            for g in groups {
                writeln!(o, "| {} | {} |", escape(&order.compact(g)), g.len())?;
            }
            let what: Vec<String> = d
                .commands
                .iter()
                .map(|c| format!("{} ({} forms)", escape(&c.what), c.forms))
                .collect();
            writeln!(o, "\nThey differ in: {}.\n", what.join(", "))?;
        }
    }
    let values: Vec<(&str, &ValueDifference)> = d
        .vars
        .iter()
        .map(|v| ("variable", v))
        .chain(d.connection.iter().map(|v| ("connection", v)))
        .collect();
    if values.is_empty() {
        return writeln!(
            o,
            "Variables and connection settings are the same on every host (addresses aside).\n"
        );
    }
    writeln!(o, "| Setting | Value | Hosts |\n|---|---|---|")?;
    for (kind, v) in values {
        for g in &v.values {
            writeln!(
                o,
                "| {kind} {} | {} | {} |",
                code(&v.name),
                code(&g.value),
                escape(&order.compact(&g.hosts))
            )?;
        }
    }
    writeln!(o)
}

fn write_hosts(r: &Review, o: &mut String) -> std::fmt::Result {
    writeln!(o, "## Hosts ({})\n", r.hosts.len())?;
    writeln!(o, "| Host | Wave | Address | Port | User | Via |")?;
    writeln!(o, "|---|---|---|---|---|---|")?;
    for h in &r.hosts {
        writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            escape(&h.name),
            escape(&h.wave),
            escape(&h.address),
            h.port,
            escape(h.user.as_deref().unwrap_or("—")),
            escape(&h.via.join(" → "))
        )?;
    }
    writeln!(o)
}
