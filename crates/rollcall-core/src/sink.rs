//! The sink contract and its registry.
//!
//! A sink is where unified events go: a file, an HTTP endpoint, a stream. Sinks register
//! like connectors ([`SinkRegistration`] with `inventory::submit!`); the host's delivery
//! workers hand a sink a run of one user line's events at a time through
//! [`Sink::send_batch`] (a run of one event, as under a rate limit and for retries, through
//! [`Sink::send`]), in journal order, and decide from the [`SinkError`] whether to retry. A sink that only implements `send` gets a `send_batch` that calls it per event.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ConfigError;
use crate::model::{EventType, UserEvent};
use crate::time::Timestamp;

/// A destination for unified events.
#[async_trait::async_trait]
pub trait Sink: Send + Sync + fmt::Debug + 'static {
    /// Delivers one event. `Ok` means the destination has it (durably, as far as the
    /// destination promises).
    async fn send(&self, event: &OutboundEvent) -> Result<(), SinkError>;

    /// Delivers `events` in order, as if by [`Sink::send`] on each in turn.
    ///
    /// The contract:
    ///
    /// * the events are delivered in slice order: an event is only delivered once every
    ///   event before it is;
    /// * [`BatchOutcome::delivered`] counts the leading events the destination has (with the
    ///   same meaning as `send`'s `Ok`);
    /// * a failure stops the batch: [`BatchOutcome::failure`] is the error of the first event
    ///   that failed (`events[delivered]`), and the events after it were not attempted, so
    ///   the caller treats them as never sent. `None` means all of them were delivered.
    ///
    /// The default calls `send` per event and stops at the first error, so a sink only needs
    /// to override it when it can deliver several events for the cost of one (one write,
    /// one request).
    async fn send_batch(&self, events: &[OutboundEvent]) -> BatchOutcome {
        for (delivered, event) in events.iter().enumerate() {
            if let Err(error) = self.send(event).await {
                return BatchOutcome::failed(delivered, error);
            }
        }
        BatchOutcome::all(events.len())
    }

    /// Makes everything sent so far durable; called before a clean shutdown.
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// How a [`Sink::send_batch`] ended: how many leading events were delivered and, when one
/// failed, its error (the events after it were not attempted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The leading events the destination has.
    pub delivered: usize,
    /// The error of the event at index `delivered`; `None` when the whole batch went.
    pub failure: Option<SinkError>,
}

impl BatchOutcome {
    /// All `count` events were delivered.
    pub fn all(count: usize) -> Self {
        Self {
            delivered: count,
            failure: None,
        }
    }

    /// The first `delivered` events went; the next one failed with `error`.
    pub fn failed(delivered: usize, error: SinkError) -> Self {
        Self {
            delivered,
            failure: Some(error),
        }
    }

    /// The outcome of a batch of one as `send` would report it.
    pub fn into_result(self) -> Result<(), SinkError> {
        match self.failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// An event rendered for one sink.
#[derive(Debug, Clone)]
pub struct OutboundEvent {
    /// rollcall's event id (the ULID); HTTP sinks send it as `webhook-id`.
    pub event_id: String,
    pub event_type: EventType,
    pub source: String,
    pub received_at: Timestamp,
    /// `application/json` or `application/cloudevents+json`.
    pub content_type: &'static str,
    /// The rendered event, one JSON document without a trailing newline.
    pub body: Bytes,
}

/// How an event is rendered for a sink.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The `UserEvent` envelope as is.
    #[default]
    Native,
    /// CloudEvents 1.0 structured JSON.
    Cloudevents,
}

impl OutboundEvent {
    /// Renders `event` in `format`.
    pub fn render(event: &UserEvent, format: Format) -> Result<Self, serde_json::Error> {
        let (content_type, body) = match format {
            Format::Native => ("application/json", serde_json::to_vec(event)?),
            Format::Cloudevents => (
                "application/cloudevents+json",
                serde_json::to_vec(&event.to_cloudevent())?,
            ),
        };
        Ok(Self {
            event_id: event.id.clone(),
            event_type: event.event_type,
            source: event.source.clone(),
            received_at: event.received_at,
            content_type,
            body: Bytes::from(body),
        })
    }
}

/// Why a send failed, and whether to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// A later attempt may succeed (timeouts, 5xx, 408, 429). `retry_after` is the
    /// destination's own hint, which the worker honours over its schedule.
    #[error("transient: {message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// No retry will help (4xx, a rejected payload); the event becomes a dead letter.
    #[error("permanent: {message}")]
    Permanent { message: String },
}

