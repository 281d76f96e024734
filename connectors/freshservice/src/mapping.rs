//! Freshservice product events -> unified user events. Plain functions, no I/O.
//!
//! Every decision here is described, with the vendor field it reads, in
//! `docs/connectors/freshservice.md`.

use rollcall_core::{
    diff_users, Actor, Delivery, Email, EventType, Group, NormalizeError, Organization, Phone,
    RemoteData, Role, Timestamp, User, UserEvent, UserStatus, VendorEvent, Workspace,
};
use serde_json::Value;

use crate::changes;
use crate::payload::{parse_at, Data, Envelope, VendorActor, VendorGroup, VendorRole, VendorUser};
use crate::CONNECTOR_NAME;

/// The vendor event types rollcall understands, as Freshworks names them.
pub const EVENT_TYPES: &[&str] = &["onUserCreate", "onUserUpdate", "onUserDelete"];

/// The unified event type of a Freshworks event name, `None` for any other event.
pub fn event_type(event: &str) -> Option<EventType> {
    match event {
        "onUserCreate" => Some(EventType::Created),
        "onUserUpdate" => Some(EventType::Updated),
        "onUserDelete" => Some(EventType::Deleted),
        _ => None,
    }
}

/// Maps one delivery (one product event) to its single unified event.
pub fn normalize(delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
    // The host's one read of the body; `data` is then moved out of this copy, not re-read.
    let mut document = delivery.json_document()?.clone();
    if !document.is_object() {
        return Err(NormalizeError::invalid(".", "must be a JSON object"));
    }
    let envelope: Envelope = rollcall_core::json::from_value(&document)?;
    let event = envelope
        .event
        .ok_or_else(|| NormalizeError::invalid("event", "is required"))?;
    let event_type = event_type(&event).ok_or_else(|| NormalizeError::unsupported(&event))?;
    let occurred_at = document
        .get("timestamp")
        .filter(|value| !value.is_null())
        .map(Timestamp::from_json)
        .transpose()
        .map_err(|error| NormalizeError::invalid("timestamp", error.to_string()))?;
    // `data` and then `data.user` are moved out of the document (`take` leaves a null behind),
    // not copied: the raw user becomes `remote_data` as it is.
    let mut data_value = document
        .get_mut("data")
        .map(Value::take)
        .filter(|value| !value.is_null())
        .ok_or_else(|| NormalizeError::invalid("data", "is required"))?;
    if !data_value.is_object() {
        return Err(NormalizeError::invalid("data", "must be an object"));
    }
    let data: Data = parse_at("data", &data_value)?;
    let raw_user = data_value
        .get_mut("user")
        .map(Value::take)
        .filter(|value| !value.is_null())
        .ok_or_else(|| NormalizeError::invalid("data.user", "is required"))?;
    if !raw_user.is_object() {
        return Err(NormalizeError::invalid("data.user", "must be an object"));
    }

    // The previous state is undone from the raw user while it is still a document (it then
    // becomes `remote_data`, as text). A change list rollcall cannot undo leaves the previous
    // state unknown rather than wrong.
    let previous_raw = match (event_type, data_value.get("changes")) {
        (EventType::Updated, Some(changes)) => changes::previous_user(&raw_user, changes),
        _ => None,
    };
    let purged = event_type == EventType::Deleted;
    let user = map_user(raw_user, "data.user", purged)?;

    let (previous, field_changes) = match (event_type, data_value.get("changes")) {
        (EventType::Updated, Some(changes)) if !changes.is_null() => {
            if !changes.is_object() {
                return Err(NormalizeError::invalid("data.changes", "must be an object"));
            }
            match previous_raw.and_then(|before| map_user(before, "data.changes", false).ok()) {
                Some(previous) => {
                    let field_changes = diff_users(&previous, &user);
                    (Some(previous), Some(field_changes))
                }
                None => (None, None),
            }
        }
        _ => (None, None),
    };

    let vendor_event = VendorEvent {
        id: None,
        event_type: event,
        occurred_at,
    };
    let mut unified = delivery.new_event(CONNECTOR_NAME, 0, event_type, vendor_event, user);
    unified.actor = data.actor.and_then(actor);
    unified.previous = previous;
    unified.changes = field_changes;
    Ok(vec![unified])
}

