//! What every sink test needs: an event to send.

use rollcall_core::{EventType, OutboundEvent, Timestamp};

/// A native-format event whose body is `body` verbatim.
pub fn event(id: &str, body: impl Into<String>) -> OutboundEvent {
    OutboundEvent {
        event_id: id.to_owned(),
        event_type: EventType::Created,
        source: "test-source".to_owned(),
        received_at: Timestamp::now(),
        content_type: "application/json",
        body: body.into().into(),
    }
}
