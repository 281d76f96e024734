//! The user before an onUserUpdate, rebuilt from `data.changes`.
//!
//! Freshservice sends the user after the change and, in `changes`, what changed:
//!
//! ```text
//! "job_title": ["Old", "New"]                          a scalar: [old value, new value]
//! "agent_access": {"roles": {"add": [{...}]}}          nested objects, down to the list
//! "groups": {"remove": [{...}]}                        objects added to / removed from a list
//! "department_ids": {"added": [1981], "removed": [1982]}   values added to / removed from a list
//! ```
//!
//! [`previous_user`] undoes each change on a copy of the raw user: a scalar gets its old
//! value back, added items are taken out of their list and removed items put back. Both raw
//! objects then go through the same mapping and the unified change list is their difference,
//! so it names unified fields only (`job_title` -> `title`, `active` -> `status`...).
//!
//! `custom_fields` is skipped: its change keys (`cf_str01`) are not the keys of
//! `user.custom_fields` (`cf_org_custom_text`), and custom fields are not unified anyway.
//! A change rollcall cannot read makes the previous state unknown (`None`), never a guess.

use serde_json::{Map, Value};

/// The raw user before the changes, or `None` when a change cannot be undone.
pub fn previous_user(current: &Value, changes: &Value) -> Option<Value> {
    let changes = changes.as_object()?;
    // The one copy: the previous user is `remote_data` of its own; everything below edits
    // it in place.
    let mut previous = current.clone();
    let root = previous.as_object_mut()?;
    let mut misplaced = Vec::new();
    undo_object(root, changes, true, &mut misplaced)?;
    // An item reported added under a path the user object does not use (the reference
    // layout's `agent_access.roles` while the user lists `account_wide_roles`) is taken
    // out of whichever list of the same kind holds it.
    for (kind, item) in misplaced {
        remove_anywhere(&mut previous, kind, item);
    }
    forget_unpaired_departments(&mut previous, changes);
    Some(previous)
}

/// The lists a misplaced item may sit in, by the kind of its change key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Roles,
    Groups,
}

impl ListKind {
    fn of(key: &str) -> Option<Self> {
        match key {
            "roles" | "account_wide_roles" | "workspace_roles" => Some(Self::Roles),
            "groups" | "member_of_groups" | "observer_of_groups" | "requester_groups" => {
                Some(Self::Groups)
            }
            _ => None,
        }
    }
}

/// Undoes `changes` on `object` in place. On `None` the object is left half undone, which
/// does not matter: the caller then drops the whole previous user.
fn undo_object<'c>(
    object: &mut Map<String, Value>,
    changes: &'c Map<String, Value>,
    at_root: bool,
    misplaced: &mut Vec<(ListKind, &'c Value)>,
) -> Option<()> {
    for (key, change) in changes {
        if at_root && key == "custom_fields" {
            continue;
        }
        match change {
            Value::Array(pair) => {
                let [old, _new] = pair.as_slice() else {
                    return None;
                };
                object.insert(key.clone(), old.clone());
            }
            Value::Object(ops) if is_list_change(ops) => {
                undo_list(object, key, ops, misplaced)?;
            }
            Value::Object(nested) => match object.get_mut(key) {
                Some(Value::Object(inner)) => undo_object(inner, nested, false, misplaced)?,
                None | Some(Value::Null) => {
                    let mut inner = Map::new();
                    undo_object(&mut inner, nested, false, misplaced)?;
                    // Nothing was restored under a missing object: leave it missing.
                    if !inner.is_empty() {
                        object.insert(key.clone(), Value::Object(inner));
                    }
                }
                Some(_) => return None,
            },
            _ => return None,
        }
    }
    Some(())
}

const LIST_OPS: [&str; 4] = ["add", "remove", "added", "removed"];

fn is_list_change(ops: &Map<String, Value>) -> bool {
    !ops.is_empty() && ops.keys().all(|key| LIST_OPS.contains(&key.as_str()))
}

fn undo_list<'c>(
    object: &mut Map<String, Value>,
    key: &str,
    ops: &'c Map<String, Value>,
    misplaced: &mut Vec<(ListKind, &'c Value)>,
) -> Option<()> {
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for (op, items) in ops {
        let items = items.as_array()?;
        match op.as_str() {
            "add" | "added" => added.extend(items),
            _ => removed.extend(items),
        }
    }
    match object.get_mut(key) {
        Some(Value::Array(list)) => undo_in_list(list, key, &added, &removed, misplaced),
        None | Some(Value::Null) => {
            let mut list = Vec::new();
            undo_in_list(&mut list, key, &added, &removed, misplaced);
            // A list that was not there and has nothing to get back stays as it was.
            if !list.is_empty() {
                object.insert(key.to_owned(), Value::Array(list));
            }
        }
        Some(_) => return None,
    }
    Some(())
}

