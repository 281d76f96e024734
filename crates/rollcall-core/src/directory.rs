//! What rollcall knows about each user, and how an event changes it.
//!
//! Vendors tell different amounts: VCC Live sends old and new, Freshservice a `changes` map,
//! Zendesk one delta at a time without the user's name, HighLevel only the new state. The
//! host keeps the latest unified user per (source, user id) and runs every event through
//! [`apply`] in the same transaction that journals it, so each emitted event carries the
//! best-known full user, the previous state and the exact unified changes, whatever the
//! vendor sent.
//!
//! # Rules
//!
//! * A **full** event (`partial == false`) states the user's whole state: it replaces the
//!   known user, except `created_at`, which is kept when the event does not restate it
//!   (creation does not un-happen because a later event leaves the time out).
//! * A **partial** event states only part of it. Fields present in its `user` override the
//!   known ones; absent fields keep their known value. For list fields (`emails`, `groups`,
//!   ...) the event's own `changes` say what was added and removed; the known list loses
//!   the removed items and gains the added ones, and items the partial user lists are kept.
//!   Items are matched by `id`, else by `email`, `number`, `url` or `name`.
//! * `remote_data` objects are merged key by key, so the latest vendor fields win and
//!   earlier ones are kept.
//! * With a known user, an event's `previous` is the known user and its `changes` are
//!   computed with [`diff_users`]. Without one, the event keeps what the connector said
//!   (a first-seen user under an update gets no invented `previous`).
//! * A `user.deleted` event keeps the user as a tombstone: the record stays, marked deleted,
//!   with status `deleted`.

use serde_json::Value;

use crate::model::{diff_users, EventType, RemoteData, User, UserEvent, UserStatus};

/// The directory's record of one user.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownUser {
    pub user: User,
    /// How many events have been applied to this user.
    pub version: i64,
    pub deleted: bool,
    /// True while every event seen for the user was partial (the user was never complete).
    pub partial: bool,
}

/// Completes `event` with the known state and returns the user's new record.
///
/// The record's user is a copy of the event's; a caller that is done with the event can
/// use [`apply_in_place`] and move the user instead.
pub fn apply(known: Option<&KnownUser>, event: &mut UserEvent) -> KnownUser {
    apply_in_place(known, event).with_user(event.user.clone())
}

/// What [`apply_in_place`] decides about the user's record besides the user itself, which
/// is the event's `user` once it has been applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub version: i64,
    pub deleted: bool,
    pub partial: bool,
}

impl Applied {
    /// The record, with `user`: the applied event's `user`.
    pub fn with_user(self, user: User) -> KnownUser {
        KnownUser {
            user,
            version: self.version,
            deleted: self.deleted,
            partial: self.partial,
        }
    }
}

/// [`apply`] without the record's copy of the user: completes `event` with the known state;
/// the user's new state is `event.user` afterwards.
pub fn apply_in_place(known: Option<&KnownUser>, event: &mut UserEvent) -> Applied {
    let Some(known) = known else {
        return Applied {
            version: 1,
            deleted: event.event_type == EventType::Deleted,
            partial: event.partial,
        };
    };
    let stated_partial = event.partial;
    let merged = if stated_partial {
        merge_partial(
            &known.user,
            &event.user,
            event.changes.as_deref().unwrap_or(&[]),
        )
    } else {
        let mut full = std::mem::take(&mut event.user);
        full.remote_data =
            merge_remote_data(known.user.remote_data.as_ref(), full.remote_data.as_ref());
        full
    };
    let mut merged = merged;
    // Creation is history: an event that does not restate it (VCC Live's User Changed,
    // HighLevel's UserUpdate) leaves it as known, rather than reporting it removed.
    if merged.created_at.is_none() {
        merged.created_at = known.user.created_at;
    }
    if event.event_type == EventType::Deleted {
        merged.status = Some(UserStatus::Deleted);
    }
    event.previous = Some(known.user.clone());
    event.changes = Some(diff_users(&known.user, &merged));
    event.partial = known.partial && event.partial;
    // A tombstone stays a tombstone: a late delta (a tag or identity clean-up after the
    // delete) does not bring the user back. A creation does, and a full state says itself
    // whether the user is deleted.
    let deleted = match event.event_type {
        EventType::Deleted => true,
        EventType::Created => false,
        EventType::Updated if !stated_partial => merged.status == Some(UserStatus::Deleted),
        EventType::Updated => known.deleted,
    };
    event.user = merged;
    Applied {
        version: known.version + 1,
        deleted,
        partial: event.partial,
    }
}

