//! Zendesk payloads to unified users and events, as plain functions.
//!
//! A webhook's `detail` gives the user (without name or phone, so every webhook event is
//! `partial`), and `event` the value that changed: rollcall applies `event.current` to the
//! user and lists the unified fields the change touches, built from `event.previous` and
//! `event.current` (via [`diff_users`] on two users holding only those fields). Types whose
//! change touches no unified field (tags, notes, alias...) report `changes: []`. `previous`
//! stays absent: no Zendesk payload carries the whole previous state.

use rollcall_core::{
    diff_users, Delivery, Email, EventType, FieldChange, Group, NormalizeError, Organization,
    Phone, RemoteData, Role, Url, User, UserEvent, UserStatus, VendorEvent,
};
use serde_json::Value;

use crate::payload::{
    self, BareUser, FlagChange, GroupMembership, IdChange, Identity, IdentityChange, IdentityEvent,
    OrganizationMembership, Payload, Reference, SupportUser, TextChange, ValueChange, WebhookEvent,
};

/// The connector name events carry.
pub const CONNECTOR: &str = "zendesk";

/// `vendor_event.type` of an event built from a bare Support user object, which has no event
/// type of its own.
pub const BARE_USER_EVENT_TYPE: &str = "zendesk.user";

/// What a Zendesk user event type means for rollcall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Created,
    Deleted,
    ActiveChanged,
    SuspendedChanged,
    NameChanged,
    RoleChanged,
    CustomRoleChanged,
    TimeZoneChanged,
    PhotoChanged,
    DefaultGroupChanged,
    IdentityCreated,
    IdentityChanged,
    IdentityDeleted,
    GroupMembershipCreated,
    GroupMembershipDeleted,
    OrganizationMembershipCreated,
    OrganizationMembershipDeleted,
    /// A change to a field with no unified counterpart (tags, notes, alias, password...).
    NoUnifiedField,
}

/// Every Zendesk user event type (without the `zen:event-type:` prefix) and its meaning.
pub const USER_EVENT_KINDS: &[(&str, Kind)] = &[
    ("user.active_changed", Kind::ActiveChanged),
    ("user.alias_changed", Kind::NoUnifiedField),
    ("user.created", Kind::Created),
    ("user.custom_field_changed", Kind::NoUnifiedField),
    ("user.custom_role_changed", Kind::CustomRoleChanged),
    ("user.default_group_changed", Kind::DefaultGroupChanged),
    ("user.deleted", Kind::Deleted),
    ("user.details_changed", Kind::NoUnifiedField),
    ("user.external_id_changed", Kind::NoUnifiedField),
    (
        "user.group_membership_created",
        Kind::GroupMembershipCreated,
    ),
    (
        "user.group_membership_deleted",
        Kind::GroupMembershipDeleted,
    ),
    ("user.identity_changed", Kind::IdentityChanged),
    ("user.identity_created", Kind::IdentityCreated),
    ("user.identity_deleted", Kind::IdentityDeleted),
    ("user.last_login_changed", Kind::NoUnifiedField),
    ("user.merged", Kind::NoUnifiedField),
    ("user.name_changed", Kind::NameChanged),
    ("user.notes_changed", Kind::NoUnifiedField),
    ("user.only_private_comments_changed", Kind::NoUnifiedField),
    (
        "user.organization_membership_created",
        Kind::OrganizationMembershipCreated,
    ),
    (
        "user.organization_membership_deleted",
        Kind::OrganizationMembershipDeleted,
    ),
    ("user.password_changed", Kind::NoUnifiedField),
    ("user.photo_changed", Kind::PhotoChanged),
    ("user.role_changed", Kind::RoleChanged),
    ("user.suspended_changed", Kind::SuspendedChanged),
    ("user.tags_changed", Kind::NoUnifiedField),
    ("user.time_zone_changed", Kind::TimeZoneChanged),
];

/// The meaning of a user event type without its prefix (`user.created`).
pub fn kind_of(short_type: &str) -> Option<Kind> {
    USER_EVENT_KINDS
        .iter()
        .find(|(name, _)| *name == short_type)
        .map(|(_, kind)| *kind)
}

/// Maps a delivery's body to unified events.
pub fn normalize(delivery: &Delivery) -> Result<Vec<UserEvent>, NormalizeError> {
    match payload::parse_delivery(delivery)? {
        Payload::Webhook(event) => webhook_event(delivery, *event).map(|event| vec![event]),
        Payload::User(bare) => bare_user_event(delivery, *bare).map(|event| vec![event]),
    }
}