fn actor(actor: VendorActor) -> Option<Actor> {
    (actor.id.is_some() || actor.name.is_some()).then_some(Actor {
        id: actor.id,
        name: actor.name,
    })
}

/// Maps a Freshservice user object (`data.user`, or a previous version rebuilt from
/// `data.changes`) to the unified user; `raw` itself becomes `remote_data`. `prefix` is where
/// `raw` sits in the payload, for error paths. `purged` says the event is a GDPR deletion
/// (onUserDelete).
pub fn map_user(raw: Value, prefix: &str, purged: bool) -> Result<User, NormalizeError> {
    let vendor: VendorUser = parse_at(prefix, &raw)?;
    let id = vendor
        .id
        .clone()
        .ok_or_else(|| NormalizeError::invalid(format!("{prefix}.id"), "is required"))?;
    let remote_data = Some(RemoteData::from(raw));

    // A forgotten user is purged: Freshservice keeps only a placeholder record ("Forgotten
    // User", emptied fields, leftovers). Nothing of it describes the person, so only the id,
    // the status and the record's timestamps are mapped.
    if purged || vendor.forgotten == Some(true) {
        return Ok(User {
            id,
            status: Some(UserStatus::Deleted),
            created_at: vendor.created_at,
            updated_at: vendor.updated_at,
            remote_data,
            ..User::default()
        });
    }

    Ok(User {
        id,
        first_name: vendor.first_name.clone(),
        last_name: vendor.last_name.clone(),
        title: vendor.job_title.clone(),
        emails: emails(&vendor),
        phones: phones(&vendor),
        status: status(&vendor),
        roles: non_empty(roles(&vendor)),
        organizations: non_empty(organizations(&vendor)),
        workspace: workspace(&vendor),
        groups: non_empty(groups(&vendor)),
        timezone: vendor.time_zone.as_deref().map(timezone),
        languages: vendor.language.clone().map(|language| vec![language]),
        created_at: vendor.created_at,
        updated_at: vendor.updated_at,
        remote_data,
        ..User::default()
    })
}

/// deleted or forgotten -> deleted; not active -> inactive; active -> active; absent when
/// Freshservice says nothing.
pub fn status(user: &VendorUser) -> Option<UserStatus> {
    if user.forgotten == Some(true) || user.deleted == Some(true) {
        return Some(UserStatus::Deleted);
    }
    match user.active {
        Some(true) => Some(UserStatus::Active),
        Some(false) => Some(UserStatus::Inactive),
        None => None,
    }
}

/// The IANA name of a Rails zone (`Chennai` -> `Asia/Kolkata`); an unknown name is kept as
/// sent.
pub fn timezone(rails: &str) -> String {
    rollcall_core::timezone::to_iana(rails)
        .unwrap_or(rails)
        .to_owned()
}

/// `primary_email` (primary) then `secondary_emails`, without repeating the primary address.
fn emails(user: &VendorUser) -> Option<Vec<Email>> {
    let mut emails = Vec::new();
    if let Some(primary) = &user.primary_email {
        emails.push(Email {
            email: primary.clone(),
            email_type: None,
            is_primary: Some(true),
        });
    }
    for secondary in &user.secondary_emails {
        let known = emails
            .iter()
            .any(|email| email.email.eq_ignore_ascii_case(secondary));
        if !known {
            emails.push(Email {
                email: secondary.clone(),
                email_type: None,
                is_primary: Some(false),
            });
        }
    }
    non_empty(emails)
}

/// `work_phone_number` (type `work`) and `mobile_phone_number` (type `mobile`).
fn phones(user: &VendorUser) -> Option<Vec<Phone>> {
    let phones: Vec<Phone> = [
        (&user.work_phone_number, "work"),
        (&user.mobile_phone_number, "mobile"),
    ]
    .into_iter()
    .filter_map(|(number, kind)| {
        number.as_ref().map(|number| Phone {
            number: number.clone(),
            extension: None,
            phone_type: Some(kind.to_owned()),
        })
    })
    .collect();
    non_empty(phones)
}

