//! What Freshworks hands a Freshservice app's event handler, as the forwarder app POSTs it.
//!
//! ```json
//! {"account_id": "6957494", "domain": "sample.freshservice.com", "event": "onUserUpdate",
//!  "region": "us-east-1", "timestamp": 1684406756.665395, "version": "1.0.0",
//!  "data": {"user": {...}, "actor": {"id": 14, "name": "Raja H"}, "changes": {...}}}
//! ```
//!
//! The payload is read in three steps so that errors name the right place and an unknown
//! event is reported as such whatever its data looks like: the [`Envelope`], then [`Data`],
//! then the [`VendorUser`]. The body is parsed once into a `serde_json::Value`; the typed
//! parts are read from it, while `timestamp`, `data`, `data.user` and `data.changes` are
//! taken out of it as they are (the raw user is also `remote_data`, and the update mapping
//! rebuilds a previous version of it), so no part of the document is copied twice.
//!
//! Two layouts of the user are in the wild and both are read: the one of Freshworks' CLI
//! samples (`agent_access.account_wide_access.{member_of_groups, observer_of_groups,
//! account_wide_roles}` and `agent_access.workspace_access`), and the one of the product-event
//! reference (`agent_access.roles` and `groups` carrying `workspace_id`/`workspace_name`).

use rollcall_core::de::opt_text;
use rollcall_core::{NormalizeError, Timestamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The product-event envelope's typed fields. Everything but `event` and `data` is
/// optional; `timestamp` (epoch seconds with a fraction, `1684407960.307151`) and `data` are
/// read from the document directly.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    /// Sent as a string by Freshworks' samples, as a number by some accounts.
    #[serde(default, deserialize_with = "rollcall_core::de::opt_id")]
    pub account_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub event: Option<String>,
}

/// `data`'s typed part: who did it. The user after the event and (updates only) what
/// changed are read from the `data` object directly.
#[derive(Debug, Deserialize)]
pub struct Data {
    #[serde(default)]
    pub actor: Option<VendorActor>,
}

/// `data.actor`: `{id, name, type}`; `type` is not documented and not used.
#[derive(Debug, Deserialize)]
pub struct VendorActor {
    #[serde(default, deserialize_with = "rollcall_core::de::opt_id")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub name: Option<String>,
}