/// One event from a bare Support user: a snapshot, so `user.updated` (or `user.deleted` when
/// the user is no longer active), with no `changes`.
fn bare_user_event(delivery: &Delivery, bare: BareUser) -> Result<UserEvent, NormalizeError> {
    let BareUser {
        user,
        raw,
        path_prefix,
    } = bare;
    let id = user
        .id
        .clone()
        .ok_or_else(|| NormalizeError::invalid(format!("{path_prefix}id"), "missing user id"))?;
    let unified = user_from_support(&user, id, raw.into());
    let event_type = if unified.status == Some(UserStatus::Deleted) {
        EventType::Deleted
    } else {
        EventType::Updated
    };
    let vendor_event = VendorEvent {
        id: None,
        event_type: BARE_USER_EVENT_TYPE.to_owned(),
        occurred_at: user.updated_at,
    };
    Ok(delivery.new_event(CONNECTOR, 0, event_type, vendor_event, unified))
}

/// One event from a webhook envelope. Takes it by value: `detail` and `event` as received
/// move into `remote_data` instead of being copied.
fn webhook_event(
    delivery: &Delivery,
    mut event: WebhookEvent,
) -> Result<UserEvent, NormalizeError> {
    let kind = event
        .short_type()
        .and_then(kind_of)
        .ok_or_else(|| NormalizeError::unsupported(event.event_type.clone()))?;
    let subject_user_id = event.subject_user_id();
    let detail = event
        .detail
        .as_ref()
        .ok_or_else(|| NormalizeError::invalid("detail", "missing user detail"))?;
    let id = detail
        .id
        .clone()
        .or(subject_user_id)
        .ok_or_else(|| NormalizeError::invalid("detail.id", "missing user id"))?;
    let remote_data = event
        .remote_data
        .take()
        .unwrap_or_else(|| RemoteData::from(Value::Object(serde_json::Map::new())));
    let mut user = user_from_support(detail, id, remote_data);

    let (event_type, changes) = apply_event(kind, &event.event, &mut user)?;
    let vendor_event = VendorEvent {
        id: event.id,
        event_type: event.event_type,
        occurred_at: event.time,
    };
    let mut unified = delivery.new_event(CONNECTOR, 0, event_type, vendor_event, user);
    unified.changes = changes;
    unified.partial = true;
    Ok(unified)
}