/// Account-wide roles, then per-workspace roles, then the reference layout's roles, then the
/// license type as a role of its own.
fn roles(user: &VendorUser) -> Vec<Role> {
    let mut roles = Vec::new();
    let mut push = |role: Role| {
        if !roles.contains(&role) {
            roles.push(role);
        }
    };
    if let Some(access) = &user.agent_access {
        if let Some(account_wide) = &access.account_wide_access {
            for role in &account_wide.account_wide_roles {
                push(role_of(role, None));
            }
        }
        for entry in &access.workspace_access {
            let workspace = entry
                .workspace_name
                .clone()
                .or_else(|| entry.workspace_id.clone());
            for role in &entry.roles {
                push(role_of(role, workspace.clone()));
            }
        }
        for role in &access.roles {
            push(role_of(role, None));
        }
    }
    if let Some(license) = &user.license_type {
        push(Role {
            name: Some(license.clone()),
            ..Role::default()
        });
    }
    roles
}

/// A Freshservice role; its workspace is the role's own workspace name (else id), else the
/// workspace entry it was listed under.
fn role_of(role: &VendorRole, listed_under: Option<String>) -> Role {
    Role {
        id: role.id.clone(),
        name: role.name.clone(),
        group: role.group_id.clone(),
        organization: None,
        workspace: role
            .workspace_name
            .clone()
            .or_else(|| role.workspace_id.clone())
            .or(listed_under),
    }
}

/// Every group the user is attached to: agent groups as member or observer (account-wide,
/// per workspace, or in the reference layout), then requester groups. One entry per group id.
fn groups(user: &VendorUser) -> Vec<Group> {
    let mut lists: Vec<&[VendorGroup]> = Vec::new();
    if let Some(access) = &user.agent_access {
        if let Some(account_wide) = &access.account_wide_access {
            lists.push(&account_wide.member_of_groups);
            lists.push(&account_wide.observer_of_groups);
        }
        for entry in &access.workspace_access {
            lists.push(&entry.member_of_groups);
            lists.push(&entry.observer_of_groups);
            lists.push(&entry.groups);
        }
        lists.push(&access.groups);
    }
    lists.push(&user.groups);
    if let Some(access) = &user.requester_access {
        if let Some(account_wide) = &access.account_wide_access {
            lists.push(&account_wide.requester_groups);
        }
        lists.push(&access.requester_groups);
    }

    let mut groups: Vec<Group> = Vec::new();
    for group in lists.into_iter().flatten() {
        if group.id.is_none() && group.name.is_none() {
            continue;
        }
        let seen = groups.iter().any(|known| match (&known.id, &group.id) {
            (Some(known), Some(id)) => known == id,
            _ => known.name == group.name && known.id == group.id,
        });
        if !seen {
            groups.push(Group {
                id: group.id.clone(),
                name: group.name.clone(),
                organization: None,
            });
        }
    }
    groups
}

/// Departments (called companies in Freshservice for MSPs): `department_ids` paired with
/// `department_names` by position when both lists have the same length; otherwise the ids
/// alone, or the names alone when there are no ids.
fn organizations(user: &VendorUser) -> Vec<Organization> {
    let ids = &user.department_ids;
    let names = &user.department_names;
    if ids.len() == names.len() {
        ids.iter()
            .zip(names)
            .map(|(id, name)| Organization {
                id: Some(id.clone()),
                name: Some(name.clone()),
            })
            .collect()
    } else if !ids.is_empty() {
        ids.iter()
            .map(|id| Organization {
                id: Some(id.clone()),
                name: None,
            })
            .collect()
    } else {
        names
            .iter()
            .map(|name| Organization {
                id: None,
                name: Some(name.clone()),
            })
            .collect()
    }
}

/// The one workspace the user belongs to (`belongs_to_workspace_ids`, `workspace_access`),
/// named from any workspace-scoped role, group or access entry. Absent when the user belongs
/// to none or to several.
fn workspace(user: &VendorUser) -> Option<Workspace> {
    let mut ids: Vec<&String> = user.belongs_to_workspace_ids.iter().collect();
    if let Some(access) = &user.agent_access {
        ids.extend(
            access
                .workspace_access
                .iter()
                .filter_map(|entry| entry.workspace_id.as_ref()),
        );
    }
    ids.sort();
    ids.dedup();
    let [id] = ids.as_slice() else {
        return None;
    };
    Some(Workspace {
        id: Some((*id).clone()),
        name: workspace_name(user, id),
        organization: None,
    })
}

