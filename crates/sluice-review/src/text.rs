//! The review as plain text: what `sluice plan` prints by default. Complete: every host and
//! every distinct command is listed; runs of consecutive hosts are written `first … last`.

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
                "\n══ Stage {}. {} ══ targets {} ({}); {}",
                stage.number,
                stage.name,
                stage.targets.join(", "),
                count(stage.hosts.len()),
                phrases::stage_estimate(stage)
            )?;
            write_plan(&r.for_stage(stage), o, &order)?;
            writeln!(o, "  {}", stage.on_failure)?;
        }
    }
    write_differences(r, o, &order)?;
    writeln!(o, "\nHosts")?;
    let width = r.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
    let wave_width = r.hosts.iter().map(|h| h.wave.len()).max().unwrap_or(0);
    for h in &r.hosts {
        let user = h.user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
        let via = if h.via.is_empty() {
            String::new()
        } else {
            format!(" via {}", h.via.join(" → "))
        };
        writeln!(
            o,
            "  {:width$}  {:wave_width$}  {user}{}:{}{via}",
            h.name, h.wave, h.address, h.port
        )?;
    }
    writeln!(o, "\n{}", phrases::LEGEND)
}

/// The stage graph: each stage with what it waits for, its targets and its waves.
fn write_stage_graph(r: &Review, o: &mut String) -> std::fmt::Result {
    writeln!(
        o,
        "\nStages ({}; {})",
        r.stages.len(),
        phrases::stage_concurrency(r.stage_concurrency)
    )?;
    for s in &r.stages {
        writeln!(
            o,
            "  {}. {} — {}; targets {} ({}); waves {}",
            s.number,
            s.name,
            phrases::stage_after(&s.after),
            s.targets.join(", "),
            count(s.hosts.len()),
            phrases::stage_waves(&s.waves)
        )?;
    }
    Ok(())
}

/// The sections of a plan without stages, or of one stage: waves, steps, checks, failure.
fn write_plan(r: &Review, o: &mut String, order: &HostOrder) -> std::fmt::Result {
    writeln!(o, "\nWaves")?;
    for w in &r.waves {
        let mut line = phrases::wave_facts(w);
        line.push_str(&format!("; up to about {}", duration(w.estimate_ms)));
        for gate in phrases::wave_gates(w) {
            line.push_str("; ");
            line.push_str(&gate);
        }
        writeln!(o, "  {}. {} — {line}", w.number, w.name)?;
        writeln!(o, "     hosts: {}", w.hosts.join(", "))?;
        writeln!(o, "     on failure: {}", w.on_failure)?;
    }
    let (once, every): (Vec<&StepView>, Vec<&StepView>) =
        r.steps.iter().partition(|s| s.run_once_on.is_some());
    if !once.is_empty() {
        writeln!(o, "\nRun once (before the first wave's hosts start)")?;
        for s in once {
            write_step(o, s, order)?;
        }
    }
    writeln!(o, "\nSteps (on every host, in this order)")?;
    for s in every {
        write_step(o, s, order)?;
    }
    write_health(r, o, order)?;
    writeln!(o, "\nOn failure")?;
    writeln!(
        o,
        "  tolerate {}; beyond that: {}",
        r.failure.budget,
        phrases::action_words(&r.failure)
    )?;
    writeln!(o, "  {}", r.failure.failed_host)?;
    if let Some(s) = &r.failure.run_once {
        writeln!(o, "  {s}")?;
    }
    Ok(())
}

fn write_summary(r: &Review, o: &mut String) -> std::fmt::Result {
    let s = &r.summary;
    writeln!(o, "Change     {}", s.name)?;
    if let Some(d) = &s.description {
        writeln!(o, "           {d}")?;
    }
    writeln!(o, "Ticket     {}", s.ticket.as_deref().unwrap_or("(none)"))?;
    writeln!(o, "Inventory  {}", phrases::planned_for(s))?;
    if let Some(line) = phrases::promotion_line(s) {
        writeln!(o, "Promotion  {line}")?;
    }
    writeln!(o, "Plan hash  {}", s.plan_hash)?;
    writeln!(o, "Window     {}", phrases::window_line(s))?;
    for line in s.window.iter().flat_map(phrases::opening_lines) {
        writeln!(o, "           {line}")?;
    }
    writeln!(
        o,
        "           (judged at {})",
        crate::when::utc(s.judged_at)
    )?;
    writeln!(
        o,
        "Targets    {} in {} wave(s), {} step(s)",
        count(s.host_count),
        s.wave_count,
        s.step_count
    )?;
    writeln!(o, "Estimate   {}", phrases::estimate_line(&s.estimate))?;
    if !s.secrets.is_empty() {
        let names: Vec<String> = s
            .secrets
            .iter()
            .map(|x| format!("{} = *** ({})", x.name, x.from))
            .collect();
        writeln!(o, "Secrets    {}", names.join(", "))?;
    }
    for (i, n) in s.notify.iter().enumerate() {
        let label = if i == 0 { "Webhooks" } else { "" };
        writeln!(o, "{label:<10} {}", phrases::notify_line(n))?;
    }
    if let Some(name) = &s.become_password {
        writeln!(
            o,
            "Become     sudo password from secret {name} (sent only when sudo asks)"
        )?;
    }
    if s.host_lease {
        writeln!(o, "Leases     {}", phrases::HOST_LEASE)?;
    }
    writeln!(o, "Approvals  {}", phrases::approvals_source(&r.approvals))?;
    for a in &r.approvals.recorded {
        writeln!(o, "           {}", phrases::approval_line(a))?;
    }
    Ok(())
}