/// Applies what `event` says changed to `user`; returns the unified event type and the
/// changes (`None` when the event does not say enough to know them).
fn apply_event(
    kind: Kind,
    event: &Value,
    user: &mut User,
) -> Result<(EventType, Option<Vec<FieldChange>>), NormalizeError> {
    let mut before = User::with_id(user.id.clone());
    let mut after = User::with_id(user.id.clone());
    match kind {
        Kind::Created => {
            // Zendesk creates users active; suspension is a flag of its own, which `detail`
            // states when it is set (and `user_from_support` has read).
            if user.status.is_none() {
                user.status = Some(UserStatus::Active);
            }
            return Ok((EventType::Created, None));
        }
        Kind::Deleted => {
            user.status = Some(UserStatus::Deleted);
            return Ok((EventType::Deleted, None));
        }
        Kind::NoUnifiedField => return Ok((EventType::Updated, Some(Vec::new()))),
        Kind::ActiveChanged => {
            let change: FlagChange = payload::parse_event(event)?;
            let current = change.current.ok_or_else(|| {
                NormalizeError::invalid("event.current", "missing the new active flag")
            })?;
            if !current {
                // Zendesk deletes a user by deactivating it.
                user.status = Some(UserStatus::Deleted);
                return Ok((EventType::Deleted, None));
            }
            before.status = change.previous.map(status_from_active);
            after.status = Some(UserStatus::Active);
        }
        Kind::SuspendedChanged => {
            let change: FlagChange = payload::parse_event(event)?;
            let Some(current) = change.current else {
                return Ok((EventType::Updated, None));
            };
            before.status = change.previous.map(status_from_suspended);
            after.status = Some(status_from_suspended(current));
        }
        Kind::NameChanged => {
            let change: TextChange = payload::parse_event(event)?;
            before.name = change.previous;
            after.name = change.current;
        }
        Kind::RoleChanged => {
            let change: TextChange = payload::parse_event(event)?;
            before.roles = change.previous.map(role_named);
            after.roles = change.current.map(role_named);
        }
        Kind::CustomRoleChanged => {
            let change: ValueChange = payload::parse_event(event)?;
            let role_name = first_role_name(user);
            before.roles = custom_role(Reference::from_value(&change.previous), &role_name);
            after.roles = custom_role(Reference::from_value(&change.current), &role_name);
        }
        Kind::TimeZoneChanged => {
            let change: TextChange = payload::parse_event(event)?;
            before.timezone = change.previous.as_deref().map(unified_timezone);
            after.timezone = change.current.as_deref().map(unified_timezone);
        }
        Kind::PhotoChanged => {
            let change: ValueChange = payload::parse_event(event)?;
            before.avatar = payload::photo_url(&change.previous);
            after.avatar = payload::photo_url(&change.current);
            if before.avatar.is_none() && after.avatar.is_none() {
                return Ok((EventType::Updated, None));
            }
        }
        Kind::DefaultGroupChanged => {
            // The default group is one of the agent's groups before and after the change, so
            // the memberships (`groups`) do not change; the user names the new default group.
            let change: IdChange = payload::parse_event(event)?;
            if let Some(current) = change.current {
                user.groups = Some(vec![group(current)]);
            }
            return Ok((EventType::Updated, Some(Vec::new())));
        }
        Kind::IdentityCreated | Kind::IdentityDeleted => {
            let change: IdentityEvent = payload::parse_event(event)?;
            let Some(identity) = change.identity else {
                return Ok((EventType::Updated, None));
            };
            let (gone, present) = if kind == Kind::IdentityCreated {
                (None, Some(identity))
            } else {
                (Some(identity), None)
            };
            identity_delta(
                user,
                gone.as_ref(),
                present.as_ref(),
                &mut before,
                &mut after,
            );
        }
        Kind::IdentityChanged => {
            let change: IdentityChange = payload::parse_event(event)?;
            if change.current.is_none() && change.previous.is_none() {
                return Ok((EventType::Updated, None));
            }
            identity_delta(
                user,
                change.previous.as_ref(),
                change.current.as_ref(),
                &mut before,
                &mut after,
            );
        }
        Kind::GroupMembershipCreated | Kind::GroupMembershipDeleted => {
            let membership: GroupMembership = payload::parse_event(event)?;
            let Some(id) = membership.group.and_then(|group| group.id) else {
                return Ok((EventType::Updated, None));
            };
            let added = kind == Kind::GroupMembershipCreated;
            let known: Vec<String> = group_ids(user);
            let (without, with) = membership_lists(known, &id);
            before.groups = non_empty(if added { &without } else { &with }, group);
            after.groups = non_empty(if added { &with } else { &without }, group);
            if !added {
                // `detail` may still name the removed group (as the default group); the user
                // states what is left, even nothing, so the directory removes it.
                user.groups = Some(without.into_iter().map(group).collect());
            }
        }
        Kind::OrganizationMembershipCreated | Kind::OrganizationMembershipDeleted => {
            let membership: OrganizationMembership = payload::parse_event(event)?;
            let Some(id) = membership
                .organization
                .and_then(|organization| organization.id)
            else {
                return Ok((EventType::Updated, None));
            };
            let added = kind == Kind::OrganizationMembershipCreated;
            let known: Vec<String> = organization_ids(user);
            let (without, with) = membership_lists(known, &id);
            before.organizations = non_empty(if added { &without } else { &with }, organization);
            after.organizations = non_empty(if added { &with } else { &without }, organization);
            if !added {
                // As for groups: `detail.organization_id` may still be the removed one.
                user.organizations = Some(without.into_iter().map(organization).collect());
            }
        }
    }
    let changes = diff_users(&before, &after);
    overlay(user, after);
    Ok((EventType::Updated, Some(changes)))
}

