//! Okta event hook delivery -> unified events, one per user event in `data.events`.
//!
//! Plain functions; every decision is written in `docs/connectors/okta.md`.

use rollcall_core::{
    diff_users, Actor, Delivery, EventType, FieldChange, Group, NormalizeError, RemoteData, Role,
    User, UserEvent, UserStatus, VendorEvent,
};
use serde_json::Value;

use crate::payload::{self, LogActor, LogEvent, LogTarget};
use crate::NAME;

/// What an Okta event type means for the user: the unified event, and the status it leaves
/// the user in when the type says.
pub fn unified_for(vendor_type: &str) -> Option<(EventType, Option<UserStatus>)> {
    match vendor_type {
        "user.lifecycle.create" => Some((EventType::Created, None)),
        "user.lifecycle.activate" | "user.lifecycle.unsuspend" | "user.account.unlock" => {
            Some((EventType::Updated, Some(UserStatus::Active)))
        }
        "user.lifecycle.deactivate" | "user.lifecycle.suspend" | "user.account.lock" => {
            Some((EventType::Updated, Some(UserStatus::Inactive)))
        }
        // Reactivation restarts activation: the user is PROVISIONED again, invited to
        // activate, until a `user.lifecycle.activate` follows.
        "user.lifecycle.reactivate" => Some((EventType::Updated, Some(UserStatus::Invited))),
        "user.lifecycle.delete.initiated" | "user.lifecycle.delete.completed" => {
            Some((EventType::Deleted, Some(UserStatus::Deleted)))
        }
        "user.account.update_profile"
        | "user.account.privilege.grant"
        | "user.account.privilege.revoke"
        | "group.user_membership.add"
        | "group.user_membership.remove" => Some((EventType::Updated, None)),
        _ => None,
    }
}

/// A change to one of the user's lists that an event type carries as a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    GroupAdded,
    GroupRemoved,
    RolesGranted,
    RolesRevoked,
}

/// The list delta an event type carries, if any.
pub fn delta_for(vendor_type: &str) -> Option<Delta> {
    match vendor_type {
        "group.user_membership.add" => Some(Delta::GroupAdded),
        "group.user_membership.remove" => Some(Delta::GroupRemoved),
        "user.account.privilege.grant" => Some(Delta::RolesGranted),
        "user.account.privilege.revoke" => Some(Delta::RolesRevoked),
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
        let mut user = user;
        let changes = match delta_for(vendor_type) {
            Some(delta) => apply_delta(delta, raw, &mut user).map_err(|error| error.within(&at))?,
            None => None,
        };
        let mut unified_event = delivery.new_event(NAME, index, event_type, vendor_event, user);
        unified_event.changes = changes;
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
        remote_data: Some(RemoteData::from_value(raw)),
        ..User::default()
    })
}

/// Puts a membership or privilege delta on `user` and returns the changes that say what was
/// added or removed, so the directory applies it to the groups or roles it knows rather than
/// replacing them (as it does Zendesk's membership deltas).
///
/// An addition lists the added item (`groups: [the group]`); a removal lists none
/// (`groups: []`) with `changes` naming the removed item: the directory then drops exactly
/// that item. A privilege event without the privilege names in `debugContext.debugData`
/// changes nothing that can be told, so `changes` stays absent.
pub fn apply_delta(
    delta: Delta,
    raw: &Value,
    user: &mut User,
) -> Result<Option<Vec<FieldChange>>, NormalizeError> {
    let mut before = User::with_id(user.id.clone());
    let mut after = User::with_id(user.id.clone());
    match delta {
        Delta::GroupAdded | Delta::GroupRemoved => {
            let group = group_target(raw)?;
            if delta == Delta::GroupAdded {
                after.groups = Some(vec![group]);
                user.groups = after.groups.clone();
            } else {
                before.groups = Some(vec![group]);
                user.groups = Some(Vec::new());
            }
        }
        Delta::RolesGranted | Delta::RolesRevoked => {
            let key = if delta == Delta::RolesGranted {
                PRIVILEGE_GRANTED
            } else {
                PRIVILEGE_REVOKED
            };
            let Some(roles) = privileges(raw, key) else {
                return Ok(None);
            };
            if delta == Delta::RolesGranted {
                after.roles = Some(roles);
                user.roles = after.roles.clone();
            } else {
                before.roles = Some(roles);
                user.roles = Some(Vec::new());
            }
        }
    }
    Ok(Some(diff_users(&before, &after)))
}

/// `debugContext.debugData` key naming the admin roles a grant gave.
pub const PRIVILEGE_GRANTED: &str = "privilegeGranted";
/// `debugContext.debugData` key naming the admin roles a revocation took.
pub const PRIVILEGE_REVOKED: &str = "privilegeRevoked";

/// The admin roles a privilege event names: `debugContext.debugData.<key>`, a
/// comma-separated list of role names (`Super administrator, Help Desk administrator`).
/// `None` when the event does not say.
pub fn privileges(raw: &Value, key: &str) -> Option<Vec<Role>> {
    let text = raw
        .get("debugContext")?
        .get("debugData")?
        .get(key)?
        .as_str()?;
    let roles: Vec<Role> = text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| Role {
            name: Some(name.to_owned()),
            ..Role::default()
        })
        .collect();
    (!roles.is_empty()).then_some(roles)
}

