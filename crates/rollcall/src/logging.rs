//! Log lines on standard error, as text for people or as JSON for log collectors.
//!
//! Everything goes through `tracing`, start-up lines included: with `json` every line on
//! standard error is one JSON object. Lines the operator must see whatever `ROLLCALL_LOG`
//! says (where the listeners are, the demo secrets, shutdown) use [`announce!`]; in text they
//! keep their `rollcall: ` form, which scripts and tests read.
//!
//! With the `otlp` feature and `[traces] otlp_endpoint`, the spans (one per delivery
//! received, one per send to a sink) are also exported over OTLP/HTTP; `ROLLCALL_LOG` filters
//! the log lines only, never which spans are exported.

use std::fmt;
use std::io::{self, IsTerminal};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogFormat, TracesConfig};

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

/// What must outlive the daemon: the trace exporter, flushed by [`Telemetry::shutdown`].
#[derive(Debug, Default)]
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    tracer_provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered and stops the exporter. Call outside the runtime:
    /// the exporter's HTTP client blocks.
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.tracer_provider {
            if let Err(error) = provider.shutdown() {
                tracing::warn!(error = %error, "the trace exporter did not flush");
            }
        }
    }
}

/// Installs the process's log subscriber, without trace export.
pub fn init(format: LogFormat) {
    let _ = init_with_traces(format, &TracesConfig::default());
}

/// Installs the process's subscriber: log lines in `format`, and the spans exported to
/// `traces.otlp_endpoint` when set. Later calls do nothing (the first stays). Call outside
/// the runtime (the exporter's client is blocking).
pub fn init_with_traces(format: LogFormat, traces: &TracesConfig) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_env(FILTER_VARIABLE)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(
            format!("{ANNOUNCE_TARGET}=info")
                .parse()
                .unwrap_or_else(|_| tracing::Level::INFO.into()),
        );
    let lines: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(io::stderr)
            .with_ansi(io::stderr().is_terminal())
            .event_format(TextFormat {
                inner: format::Format::default(),
            })
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(io::stderr)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    let (spans, telemetry) = trace_export(traces)?;
    // Already installed (a test, or a second call): keep the first.
    let _ = tracing_subscriber::registry()
        .with(lines)
        .with(spans)
        .try_init();
    Ok(telemetry)
}

#[cfg(not(feature = "otlp"))]
fn trace_export(_traces: &TracesConfig) -> Result<(Option<SpanLayer>, Telemetry), String> {
    // `traces.otlp_endpoint` is a configuration error in such a build (config.rs).
    Ok((None, Telemetry::default()))
}

/// The subscriber the span exporter sits on.
type Layered = tracing_subscriber::layer::Layered<Box<dyn Layer<Registry> + Send + Sync>, Registry>;
type SpanLayer = Box<dyn Layer<Layered> + Send + Sync>;

#[cfg(feature = "otlp")]
fn trace_export(traces: &TracesConfig) -> Result<(Option<SpanLayer>, Telemetry), String> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;

    let Some(endpoint) = &traces.otlp_endpoint else {
        return Ok((None, Telemetry::default()));
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint.clone())
        .with_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|error| format!("traces.otlp_endpoint: {error}"))?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(traces.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("rollcall");
    // The spans of rollcall itself at info and above: a delivery and each send; never the
    // libraries' internals (the exporter's own HTTP requests would trace themselves).
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("rollcall", tracing::Level::INFO)
        .with_target(ANNOUNCE_TARGET, tracing::level_filters::LevelFilter::OFF);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(filter)
        .boxed();
    Ok((
        Some(layer),
        Telemetry {
            tracer_provider: Some(provider),
        },
    ))
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