/// Takes the `added` items out of `list` and puts the `removed` ones back.
fn undo_in_list<'c>(
    list: &mut Vec<Value>,
    key: &str,
    added: &[&'c Value],
    removed: &[&'c Value],
    misplaced: &mut Vec<(ListKind, &'c Value)>,
) {
    for &item in added {
        match list.iter().position(|known| same_item(known, item)) {
            Some(index) => {
                list.remove(index);
            }
            None => {
                if let Some(kind) = ListKind::of(key) {
                    misplaced.push((kind, item));
                }
            }
        }
    }
    for &item in removed {
        if !list.iter().any(|known| same_item(known, item)) {
            list.push(item.clone());
        }
    }
}

/// Two list items are the same when equal, when both are objects with the same `id` (and no
/// conflicting `workspace_id`), or when both are ids that print the same (`1981`, `"1981"`).
fn same_item(left: &Value, right: &Value) -> bool {
    if left == right {
        return true;
    }
    match (left, right) {
        (Value::Object(left), Value::Object(right)) => {
            let same_id = matches!(
                (id_text(left.get("id")), id_text(right.get("id"))),
                (Some(a), Some(b)) if a == b
            );
            let workspaces = (
                id_text(left.get("workspace_id")),
                id_text(right.get("workspace_id")),
            );
            let same_workspace = match workspaces {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            same_id && same_workspace
        }
        _ => matches!((id_text(Some(left)), id_text(Some(right))), (Some(a), Some(b)) if a == b),
    }
}

fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => number
            .as_u64()
            .map(|n| n.to_string())
            .or_else(|| number.as_i64().map(|n| n.to_string())),
        _ => None,
    }
}

/// Removes the first item matching `item` from any list of `kind` in the user object.
fn remove_anywhere(value: &mut Value, kind: ListKind, item: &Value) -> bool {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if let (Some(child_kind), Value::Array(list)) = (ListKind::of(key), &mut *child) {
                    if child_kind == kind {
                        if let Some(index) = list.iter().position(|known| same_item(known, item)) {
                            list.remove(index);
                            return true;
                        }
                    }
                }
                if key != "custom_fields" && remove_anywhere(child, kind, item) {
                    return true;
                }
            }
            false
        }
        Value::Array(items) => items
            .iter_mut()
            .any(|child| remove_anywhere(child, kind, item)),
        _ => false,
    }
}

/// `department_ids` and `department_names` are parallel lists. When only one of them
/// changed, the other one's previous value is not known to match it, so it is dropped
/// from the previous user rather than paired wrongly.
fn forget_unpaired_departments(previous: &mut Value, changes: &Map<String, Value>) {
    let ids = changes.contains_key("department_ids");
    let names = changes.contains_key("department_names");
    if ids == names {
        return;
    }
    if let Some(object) = previous.as_object_mut() {
        object.remove(if ids {
            "department_names"
        } else {
            "department_ids"
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_get_their_old_value_back() {
        let previous = previous_user(
            &json!({"id": 1, "job_title": "New", "active": false}),
            &json!({"job_title": ["Old", "New"], "active": [true, false]}),
        )
        .unwrap();
        assert_eq!(
            previous,
            json!({"id": 1, "job_title": "Old", "active": true})
        );
    }

    #[test]
    fn added_values_leave_and_removed_values_return() {
        let previous = previous_user(
            &json!({"department_ids": [1981, 7], "department_names": ["A", "B"],
                    "secondary_emails": ["a@x", "b@x"]}),
            &json!({"department_ids": {"added": [1981], "removed": [1982]},
                    "department_names": {"added": ["A"], "removed": ["C"]},
                    "secondary_emails": {"added": ["b@x"]}}),
        )
        .unwrap();
        assert_eq!(
            previous,
            json!({"department_ids": [7, 1982], "department_names": ["B", "C"],
                   "secondary_emails": ["a@x"]})
        );
    }

    #[test]
    fn nested_object_lists_are_undone_in_place() {
        let previous = previous_user(
            &json!({"agent_access": {"roles": [{"id": 1797, "name": "IT Ops Agent"}]},
                    "groups": []}),
            &json!({"agent_access": {"roles": {"add": [{"id": 1797, "name": "IT Ops Agent",
                                                         "workspace_id": null}]}},
                    "groups": {"remove": [{"id": 4633, "name": "Employee Relations Team"}]}}),
        )
        .unwrap();
        assert_eq!(
            previous,
            json!({"agent_access": {"roles": []},
                   "groups": [{"id": 4633, "name": "Employee Relations Team"}]})
        );
    }

    #[test]
    fn an_added_role_is_found_in_the_other_layout() {
        let current = json!({"agent_access": {"account_wide_access": {
            "account_wide_roles": [{"id": 29, "name": "SD Supervisor"}, {"id": 30}]}}});
        let previous = previous_user(
            &current,
            &json!({"agent_access": {"roles": {"add": [{"id": 30, "name": "SD Agent"}]}}}),
        )
        .unwrap();
        assert_eq!(
            previous["agent_access"]["account_wide_access"]["account_wide_roles"],
            json!([{"id": 29, "name": "SD Supervisor"}])
        );
        assert!(previous["agent_access"].get("roles").is_none());
    }

    #[test]
    fn custom_fields_are_not_touched() {
        let current = json!({"custom_fields": {"cf_org_custom_text": "new"}});
        let previous = previous_user(
            &current,
            &json!({"custom_fields": {"cf_str01": ["old", "new"]}}),
        )
        .unwrap();
        assert_eq!(previous, current);
    }

    #[test]
    fn an_unreadable_change_makes_the_previous_state_unknown() {
        let current = json!({"id": 1});
        assert_eq!(previous_user(&current, &json!({"job_title": "x"})), None);
        assert_eq!(
            previous_user(&current, &json!({"job_title": ["a", "b", "c"]})),
            None
        );
        assert_eq!(
            previous_user(&current, &json!({"groups": {"add": 3}})),
            None
        );
        assert_eq!(previous_user(&current, &json!(["job_title"])), None);
    }

    #[test]
    fn only_one_department_list_changing_drops_the_other_from_the_previous_user() {
        let previous = previous_user(
            &json!({"department_ids": [1981], "department_names": ["HR"]}),
            &json!({"department_ids": {"added": [1981], "removed": [1982]}}),
        )
        .unwrap();
        assert_eq!(previous, json!({"department_ids": [1982]}));
    }
}
