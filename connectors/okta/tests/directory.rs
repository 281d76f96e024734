//! Membership and privilege events are deltas: the directory applies them to the groups and
//! roles it already knows for the user, instead of replacing them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rollcall_connector_okta as _;
use rollcall_core::directory::{apply, KnownUser};
use rollcall_core::{Delivery, Group, Role, SourceOptions, Timestamp, User, UserEvent};

fn normalize(fixture: &str) -> UserEvent {
    let path = format!("{}/fixtures/{fixture}.json", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(path).unwrap();
    let registration = rollcall_core::registration("okta").unwrap();
    let connector = (registration.build)(&SourceOptions::offline("okta")).unwrap();
    let delivery = Delivery::new("okta", body, Timestamp::from_unix_seconds(0).unwrap());
    let mut events = connector.normalize(&delivery).unwrap();
    assert_eq!(events.len(), 1);
    events.remove(0)
}

fn group(id: &str, name: &str) -> Group {
    Group {
        id: Some(id.into()),
        name: Some(name.into()),
        organization: None,
    }
}

fn role(name: &str) -> Role {
    Role {
        name: Some(name.into()),
        ..Role::default()
    }
}

/// Raj Patel (the fixtures' user), in the group "Support" with the role "Report administrator".
fn known() -> KnownUser {
    KnownUser {
        user: User {
            groups: Some(vec![group("00g0support", "Support")]),
            roles: Some(vec![role("Report administrator")]),
            ..User::with_id("00ub0oNGTSWTBKOLGLNS")
        },
        version: 1,
        deleted: false,
        partial: true,
    }
}

#[test]
fn a_membership_added_joins_the_known_groups() {
    let mut event = normalize("group.user_membership.add");
    let record = apply(Some(&known()), &mut event);
    assert_eq!(
        record.user.groups,
        Some(vec![
            group("00g0support", "Support"),
            group("00g1emaKYZTWRYYRRTSK", "Engineering")
        ])
    );
}

#[test]
fn a_membership_removed_leaves_the_other_known_groups() {
    let mut known = known();
    known.user.groups = Some(vec![
        group("00g0support", "Support"),
        group("00g1emaKYZTWRYYRRTSK", "Engineering"),
    ]);
    let mut event = normalize("group.user_membership.remove");
    let record = apply(Some(&known), &mut event);
    assert_eq!(
        record.user.groups,
        Some(vec![group("00g0support", "Support")])
    );
    // The roles the event does not mention stay as known.
    assert_eq!(record.user.roles, Some(vec![role("Report administrator")]));
}

#[test]
fn privileges_granted_and_revoked_change_only_those_roles() {
    let mut granted = normalize("user.account.privilege.grant");
    let record = apply(Some(&known()), &mut granted);
    assert_eq!(
        record.user.roles,
        Some(vec![
            role("Report administrator"),
            role("Super administrator"),
            role("Help Desk administrator")
        ])
    );
    let mut revoked = normalize("user.account.privilege.revoke");
    let record = apply(Some(&record), &mut revoked);
    assert_eq!(
        record.user.roles,
        Some(vec![
            role("Report administrator"),
            role("Super administrator")
        ])
    );
    assert_eq!(
        record.user.groups,
        Some(vec![group("00g0support", "Support")])
    );
}