impl SinkError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent { .. })
    }
}

/// A sink's options: its configuration table minus `id`, `type` and the host's generic
/// keys (`sources`, `types`, `format`, retry schedule).
#[derive(Debug, Clone)]
pub struct SinkOptions {
    pub sink_id: String,
    values: serde_json::Value,
}

impl SinkOptions {
    pub fn new(sink_id: impl Into<String>, values: serde_json::Value) -> Self {
        Self {
            sink_id: sink_id.into(),
            values,
        }
    }

    /// Reads the options into `T`; an error names the offending key.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(&self.values).map_err(|error| {
            let key = error.path().to_string();
            ConfigError::new(key, error.into_inner().to_string())
        })
    }
}

/// A sink type's entry in the registry.
#[derive(Debug)]
pub struct SinkRegistration {
    /// The `type` a `[[sinks]]` table names (`file`).
    pub kind: &'static str,
    pub description: &'static str,
    pub build: fn(&SinkOptions) -> Result<Box<dyn Sink>, ConfigError>,
    /// A TOML `[[sinks]]` table showing the sink's options.
    pub example_config: &'static str,
    /// The JSON Schema of the sink's own options (its table minus the host's keys), usually
    /// `Some(options_schema::<TheOptions>)`; `None` leaves them open.
    pub options_schema: Option<fn() -> serde_json::Value>,
}

inventory::collect!(SinkRegistration);

/// Every sink type linked into this binary, sorted by kind.
pub fn sink_registrations() -> Vec<&'static SinkRegistration> {
    let mut all: Vec<_> = inventory::iter::<SinkRegistration>.into_iter().collect();
    all.sort_by_key(|registration| registration.kind);
    all
}

/// The registered sink type with that name.
pub fn sink_registration(kind: &str) -> Option<&'static SinkRegistration> {
    inventory::iter::<SinkRegistration>
        .into_iter()
        .find(|registration| registration.kind == kind)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Accepts every event except the ones named in `fail`, recording each attempt.
    #[derive(Debug, Default)]
    struct Picky {
        fail: Vec<&'static str>,
        attempts: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl Sink for Picky {
        async fn send(&self, event: &OutboundEvent) -> Result<(), SinkError> {
            self.attempts.lock().unwrap().push(event.event_id.clone());
            if self.fail.contains(&event.event_id.as_str()) {
                return Err(SinkError::transient(format!("{} refused", event.event_id)));
            }
            Ok(())
        }
    }

    fn events(ids: &[&str]) -> Vec<OutboundEvent> {
        ids.iter()
            .map(|id| OutboundEvent {
                event_id: (*id).to_owned(),
                event_type: EventType::Created,
                source: "s".into(),
                received_at: Timestamp::from_unix_seconds(1_800_000_000).unwrap(),
                content_type: "application/json",
                body: Bytes::from_static(b"{}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn the_default_send_batch_sends_in_order_and_stops_at_the_first_error() {
        let sink = Picky {
            fail: vec!["c", "e"],
            ..Picky::default()
        };
        let outcome = sink.send_batch(&events(&["a", "b", "c", "d", "e"])).await;
        assert_eq!(
            outcome,
            BatchOutcome::failed(2, SinkError::transient("c refused"))
        );
        // Nothing after the failed event was attempted.
        assert_eq!(*sink.attempts.lock().unwrap(), ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn the_default_send_batch_reports_every_event_delivered_when_none_fails() {
        let sink = Picky::default();
        let outcome = sink.send_batch(&events(&["a", "b", "c"])).await;
        assert_eq!(outcome, BatchOutcome::all(3));
        assert_eq!(outcome.into_result(), Ok(()));
        assert_eq!(*sink.attempts.lock().unwrap(), ["a", "b", "c"]);
        assert_eq!(sink.send_batch(&[]).await, BatchOutcome::all(0));
    }
}