/// The unified user for a Support user object (or a webhook's `detail`).
pub fn user_from_support(source: &SupportUser, id: String, raw: RemoteData) -> User {
    User {
        id,
        name: source.name.clone(),
        emails: source.email.clone().map(|email| {
            vec![Email {
                email,
                email_type: None,
                is_primary: Some(true),
            }]
        }),
        phones: source.phone.clone().map(|number| {
            vec![Phone {
                number,
                extension: None,
                phone_type: None,
            }]
        }),
        status: status_of(source),
        roles: roles_of(source),
        organizations: source
            .organization_id
            .clone()
            .map(|id| vec![organization(id)]),
        groups: source.default_group_id.clone().map(|id| vec![group(id)]),
        avatar: source
            .photo
            .as_ref()
            .and_then(|photo| photo.content_url.clone()),
        timezone: source
            .iana_time_zone
            .clone()
            .or_else(|| source.time_zone.as_deref().map(unified_timezone)),
        languages: source.locale.clone().map(|locale| vec![locale]),
        created_at: source.created_at,
        updated_at: source.updated_at,
        urls: source.url.clone().map(|url| {
            vec![Url {
                url,
                url_type: Some("api".to_owned()),
            }]
        }),
        remote_data: Some(raw),
        ..User::default()
    }
}

/// `active: false` is deleted (Zendesk deletes by deactivating), `suspended: true` inactive,
/// otherwise active; nothing when the object says neither.
fn status_of(source: &SupportUser) -> Option<UserStatus> {
    match (source.active, source.suspended) {
        (Some(false), _) => Some(UserStatus::Deleted),
        (_, Some(true)) => Some(UserStatus::Inactive),
        (Some(true), _) | (None, Some(false)) => Some(UserStatus::Active),
        (None, None) => None,
    }
}

fn status_from_active(active: bool) -> UserStatus {
    if active {
        UserStatus::Active
    } else {
        UserStatus::Deleted
    }
}

fn status_from_suspended(suspended: bool) -> UserStatus {
    if suspended {
        UserStatus::Inactive
    } else {
        UserStatus::Active
    }
}

/// `role` is the role's name; an agent in a custom role also has its id.
fn roles_of(source: &SupportUser) -> Option<Vec<Role>> {
    if source.role.is_none() && source.custom_role_id.is_none() {
        return None;
    }
    Some(vec![Role {
        id: source.custom_role_id.clone(),
        name: source.role.clone(),
        ..Role::default()
    }])
}

fn role_named(name: String) -> Vec<Role> {
    vec![Role {
        name: Some(name),
        ..Role::default()
    }]
}

fn first_role_name(user: &User) -> Option<String> {
    user.roles
        .as_ref()
        .and_then(|roles| roles.first())
        .and_then(|role| role.name.clone())
}

/// The user's role with a custom role's id (and name, if the event gives one over the role
/// name from `detail`).
fn custom_role(reference: Option<Reference>, role_name: &Option<String>) -> Option<Vec<Role>> {
    let (id, name) = match reference {
        Some(reference) => (reference.id, reference.name.or_else(|| role_name.clone())),
        None => (None, role_name.clone()),
    };
    if id.is_none() && name.is_none() {
        return None;
    }
    Some(vec![Role {
        id,
        name,
        ..Role::default()
    }])
}

/// The IANA name of a Zendesk (Rails) time-zone name, or the name as sent when it has none.
fn unified_timezone(name: &str) -> String {
    rollcall_core::timezone::to_iana(name)
        .unwrap_or(name)
        .to_owned()
}

fn group(id: String) -> Group {
    Group {
        id: Some(id),
        ..Group::default()
    }
}

fn organization(id: String) -> Organization {
    Organization {
        id: Some(id),
        name: None,
    }
}

fn group_ids(user: &User) -> Vec<String> {
    user.groups
        .iter()
        .flatten()
        .filter_map(|group| group.id.clone())
        .collect()
}

fn organization_ids(user: &User) -> Vec<String> {
    user.organizations
        .iter()
        .flatten()
        .filter_map(|organization| organization.id.clone())
        .collect()
}

/// The known memberships without and with `id`.
fn membership_lists(known: Vec<String>, id: &str) -> (Vec<String>, Vec<String>) {
    let without: Vec<String> = known.into_iter().filter(|known| known != id).collect();
    let mut with = without.clone();
    with.push(id.to_owned());
    (without, with)
}

fn non_empty<T>(ids: &[String], make: fn(String) -> T) -> Option<Vec<T>> {
    (!ids.is_empty()).then(|| ids.iter().cloned().map(make).collect())
}