/// The group a membership event is about: its `UserGroup` target's `id` and
/// `displayName` (the group's name).
pub fn group_target(raw: &Value) -> Result<Group, NormalizeError> {
    let targets = raw
        .get("target")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some((position, target)) = payload::target_of_type(targets, payload::GROUP_TARGET_TYPE)
    else {
        return Err(NormalizeError::invalid(
            "target",
            "no target of type `UserGroup`: the event names no group",
        ));
    };
    let at = format!("target[{position}]");
    let target: LogTarget =
        rollcall_core::json::from_value(target).map_err(|error| error.within(&at))?;
    let Some(id) = target.id else {
        return Err(NormalizeError::invalid(
            format!("{at}.id"),
            "missing group id",
        ));
    };
    Ok(Group {
        id: Some(id),
        name: target.display_name,
        organization: None,
    })
}

/// `actor.id` and `actor.displayName`; `None` when the event names neither.
pub fn actor(actor: &LogActor) -> Option<Actor> {
    (actor.id.is_some() || actor.display_name.is_some()).then(|| Actor {
        id: actor.id.clone(),
        name: actor.display_name.clone(),
    })
}

/// The unified user for a Users API user object (`GET /api/v1/users`), for sync.
///
/// The fields a webhook's `User` target carries are mapped as the webhooks map them: `id`;
/// `username` is `profile.login` (the target's `alternateId`); `name` is what Okta shows as
/// the target's `displayName`: `profile.displayName` when set, else `firstName lastName`.
/// `status` follows the webhook events' statuses: `ACTIVE`, `RECOVERY` and
/// `PASSWORD_EXPIRED` are `active`; `STAGED` and `PROVISIONED` (activation pending, as after
/// `user.lifecycle.reactivate`) `invited`; `SUSPENDED`, `LOCKED_OUT` and `DEPROVISIONED`
/// (deactivated) `inactive`. The rest comes from the profile; `remote_data` is the user
/// object without `credentials` and `_links`.
pub fn user_from_api(raw: &Value) -> Result<User, String> {
    let text = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    };
    let Some(id) = text(raw.get("id")) else {
        return Err("missing user id".to_owned());
    };
    let empty = Value::Object(serde_json::Map::new());
    let profile = raw.get("profile").unwrap_or(&empty);
    let field = |name: &str| text(profile.get(name));
    let first_name = field("firstName");
    let last_name = field("lastName");
    let name = field("displayName").or_else(|| {
        let joined = [first_name.as_deref(), last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!joined.is_empty()).then_some(joined)
    });
    let mut emails = Vec::new();
    if let Some(email) = field("email") {
        emails.push(rollcall_core::Email {
            email,
            email_type: Some("work".to_owned()),
            is_primary: Some(true),
        });
    }
    if let Some(email) = field("secondEmail") {
        emails.push(rollcall_core::Email {
            email,
            email_type: None,
            is_primary: Some(false),
        });
    }
    let mut phones = Vec::new();
    for (key, kind) in [("mobilePhone", "mobile"), ("primaryPhone", "work")] {
        if let Some(number) = field(key) {
            phones.push(rollcall_core::Phone {
                number,
                extension: None,
                phone_type: Some(kind.to_owned()),
            });
        }
    }
    let time = |key: &str| -> Result<Option<rollcall_core::Timestamp>, String> {
        match text(raw.get(key)) {
            Some(value) => rollcall_core::Timestamp::parse_rfc3339(&value)
                .map(Some)
                .map_err(|error| format!("{key}: {error}")),
            None => Ok(None),
        }
    };
    let mut remote = raw.clone();
    if let Value::Object(map) = &mut remote {
        map.remove("credentials");
        map.remove("_links");
    }
    Ok(User {
        id,
        first_name,
        last_name,
        title: field("title"),
        name,
        username: field("login"),
        emails: (!emails.is_empty()).then_some(emails),
        phones: (!phones.is_empty()).then_some(phones),
        status: text(raw.get("status")).map(|status| api_status(&status)),
        timezone: field("timezone"),
        languages: field("preferredLanguage").map(|language| vec![language]),
        created_at: time("created")?,
        updated_at: time("lastUpdated")?,
        remote_data: Some(remote.into()),
        ..User::default()
    })
}

/// A Users API `status` as a unified status; unknown values pass through.
pub fn api_status(status: &str) -> UserStatus {
    match status {
        "ACTIVE" | "RECOVERY" | "PASSWORD_EXPIRED" => UserStatus::Active,
        "STAGED" | "PROVISIONED" => UserStatus::Invited,
        "SUSPENDED" | "LOCKED_OUT" | "DEPROVISIONED" => UserStatus::Inactive,
        other => UserStatus::from_vendor(other),
    }
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
        assert_eq!(
            status("user.lifecycle.delete.completed"),
            Some(UserStatus::Deleted)
        );
        assert_eq!(
            status("user.lifecycle.reactivate"),
            Some(UserStatus::Invited)
        );
        assert_eq!(status("user.account.lock"), Some(UserStatus::Inactive));
        assert_eq!(status("user.account.unlock"), Some(UserStatus::Active));
        assert_eq!(status("user.account.privilege.grant"), None);
        assert_eq!(status("group.user_membership.remove"), None);
    }

    #[test]
    fn privilege_names_are_split_on_commas() {
        let raw = json!({"debugContext": {"debugData": {
            "privilegeGranted": "Super administrator, Help Desk administrator ,"
        }}});
        let names: Vec<_> = privileges(&raw, PRIVILEGE_GRANTED)
            .unwrap()
            .into_iter()
            .map(|role| role.name.unwrap())
            .collect();
        assert_eq!(names, ["Super administrator", "Help Desk administrator"]);
        assert_eq!(privileges(&raw, PRIVILEGE_REVOKED), None);
    }

    #[test]
    fn other_user_event_types_are_not_mapped() {
        for vendor_type in [
            "user.session.start",
            "group.user_membership.change",
            "user.account.reset_password",
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
