//! Who owns the logs: the `tracing` subscriber of the binary.
//!
//! Libraries log with `tracing`; this module decides what is shown and how. The level is warn by
//! default (so security-relevant warnings, such as a host key learned by accept-new, always reach
//! the operator), error with `-q`, debug with `-vv`, or what `--log-level` says; `RUST_LOG`
//! (`sluice_ssh=debug`, ...) overrides all of them. Human lines go to stderr like every human
//! line, above the progress bars when they are drawn (`crate::progress::print_line`);
//! `--log-format json` writes one JSON object per log event to stderr instead (stdout stays the
//! `--json` event stream's). Every warning is also handed to the recorded run in progress, which
//! records it in its audit trail (`sluice_lifecycle::warnings`).

use clap::ValueEnum;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::console::{Console, Paint};

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// `--log-level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// What the command line asked for.
pub struct LogSettings {
    pub level: Option<LogLevel>,
    pub format: LogFormat,
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
}

impl LogSettings {
    /// The filter: `RUST_LOG` when set, else the level the flags give.
    fn filter(&self) -> EnvFilter {
        if let Ok(env) = std::env::var("RUST_LOG")
            && let Ok(filter) = EnvFilter::try_new(env)
        {
            return filter;
        }
        let level = self.level.unwrap_or(match (self.quiet, self.verbose) {
            (true, _) => LogLevel::Error,
            (_, 0 | 1) => LogLevel::Warn,
            (_, 2) => LogLevel::Debug,
            _ => LogLevel::Trace,
        });
        EnvFilter::new(level.directive())
    }
}

/// Installs the subscriber for the whole process.
pub fn init(settings: &LogSettings, console: &Console) {
    let filter = settings.filter();
    let tap = RunWarnings;
    let result = match settings.format {
        LogFormat::Human => tracing_subscriber::registry()
            .with(filter)
            .with(HumanLines {
                color: console.color(),
            })
            .with(tap)
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .with(tap)
            .try_init(),
    };
    if let Err(e) = result {
        console.warn(format!("logging is not set up: {e}"));
    }
}

/// The message and the other fields of an event.
#[derive(Default)]
struct Fields {
    message: String,
    host: Option<String>,
    /// `name=value` of every other field, in order.
    rest: Vec<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "host" => self.host = Some(value.to_string()),
            name => self.rest.push(format!("{name}={value}")),
        }
    }
}

impl Fields {
    fn of(event: &Event<'_>) -> Fields {
        let mut fields = Fields::default();
        event.record(&mut fields);
        fields
    }

    /// `message (name=value ...)`, with or without the host.
    fn text(&self, with_host: bool) -> String {
        let host = self
            .host
            .iter()
            .filter(|_| with_host)
            .map(|h| format!("host={h}"));
        let context: Vec<String> = host.chain(self.rest.iter().cloned()).collect();
        if context.is_empty() {
            self.message.clone()
        } else {
            format!("{} ({})", self.message, context.join(" "))
        }
    }
}

/// Human log lines on stderr, in the console's style (`warning: ...`).
struct HumanLines {
    color: bool,
}

impl<S: Subscriber> Layer<S> for HumanLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        let (label, paint) = match level {
            Level::ERROR => ("error", Paint::Error),
            Level::WARN => ("warning", Paint::Warning),
            Level::INFO => ("info", Paint::Status),
            Level::DEBUG => ("debug", Paint::Status),
            Level::TRACE => ("trace", Paint::Status),
        };
        let label = crate::console::paint_text(self.color, paint, label);
        let target = event.metadata().target();
        let origin = if level <= Level::INFO {
            String::new()
        } else {
            format!(" [{target}]")
        };
        let text = Fields::of(event).text(true);
        crate::progress::print_line(&format!("{label}{origin}: {text}"));
    }
}

/// Hands every warning to the recorded run in progress, if any.
struct RunWarnings;

impl<S: Subscriber> Layer<S> for RunWarnings {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::WARN {
            return;
        }
        let fields = Fields::of(event);
        sluice_lifecycle::warnings::report(fields.host.clone(), fields.text(false));
    }
}