/// Emails or phones before and after an identity change: the ones the payload names (the
/// primary email from `detail`), without `gone` and with `present`. Identity types with no
/// unified field (social accounts, agent forwarding...) leave both users untouched, which
/// reports no change.
fn identity_delta(
    user: &User,
    gone: Option<&Identity>,
    present: Option<&Identity>,
    before: &mut User,
    after: &mut User,
) {
    let identity_type = present
        .or(gone)
        .and_then(|identity| identity.identity_type.as_deref())
        .unwrap_or("");
    match identity_type {
        "email" => {
            let known = user.emails.clone().unwrap_or_default();
            let after_emails = with_email(without_email(known, gone), present);
            let before_emails = with_email(without_email(after_emails.clone(), present), gone);
            before.emails = (!before_emails.is_empty()).then_some(before_emails);
            after.emails = (!after_emails.is_empty()).then_some(after_emails);
        }
        "phone_number" | "phone" => {
            let known = user.phones.clone().unwrap_or_default();
            let after_phones = with_phone(without_phone(known, gone), present);
            let before_phones = with_phone(without_phone(after_phones.clone(), present), gone);
            before.phones = (!before_phones.is_empty()).then_some(before_phones);
            after.phones = (!after_phones.is_empty()).then_some(after_phones);
        }
        _ => {}
    }
}

fn without_email(emails: Vec<Email>, identity: Option<&Identity>) -> Vec<Email> {
    let Some(value) = identity.and_then(|identity| identity.value.as_deref()) else {
        return emails;
    };
    emails
        .into_iter()
        .filter(|email| !email.email.eq_ignore_ascii_case(value))
        .collect()
}

fn with_email(mut emails: Vec<Email>, identity: Option<&Identity>) -> Vec<Email> {
    let Some(identity) = identity else {
        return emails;
    };
    let Some(value) = identity.value.clone() else {
        return emails;
    };
    match emails
        .iter_mut()
        .find(|email| email.email.eq_ignore_ascii_case(&value))
    {
        Some(known) => {
            if identity.primary.is_some() {
                known.is_primary = identity.primary;
            }
        }
        None => emails.push(Email {
            email: value,
            email_type: None,
            is_primary: identity.primary,
        }),
    }
    emails
}

fn without_phone(phones: Vec<Phone>, identity: Option<&Identity>) -> Vec<Phone> {
    let Some(value) = identity.and_then(|identity| identity.value.as_deref()) else {
        return phones;
    };
    phones
        .into_iter()
        .filter(|phone| phone.number != value)
        .collect()
}

fn with_phone(mut phones: Vec<Phone>, identity: Option<&Identity>) -> Vec<Phone> {
    if let Some(value) = identity.and_then(|identity| identity.value.clone()) {
        if !phones.iter().any(|phone| phone.number == value) {
            phones.push(Phone {
                number: value,
                extension: None,
                phone_type: None,
            });
        }
    }
    phones
}

/// Copies every field `after` holds onto `user`.
fn overlay(user: &mut User, after: User) {
    let User {
        id: _,
        first_name,
        last_name,
        title,
        name,
        username,
        emails,
        phones,
        status,
        roles,
        organizations,
        workspace,
        groups,
        avatar,
        timezone,
        languages,
        created_at,
        updated_at,
        urls,
        remote_data: _,
    } = after;
    macro_rules! take {
        ($($field:ident),*) => {
            $(if $field.is_some() { user.$field = $field; })*
        };
    }
    take!(
        first_name,
        last_name,
        title,
        name,
        username,
        emails,
        phones,
        status,
        roles,
        organizations,
        workspace,
        groups,
        avatar,
        timezone,
        languages,
        created_at,
        updated_at,
        urls
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_event_type_is_listed_once() {
        let mut names: Vec<_> = USER_EVENT_KINDS.iter().map(|(name, _)| *name).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
        assert_eq!(count, 27);
    }

    #[test]
    fn status_follows_active_then_suspended() {
        let user = |active, suspended| SupportUser {
            active,
            suspended,
            ..SupportUser::default()
        };
        assert_eq!(
            status_of(&user(Some(false), Some(true))),
            Some(UserStatus::Deleted)
        );
        assert_eq!(
            status_of(&user(Some(true), Some(true))),
            Some(UserStatus::Inactive)
        );
        assert_eq!(
            status_of(&user(Some(true), Some(false))),
            Some(UserStatus::Active)
        );
        assert_eq!(status_of(&user(None, None)), None);
    }

    #[test]
    fn unknown_time_zone_names_are_kept_as_sent() {
        assert_eq!(
            unified_timezone("Eastern Time (US & Canada)"),
            "America/New_York"
        );
        assert_eq!(unified_timezone("Atlantis Standard"), "Atlantis Standard");
    }
}
