//! HighLevel user payload -> unified user and event.
//!
//! Plain functions; every decision is written in `docs/connectors/highlevel.md`.

use rollcall_core::{
    Email, EventType, Group, NormalizeError, Organization, Phone, Role, User, UserStatus,
    VendorEvent, Workspace,
};
use serde_json::{Map, Value};

use crate::payload::{self, UserPayload, ENVELOPE_KEYS};

/// The unified event type for a HighLevel `type`, in both spellings HighLevel uses
/// (`UserCreate` on its webhook pages, `user.created` on its help center).
pub fn event_type_for(vendor_type: &str) -> Option<EventType> {
    match vendor_type {
        "UserCreate" | "user.created" => Some(EventType::Created),
        "UserUpdate" | "user.updated" => Some(EventType::Updated),
        "UserDelete" | "user.deleted" => Some(EventType::Deleted),
        _ => None,
    }
}

/// The vendor event: `webhookId`, `type` as sent, and `timestamp` as `occurred_at`.
pub fn vendor_event(
    vendor_type: &str,
    payload: &UserPayload,
) -> Result<VendorEvent, NormalizeError> {
    let occurred_at = payload::read_timestamp(payload.timestamp.as_ref())
        .map_err(|message| NormalizeError::invalid("timestamp", message))?;
    Ok(VendorEvent {
        id: payload.webhook_id.clone(),
        event_type: vendor_type.to_owned(),
        occurred_at,
    })
}

/// The unified user for a payload. `object` is the body as received, for `remote_data`.
pub fn user(
    event_type: EventType,
    payload: &UserPayload,
    object: &Map<String, Value>,
) -> Result<User, NormalizeError> {
    let id = payload
        .id
        .clone()
        .ok_or_else(|| NormalizeError::invalid("id", "missing field `id`"))?;
    let location = payload.location_id.clone();
    let company = payload.company_id.clone();
    Ok(User {
        id,
        first_name: payload.first_name.clone(),
        last_name: payload.last_name.clone(),
        // HighLevel sends first and last name only; rollcall does not compose `name`.
        emails: payload.email.as_ref().map(|email| {
            vec![Email {
                email: email.clone(),
                email_type: None,
                is_primary: Some(true),
            }]
        }),
        phones: payload.phone.as_ref().map(|number| {
            vec![Phone {
                number: number.clone(),
                extension: payload.extension.clone(),
                phone_type: None,
            }]
        }),
        // HighLevel sends no status; only a delete says something about it.
        status: (event_type == EventType::Deleted).then_some(UserStatus::Deleted),
        roles: roles(
            payload.role.as_deref(),
            location.as_deref(),
            company.as_deref(),
        ),
        organizations: company.as_ref().map(|id| {
            vec![Organization {
                id: Some(id.clone()),
                name: None,
            }]
        }),
        workspace: location.as_ref().map(|id| Workspace {
            id: Some(id.clone()),
            name: None,
            organization: company.clone(),
        }),
        groups: groups(&payload.locations, company.as_deref()),
        remote_data: Some(remote_data(object).into()),
        ..User::default()
    })
}

/// The user's one role, scoped where HighLevel says it applies: the sub-account
/// (`locationId`) for sub-account users, else the agency (`companyId`) for agency users.
fn roles(role: Option<&str>, location: Option<&str>, company: Option<&str>) -> Option<Vec<Role>> {
    let name = role?;
    let (workspace, organization) = match (location, company) {
        (Some(location), _) => (Some(location.to_owned()), None),
        (None, Some(company)) => (None, Some(company.to_owned())),
        (None, None) => (None, None),
    };
    Some(vec![Role {
        id: None,
        name: Some(name.to_owned()),
        group: None,
        organization,
        workspace,
    }])
}

/// One group per sub-account in `locations[]`, owned by the agency when it is known.
fn groups(locations: &[String], company: Option<&str>) -> Option<Vec<Group>> {
    let groups: Vec<Group> = locations
        .iter()
        .filter(|id| !id.trim().is_empty())
        .map(|id| Group {
            id: Some(id.clone()),
            name: None,
            organization: company.map(str::to_owned),
        })
        .collect();
    (!groups.is_empty()).then_some(groups)
}

/// The body minus the envelope keys: the user object as HighLevel sent it.
fn remote_data(object: &Map<String, Value>) -> Value {
    let user: Map<String, Value> = object
        .iter()
        .filter(|(key, _)| !ENVELOPE_KEYS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Value::Object(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> (UserPayload, Map<String, Value>) {
        let payload = serde_json::from_value(value.clone()).unwrap();
        let Value::Object(object) = value else {
            panic!("not an object")
        };
        (payload, object)
    }

    #[test]
    fn a_sub_account_user_in_a_known_agency_has_a_workspace_role() {
        let (payload, object) = map(json!({
            "type": "UserUpdate", "id": "u1", "locationId": "loc1", "companyId": "co1",
            "role": "admin", "webhookId": "w1"
        }));
        let user = user(EventType::Updated, &payload, &object).unwrap();
        let roles = user.roles.unwrap();
        assert_eq!(roles[0].workspace.as_deref(), Some("loc1"));
        assert_eq!(roles[0].organization, None);
        let workspace = user.workspace.unwrap();
        assert_eq!(workspace.organization.as_deref(), Some("co1"));
        assert_eq!(user.organizations.unwrap()[0].id.as_deref(), Some("co1"));
        assert_eq!(user.status, None);
        assert_eq!(
            user.remote_data,
            Some(
                json!({
                    "id": "u1", "locationId": "loc1", "companyId": "co1", "role": "admin"
                })
                .into()
            )
        );
    }

    #[test]
    fn an_extension_without_a_phone_number_makes_no_phone() {
        let (payload, object) = map(json!({"id": "u1", "extension": "12"}));
        let user = user(EventType::Created, &payload, &object).unwrap();
        assert_eq!(user.phones, None);
    }

    #[test]
    fn a_role_without_a_scope_is_kept_unscoped() {
        let (payload, object) = map(json!({"id": "u1", "role": "user"}));
        let user = user(EventType::Created, &payload, &object).unwrap();
        let roles = user.roles.unwrap();
        assert_eq!(roles[0].name.as_deref(), Some("user"));
        assert_eq!(
            (roles[0].organization.clone(), roles[0].workspace.clone()),
            (None, None)
        );
    }
}
