//! `stdout`: each event as one JSON line on standard output.
//!
//! A batch's lines ([`Sink::send_batch`]; `send` is a batch of one) are written under the
//! process-wide stdout lock in one `write_all`, so lines from concurrent sends (and from
//! anything else in the process that prints through the lock) never interleave. The write
//! runs on tokio's blocking pool, one trip per batch: a reader that stops reading the pipe
//! stalls this sink, not the runtime. A failed write reports the whole batch undelivered
//! (0 delivered): a pipe cannot be cut back, so the retry may repeat lines, which
//! at-least-once delivery allows.

use std::io::Write as _;

use rollcall_core::{
    BatchOutcome, ConfigError, OutboundEvent, Sink, SinkError, SinkOptions, SinkRegistration,
};
use serde::Deserialize;

/// The `type` of a `[[sinks]]` table.
pub const KIND: &str = "stdout";

/// The stdout sink has no options of its own.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct StdoutOptions {}

/// Writes each event body and a newline to standard output.
#[derive(Debug, Clone, Default)]
pub struct StdoutSink {
    _private: (),
}

impl StdoutSink {
    /// Checks that `options` holds no keys (the stdout sink has none).
    pub fn from_options(options: &SinkOptions) -> Result<Self, ConfigError> {
        let StdoutOptions {} = options.parse()?;
        Ok(Self::default())
    }
}

#[async_trait::async_trait]
impl Sink for StdoutSink {
    async fn send(&self, event: &OutboundEvent) -> Result<(), SinkError> {
        self.send_batch(std::slice::from_ref(event))
            .await
            .into_result()
    }

    async fn send_batch(&self, events: &[OutboundEvent]) -> BatchOutcome {
        if events.is_empty() {
            return BatchOutcome::all(0);
        }
        let lines = crate::json_lines(events);
        let written = crate::run_blocking("stdout writer", move || {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&lines)
                .and_then(|()| stdout.flush())
                .map_err(|error| format!("cannot write to standard output: {error}"))
        })
        .await;
        match written {
            Ok(()) => BatchOutcome::all(events.len()),
            Err(error) => BatchOutcome::failed(0, error),
        }
    }

    async fn flush(&self) -> Result<(), SinkError> {
        crate::run_blocking("stdout writer", || {
            std::io::stdout()
                .lock()
                .flush()
                .map_err(|error| format!("cannot flush standard output: {error}"))
        })
        .await
    }
}

fn build(options: &SinkOptions) -> Result<Box<dyn Sink>, ConfigError> {
    Ok(Box::new(StdoutSink::from_options(options)?))
}

const EXAMPLE_CONFIG: &str = r#"[[sinks]]
id = "console"
type = "stdout"
# No options of its own: every event is printed as one JSON line.
"#;

rollcall_core::inventory::submit! {
    SinkRegistration {
        kind: KIND,
        description: "each event as one JSON line on standard output",
        build,
        example_config: EXAMPLE_CONFIG,
        options_schema: Some(rollcall_core::options_schema::<StdoutOptions>),
    }
}
