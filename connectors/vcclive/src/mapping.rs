//! VCC Live user objects and requests to unified users and events.
//!
//! Plain functions, no I/O. Every decision is listed in `docs/connectors/vcclive.md`.

use rollcall_core::{
    diff_users, Delivery, Email, EventType, Group, NormalizeError, Phone, RemoteData, Role, User,
    UserEvent, UserStatus, VendorEvent,
};

use crate::payload::{UserRequest, VccUser};

/// The vendor event type of a request whose `old` is `null` or absent.
pub const USER_CREATED: &str = "User Created";
/// The vendor event type of a request that carries `old`.
pub const USER_CHANGED: &str = "User Changed";

/// Role name for `isAgent: true`.
pub const AGENT_ROLE: &str = "agent";
/// Role name for `isAgent: false`: VCC Live's other user types are admin and supervisor, and
/// the payload does not say which.
pub const ADMIN_OR_SUPERVISOR_ROLE: &str = "admin_or_supervisor";

/// The one event a request describes: `user.created` when `old` is null, otherwise
/// `user.updated` with `previous` and the unified `changes`.
pub fn events(
    connector: &str,
    delivery: &Delivery,
    request: &UserRequest,
) -> Result<Vec<UserEvent>, NormalizeError> {
    let mut current = user(&request.new, "new")?;
    let event = match &request.old {
        None => {
            // The request `timestamp` is documented as the "time of user creation".
            current.created_at = request.timestamp;
            delivery.new_event(
                connector,
                0,
                EventType::Created,
                vendor_event(USER_CREATED, request),
                current,
            )
        }
        Some(old) => {
            let previous = user(old, "old")?;
            let changes = diff_users(&previous, &current);
            let mut event = delivery.new_event(
                connector,
                0,
                EventType::Updated,
                vendor_event(USER_CHANGED, request),
                current,
            );
            event.previous = Some(previous);
            event.changes = Some(changes);
            event
        }
    };
    Ok(vec![event])
}

fn vendor_event(event_type: &str, request: &UserRequest) -> VendorEvent {
    VendorEvent {
        id: None,
        event_type: event_type.to_owned(),
        occurred_at: request.timestamp,
    }
}

/// A VCC Live user object as a unified user. `path` (`new` or `old`) names the object in
/// errors.
pub fn user(vcc: &VccUser, path: &str) -> Result<User, NormalizeError> {
    Ok(User {
        id: user_id(vcc, path)?,
        name: vcc.name.clone(),
        username: vcc.username.clone(),
        emails: vcc.email.as_ref().map(|email| {
            vec![Email {
                email: email.clone(),
                email_type: None,
                is_primary: Some(true),
            }]
        }),
        phones: phones(vcc),
        status: vcc.state.as_deref().map(UserStatus::from_vendor),
        roles: roles(vcc),
        groups: vcc.priv_group.as_ref().map(|group| {
            vec![Group {
                id: Some(group.clone()),
                name: None,
                organization: None,
            }]
        }),
        remote_data: Some(RemoteData::from_value(&vcc.raw)),
        ..User::default()
    })
}

/// `userId` (the samples) or `userid` (the field table); they must agree when both are sent.
fn user_id(vcc: &VccUser, path: &str) -> Result<String, NormalizeError> {
    match (&vcc.user_id, &vcc.userid) {
        (Some(camel), Some(lower)) if camel != lower => Err(NormalizeError::invalid(
            format!("{path}.userId"),
            "userId and userid are both sent and differ",
        )),
        (Some(id), _) | (None, Some(id)) => Ok(id.clone()),
        (None, None) => Err(NormalizeError::invalid(
            format!("{path}.userId"),
            "the user id is missing (neither userId nor userid is set)",
        )),
    }
}

/// `contactPhone`, `outboundPhone` and `mobilePhone`, in that order, each typed after the
/// field it came from; unset ones are left out.
///
/// `extension` is the user's extension on the VCC Live phone system, not a number anyone can
/// dial, so it is no phone of its own: it goes in `extension` beside the number that reaches
/// the phone system, the `outbound` phone (what VCC Live gives agents) or else the `contact`
/// phone (what it gives admins and supervisors). A user with neither has no number to put
/// it beside; it is then only in `remote_data`.
fn phones(vcc: &VccUser) -> Option<Vec<Phone>> {
    let mut phones: Vec<Phone> = [
        (&vcc.contact_phone, "contact"),
        (&vcc.outbound_phone, "outbound"),
        (&vcc.mobile_phone, "mobile"),
    ]
    .into_iter()
    .filter_map(|(number, phone_type)| {
        number.as_ref().map(|number| Phone {
            number: number.clone(),
            extension: None,
            phone_type: Some(phone_type.to_owned()),
        })
    })
    .collect();
    if let Some(extension) = &vcc.extension {
        let line = ["outbound", "contact"].into_iter().find_map(|wanted| {
            phones
                .iter()
                .position(|phone| phone.phone_type.as_deref() == Some(wanted))
        });
        if let Some(line) = line {
            phones[line].extension = Some(extension.clone());
        }
    }
    (!phones.is_empty()).then_some(phones)
}

/// One role from `isAgent`, scoped to the user's privilege group (`privGroup`) when sent.
fn roles(vcc: &VccUser) -> Option<Vec<Role>> {
    let name = match vcc.is_agent? {
        true => AGENT_ROLE,
        false => ADMIN_OR_SUPERVISOR_ROLE,
    };
    Some(vec![Role {
        id: None,
        name: Some(name.to_owned()),
        group: vcc.priv_group.clone(),
        organization: None,
        workspace: None,
    }])
}