/// `data.user`, the fields rollcall maps. Everything else stays in `remote_data` only.
#[derive(Debug, Default, Deserialize)]
pub struct VendorUser {
    #[serde(default, deserialize_with = "rollcall_core::de::opt_id")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub first_name: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub last_name: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub job_title: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub primary_email: Option<String>,
    #[serde(default, deserialize_with = "text_list")]
    pub secondary_emails: Vec<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub work_phone_number: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub mobile_phone_number: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub deleted: Option<bool>,
    #[serde(default)]
    pub forgotten: Option<bool>,
    #[serde(default, deserialize_with = "opt_text")]
    pub language: Option<String>,
    /// A Rails time-zone name (`Chennai`).
    #[serde(default, deserialize_with = "opt_text")]
    pub time_zone: Option<String>,
    /// RFC 3339 with the account's local offset (`2023-05-18T16:36:00+05:30`).
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    /// `it_agent`, `business_agent` or `requester`.
    #[serde(default, deserialize_with = "opt_text")]
    pub license_type: Option<String>,
    #[serde(default, deserialize_with = "rollcall_core::de::id_list")]
    pub department_ids: Vec<String>,
    #[serde(default, deserialize_with = "text_list")]
    pub department_names: Vec<String>,
    /// Freshservice for MSPs: the clients (workspaces) the user belongs to.
    #[serde(default, deserialize_with = "rollcall_core::de::id_list")]
    pub belongs_to_workspace_ids: Vec<String>,
    /// `null` for requesters (and `{}` in some onUserCreate payloads).
    #[serde(default)]
    pub agent_access: Option<AgentAccess>,
    /// `null` for agents.
    #[serde(default)]
    pub requester_access: Option<RequesterAccess>,
    /// The reference layout's groups, each with `leader`, `observer` and its workspace.
    #[serde(default, deserialize_with = "list")]
    pub groups: Vec<VendorGroup>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AgentAccess {
    #[serde(default)]
    pub account_wide_access: Option<AccessScope>,
    /// Per-workspace access: a list of entries (a single object is read as a list of one).
    #[serde(default, deserialize_with = "one_or_many")]
    pub workspace_access: Vec<WorkspaceAccess>,
    /// The reference layout's roles, each with its workspace.
    #[serde(default, deserialize_with = "list")]
    pub roles: Vec<VendorRole>,
    #[serde(default, deserialize_with = "list")]
    pub groups: Vec<VendorGroup>,
}

/// `agent_access.account_wide_access`.
#[derive(Debug, Default, Deserialize)]
pub struct AccessScope {
    #[serde(default, deserialize_with = "list")]
    pub member_of_groups: Vec<VendorGroup>,
    #[serde(default, deserialize_with = "list")]
    pub observer_of_groups: Vec<VendorGroup>,
    #[serde(default, deserialize_with = "list")]
    pub account_wide_roles: Vec<VendorRole>,
}

/// One entry of `agent_access.workspace_access`. No published payload shows one filled in;
/// the names follow `account_wide_access` and the workspace fields of roles and groups.
#[derive(Debug, Default, Deserialize)]
pub struct WorkspaceAccess {
    #[serde(default, deserialize_with = "rollcall_core::de::opt_id")]
    pub workspace_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub workspace_name: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub member_of_groups: Vec<VendorGroup>,
    #[serde(default, deserialize_with = "list")]
    pub observer_of_groups: Vec<VendorGroup>,
    #[serde(default, deserialize_with = "list")]
    pub groups: Vec<VendorGroup>,
    #[serde(default, deserialize_with = "list", alias = "workspace_roles")]
    pub roles: Vec<VendorRole>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RequesterAccess {
    #[serde(default)]
    pub account_wide_access: Option<RequesterScope>,
    /// The reference documents `requester_groups` directly under `requester_access`.
    #[serde(default, deserialize_with = "list")]
    pub requester_groups: Vec<VendorGroup>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RequesterScope {
    #[serde(default, deserialize_with = "list")]
    pub requester_groups: Vec<VendorGroup>,
}

/// A role: `{id, name, role_type, scope, scope_groups, workspace_id, workspace_name}`;
/// Freshworks' changes example also shows a `group_id`.
#[derive(Debug, Default, Deserialize)]
pub struct VendorRole {
    #[serde(default, deserialize_with = "rollcall_core::de::opt_id")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "rollcall_core::de::opt_id")]
    pub group_id: Option<String>,
    #[serde(default, deserialize_with = "rollcall_core::de::opt_id")]
    pub workspace_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub workspace_name: Option<String>,
}

/// A group: `{id, name}`, in the reference layout also `leader`, `observer` and its workspace.
#[derive(Debug, Default, Deserialize)]
pub struct VendorGroup {
    #[serde(default, deserialize_with = "rollcall_core::de::opt_id")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "rollcall_core::de::opt_id")]
    pub workspace_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    pub workspace_name: Option<String>,
}

/// A list that may be `null` or absent (both read as empty).
fn list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A list of strings; `null` items and blank strings are dropped.
fn text_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let items = Option::<Vec<Option<String>>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(items
        .into_iter()
        .flatten()
        .filter(|text| !text.trim().is_empty())
        .collect())
}

/// A list of objects, a single object, or `null`.
fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
    }
    Ok(match Option::<OneOrMany<T>>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::Many(items)) => items,
        Some(OneOrMany::One(item)) => vec![item],
    })
}

/// Parses a sub-document and reports errors with their full path (`data.user.active`).
pub fn parse_at<T: DeserializeOwned>(prefix: &str, value: &Value) -> Result<T, NormalizeError> {
    rollcall_core::json::from_value(value).map_err(|error| error.within(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_in_a_sub_document_carry_the_full_path() {
        let error =
            parse_at::<VendorUser>("data.user", &json!({"id": 1, "active": "yes"})).unwrap_err();
        assert_eq!(error.path(), Some("data.user.active"));
        let error = parse_at::<VendorUser>(
            "data.user",
            &json!({"id": 1, "agent_access": {"roles": [{"id": 1}, 7]}}),
        )
        .unwrap_err();
        assert_eq!(error.path(), Some("data.user.agent_access.roles[1]"));
    }

    #[test]
    fn workspace_access_is_a_list_or_a_single_entry() {
        let one: AgentAccess =
            serde_json::from_value(json!({"workspace_access": {"workspace_id": 2}})).unwrap();
        assert_eq!(one.workspace_access.len(), 1);
        let none: AgentAccess = serde_json::from_value(json!({"workspace_access": null})).unwrap();
        assert!(none.workspace_access.is_empty());
    }

    #[test]
    fn string_lists_drop_nulls_and_blanks() {
        let user: VendorUser =
            serde_json::from_value(json!({"secondary_emails": ["a@x", null, " "]})).unwrap();
        assert_eq!(user.secondary_emails, ["a@x"]);
    }
}
