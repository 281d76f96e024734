//! The sink contract and its registry.
//!
//! A sink is where unified events go: a file, an HTTP endpoint, a stream. Sinks register
//! like connectors ([`SinkRegistration`] with `inventory::submit!`); the host's delivery
//! workers call [`Sink::send`] once per event, in journal order, and decide from the
//! [`SinkError`] whether to retry.

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

    /// Makes everything sent so far durable; called before a clean shutdown.
    async fn flush(&self) -> Result<(), SinkError> {
        Ok(())
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