/// The known user with a partial event applied.
fn merge_partial(known: &User, partial: &User, changes: &[crate::model::FieldChange]) -> User {
    let (Ok(Value::Object(mut base)), Ok(Value::Object(update))) =
        (serde_json::to_value(known), serde_json::to_value(partial))
    else {
        return known.clone();
    };
    for (field, value) in update {
        if field == "remote_data" {
            continue;
        }
        let change = changes.iter().find(|change| change.field == field);
        let merged = match (base.remove(&field), value, change) {
            (Some(Value::Array(known_items)), Value::Array(stated), change) => {
                Value::Array(merge_list(known_items, stated, change))
            }
            (_, value, _) => value,
        };
        base.insert(field, merged);
    }
    // What the vendor said went away: a change to nothing for a field the partial user does
    // not state (the last phone identity deleted, a photo removed) clears it, and a list
    // change whose items are all gone removes them from the known list.
    for change in changes {
        if partial_states(partial, &change.field) {
            continue;
        }
        let cleared = match &change.to {
            Value::Null => true,
            Value::Array(items) => items.is_empty(),
            _ => false,
        };
        match base.get_mut(&change.field) {
            Some(Value::Array(known_items)) if !cleared => {
                let items = std::mem::take(known_items);
                *known_items = merge_list(items, Vec::new(), Some(change));
            }
            Some(_) if cleared => {
                base.remove(&change.field);
            }
            _ => {}
        }
    }
    let mut user: User =
        serde_json::from_value(Value::Object(base)).unwrap_or_else(|_| known.clone());
    user.remote_data = merge_remote_data(known.remote_data.as_ref(), partial.remote_data.as_ref());
    user
}

/// Whether the partial user states `field` (it is present in its JSON form).
fn partial_states(partial: &User, field: &str) -> bool {
    matches!(serde_json::to_value(partial), Ok(Value::Object(map)) if map.contains_key(field))
}

/// A known list with a partial event's statement applied: removed items go, added items and
/// the items the event lists are present, in known order then new ones.
fn merge_list(
    known: Vec<Value>,
    stated: Vec<Value>,
    change: Option<&crate::model::FieldChange>,
) -> Vec<Value> {
    let empty = Vec::new();
    let (from, to) = match change {
        Some(change) => (
            change.from.as_array().unwrap_or(&empty),
            change.to.as_array().unwrap_or(&empty),
        ),
        None => (&empty, &empty),
    };
    let removed: Vec<&Value> = from
        .iter()
        .filter(|item| !to.iter().any(|other| same_item(item, other)))
        .collect();
    let mut result: Vec<Value> = known
        .into_iter()
        .filter(|item| !removed.iter().any(|gone| same_item(item, gone)))
        .collect();
    for item in to.iter().chain(stated.iter()) {
        match result.iter_mut().find(|existing| same_item(existing, item)) {
            // The event's version of an item is newer (is_primary, a name).
            Some(existing) => *existing = merge_item(existing, item),
            None => result.push(item.clone()),
        }
    }
    result
}

fn merge_item(known: &Value, newer: &Value) -> Value {
    match (known, newer) {
        (Value::Object(known), Value::Object(newer)) => {
            let mut merged = known.clone();
            for (key, value) in newer {
                merged.insert(key.clone(), value.clone());
            }
            Value::Object(merged)
        }
        (_, newer) => newer.clone(),
    }
}

