//! Sync from the Zendesk Users API against a local fake serving recorded pages
//! (`connectors/zendesk/fixtures/sync/`, in the shape of Zendesk's published List Users
//! examples): the engine in process for the six cases, and the real binary end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use rollcall::daemon::Source;
use rollcall::metrics::Metrics;
use rollcall::sync::{run_with, Pacing, SyncReport};
use rollcall_core::Timestamp;
use rollcall_store::Store;
use serde_json::{json, Value};
use support::fake_api::*;
use support::*;

const SOURCE: &str = "zd-sync";
const WAIT: Duration = Duration::from_secs(20);

/// What the fake Users API serves and what it saw.
#[derive(Default)]
struct FakeState {
    /// The recorded pages, as served (tests edit their users).
    pages: Vec<Value>,
    /// Users served by `GET /api/v2/users/{id}.json` (enrichment).
    singles: Vec<Value>,
    /// Answer this page (1-based) with 500.
    fail_page: Option<usize>,
    /// Answer the next listing request with 429 and this `Retry-After`.
    rate_limit_once: Option<u64>,
    /// The `page[after]` of every listing request ("" for the first page).
    requests: Vec<String>,
}

type FakeZendesk = FakeApi<FakeState>;

impl FakeZendesk {
    async fn start() -> FakeZendesk {
        let pages = (1..=3)
            .map(|page| {
                read_json(&format!(
                    "connectors/zendesk/fixtures/sync/users_page_{page}.json"
                ))
            })
            .collect();
        FakeApi::serve(
            FakeState {
                pages,
                ..FakeState::default()
            },
            answer,
        )
        .await
    }

    fn edit_user(&self, id: u64, edit: impl FnOnce(&mut Value)) {
        let mut state = self.state();
        let user = state
            .pages
            .iter_mut()
            .flat_map(|page| page["users"].as_array_mut().unwrap().iter_mut())
            .find(|user| user["id"] == id)
            .unwrap();
        edit(user);
    }

    fn remove_user(&self, id: u64) {
        for page in &mut self.state().pages {
            page["users"]
                .as_array_mut()
                .unwrap()
                .retain(|user| user["id"] != id);
        }
    }

    fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }
}

