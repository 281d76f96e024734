//! Realistic histories per vendor through the real connectors and the real store: every
//! emitted event carries the full best-known user, its previous state and the exact unified
//! changes, whatever the vendor sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rollcall_core::{Delivery, SourceOptions, Timestamp, UserEvent};
use rollcall_store::{IngestBatch, Store};
use serde_json::{json, Value};

// Link the connectors.
use rollcall as _;

struct History {
    store: Store,
    _dir: tempfile::TempDir,
    connector: Box<dyn rollcall_core::Connector>,
    source: &'static str,
    seen: i64,
    clock: i64,
}

impl History {
    fn new(connector: &str, source: &'static str) -> History {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("rollcall.db")).unwrap();
        let registration = rollcall_core::registration(connector).unwrap();
        let connector = (registration.build)(&SourceOptions::offline(source)).unwrap();
        History {
            store,
            _dir: dir,
            connector,
            source,
            seen: 0,
            clock: 1_800_000_000,
        }
    }

    /// Sends one vendor body through normalize and the store; returns the journaled events.
    async fn send(&mut self, body: Value) -> Vec<UserEvent> {
        self.clock += 60;
        let delivery = Delivery::new(
            self.source,
            serde_json::to_vec(&body).unwrap(),
            Timestamp::from_unix_seconds(self.clock).unwrap(),
        );
        let events = self.connector.normalize(&delivery).unwrap();
        self.store
            .ingest(IngestBatch {
                source: self.source.to_owned(),
                dedup_key: self.connector.dedup_key(&delivery),
                received_at: delivery.received_at,
                events,
            })
            .await
            .unwrap();
        let entries = self.store.journal_after(self.seen, 100).await.unwrap();
        self.seen = entries.last().map_or(self.seen, |entry| entry.seq);
        entries
            .iter()
            .map(|entry| entry.decode().unwrap())
            .collect()
    }
}

fn fields(event: &UserEvent) -> Vec<String> {
    event
        .changes
        .as_ref()
        .expect("changes")
        .iter()
        .map(|change| change.field.clone())
        .collect()
}

fn change<'a>(event: &'a UserEvent, field: &str) -> (&'a Value, &'a Value) {
    let change = event
        .changes
        .as_ref()
        .unwrap()
        .iter()
        .find(|change| change.field == field)
        .unwrap_or_else(|| panic!("no change of {field}"));
    (&change.from, &change.to)
}

fn vcc(old: Option<Value>, new: Value) -> Value {
    json!({"old": old, "new": new, "timestamp": "2026-11-22T10:00:00+01:00"})
}

#[tokio::test]
async fn vcc_live_history_reports_each_change_and_the_deactivation() {
    let mut history = History::new("vcclive", "vcc");
    let v1 = json!({"userId": 180, "name": "Rachel Smith", "email": "rachel@company.com", "username": "rachel", "isAgent": true, "privGroup": 4, "state": "active", "extension": "189"});
    let created = history.send(vcc(None, v1.clone())).await;
    assert_eq!(created[0].event_type.as_str(), "user.created");
    assert_eq!(created[0].previous, None);

    let mut v2 = v1.clone();
    v2["name"] = json!("Rachel Jones");
    let renamed = history.send(vcc(Some(v1.clone()), v2.clone())).await;
    assert_eq!(fields(&renamed[0]), ["name"]);
    assert_eq!(change(&renamed[0], "name").0, "Rachel Smith");
    assert_eq!(
        renamed[0].previous.as_ref().unwrap().name.as_deref(),
        Some("Rachel Smith")
    );

    let mut v3 = v2.clone();
    v3["email"] = json!("rachel.jones@company.com");
    v3["privGroup"] = json!(5);
    let moved = history.send(vcc(Some(v2.clone()), v3.clone())).await;
    assert_eq!(fields(&moved[0]), ["emails", "roles", "groups"]);

    let mut v4 = v3.clone();
    v4["state"] = json!("inactive");
    let deactivated = history.send(vcc(Some(v3.clone()), v4)).await;
    assert_eq!(fields(&deactivated[0]), ["status"]);
    assert_eq!(
        change(&deactivated[0], "status"),
        (&json!("active"), &json!("inactive"))
    );
    // The full user travels with every event.
    assert_eq!(deactivated[0].user.name.as_deref(), Some("Rachel Jones"));
    let entry = history.store.user("vcc", "180").await.unwrap();
    assert_eq!(entry.version, 4);
}

