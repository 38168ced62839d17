//! The value a step registers (`register:`) from its output, and how much output it keeps.

use sluice_plan::StepSpec;
use sluice_ssh::{ExecOutcome, ExecRequest};

use crate::run::RunContext;

/// How much of each output stream a step's command keeps: a registering step keeps its
/// `register_limit`, so that a value up to the limit is exact; any other step the default,
/// which bounds the memory a run spends on output.
pub(crate) fn output_cap(spec: &StepSpec) -> usize {
    match spec.register {
        Some(_) => usize::try_from(spec.register_limit()).unwrap_or(usize::MAX),
        None => ExecRequest::DEFAULT_OUTPUT_CAP,
    }
}

/// The value a step registers from its output.
pub(crate) struct Registered {
    pub value: String,
    /// The output holds a secret (or a value tainted by one): the value is masked from now on,
    /// in every output, event and record, like a declared secret.
    pub secret: bool,
}

/// The value a step registers: its whole stdout, trimmed, or why there is none. A stdout over
/// the limit was not kept whole, and a value with its middle cut out must not reach a later
/// step: the step fails instead, naming the limit.
pub(crate) fn registered_value(
    ctx: &RunContext,
    out: &ExecOutcome,
    name: &str,
    limit: u64,
) -> Result<Registered, String> {
    if out.stdout.total_bytes > limit || out.stdout.truncated() {
        return Err(format!(
            "{}, but its stdout ({} bytes) is over the register limit of {} ({limit} bytes) for `{name}`: nothing was registered; raise the step's `register_limit` (at most {})",
            out.status,
            out.stdout.total_bytes,
            sluice_plan::register::show_size(limit),
            sluice_plan::register::show_size(sluice_plan::register::MAX_REGISTER_LIMIT),
        ));
    }
    let value = String::from_utf8_lossy(&out.stdout.kept_bytes())
        .trim()
        .to_string();
    let secret = ctx.secrets.found_in(&value);
    if secret {
        ctx.taint(&value);
    }
    Ok(Registered { value, secret })
}