/// Whether two list items are the same thing (a group, an email...).
fn same_item(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Object(left), Value::Object(right)) => {
            for key in ["id", "email", "number", "url", "name"] {
                match (left.get(key), right.get(key)) {
                    (Some(Value::String(a)), Some(Value::String(b))) => {
                        return if key == "email" {
                            a.eq_ignore_ascii_case(b)
                        } else {
                            a == b
                        };
                    }
                    (Some(a), Some(b)) if !a.is_null() && !b.is_null() => return a == b,
                    _ => continue,
                }
            }
            left == right
        }
        (left, right) => left == right,
    }
}

/// `remote_data` objects merged key by key (the newer wins); otherwise the newer as is.
fn merge_remote_data(known: Option<&RemoteData>, newer: Option<&RemoteData>) -> Option<RemoteData> {
    match (known, newer) {
        (Some(known), Some(newer)) => match (known.to_value(), newer.to_value()) {
            (Value::Object(mut merged), Value::Object(newer)) => {
                merged.extend(newer);
                Some(RemoteData::from(Value::Object(merged)))
            }
            _ => Some(newer.clone()),
        },
        (known, None) => known.cloned(),
        (None, Some(newer)) => Some(newer.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{FieldChange, Group, VendorEvent};
    use crate::time::Timestamp;

    fn event(event_type: EventType, user: User, partial: bool) -> UserEvent {
        UserEvent {
            id: "e".into(),
            event_type,
            source: "s".into(),
            connector: "c".into(),
            vendor_event: VendorEvent::default(),
            received_at: Timestamp::from_unix_seconds(0).unwrap(),
            actor: None,
            user,
            previous: None,
            changes: None,
            partial,
        }
    }

    fn group(id: &str) -> Group {
        Group {
            id: Some(id.into()),
            ..Group::default()
        }
    }

    /// The unified fields an applied event reports as changed.
    fn changed_fields(event: &UserEvent) -> Vec<String> {
        event
            .changes
            .iter()
            .flatten()
            .map(|change| change.field.clone())
            .collect()
    }

    fn known(user: User) -> KnownUser {
        KnownUser {
            user,
            version: 1,
            deleted: false,
            partial: false,
        }
    }

    #[test]
    fn a_first_seen_user_keeps_what_the_connector_said() {
        let mut first = event(EventType::Updated, User::with_id("1"), true);
        let record = apply(None, &mut first);
        assert_eq!(first.previous, None);
        assert_eq!(first.changes, None);
        assert!(record.partial);
        assert_eq!(record.version, 1);
    }

    #[test]
    fn a_full_update_is_diffed_against_the_known_user() {
        let before = User {
            name: Some("Ann".into()),
            status: Some(UserStatus::Active),
            ..User::with_id("1")
        };
        let after = User {
            name: Some("Ann".into()),
            status: Some(UserStatus::Inactive),
            ..User::with_id("1")
        };
        let mut update = event(EventType::Updated, after.clone(), false);
        let record = apply(Some(&known(before.clone())), &mut update);
        assert_eq!(update.previous, Some(before));
        let fields = changed_fields(&update);
        assert_eq!(fields, ["status"]);
        assert_eq!(record.user, after);
        assert_eq!(record.version, 2);
    }

    #[test]
    fn a_partial_delta_completes_from_the_known_user() {
        let before = User {
            name: Some("Ann".into()),
            title: Some("Engineer".into()),
            groups: Some(vec![group("10"), group("20")]),
            remote_data: Some(json!({"id": 1, "notes": "vip"}).into()),
            ..User::with_id("1")
        };
        // "Removed from group 20": the delta names only the default group and the change.
        let partial = User {
            groups: Some(vec![group("10")]),
            name: Some("Ann B".into()),
            remote_data: Some(json!({"id": 1, "role": "agent"}).into()),
            ..User::with_id("1")
        };
        let mut delta = event(EventType::Updated, partial, true);
        delta.changes = Some(vec![FieldChange {
            field: "groups".into(),
            from: json!([{"id": "10"}, {"id": "20"}]),
            to: json!([{"id": "10"}]),
        }]);
        apply(Some(&known(before)), &mut delta);
        assert_eq!(delta.user.title.as_deref(), Some("Engineer"));
        assert_eq!(delta.user.name.as_deref(), Some("Ann B"));
        assert_eq!(delta.user.groups, Some(vec![group("10")]));
        assert_eq!(
            delta.user.remote_data,
            Some(json!({"id": 1, "notes": "vip", "role": "agent"}).into())
        );
        assert!(!delta.partial, "a delta on a complete user is complete");
        let fields = changed_fields(&delta);
        assert_eq!(fields, ["name", "groups"]);
    }

    #[test]
    fn a_partial_addition_keeps_the_other_items() {
        let before = User {
            groups: Some(vec![group("10"), group("20")]),
            ..User::with_id("1")
        };
        let mut delta = event(
            EventType::Updated,
            User {
                groups: Some(vec![group("10"), group("30")]),
                ..User::with_id("1")
            },
            true,
        );
        delta.changes = Some(vec![FieldChange {
            field: "groups".into(),
            from: json!([{"id": "10"}]),
            to: json!([{"id": "10"}, {"id": "30"}]),
        }]);
        apply(Some(&known(before)), &mut delta);
        assert_eq!(
            delta.user.groups,
            Some(vec![group("10"), group("20"), group("30")])
        );
    }

    #[test]
    fn a_delete_keeps_a_tombstone_with_the_best_known_user() {
        let before = User {
            name: Some("Ann".into()),
            status: Some(UserStatus::Active),
            ..User::with_id("1")
        };
        let mut deletion = event(EventType::Deleted, User::with_id("1"), true);
        let record = apply(Some(&known(before)), &mut deletion);
        assert!(record.deleted);
        assert_eq!(deletion.user.name.as_deref(), Some("Ann"));
        assert_eq!(deletion.user.status, Some(UserStatus::Deleted));
        let fields = changed_fields(&deletion);
        assert_eq!(fields, ["status"]);
    }

    #[test]
    fn a_delta_that_removes_an_unstated_field_clears_it() {
        let before = User {
            avatar: Some("https://example.com/a.png".into()),
            phones: Some(vec![crate::model::Phone {
                number: "+1 555 0100".into(),
                ..Default::default()
            }]),
            ..User::with_id("1")
        };
        // Photo removed and the last phone identity deleted: the partial user states
        // neither field, the connector's changes say both went away.
        let mut delta = event(EventType::Updated, User::with_id("1"), true);
        delta.changes = Some(vec![
            FieldChange {
                field: "avatar".into(),
                from: json!("https://example.com/a.png"),
                to: Value::Null,
            },
            FieldChange {
                field: "phones".into(),
                from: json!([{"number": "+1 555 0100"}]),
                to: Value::Null,
            },
        ]);
        apply(Some(&known(before)), &mut delta);
        assert_eq!(delta.user.avatar, None);
        assert_eq!(delta.user.phones, None);
        let fields = changed_fields(&delta);
        assert_eq!(fields, ["phones", "avatar"]);
    }

    #[test]
    fn a_late_delta_does_not_revive_a_tombstone_but_a_creation_does() {
        let gone = KnownUser {
            user: User {
                status: Some(UserStatus::Deleted),
                ..User::with_id("1")
            },
            version: 3,
            deleted: true,
            partial: false,
        };
        let mut late = event(EventType::Updated, User::with_id("1"), true);
        assert!(apply(Some(&gone), &mut late).deleted);
        let mut recreated = event(EventType::Created, User::with_id("1"), false);
        assert!(!apply(Some(&gone), &mut recreated).deleted);
        let mut full_active = event(
            EventType::Updated,
            User {
                status: Some(UserStatus::Active),
                ..User::with_id("1")
            },
            false,
        );
        assert!(!apply(Some(&gone), &mut full_active).deleted);
    }

    #[test]
    fn emails_match_case_insensitively() {
        assert!(same_item(
            &json!({"email": "A@x.io"}),
            &json!({"email": "a@X.io", "is_primary": true})
        ));
        assert!(!same_item(&json!({"id": "1"}), &json!({"id": "2"})));
    }
}