fn answer(state: &mut FakeState, _base_url: &str, request: &Request<Body>) -> Response {
    let json = [("content-type", "application/json")];
    let path = request.uri().path();
    if request.headers().get("authorization").is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if let Some(id) = path
        .strip_prefix("/api/v2/users/")
        .and_then(|rest| rest.strip_suffix(".json"))
    {
        return match state.singles.iter().find(|user| {
            user["id"]
                .as_u64()
                .map(|number| number.to_string())
                .as_deref()
                == Some(id)
        }) {
            Some(user) => (StatusCode::OK, json, json!({"user": user}).to_string()).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    if path != "/api/v2/users.json" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let pairs = query_pairs(request);
    let after = query_value(request, "page[after]").unwrap_or_default();
    assert!(pairs
        .iter()
        .any(|(key, value)| key == "page[size]" && value == "100"));
    state.requests.push(after.clone());
    if let Some(seconds) = state.rate_limit_once.take() {
        return rate_limited(seconds);
    }
    let index = if after.is_empty() {
        0
    } else {
        match state
            .pages
            .iter()
            .position(|page| page["meta"]["after_cursor"] == after.as_str())
        {
            Some(previous) => previous + 1,
            None => return StatusCode::BAD_REQUEST.into_response(),
        }
    };
    if state.fail_page == Some(index + 1) {
        return (StatusCode::INTERNAL_SERVER_ERROR, json, "{}").into_response();
    }
    (StatusCode::OK, json, state.pages[index].to_string()).into_response()
}

fn source(api: &FakeZendesk) -> Source {
    api_source(
        "zendesk",
        SOURCE,
        json!({
            "signing_secret": ZENDESK_SECRET,
            "api_token": ZENDESK_API_TOKEN,
            "email": ZENDESK_API_EMAIL,
            "subdomain": "acme",
            "api_base_url": api.base_url,
            "api_rate_per_second": 1000.0,
        }),
    )
}

/// No pause between retries of a failing page (the engine's own test covers the pacing).
const FAST: Pacing = Pacing {
    rate_limited_attempts: 3,
    transient_retries: 1,
    first_retry_pause: Duration::ZERO,
};

async fn sync(store: &Store, source: &Source) -> SyncReport {
    run_with(store, source, &Metrics::default(), &mut |_| {}, FAST)
        .await
        .unwrap()
}

/// A vendor's 429 with `Retry-After: 1` (`rate_limit` makes the fake answer its next
/// request so): the connector reports the vendor's wait as it is, and a sync waits it out
/// (its timing is tested on a paused clock in sync.rs), asks again and creates `created` users.
async fn a_429_is_waited_out(source: &Source, rate_limit: impl Fn(), created: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    rate_limit();
    assert_eq!(
        source.connector.list_users(None).await.unwrap_err(),
        rollcall_core::ListError::RateLimited {
            retry_after: Duration::from_secs(1)
        }
    );
    rate_limit();
    let report = sync(&store, source).await;
    assert!(report.complete);
    assert_eq!(report.counts.created, created);
}

/// Journal events after `after`, as (type, user id, changed fields).
async fn events_after(store: &Store, after: i64) -> Vec<(String, String, Vec<String>)> {
    store
        .journal_after(after, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| {
            let event = entry.decode().unwrap();
            assert_eq!(event.vendor_event.event_type, "rollcall.sync");
            assert_eq!(event.vendor_event.id, None);
            let changes = event
                .changes
                .unwrap_or_default()
                .into_iter()
                .map(|change| change.field)
                .collect();
            (event.event_type.as_str().to_owned(), event.user.id, changes)
        })
        .collect()
}

async fn last_seq(store: &Store) -> i64 {
    store.counts().await.unwrap().last_seq
}

fn open_store(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path().join("rollcall.db")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_backfill_creates_every_listed_user_then_a_second_run_emits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let api = FakeZendesk::start().await;
    let source = source(&api);

    let report = sync(&store, &source).await;
    assert!(report.complete && report.deletions_checked, "{report:?}");
    assert_eq!(
        (report.pages, report.counts.listed, report.counts.created),
        (3, 5, 5)
    );
    let events = events_after(&store, 0).await;
    let mut created: Vec<_> = events
        .iter()
        .map(|(kind, id, _)| (kind.as_str(), id.as_str()))
        .collect();
    created.sort();
    assert_eq!(
        created,
        [
            ("user.created", "223443"),
            ("user.created", "35436"),
            ("user.created", "8193"),
            ("user.created", "9001"),
            ("user.created", "9002")
        ]
    );
    // Mapped as the bare-user webhook maps them: the same user either way.
    let johnny = store.user(SOURCE, "35436").await.unwrap();
    let webhook = rollcall_connector_zendesk::mapping::normalize(&rollcall_core::Delivery::new(
        SOURCE,
        api.state.lock().unwrap().pages[0]["users"][0].to_string(),
        Timestamp::now(),
    ))
    .unwrap();
    assert_eq!(johnny.user, webhook[0].user);
    assert!(!johnny.partial);
    assert_eq!(
        store
            .user(SOURCE, "9001")
            .await
            .unwrap()
            .user
            .status
            .unwrap()
            .as_str(),
        "inactive"
    );

    let before = last_seq(&store).await;
    let again = sync(&store, &source).await;
    assert!(again.complete);
    assert_eq!((again.counts.listed, again.counts.unchanged), (5, 5));
    assert_eq!(last_seq(&store).await, before, "a second run emits nothing");
    let state = store.sync_state(SOURCE).await.unwrap().unwrap();
    assert_eq!(state.cursor, None);
    assert!(state.last_complete_at.is_some() && state.last_error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_reconciliation_emits_exactly_the_changes_made_at_the_vendor() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let api = FakeZendesk::start().await;
    let source = source(&api);
    sync(&store, &source).await;
    let before = last_seq(&store).await;

    api.edit_user(8193, |user| {
        user["name"] = json!("Sally Boss");
        user["updated_at"] = json!("2025-07-01T00:00:00Z");
    });
    api.edit_user(9002, |user| {
        user["suspended"] = json!(true);
        user["updated_at"] = json!("2025-07-02T00:00:00Z");
    });
    // A raw field only (no unified field changes): not an event.
    api.edit_user(223443, |user| user["tags"] = json!(["vip"]));

    let report = sync(&store, &source).await;
    assert_eq!(
        (report.counts.updated, report.counts.unchanged),
        (2, 3),
        "{report:?}"
    );
    let events = events_after(&store, before).await;
    assert_eq!(
        events,
        [
            (
                "user.updated".to_owned(),
                "8193".to_owned(),
                vec!["name".to_owned(), "updated_at".to_owned()]
            ),
            (
                "user.updated".to_owned(),
                "9002".to_owned(),
                vec!["status".to_owned(), "updated_at".to_owned()]
            ),
        ]
    );
    let sally = store.journal_after(before, 1).await.unwrap()[0]
        .decode()
        .unwrap();
    assert_eq!(sally.previous.unwrap().name.as_deref(), Some("Sally Admin"));
    assert_eq!(sally.user.name.as_deref(), Some("Sally Boss"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_a_user_deleted_at_the_vendor_is_deleted_after_a_complete_listing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let api = FakeZendesk::start().await;
    let source = source(&api);
    sync(&store, &source).await;
    let before = last_seq(&store).await;

    api.remove_user(223443);
    let report = sync(&store, &source).await;
    assert_eq!(
        (report.counts.listed, report.counts.deleted),
        (4, 1),
        "{report:?}"
    );
    assert_eq!(
        events_after(&store, before).await,
        [(
            "user.deleted".to_owned(),
            "223443".to_owned(),
            vec!["status".to_owned()]
        )]
    );
    let entry = store.user(SOURCE, "223443").await.unwrap();
    assert!(entry.deleted);
    // Deleted once: the next run has nothing to do.
    let before = last_seq(&store).await;
    sync(&store, &source).await;
    assert_eq!(last_seq(&store).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_a_listing_that_fails_on_page_3_deletes_no_one_and_resumes_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let api = FakeZendesk::start().await;
    let source = source(&api);
    sync(&store, &source).await;
    let before = last_seq(&store).await;

    // Page 1 loses a user (it would look deleted) and page 3 fails.
    api.remove_user(35436);
    api.state.lock().unwrap().fail_page = Some(3);
    let report = sync(&store, &source).await;
    assert!(!report.complete && !report.deletions_checked, "{report:?}");
    assert!(
        report.error.as_deref().unwrap().contains("500"),
        "{report:?}"
    );
    assert_eq!(
        last_seq(&store).await,
        before,
        "no deletion after a failed listing"
    );
    assert!(!store.user(SOURCE, "35436").await.unwrap().deleted);
    let state = store.sync_state(SOURCE).await.unwrap().unwrap();
    let cursor = state.cursor.clone().expect("the cursor of page 3 is kept");
    assert!(state.last_error.is_some());

    // The next run asks for page 3 first, completes, and still deletes no one (it did not
    // see pages 1 and 2); the run after that, from page 1, does.
    api.state.lock().unwrap().fail_page = None;
    let asked = api.requests().len();
    let resumed = sync(&store, &source).await;
    assert!(
        resumed.complete && resumed.resumed && !resumed.deletions_checked,
        "{resumed:?}"
    );
    assert_eq!(api.requests()[asked..], [cursor.as_str().to_owned()]);
    assert_eq!(last_seq(&store).await, before);
    let full = sync(&store, &source).await;
    assert_eq!(full.counts.deleted, 1, "{full:?}");
    assert!(store.user(SOURCE, "35436").await.unwrap().deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_429_with_retry_after_is_waited_out_and_the_page_asked_again() {
    let api = FakeZendesk::start().await;
    let rate_limit = || api.state().rate_limit_once = Some(1);
    a_429_is_waited_out(&source(&api), rate_limit, 5).await;
    assert_eq!(
        api.requests()
            .iter()
            .filter(|after| after.is_empty())
            .count(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_backfill_then_a_webhook_then_a_reconciliation_with_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeZendesk::start().await;
    let recorded: Value = serde_json::from_slice(
        &std::fs::read(repo().join("connectors/zendesk/tests/api/users_6596848315901.json"))
            .unwrap(),
    )
    .unwrap();
    api.state
        .lock()
        .unwrap()
        .singles
        .push(recorded["user"].clone());
    let sink = dir.path().join("events.jsonl");
    let config = format!(
        "{}[[sinks]]\nid = \"archive\"\ntype = \"file\"\npath = \"{}\"\n",
        zendesk_enrich_source_toml(SOURCE, &api.base_url),
        sink.display()
    );
    let daemon = Daemon::start(dir.path(), &config);
    let client = client();
    let sync_url = format!("{}/v1/sources/{SOURCE}/sync", daemon.admin);

    let backfill = post_json(&client, sync_url.clone(), None).await;
    assert_eq!(backfill["complete"], true, "{backfill}");
    assert_eq!(backfill["created"], 5, "{backfill}");

    // A webhook for a new user, completed from the API.
    let body = fixture("zendesk", "webhook_user_created.json");
    let signed = sign_with(
        SOURCE,
        "zendesk",
        json!({"signing_secret": ZENDESK_SECRET}),
        &body,
        Timestamp::now(),
    );
    let (status, answer) = post_signed(&client, &daemon.url(SOURCE), &signed).await;
    assert_eq!(status, 202, "{answer}");

    // The vendor now lists that user too, as its API showed it: nothing to do.
    api.state.lock().unwrap().pages[2]["users"]
        .as_array_mut()
        .unwrap()
        .push(recorded["user"].clone());
    let reconcile = post_json(&client, sync_url, None).await;
    assert_eq!(reconcile["complete"], true, "{reconcile}");
    assert_eq!(reconcile["listed"], 6, "{reconcile}");
    assert_eq!(reconcile["unchanged"], 6, "{reconcile}");
    assert_eq!(
        (
            reconcile["created"].as_u64(),
            reconcile["updated"].as_u64(),
            reconcile["deleted"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{reconcile}"
    );

    eventually(WAIT, "six events reach the file sink", || {
        file_lines(&sink).len() >= 6
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = file_lines(&sink);
    let mut users: Vec<String> = lines
        .iter()
        .map(|event| event["user"]["id"].as_str().unwrap().to_owned())
        .collect();
    users.sort();
    assert_eq!(
        users,
        ["223443", "35436", "6596848315901", "8193", "9001", "9002"],
        "each change once"
    );
    let synced = lines
        .iter()
        .filter(|event| event["vendor_event"]["type"] == "rollcall.sync")
        .count();
    assert_eq!(synced, 5);

    // The admin API and the metrics show the state.
    let sources = get_json(&client, format!("{}/v1/sources", daemon.admin)).await;
    let ours = sources["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == SOURCE)
        .unwrap()
        .clone();
    assert_eq!(ours["sync"]["lists_users"], true, "{ours}");
    assert_eq!(ours["sync"]["state"]["counts"]["unchanged"], 6, "{ours}");
    assert!(
        ours["sync"]["state"]["last_complete_at"].is_string(),
        "{ours}"
    );
    let metrics = client
        .get(format!("{}/metrics", daemon.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "rollcall_sync_users_total{{source=\"{SOURCE}\",outcome=\"created\"}} 5"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "rollcall_sync_last_success_timestamp_seconds{{source=\"{SOURCE}\"}}"
        )),
        "{metrics}"
    );
}

// --- Okta: the Users API with Link pagination, then the DEPROVISIONED users ---

const OKTA_SOURCE: &str = "okta-sync";
const OKTA_TOKEN: &str = "okta-test-api-token";

#[derive(Default)]
struct OktaState {
    /// The recorded pages of the default listing.
    pages: Vec<Value>,
    /// The recorded page of `search=status eq "DEPROVISIONED"`.
    deprovisioned: Value,
    /// Answer this page (1-based, the deprovisioned page being the last) with 500.
    fail_page: Option<usize>,
    /// Answer the next listing request with 429 and `X-Rate-Limit-Reset` this many seconds
    /// ahead.
    rate_limit_once: Option<u64>,
    /// (search, after) of each listing request.
    requests: Vec<(Option<String>, Option<String>)>,
}

type FakeOkta = FakeApi<OktaState>;

impl FakeOkta {
    async fn start() -> FakeOkta {
        let read = |name: &str| read_json(&format!("connectors/okta/fixtures/sync/{name}.json"));
        FakeApi::serve(
            OktaState {
                pages: vec![read("users_page_1"), read("users_page_2")],
                deprovisioned: read("deprovisioned_page_1"),
                ..OktaState::default()
            },
            okta_answer,
        )
        .await
    }

    fn users_mut(&self, edit: impl FnOnce(&mut Vec<&mut Value>)) {
        let mut state = self.state();
        let state = &mut *state;
        let mut users: Vec<&mut Value> = state
            .pages
            .iter_mut()
            .chain(std::iter::once(&mut state.deprovisioned))
            .flat_map(|page| page.as_array_mut().unwrap().iter_mut())
            .collect();
        edit(&mut users);
    }

    fn remove_user(&self, id: &str) {
        let mut state = self.state();
        let state = &mut *state;
        for page in state
            .pages
            .iter_mut()
            .chain(std::iter::once(&mut state.deprovisioned))
        {
            page.as_array_mut().unwrap().retain(|user| user["id"] != id);
        }
    }
}

fn okta_answer(state: &mut OktaState, base_url: &str, request: &Request<Body>) -> Response {
    let authorized = request
        .headers()
        .get("authorization")
        .is_some_and(|value| value == format!("SSWS {OKTA_TOKEN}").as_str());
    if !authorized {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if request.uri().path() != "/api/v1/users" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let get = |name: &str| query_value(request, name);
    assert_eq!(get("limit").as_deref(), Some("200"));
    let (search, after) = (get("search"), get("after"));
    state.requests.push((search.clone(), after.clone()));
    if let Some(seconds) = state.rate_limit_once.take() {
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + seconds;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("x-rate-limit-reset", reset.to_string())],
            "{\"errorCode\":\"E0000047\"}",
        )
            .into_response();
    }
    let json = [("content-type", "application/json")];
    let (number, body, next) = match (search.as_deref(), after.as_deref()) {
        (Some("status eq \"DEPROVISIONED\""), None) => {
            (state.pages.len() + 1, state.deprovisioned.clone(), None)
        }
        (None, None) => (1, state.pages[0].clone(), Some("page-2")),
        (None, Some("page-2")) => (2, state.pages[1].clone(), None),
        _ => return StatusCode::BAD_REQUEST.into_response(),
    };
    if state.fail_page == Some(number) {
        return (StatusCode::INTERNAL_SERVER_ERROR, json, "{}").into_response();
    }
    let mut links = vec![format!("<{base_url}/api/v1/users?limit=200>; rel=\"self\"")];
    if let Some(next) = next {
        links.push(format!(
            "<{base_url}/api/v1/users?after={next}&limit=200>; rel=\"next\""
        ));
    }
    let mut response = (StatusCode::OK, json, body.to_string()).into_response();
    for link in links {
        response.headers_mut().append("link", link.parse().unwrap());
    }
    response
}

fn okta_source(api: &FakeOkta) -> Source {
    api_source(
        "okta",
        OKTA_SOURCE,
        json!({
            "authorization_secret": "hook-secret",
            "api_token": OKTA_TOKEN,
            "org_url": api.base_url,
            "api_rate_per_second": 1000.0,
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_backfill_lists_active_and_deprovisioned_users_then_a_second_run_emits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let api = FakeOkta::start().await;
    let source = okta_source(&api);

    let report = sync(&store, &source).await;
    assert!(report.complete && report.deletions_checked, "{report:?}");
    assert_eq!((report.pages, report.counts.created), (3, 5));
    let isaac = store
        .user(OKTA_SOURCE, "00ub0oNGTSWTBKOLGLNR")
        .await
        .unwrap()
        .user;
    assert_eq!(isaac.name.as_deref(), Some("Isaac Brock"));
    assert_eq!(isaac.username.as_deref(), Some("isaac.brock@example.com"));
    assert_eq!(isaac.status.unwrap().as_str(), "active");
    assert!(isaac
        .remote_data
        .unwrap()
        .to_value()
        .get("credentials")
        .is_none());
    let status = |id: &'static str| {
        let store = store.clone();
        async move {
            store
                .user(OKTA_SOURCE, id)
                .await
                .unwrap()
                .user
                .status
                .unwrap()
                .as_str()
                .to_owned()
        }
    };
    assert_eq!(status("00ub0oNGTSWTBKOLGLNT").await, "invited");
    assert_eq!(status("00ub0oNGTSWTBKOLGLNU").await, "inactive");
    assert_eq!(status("00ub0oNGTSWTBKOLGLNV").await, "inactive");
    assert_eq!(
        store
            .user(OKTA_SOURCE, "00ub0oNGTSWTBKOLGLNU")
            .await
            .unwrap()
            .user
            .name
            .as_deref(),
        Some("E. Judy")
    );

    let before = last_seq(&store).await;
    let again = sync(&store, &source).await;
    assert_eq!(
        (again.counts.listed, again.counts.unchanged),
        (5, 5),
        "{again:?}"
    );
    assert_eq!(last_seq(&store).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_reconciliation_emits_exactly_the_changes_and_keeps_groups_webhooks_told() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let api = FakeOkta::start().await;
    let source = okta_source(&api);
    sync(&store, &source).await;
    // A membership webhook told rollcall Isaac's group; the listing never states groups.
    let body = fixture("okta", "group.user_membership.add.json");
    let events = source
        .connector
        .normalize(&rollcall_core::Delivery::new(
            OKTA_SOURCE,
            body,
            Timestamp::now(),
        ))
        .unwrap();
    let member = events[0].user.id.clone();
    store
        .ingest(rollcall_store::IngestBatch {
            source: OKTA_SOURCE.to_owned(),
            dedup_key: "membership".to_owned(),
            received_at: Timestamp::now(),
            events,
        })
        .await
        .unwrap();
    let before = last_seq(&store).await;

    api.users_mut(|users| {
        for user in users.iter_mut() {
            if user["id"] == "00ub0oNGTSWTBKOLGLNS" {
                user["profile"]["title"] = json!("Lead Bassist");
                user["lastUpdated"] = json!("2025-08-01T00:00:00.000Z");
            }
        }
    });
    let report = sync(&store, &source).await;
    assert_eq!(report.counts.updated, 1, "{report:?}");
    let events = store.journal_after(before, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    let event = events[0].decode().unwrap();
    assert_eq!(event.user.id, "00ub0oNGTSWTBKOLGLNS");
    let fields: Vec<_> = event
        .changes
        .unwrap()
        .into_iter()
        .map(|change| change.field)
        .collect();
    assert_eq!(fields, ["title", "updated_at"]);
    assert_eq!(member, "00ub0oNGTSWTBKOLGLNS");
    let groups = store.user(OKTA_SOURCE, &member).await.unwrap().user.groups;
    assert_eq!(
        groups.unwrap()[0].id.as_deref(),
        Some("00g1emaKYZTWRYYRRTSK"),
        "the webhook's group is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_a_user_deleted_at_the_vendor_is_deleted_after_a_complete_listing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let api = FakeOkta::start().await;
    let source = okta_source(&api);
    sync(&store, &source).await;
    let before = last_seq(&store).await;
    api.remove_user("00ub0oNGTSWTBKOLGLNV");
    let report = sync(&store, &source).await;
    assert_eq!(report.counts.deleted, 1, "{report:?}");
    let events = store.journal_after(before, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "user.deleted");
    assert!(
        store
            .user(OKTA_SOURCE, "00ub0oNGTSWTBKOLGLNV")
            .await
            .unwrap()
            .deleted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_a_listing_that_fails_on_page_3_deletes_no_one_and_resumes_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let api = FakeOkta::start().await;
    let source = okta_source(&api);
    sync(&store, &source).await;
    let before = last_seq(&store).await;
    api.remove_user("00ub0oNGTSWTBKOLGLNR");
    api.state.lock().unwrap().fail_page = Some(3);
    let report = sync(&store, &source).await;
    assert!(!report.complete && !report.deletions_checked, "{report:?}");
    assert_eq!(last_seq(&store).await, before);
    let cursor = store
        .sync_state(OKTA_SOURCE)
        .await
        .unwrap()
        .unwrap()
        .cursor
        .unwrap();
    assert_eq!(cursor.as_str(), "deprovisioned:");

    api.state.lock().unwrap().fail_page = None;
    let asked = api.state.lock().unwrap().requests.len();
    let resumed = sync(&store, &source).await;
    assert!(resumed.complete && resumed.resumed && !resumed.deletions_checked);
    let requests = api.state.lock().unwrap().requests[asked..].to_vec();
    assert_eq!(
        requests,
        [(Some("status eq \"DEPROVISIONED\"".to_owned()), None)]
    );
    assert_eq!(last_seq(&store).await, before);
    assert_eq!(sync(&store, &source).await.counts.deleted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_429_is_waited_out_until_the_rate_limit_reset() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let api = FakeOkta::start().await;
    let source = okta_source(&api);
    api.state.lock().unwrap().rate_limit_once = Some(30);
    match source.connector.list_users(None).await.unwrap_err() {
        rollcall_core::ListError::RateLimited { retry_after } => assert!(
            retry_after > Duration::from_secs(28) && retry_after <= Duration::from_secs(30),
            "{retry_after:?}"
        ),
        other => panic!("{other:?}"),
    }
    api.state.lock().unwrap().rate_limit_once = Some(1);
    let report = sync(&store, &source).await;
    assert!(report.complete, "{report:?}");
    assert_eq!(report.counts.created, 5);
}

// --- VCC Live: the Database API's user list, one answer for the whole account ---

const VCC_SOURCE: &str = "vcc-sync";

/// A vendor whose user list is one answer for the whole account (VCC Live, HighLevel).
#[derive(Default)]
struct ListState {
    list: Value,
    /// Answer the list with the vendor's failure status.
    fail: bool,
    /// Answer the next request with 429 and this `Retry-After`.
    rate_limit_once: Option<u64>,
    requests: usize,
}

impl ListState {
    /// The list, or the 429 or `failure` the test asked for.
    fn answer(&mut self, failure: StatusCode) -> Response {
        self.requests += 1;
        if let Some(seconds) = self.rate_limit_once.take() {
            rate_limited(seconds)
        } else if self.fail {
            (failure, "").into_response()
        } else {
            (StatusCode::OK, self.list.to_string()).into_response()
        }
    }
}

type VccState = ListState;

type FakeVcc = FakeApi<VccState>;

impl FakeVcc {
    async fn start() -> FakeVcc {
        let list = read_json("connectors/vcclive/fixtures/sync/users.json");
        FakeApi::serve(
            VccState {
                list,
                ..VccState::default()
            },
            vcc_answer,
        )
        .await
    }

    fn users(&self) -> std::sync::MutexGuard<'_, VccState> {
        self.state()
    }
}

fn vcc_answer(state: &mut VccState, _base_url: &str, request: &Request<Body>) -> Response {
    // Basic auth: the account and its API password.
    let authorized = request.headers().get("authorization").is_some_and(|value| {
        value == "Basic bXljYzp2Y2MtYXBpLXBhc3N3b3Jk" // mycc:vcc-api-password
    });
    if !authorized {
        StatusCode::UNAUTHORIZED.into_response()
    } else if request.uri().path() != "/v2/users" {
        StatusCode::NOT_FOUND.into_response()
    } else {
        state.answer(StatusCode::BAD_GATEWAY)
    }
}

fn vcc_source(api: &FakeVcc) -> Source {
    api_source(
        "vcclive",
        VCC_SOURCE,
        json!({
            "secret_key": "vcc-secret",
            "account": "mycc",
            "api_password": "vcc-api-password",
            "api_base_url": api.base_url,
            "api_rate_per_second": 1000.0,
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcclive_backfill_then_a_second_run_emits_nothing_and_a_change_emits_exactly_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let api = FakeVcc::start().await;
    let source = vcc_source(&api);

    let report = sync(&store, &source).await;
    assert!(report.complete, "{report:?}");
    assert_eq!((report.pages, report.counts.created), (1, 3));
    let peter = store.user(VCC_SOURCE, "4").await.unwrap().user;
    // Mapped by the webhook mapping, the list's names read as the webhook's.
    let webhook = rollcall_connector_vcclive::mapping::user(
        &serde_json::from_value(json!({
            "userId": 4, "name": "Peter Green", "username": "peter", "extension": "4",
            "isAgent": true, "privGroup": 2, "state": "active"
        }))
        .unwrap(),
        "new",
    )
    .unwrap();
    assert_eq!(
        (
            peter.name.clone(),
            peter.username.clone(),
            peter.status.clone(),
            peter.roles.clone(),
            peter.groups.clone()
        ),
        (
            webhook.name,
            webhook.username,
            webhook.status,
            webhook.roles,
            webhook.groups
        )
    );

    let before = last_seq(&store).await;
    assert_eq!(sync(&store, &source).await.counts.unchanged, 3);
    assert_eq!(last_seq(&store).await, before);

    api.users().list["response"][2]["status"] = json!("inactive");
    let report = sync(&store, &source).await;
    assert_eq!(report.counts.updated, 1, "{report:?}");
    let events = store.journal_after(before, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    let event = events[0].decode().unwrap();
    assert_eq!(event.user.id, "6");
    let fields: Vec<_> = event
        .changes
        .unwrap()
        .into_iter()
        .map(|change| change.field)
        .collect();
    assert_eq!(fields, ["status"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcclive_a_deleted_user_goes_only_after_a_list_that_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let api = FakeVcc::start().await;
    let source = vcc_source(&api);
    sync(&store, &source).await;
    let before = last_seq(&store).await;

    api.users().list["response"]
        .as_array_mut()
        .unwrap()
        .remove(1);
    api.users().fail = true;
    let failed = sync(&store, &source).await;
    assert!(!failed.complete && !failed.deletions_checked, "{failed:?}");
    assert!(failed.error.as_deref().unwrap().contains("502"));
    assert_eq!(
        last_seq(&store).await,
        before,
        "a failed list deletes no one"
    );

    api.users().fail = false;
    let report = sync(&store, &source).await;
    assert_eq!(report.counts.deleted, 1, "{report:?}");
    assert!(store.user(VCC_SOURCE, "5").await.unwrap().deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcclive_429_with_retry_after_is_waited_out() {
    let api = FakeVcc::start().await;
    let rate_limit = || api.users().rate_limit_once = Some(1);
    a_429_is_waited_out(&vcc_source(&api), rate_limit, 3).await;
    assert_eq!(api.users().requests, 3);
}

// --- HighLevel: the API v2 user list of one sub-account (location) ---

const GHL_SOURCE: &str = "ghl-sync";
const GHL_LOCATION: &str = "ve9EPM428h8vShlRW1KT";

type GhlState = ListState;

async fn start_fake_highlevel() -> (String, Arc<Mutex<GhlState>>) {
    let list = read_json("connectors/highlevel/fixtures/sync/users.json");
    let api = FakeApi::serve(
        GhlState {
            list,
            ..GhlState::default()
        },
        ghl_answer,
    )
    .await;
    (api.base_url, api.state)
}

fn ghl_answer(state: &mut GhlState, _base_url: &str, request: &Request<Body>) -> Response {
    let headers = request.headers();
    let authorized = headers
        .get("authorization")
        .is_some_and(|value| value == "Bearer ghl-token")
        && headers
            .get("version")
            .is_some_and(|value| value == "2021-07-28");
    if !authorized {
        StatusCode::UNAUTHORIZED.into_response()
    } else if request.uri().path() != "/users/"
        || request.uri().query() != Some(&format!("locationId={GHL_LOCATION}")[..])
    {
        StatusCode::NOT_FOUND.into_response()
    } else {
        state.answer(StatusCode::SERVICE_UNAVAILABLE)
    }
}

fn ghl_source(base_url: &str) -> Source {
    api_source(
        "highlevel",
        GHL_SOURCE,
        json!({
            "api_token": "ghl-token",
            "location_id": GHL_LOCATION,
            "api_base_url": base_url,
            "api_rate_per_second": 1000.0,
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn highlevel_backfill_maps_users_as_webhooks_do_then_a_second_run_emits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let (base_url, _state) = start_fake_highlevel().await;
    let source = ghl_source(&base_url);

    let report = sync(&store, &source).await;
    assert!(report.complete, "{report:?}");
    assert_eq!(report.counts.created, 3);
    // The same user as a UserCreate webhook of a sub-account user gives.
    let webhook = source
        .connector
        .normalize(&rollcall_core::Delivery::new(
            GHL_SOURCE,
            json!({
                "type": "UserCreate", "locationId": GHL_LOCATION, "id": "1JJuKvc3pgQBBB9HaUSj",
                "firstName": "Jane", "lastName": "Roe", "email": "jane.roe@example.com",
                "phone": "+13235559998", "role": "user", "permissions": {"contactsEnabled": true}
            })
            .to_string(),
            Timestamp::now(),
        ))
        .unwrap();
    let jane = store
        .user(GHL_SOURCE, "1JJuKvc3pgQBBB9HaUSj")
        .await
        .unwrap()
        .user;
    assert_eq!(jane, webhook[0].user);
    let annie = store
        .user(GHL_SOURCE, "2KKvLwd4qhRCCC0IbVTk")
        .await
        .unwrap()
        .user;
    assert_eq!(
        annie.organizations.unwrap()[0].id.as_deref(),
        Some("5DP4iH6HLkQsiKESj6rh")
    );
    assert_eq!(annie.groups.unwrap().len(), 2);

    let before = last_seq(&store).await;
    assert_eq!(sync(&store, &source).await.counts.unchanged, 3);
    assert_eq!(last_seq(&store).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn highlevel_changes_and_deletions_are_emitted_only_after_a_list_that_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let (base_url, state) = start_fake_highlevel().await;
    let source = ghl_source(&base_url);
    sync(&store, &source).await;
    let before = last_seq(&store).await;

    {
        let mut state = state.lock().unwrap();
        state.list["users"][0]["roles"]["role"] = json!("user");
        // Marked deleted by HighLevel: as good as not listed.
        state.list["users"][1]["deleted"] = json!(true);
        state.fail = true;
    }
    let failed = sync(&store, &source).await;
    assert!(!failed.complete && !failed.deletions_checked, "{failed:?}");
    assert_eq!(last_seq(&store).await, before);

    state.lock().unwrap().fail = false;
    let report = sync(&store, &source).await;
    assert_eq!(
        (report.counts.updated, report.counts.deleted),
        (1, 1),
        "{report:?}"
    );
    let events: Vec<_> = store
        .journal_after(before, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.decode().unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].user.id, "0IHuJvc2ofPAAA8GzTRi");
    let fields: Vec<_> = events[0]
        .changes
        .clone()
        .unwrap()
        .into_iter()
        .map(|change| change.field)
        .collect();
    assert_eq!(fields, ["roles"]);
    assert_eq!(events[1].event_type.as_str(), "user.deleted");
    assert_eq!(events[1].user.id, "1JJuKvc3pgQBBB9HaUSj");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn highlevel_429_with_retry_after_is_waited_out() {
    let (base_url, state) = start_fake_highlevel().await;
    let rate_limit = || state.lock().unwrap().rate_limit_once = Some(1);
    a_429_is_waited_out(&ghl_source(&base_url), rate_limit, 3).await;
    assert_eq!(state.lock().unwrap().requests, 3);
}

// --- Freshservice: agents then requesters, page by page with Link headers ---

const FS_SOURCE: &str = "fs-sync";

#[derive(Default)]
struct FsState {
    /// (listing, pages)
    agents: Vec<Value>,
    requesters: Vec<Value>,
    fail_page: Option<usize>,
    rate_limit_once: Option<u64>,
    requests: Vec<String>,
}

async fn start_fake_freshservice() -> (String, Arc<Mutex<FsState>>) {
    let read = |name: &str| {
        read_json(&format!(
            "connectors/freshservice/fixtures/sync/{name}.json"
        ))
    };
    let api = FakeApi::serve(
        FsState {
            agents: vec![read("agents_page_1"), read("agents_page_2")],
            requesters: vec![read("requesters_page_1")],
            ..FsState::default()
        },
        fs_answer,
    )
    .await;
    (api.base_url, api.state)
}

fn fs_answer(state: &mut FsState, base_url: &str, request: &Request<Body>) -> Response {
    // Basic auth: the API key and `X`.
    let authorized = request
        .headers()
        .get("authorization")
        .is_some_and(|value| value == "Basic ZnMtYXBpLWtleTpY"); // fs-api-key:X
    let path = request.uri().path().to_owned();
    let page: usize = query_value(request, "page")
        .and_then(|value| value.parse().ok())
        .unwrap_or(1);
    if !authorized {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    state.requests.push(format!("{path}?page={page}"));
    let (pages, before) = match path.as_str() {
        "/api/v2/agents" => (state.agents.clone(), 0),
        "/api/v2/requesters" => (state.requesters.clone(), state.agents.len()),
        _ => (Vec::new(), usize::MAX),
    };
    if before == usize::MAX || page == 0 || page > pages.len() {
        StatusCode::NOT_FOUND.into_response()
    } else if let Some(seconds) = state.rate_limit_once.take() {
        rate_limited(seconds)
    } else if state.fail_page == Some(before + page) {
        (StatusCode::INTERNAL_SERVER_ERROR, "").into_response()
    } else {
        let mut response = (StatusCode::OK, pages[page - 1].to_string()).into_response();
        if page < pages.len() {
            let link = format!(
                "<{base_url}{path}?per_page=100&page={}>; rel=\"next\"",
                page + 1
            );
            response.headers_mut().insert("link", link.parse().unwrap());
        }
        response
    }
}

fn fs_source(base_url: &str) -> Source {
    api_source(
        "freshservice",
        FS_SOURCE,
        json!({
            "signing_secret": "whsec_c2VjcmV0LWZvci1mcmVzaHNlcnZpY2UtdGVzdHM=",
            "api_key": "fs-api-key",
            "domain": "acme.freshservice.com",
            "api_base_url": base_url,
            "api_rate_per_second": 1000.0,
        }),
    )
}

fn fs_remove(state: &Mutex<FsState>, id: u64) {
    let mut state = state.lock().unwrap();
    let state = &mut *state;
    for page in state.agents.iter_mut() {
        page["agents"]
            .as_array_mut()
            .unwrap()
            .retain(|user| user["id"] != id);
    }
    for page in state.requesters.iter_mut() {
        page["requesters"]
            .as_array_mut()
            .unwrap()
            .retain(|user| user["id"] != id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshservice_backfill_lists_agents_then_requesters_then_a_second_run_emits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let (base_url, state) = start_fake_freshservice().await;
    let source = fs_source(&base_url);

    let report = sync(&store, &source).await;
    assert!(report.complete, "{report:?}");
    assert_eq!((report.pages, report.counts.created), (3, 5));
    assert_eq!(
        state.lock().unwrap().requests,
        [
            "/api/v2/agents?page=1",
            "/api/v2/agents?page=2",
            "/api/v2/requesters?page=1"
        ]
    );
    let rachel = store.user(FS_SOURCE, "11").await.unwrap().user;
    assert_eq!(rachel.emails.unwrap()[0].email, "rachel.green@acme.example");
    assert_eq!(rachel.timezone.as_deref(), Some("America/New_York"));
    assert_eq!(
        store
            .user(FS_SOURCE, "13")
            .await
            .unwrap()
            .user
            .status
            .unwrap()
            .as_str(),
        "inactive"
    );
    assert_eq!(
        store
            .user(FS_SOURCE, "93")
            .await
            .unwrap()
            .user
            .timezone
            .as_deref(),
        Some("Asia/Kolkata")
    );

    let before = last_seq(&store).await;
    assert_eq!(sync(&store, &source).await.counts.unchanged, 5);
    assert_eq!(last_seq(&store).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshservice_reconciliation_emits_the_changes_and_deletes_only_after_a_complete_listing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir);
    let (base_url, state) = start_fake_freshservice().await;
    let source = fs_source(&base_url);
    sync(&store, &source).await;
    let before = last_seq(&store).await;

    {
        let mut state = state.lock().unwrap();
        state.agents[0]["agents"][1]["job_title"] = json!("Paleontologist");
        state.agents[0]["agents"][1]["updated_at"] = json!("2025-06-01T00:00:00Z");
    }
    fs_remove(&state, 94);
    state.lock().unwrap().fail_page = Some(3);
    let failed = sync(&store, &source).await;
    assert!(!failed.complete && !failed.deletions_checked, "{failed:?}");
    // The change on page 1 is committed; no one is deleted.
    let events = store.journal_after(before, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    let event = events[0].decode().unwrap();
    assert_eq!(event.user.id, "12");
    let fields: Vec<_> = event
        .changes
        .unwrap()
        .into_iter()
        .map(|change| change.field)
        .collect();
    assert_eq!(fields, ["title", "updated_at"]);
    let cursor = store
        .sync_state(FS_SOURCE)
        .await
        .unwrap()
        .unwrap()
        .cursor
        .unwrap();
    assert_eq!(cursor.as_str(), "requesters:1");

    state.lock().unwrap().fail_page = None;
    let resumed = sync(&store, &source).await;
    assert!(
        resumed.complete && resumed.resumed && !resumed.deletions_checked,
        "{resumed:?}"
    );
    assert_eq!(store.journal_after(before, 10).await.unwrap().len(), 1);
    let full = sync(&store, &source).await;
    assert_eq!(
        (full.counts.deleted, full.counts.unchanged),
        (1, 4),
        "{full:?}"
    );
    assert!(store.user(FS_SOURCE, "94").await.unwrap().deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshservice_429_with_retry_after_is_waited_out() {
    let (base_url, state) = start_fake_freshservice().await;
    let rate_limit = || state.lock().unwrap().rate_limit_once = Some(1);
    a_429_is_waited_out(&fs_source(&base_url), rate_limit, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollcall_sync_prints_a_json_summary_off_a_terminal_and_exits_by_completeness() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeZendesk::start().await;
    let config = dir.path().join("rollcall.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ntype = \"sqlite\"\npath = \"{}\"\n{}",
            dir.path().join("data/rollcall.db").display(),
            zendesk_enrich_source_toml(SOURCE, &api.base_url)
        ),
    )
    .unwrap();
    let run = |config: std::path::PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
                .args(["sync", "--source", SOURCE, "--config"])
                .arg(&config)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let output = run(config.clone()).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["complete"], true, "{summary}");
    assert_eq!(summary["created"], 5, "{summary}");
    assert!(!String::from_utf8_lossy(&output.stderr).contains(ZENDESK_API_TOKEN));

    // The vendor fails on page 3: exit 1, the summary says why, nothing deleted.
    api.state.lock().unwrap().fail_page = Some(3);
    let output = run(config.clone()).await;
    assert_eq!(output.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["complete"], false, "{summary}");
    assert!(
        summary["error"].as_str().unwrap().contains("500"),
        "{summary}"
    );

    // A source that cannot list users: sync_unsupported.
    std::fs::write(
        &config,
        format!(
            "[store]\ntype = \"sqlite\"\npath = \"{}\"\n[[sources]]\nid = \"plain\"\nconnector = \"zendesk\"\nsigning_secret = \"s\"\n",
            dir.path().join("data/rollcall.db").display()
        ),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .args(["sync", "--source", "plain", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("sync_unsupported"));
}