fn freshservice(event: &str, user: Value, changes: Option<Value>) -> Value {
    let mut data = json!({"user": user, "actor": {"id": 14, "name": "Raja H", "type": 0}});
    if let Some(changes) = changes {
        data["changes"] = changes;
    }
    json!({"account_id": "6957494", "domain": "acme.freshservice.com", "timestamp": 1684407960.307151, "region": "us-east-1", "event": event, "version": "1.0.0", "data": data})
}

#[tokio::test]
async fn freshservice_history_from_create_to_forgotten() {
    let mut history = History::new("freshservice", "fs");
    let sample: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../connectors/freshservice/fixtures/onUserCreate.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let v1 = sample["data"]["user"].clone();
    let created = history
        .send(freshservice("onUserCreate", v1.clone(), None))
        .await;
    assert_eq!(created[0].user.title.as_deref(), Some("Engineer"));

    let mut v2 = v1.clone();
    v2["job_title"] = json!("Staff Engineer");
    let promoted = history
        .send(freshservice(
            "onUserUpdate",
            v2.clone(),
            Some(json!({"job_title": ["Engineer", "Staff Engineer"]})),
        ))
        .await;
    assert_eq!(fields(&promoted[0]), ["title"]);
    assert_eq!(
        promoted[0].previous.as_ref().unwrap().title.as_deref(),
        Some("Engineer")
    );

    let mut v3 = v2.clone();
    v3["work_phone_number"] = json!("9876500000");
    v3["time_zone"] = json!("Mumbai");
    let rephoned = history
        .send(freshservice(
            "onUserUpdate",
            v3.clone(),
            Some(json!({"work_phone_number": ["9876543210", "9876500000"], "time_zone": ["Chennai", "Mumbai"]})),
        ))
        .await;
    // Chennai and Mumbai are both Asia/Kolkata: only the phone changed.
    assert_eq!(fields(&rephoned[0]), ["phones"]);

    let mut v4 = v3.clone();
    v4["active"] = json!(false);
    let deactivated = history
        .send(freshservice(
            "onUserUpdate",
            v4.clone(),
            Some(json!({"active": [true, false]})),
        ))
        .await;
    assert_eq!(
        change(&deactivated[0], "status"),
        (&json!("active"), &json!("inactive"))
    );

    let mut forgotten = v4.clone();
    forgotten["forgotten"] = json!(true);
    forgotten["deleted"] = json!(true);
    forgotten["first_name"] = json!("Forgotten User");
    let deleted = history
        .send(freshservice("onUserDelete", forgotten, None))
        .await;
    assert_eq!(deleted[0].event_type.as_str(), "user.deleted");
    assert_eq!(
        change(&deleted[0], "status"),
        (&json!("inactive"), &json!("deleted"))
    );
    assert_eq!(
        deleted[0].previous.as_ref().unwrap().title.as_deref(),
        Some("Staff Engineer")
    );
    assert!(history.store.user("fs", "93").await.unwrap().deleted);
}

fn zendesk(event_type: &str, id: &str, detail: Value, event: Value) -> Value {
    json!({"type": format!("zen:event-type:{event_type}"), "account_id": 12514403, "id": id, "time": "2026-11-22T09:00:00Z", "zendesk_event_version": "2022-06-20", "subject": "zen:user:42", "detail": detail, "event": event})
}