fn workspace_name(user: &VendorUser, id: &str) -> Option<String> {
    let access = user.agent_access.as_ref();
    let entries = access
        .into_iter()
        .flat_map(|access| &access.workspace_access);
    let named = |workspace_id: &Option<String>, name: &Option<String>| {
        (workspace_id.as_deref() == Some(id))
            .then(|| name.clone())
            .flatten()
    };
    let from_entries = entries
        .clone()
        .find_map(|entry| named(&entry.workspace_id, &entry.workspace_name));
    let roles = access
        .into_iter()
        .flat_map(|access| {
            access.roles.iter().chain(
                access
                    .workspace_access
                    .iter()
                    .flat_map(|entry| &entry.roles),
            )
        })
        .find_map(|role| named(&role.workspace_id, &role.workspace_name));
    let groups = access
        .into_iter()
        .flat_map(|access| {
            access
                .groups
                .iter()
                .chain(entries.clone().flat_map(|e| &e.groups))
        })
        .chain(&user.groups)
        .find_map(|group| named(&group.workspace_id, &group.workspace_name));
    from_entries.or(roles).or(groups)
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(raw: Value) -> User {
        map_user(raw, "data.user", false).unwrap()
    }

    #[test]
    fn rails_zones_become_iana_and_unknown_zones_are_kept() {
        assert_eq!(timezone("Chennai"), "Asia/Kolkata");
        assert_eq!(timezone("Mumbai"), "Asia/Kolkata");
        assert_eq!(timezone("Atlantis Standard"), "Atlantis Standard");
    }

    #[test]
    fn status_follows_forgotten_then_deleted_then_active() {
        let status = |raw: Value| user(raw).status;
        assert_eq!(
            status(json!({"id": 1, "active": true})),
            Some(UserStatus::Active)
        );
        assert_eq!(
            status(json!({"id": 1, "active": false})),
            Some(UserStatus::Inactive)
        );
        assert_eq!(
            status(json!({"id": 1, "active": true, "deleted": true})),
            Some(UserStatus::Deleted)
        );
        assert_eq!(status(json!({"id": 1})), None);
    }

    #[test]
    fn a_forgotten_user_keeps_only_id_status_and_record_times() {
        let mapped = user(json!({
            "id": 93, "forgotten": true, "first_name": "Forgotten User",
            "secondary_emails": ["left@over.example"], "language": "en",
            "updated_at": "2023-05-19T12:22:56+05:30"
        }));
        assert_eq!(mapped.first_name, None);
        assert_eq!(mapped.emails, None);
        assert_eq!(mapped.languages, None);
        assert_eq!(mapped.status, Some(UserStatus::Deleted));
        assert_eq!(
            mapped.updated_at.unwrap().to_string(),
            "2023-05-19T06:52:56Z"
        );
    }

    #[test]
    fn the_primary_address_is_not_repeated_as_a_secondary() {
        let mapped = user(json!({
            "id": 1, "primary_email": "a@x.example",
            "secondary_emails": ["A@x.example", "b@x.example"]
        }));
        let emails: Vec<_> = mapped
            .emails
            .unwrap()
            .into_iter()
            .map(|e| e.email)
            .collect();
        assert_eq!(emails, ["a@x.example", "b@x.example"]);
    }

    #[test]
    fn departments_pair_by_position_only_when_the_lists_match() {
        let mapped = user(json!({"id": 1, "department_ids": [1, 2], "department_names": ["A"]}));
        let organizations = mapped.organizations.unwrap();
        assert_eq!(organizations.len(), 2);
        assert!(organizations.iter().all(|o| o.name.is_none()));
    }

    #[test]
    fn several_workspaces_leave_the_single_workspace_field_absent() {
        let mapped = user(json!({"id": 1, "belongs_to_workspace_ids": [2, 3]}));
        assert_eq!(mapped.workspace, None);
        let mapped = user(json!({"id": 1, "belongs_to_workspace_ids": [2, "2"]}));
        assert_eq!(mapped.workspace.unwrap().id.as_deref(), Some("2"));
    }
}
