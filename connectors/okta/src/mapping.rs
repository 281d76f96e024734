//! Okta event hook delivery -> unified events, one per user event in `data.events`.
//!
//! Plain functions; every decision is written in `docs/connectors/okta.md`.

use rollcall_core::{
    Actor, Delivery, EventType, NormalizeError, User, UserEvent, UserStatus, VendorEvent,
};
use serde_json::Value;

use crate::payload::{self, LogActor, LogEvent, LogTarget};
use crate::NAME;

/// What an Okta event type means for the user: the unified event, and the status it leaves
/// the user in when the type says.
pub fn unified_for(vendor_type: &str) -> Option<(EventType, Option<UserStatus>)> {
    match vendor_type {
        "user.lifecycle.create" => Some((EventType::Created, None)),
        "user.lifecycle.activate" | "user.lifecycle.unsuspend" => {
            Some((EventType::Updated, Some(UserStatus::Active)))
        }
        "user.lifecycle.deactivate" | "user.lifecycle.suspend" => {
            Some((EventType::Updated, Some(UserStatus::Inactive)))
        }
        "user.lifecycle.delete.initiated" => Some((EventType::Deleted, Some(UserStatus::Deleted))),
        "user.account.update_profile" => Some((EventType::Updated, None)),
        _ => None,
    }
}

/// The unified events of a delivery, in `data.events` order; each event's index (which its
/// rollcall id derives from) is its position in `data.events`.
///
/// Events of other types, and events whose `outcome` is not `SUCCESS` (the action did not
/// happen), are skipped. A delivery with nothing left is `event_unsupported`, naming the
/// first event skipped.
pub fn events(delivery: &Delivery, body: &Value) -> Result<Vec<UserEvent>, NormalizeError> {
    let mut unified = Vec::new();
    let mut first_skipped = None;
    for (index, raw) in payload::events(body)?.iter().enumerate() {
        let at = format!("data.events[{index}]");
        let vendor_type = payload::event_type(raw).map_err(|error| error.within(&at))?;
        let Some((event_type, status)) = unified_for(vendor_type) else {
            first_skipped.get_or_insert_with(|| vendor_type.to_owned());
            continue;
        };
        let event: LogEvent =
            rollcall_core::json::from_value(raw).map_err(|error| error.within(&at))?;
        let outcome = event.outcome.clone().unwrap_or_default();
        if !outcome.succeeded() {
            first_skipped.get_or_insert_with(|| {
                let result = outcome.result.as_deref().unwrap_or_default();
                format!("{vendor_type} (outcome {result})")
            });
            continue;
        }
        let user = user(&event, status).map_err(|error| error.within(&at))?;
        let vendor_event = vendor_event(&event).map_err(|error| error.within(&at))?;
        let mut unified_event = delivery.new_event(NAME, index, event_type, vendor_event, user);
        unified_event.actor = event.actor.as_ref().and_then(actor);
        // The target carries the user's id, login and display name only.
        unified_event.partial = true;
        unified.push(unified_event);
    }
    match first_skipped {
        Some(skipped) if unified.is_empty() => Err(NormalizeError::unsupported(skipped)),
        _ => Ok(unified),
    }
}

/// The vendor event: `uuid`, `eventType` as sent, and `published` as `occurred_at`.
pub fn vendor_event(event: &LogEvent) -> Result<VendorEvent, NormalizeError> {
    let occurred_at = payload::read_published(event.published.as_deref())
        .map_err(|message| NormalizeError::invalid("published", message))?;
    Ok(VendorEvent {
        id: event.uuid.clone(),
        event_type: event.event_type.clone(),
        occurred_at,
    })
}

/// The unified user from the event's `User` target; `status` is what the event type says.
pub fn user(event: &LogEvent, status: Option<UserStatus>) -> Result<User, NormalizeError> {
    let targets = event.target.as_deref().unwrap_or_default();
    let Some((position, raw)) = payload::user_target(targets) else {
        return Err(NormalizeError::invalid(
            "target",
            "no target of type `User`: the event names no user",
        ));
    };
    let at = format!("target[{position}]");
    let target: LogTarget =
        rollcall_core::json::from_value(raw).map_err(|error| error.within(&at))?;
    let Some(id) = target.id else {
        return Err(NormalizeError::invalid(
            format!("{at}.id"),
            "missing user id",
        ));
    };
    Ok(User {
        id,
        // `alternateId` is the Okta login. It is often an email address, but Okta does not
        // say it is the user's email (that is `profile.email`, which events do not carry).
        username: target.alternate_id,
        name: target.display_name,
        status,
        remote_data: Some(raw.clone()),
        ..User::default()
    })
}

/// `actor.id` and `actor.displayName`; `None` when the event names neither.
pub fn actor(actor: &LogActor) -> Option<Actor> {
    (actor.id.is_some() || actor.display_name.is_some()).then(|| Actor {
        id: actor.id.clone(),
        name: actor.display_name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_listed_event_type_maps_to_a_unified_type() {
        for vendor_type in crate::EVENT_TYPES {
            assert!(unified_for(vendor_type).is_some(), "{vendor_type}");
        }
    }

    #[test]
    fn lifecycle_events_set_the_status_they_leave_the_user_in() {
        let status = |vendor_type| unified_for(vendor_type).unwrap().1;
        assert_eq!(status("user.lifecycle.activate"), Some(UserStatus::Active));
        assert_eq!(status("user.lifecycle.unsuspend"), Some(UserStatus::Active));
        assert_eq!(
            status("user.lifecycle.deactivate"),
            Some(UserStatus::Inactive)
        );
        assert_eq!(status("user.lifecycle.suspend"), Some(UserStatus::Inactive));
        assert_eq!(
            status("user.lifecycle.delete.initiated"),
            Some(UserStatus::Deleted)
        );
        assert_eq!(status("user.lifecycle.create"), None);
        assert_eq!(status("user.account.update_profile"), None);
    }

    #[test]
    fn other_user_event_types_are_not_mapped() {
        for vendor_type in [
            "user.session.start",
            "user.lifecycle.reactivate",
            "user.lifecycle.delete.completed",
            "group.user_membership.add",
            "User.Lifecycle.Create",
        ] {
            assert_eq!(unified_for(vendor_type), None, "{vendor_type}");
        }
    }

    #[test]
    fn an_actor_with_neither_id_nor_name_is_no_actor() {
        assert_eq!(actor(&LogActor::default()), None);
        let system = LogActor {
            id: Some("0oa1".into()),
            actor_type: Some("PublicClientApp".into()),
            ..LogActor::default()
        };
        assert_eq!(actor(&system).unwrap().id.as_deref(), Some("0oa1"));
    }

    #[test]
    fn the_login_is_the_username_and_never_an_email() {
        let event: LogEvent = serde_json::from_value(json!({
            "eventType": "user.lifecycle.create",
            "target": [{"id": "00u1", "type": "User", "alternateId": "ann@example.com"}]
        }))
        .unwrap();
        let user = user(&event, None).unwrap();
        assert_eq!(user.username.as_deref(), Some("ann@example.com"));
        assert_eq!(user.emails, None);
    }
}
