//! Log lines on standard error, as text for people or as JSON for log collectors.
//!
//! Everything goes through `tracing`, start-up lines included: with `json` every line on
//! standard error is one JSON object. Lines the operator must see whatever `ROLLCALL_LOG`
//! says (where the listeners are, the demo secrets, shutdown) use [`announce!`]; in text they
//! keep their `rollcall: ` form, which scripts and tests read.

use std::fmt;
use std::io::{self, IsTerminal};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The target of lines always shown (see [`announce!`]).
pub const ANNOUNCE_TARGET: &str = "rollcall::announce";

/// The variable holding the log filter (`info`, `warn,rollcall=debug`, ...).
pub const FILTER_VARIABLE: &str = "ROLLCALL_LOG";

/// The variable choosing the format before any configuration file is read; the same
/// override as `[log] format`.
pub const FORMAT_VARIABLE: &str = "ROLLCALL_LOG_FORMAT";

/// An info line shown whatever the filter: `announce!("admin listening on http://{address}")`.
#[macro_export]
macro_rules! announce {
    ($($arg:tt)+) => {
        ::tracing::info!(target: $crate::logging::ANNOUNCE_TARGET, $($arg)+)
    };
}

/// An error line shown whatever the filter (a command that fails says why).
#[macro_export]
macro_rules! announce_error {
    ($($arg:tt)+) => {
        ::tracing::error!(target: $crate::logging::ANNOUNCE_TARGET, $($arg)+)
    };
}

/// The format `ROLLCALL_LOG_FORMAT` asks for; text when unset or unknown.
pub fn format_from_env() -> LogFormat {
    std::env::var(FORMAT_VARIABLE)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_default()
}

/// Installs the process's subscriber. Later calls do nothing (the first format stays).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env(FILTER_VARIABLE)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(
            format!("{ANNOUNCE_TARGET}=info")
                .parse()
                .unwrap_or_else(|_| tracing::Level::INFO.into()),
        );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(io::stderr().is_terminal())
            .event_format(TextFormat {
                inner: format::Format::default(),
            })
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // Already installed (a test, or a second call): keep the first.
    let _ = result;
}

/// The default text format, except announcements: `rollcall: <message>` alone.
struct TextFormat {
    inner: format::Format,
}

impl<S, N> FormatEvent<S, N> for TextFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.metadata().target() != ANNOUNCE_TARGET {
            return self.inner.format_event(context, writer, event);
        }
        let mut message = MessageOnly(String::new());
        event.record(&mut message);
        writeln!(writer, "rollcall: {}", message.0)
    }
}

/// Collects an event's `message` field, ignoring the structured fields (they are in the
/// JSON form).
struct MessageOnly(String);

impl Visit for MessageOnly {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            use fmt::Write;
            let _ = write!(self.0, "{value:?}");
        }
    }
}