/// The backup gate, a phase of its own before the waves.
fn write_backups(r: &Review, o: &mut String, order: &HostOrder) -> std::fmt::Result {
    if r.backups.is_empty() {
        return Ok(());
    }
    writeln!(o, "\nBackups (before each host's first change step)")?;
    writeln!(o, "  {}", phrases::BACKUP_PHASE)?;
    for b in &r.backups {
        writeln!(
            o,
            "  - {} [{}]",
            b.id,
            phrases::backup_attributes(b).join("; ")
        )?;
        write_command(o, "run", Some(&b.run), order)?;
        write_command(o, "verify", Some(&b.verify), order)?;
    }
    Ok(())
}

fn write_warnings(r: &Review, o: &mut String) -> std::fmt::Result {
    if r.warnings.is_empty() {
        return writeln!(o, "\nWarnings   none");
    }
    writeln!(o, "\nWarnings ({})", r.warnings.len())?;
    for w in &r.warnings {
        writeln!(o, "  ! [{}] {}", w.warning.code(), w.message)?;
        if let Some(help) = &w.help {
            writeln!(o, "      help: {help}")?;
        }
    }
    Ok(())
}

fn write_step(o: &mut String, s: &StepView, order: &HostOrder) -> std::fmt::Result {
    writeln!(
        o,
        "  - {} [{}]",
        s.id,
        phrases::step_attributes(s).join("; ")
    )?;
    write_command(o, "run", Some(&s.run), order)?;
    match &s.undo {
        Some(u) => write_command(o, "undo", Some(u), order)?,
        None if s.register.is_none() => writeln!(o, "       undo: (none)")?,
        None => {}
    }
    write_command(o, "skip_if", s.skip_if.as_ref(), order)
}

/// One line when every host reads the command the same way, else one line per form.
fn write_command(
    o: &mut String,
    label: &str,
    view: Option<&CommandView>,
    order: &HostOrder,
) -> std::fmt::Result {
    let Some(view) = view else { return Ok(()) };
    match view.forms.as_slice() {
        [] => Ok(()),
        [only] => writeln!(o, "    {label:>7}: {}", phrases::form_text(only)),
        forms => {
            writeln!(o, "    {label:>7}: {} forms", forms.len())?;
            for f in forms {
                writeln!(
                    o,
                    "             {} ({}): {}",
                    order.compact(&f.hosts),
                    count(f.hosts.len()),
                    phrases::form_text(f)
                )?;
            }
            Ok(())
        }
    }
}

fn write_health(r: &Review, o: &mut String, order: &HostOrder) -> std::fmt::Result {
    writeln!(o, "\nHealth checks ({})", phrases::health_rules(&r.health))?;
    if r.health.checks.is_empty() {
        writeln!(o, "  (none)")?;
    }
    for c in &r.health.checks {
        match c.target.forms.as_slice() {
            [only] => writeln!(
                o,
                "  {}: {}",
                c.name,
                phrases::check_phrase(c, &phrases::form_text(only))
            )?,
            forms => {
                writeln!(o, "  {}: {} forms", c.name, forms.len())?;
                for f in forms {
                    writeln!(
                        o,
                        "    {} ({}): {}",
                        order.compact(&f.hosts),
                        count(f.hosts.len()),
                        phrases::check_phrase(c, &phrases::form_text(f))
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn write_differences(r: &Review, o: &mut String, order: &HostOrder) -> std::fmt::Result {
    let d = &r.differences;
    writeln!(o, "\nPer-host differences")?;
    match d.command_groups.as_slice() {
        [all] => writeln!(
            o,
            "  commands: all {} run the same commands (apart from their own name and address)",
            count(all.len())
        )?,
        groups => {
            writeln!(o, "  commands: {} groups of hosts", groups.len())?;
            for g in groups {
                writeln!(
                    o,
                    "    {} ({}): same commands",
                    order.compact(g),
                    count(g.len())
                )?;
            }
            let what: Vec<String> = d
                .commands
                .iter()
                .map(|c| format!("{} ({} forms)", c.what, c.forms))
                .collect();
            writeln!(o, "    they differ in: {}", what.join(", "))?;
        }
    }
    for (label, diffs) in [("variable", &d.vars), ("connection", &d.connection)] {
        for v in diffs {
            writeln!(o, "  {label} {}:", v.name)?;
            for g in &v.values {
                writeln!(o, "    {} on {}", g.value, order.compact(&g.hosts))?;
            }
        }
    }
    if d.vars.is_empty() && d.connection.is_empty() {
        writeln!(
            o,
            "  variables and connection settings: the same on every host (addresses aside)"
        )?;
    }
    Ok(())
}