#[tokio::test]
async fn zendesk_deltas_are_applied_to_the_last_known_state() {
    let mut history = History::new("zendesk", "zd");
    let detail = json!({"id": "42", "email": "ann@acme.example", "role": "end-user", "default_group_id": "0", "organization_id": "0", "created_at": "2026-11-22T08:00:00Z", "updated_at": "2026-11-22T08:00:00Z", "external_id": ""});
    let created = history
        .send(zendesk("user.created", "z1", detail.clone(), json!({})))
        .await;
    assert!(created[0].partial);

    let renamed = history
        .send(zendesk(
            "user.name_changed",
            "z2",
            detail.clone(),
            json!({"previous": "Ann", "current": "Ann Lee"}),
        ))
        .await;
    assert_eq!(renamed[0].user.name.as_deref(), Some("Ann Lee"));
    assert_eq!(change(&renamed[0], "name").1, "Ann Lee");

    let mut agent = detail.clone();
    agent["role"] = json!("agent");
    agent["default_group_id"] = json!("77");
    let promoted = history
        .send(zendesk(
            "user.role_changed",
            "z3",
            agent.clone(),
            json!({"previous": "end-user", "current": "agent"}),
        ))
        .await;
    // The name from the earlier delta is still there: the delta was applied, not replaced.
    assert_eq!(promoted[0].user.name.as_deref(), Some("Ann Lee"));
    assert!(fields(&promoted[0]).contains(&"roles".to_owned()));

    let joined = history
        .send(zendesk(
            "user.group_membership_created",
            "z4",
            agent.clone(),
            json!({"group": {"id": "88"}}),
        ))
        .await;
    let groups: Vec<_> = joined[0]
        .user
        .groups
        .as_ref()
        .unwrap()
        .iter()
        .map(|group| group.id.clone().unwrap())
        .collect();
    assert_eq!(groups, ["77", "88"]);

    let left = history
        .send(zendesk(
            "user.group_membership_deleted",
            "z5",
            agent.clone(),
            json!({"group": {"id": "88"}}),
        ))
        .await;
    assert_eq!(change(&left[0], "groups").1, &json!([{"id": "77"}]));

    let deleted = history
        .send(zendesk(
            "user.active_changed",
            "z6",
            agent,
            json!({"previous": true, "current": false}),
        ))
        .await;
    assert_eq!(deleted[0].event_type.as_str(), "user.deleted");
    assert_eq!(deleted[0].user.name.as_deref(), Some("Ann Lee"));
    assert_eq!(deleted[0].user.status.as_ref().unwrap().as_str(), "deleted");
}

#[tokio::test]
async fn highlevel_full_states_are_diffed_against_the_directory() {
    let mut history = History::new("highlevel", "hl");
    let v1 = json!({"type": "UserCreate", "locationId": "loc1", "id": "u1", "firstName": "John", "lastName": "Doe", "email": "john@example.com", "phone": "+13235559998", "role": "user"});
    let created = history.send(v1.clone()).await;
    assert_eq!(created[0].changes, None);

    let mut v2 = v1.clone();
    v2["type"] = json!("UserUpdate");
    v2["phone"] = json!("+13235550000");
    let rephoned = history.send(v2.clone()).await;
    assert_eq!(fields(&rephoned[0]), ["phones"]);

    let mut v3 = v2.clone();
    v3["role"] = json!("admin");
    let promoted = history.send(v3.clone()).await;
    assert_eq!(fields(&promoted[0]), ["roles"]);
    assert_eq!(
        promoted[0]
            .previous
            .as_ref()
            .unwrap()
            .phones
            .as_ref()
            .unwrap()[0]
            .number,
        "+13235550000"
    );

    let mut v4 = v3.clone();
    v4["type"] = json!("UserDelete");
    let deleted = history.send(v4).await;
    assert_eq!(deleted[0].event_type.as_str(), "user.deleted");
    assert_eq!(fields(&deleted[0]), ["status"]);
    assert_eq!(change(&deleted[0], "status").0, &Value::Null);
}
