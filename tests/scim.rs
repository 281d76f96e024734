//! The user directory's read APIs end to end: a real `rollcall serve`, signed deliveries
//! from VCC Live and Freshservice, then the SCIM 2.0 service read as a SCIM client would
//! (RFC 7644), `/v1/users`, and `rollcall users`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{json, Value};
use support::*;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A VCC Live "User Created" body.
fn vcc_created(id: u64, name: &str, username: Option<&str>, email: &str) -> Vec<u8> {
    let mut user = json!({
        "userId": id,
        "name": name,
        "email": email,
        "isAgent": true,
        "privGroup": 4,
        "state": "active",
        "password": "never-stored",
    });
    if let Some(username) = username {
        user["username"] = json!(username);
    }
    serde_json::to_vec(&json!({"old": null, "new": user, "timestamp": "2024-03-07T17:00:00+01:00"}))
        .unwrap()
}

/// A VCC Live "User Changed" body that deactivates the user.
fn vcc_deactivated(id: u64, name: &str, username: &str, email: &str) -> Vec<u8> {
    let user = |state: &str| {
        json!({"userId": id, "name": name, "username": username, "email": email,
               "isAgent": true, "privGroup": 4, "state": state})
    };
    serde_json::to_vec(&json!({
        "old": user("active"),
        "new": user("inactive"),
        "timestamp": "2024-03-07T17:30:00+01:00",
    }))
    .unwrap()
}

async fn deliver(client: &reqwest::Client, daemon: &Daemon, source: &str, body: &[u8]) {
    let (status, answer) = daemon.send(client, source, body).await;
    assert_eq!(status, 202, "{answer}");
}

struct Answer {
    status: u16,
    content_type: String,
    etag: Option<String>,
    body: Value,
}

async fn get(client: &reqwest::Client, url: &str) -> Answer {
    let response = client
        .get(url)
        .header("accept", "application/scim+json")
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let (content_type, etag) = (header("content-type").unwrap_or_default(), header("etag"));
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        etag,
        body,
    }
}

/// A SCIM error answer: the status, the SCIM media type and the error schema.
fn assert_scim_error(answer: &Answer, status: u16, scim_type: Option<&str>) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.content_type, "application/scim+json");
    assert_eq!(answer.body["schemas"], json!([ERROR]));
    assert_eq!(answer.body["status"], status.to_string());
    assert!(answer.body["detail"].is_string());
    match scim_type {
        Some(scim_type) => assert_eq!(answer.body["scimType"], scim_type),
        None => assert!(answer.body.get("scimType").is_none()),
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|resource| resource["id"].as_str().unwrap().to_owned())
        .collect()
}

fn rollcall(args: &[&str]) -> (i32, Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(args)
        .env_remove("ROLLCALL_ADMIN_TOKEN")
        .output()
        .unwrap();
    let stdout = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (
        output.status.code().unwrap_or(-1),
        stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_reads_as_scim_v1_users_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &sources_toml());
    let client = client();

    // Three VCC Live users (one with no username), a Freshservice user, a VCC deactivation.
    deliver(
        &client,
        &daemon,
        "vcc",
        &vcc_created(
            180,
            "Rachel Smith",
            Some("rachel_smith"),
            "rachel@company.com",
        ),
    )
    .await;
    deliver(
        &client,
        &daemon,
        "vcc",
        &vcc_created(181, "Bob Jones", Some("bob_jones"), "bob@company.com"),
    )
    .await;
    deliver(
        &client,
        &daemon,
        "vcc",
        &vcc_created(182, "Cy Young", None, "Cy.Young@Company.com"),
    )
    .await;
    deliver(
        &client,
        &daemon,
        "fs",
        &fixture("freshservice", "onUserCreate.json"),
    )
    .await;
    deliver(
        &client,
        &daemon,
        "vcc",
        &vcc_deactivated(181, "Bob Jones", "bob_jones", "bob@company.com"),
    )
    .await;

    let scim = format!("{}/scim/v2", daemon.admin);
    let all = ["fs:93", "vcc:180", "vcc:181", "vcc:182"];

    // The list response (RFC 7644 section 3.4.2).
    let list = get(&client, &format!("{scim}/Users")).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.content_type, "application/scim+json");
    assert_eq!(list.body["schemas"], json!([LIST]));
    assert_eq!(list.body["totalResults"], 4);
    assert_eq!(list.body["startIndex"], 1);
    assert_eq!(list.body["itemsPerPage"], 4);
    assert_eq!(ids(&list.body), all);
    for resource in list.body["Resources"].as_array().unwrap() {
        assert!(resource["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(USER)));
        assert!(resource["userName"].is_string());
        assert_eq!(resource["meta"]["resourceType"], "User");
        let location = resource["meta"]["location"].as_str().unwrap();
        assert_eq!(
            location,
            format!("{scim}/Users/{}", resource["id"].as_str().unwrap())
        );
        assert!(resource.get("remote_data").is_none());
        assert!(!resource.to_string().contains("never-stored"));
    }

    // Paging with count=1 visits every user once; totalResults does not move.
    let mut paged = Vec::new();
    for start in 1..=4 {
        let page = get(&client, &format!("{scim}/Users?startIndex={start}&count=1")).await;
        assert_eq!(page.status, 200);
        assert_eq!(page.body["totalResults"], 4);
        assert_eq!(page.body["startIndex"], start);
        assert_eq!(page.body["itemsPerPage"], 1);
        paged.extend(ids(&page.body));
    }
    assert_eq!(paged, all);
    assert_eq!(paged.iter().collect::<BTreeSet<_>>().len(), 4);
    let past_the_end = get(&client, &format!("{scim}/Users?startIndex=5&count=1")).await;
    assert_eq!(past_the_end.body["totalResults"], 4);
    assert_eq!(past_the_end.body["itemsPerPage"], 0);
    assert_eq!(past_the_end.body["Resources"], json!([]));
    let counted = get(&client, &format!("{scim}/Users?count=0")).await;
    assert_eq!(counted.body["totalResults"], 4);
    assert_eq!(counted.body["Resources"], json!([]));
    let two = get(&client, &format!("{scim}/Users?startIndex=2&count=2")).await;
    assert_eq!(ids(&two.body), ["vcc:180", "vcc:181"]);

    // filter=userName eq "...": exactly one, attribute name and value case-insensitive.
    for (filter, id) in [
        (r#"userName eq "rachel_smith""#, "vcc:180"),
        (r#"USERNAME Eq "Rachel_Smith""#, "vcc:180"),
        (r#"userName eq "newagent30@email.com""#, "fs:93"),
        (r#"userName eq "cy.young@company.com""#, "vcc:182"),
    ] {
        let found = get(
            &client,
            &format!(
                "{scim}/Users?filter={}",
                form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
            ),
        )
        .await;
        assert_eq!(found.status, 200, "{filter}: {}", found.body);
        assert_eq!(found.body["totalResults"], 1, "{filter}");
        assert_eq!(ids(&found.body), [id], "{filter}");
    }
    let nobody = get(
        &client,
        &format!("{scim}/Users?filter=userName%20eq%20%22nobody%22"),
    )
    .await;
    assert_eq!(nobody.status, 200);
    assert_eq!(nobody.body["totalResults"], 0);
    assert_eq!(nobody.body["Resources"], json!([]));

    // Any other filter is a 400 invalidFilter SCIM error.
    for filter in [
        r#"emails co "company""#,
        r#"userName sw "r""#,
        "active eq true",
        "garbage",
    ] {
        let refused = get(
            &client,
            &format!(
                "{scim}/Users?filter={}",
                form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
            ),
        )
        .await;
        assert_scim_error(&refused, 400, Some("invalidFilter"));
    }
    assert_scim_error(
        &get(&client, &format!("{scim}/Users?count=many")).await,
        400,
        Some("invalidValue"),
    );

    // GET by id: the mapped user, with its ETag; the id may arrive percent-encoded.
    let rachel = get(&client, &format!("{scim}/Users/vcc:180")).await;
    assert_eq!(rachel.status, 200, "{}", rachel.body);
    assert_eq!(rachel.content_type, "application/scim+json");
    let user = &rachel.body;
    assert_eq!(user["schemas"], json!([USER]));
    assert_eq!(user["id"], "vcc:180");
    assert_eq!(user["externalId"], "180");
    assert_eq!(user["userName"], "rachel_smith");
    assert_eq!(user["displayName"], "Rachel Smith");
    assert_eq!(user["name"], json!({"formatted": "Rachel Smith"}));
    assert_eq!(
        user["emails"],
        json!([{"value": "rachel@company.com", "primary": true}])
    );
    assert_eq!(user["active"], true);
    assert_eq!(user["groups"], json!([{"value": "4"}]));
    assert_eq!(
        user["roles"],
        json!([{"value": "agent", "display": "agent"}])
    );
    assert_eq!(user["meta"]["version"], "W/\"1\"");
    assert_eq!(rachel.etag.as_deref(), Some("W/\"1\""));
    let encoded = get(&client, &format!("{scim}/Users/vcc%3A180")).await;
    assert_eq!(encoded.body, rachel.body);

    // A conditional GET with the current ETag is 304.
    let response = client
        .get(format!("{scim}/Users/vcc:180"))
        .header("if-none-match", "W/\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 304);

    // The Freshservice user: name parts, languages, time zone and the enterprise extension.
    let agent = get(&client, &format!("{scim}/Users/fs:93")).await.body;
    assert_eq!(agent["schemas"], json!([USER, ENTERPRISE]));
    assert_eq!(agent["userName"], "newagent30@email.com");
    assert_eq!(
        agent["name"],
        json!({"givenName": "test", "familyName": "30", "formatted": "test 30"})
    );
    assert_eq!(agent["title"], "Engineer");
    assert_eq!(agent["timezone"], "Asia/Kolkata");
    assert_eq!(agent["preferredLanguage"], "en");
    assert_eq!(agent["locale"], "en");
    assert_eq!(agent["active"], true);
    assert_eq!(agent[ENTERPRISE], json!({"organization": "Finance"}));
    assert_eq!(agent["meta"]["created"], "2023-05-18T11:06:00Z");
    assert_eq!(
        agent["phoneNumbers"],
        json!([{"value": "9876543210", "type": "work"}, {"value": "9876533211", "type": "mobile"}])
    );

    // Deactivated: active false, a new version.
    let bob = get(&client, &format!("{scim}/Users/vcc:181")).await;
    assert_eq!(bob.body["active"], false);
    assert_eq!(bob.body["meta"]["version"], "W/\"2\"");
    assert_eq!(bob.etag.as_deref(), Some("W/\"2\""));

    // Unknown ids are 404 SCIM errors.
    for id in ["vcc:999", "nosuch:180", "180", "vcc:"] {
        assert_scim_error(
            &get(&client, &format!("{scim}/Users/{id}")).await,
            404,
            None,
        );
    }

    // ServiceProviderConfig says what this service does, truthfully.
    let config = get(&client, &format!("{scim}/ServiceProviderConfig")).await;
    assert_eq!(config.status, 200);
    assert_eq!(config.content_type, "application/scim+json");
    let config = config.body;
    assert_eq!(
        config["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"])
    );
    assert_eq!(config["patch"], json!({"supported": false}));
    assert_eq!(config["bulk"]["supported"], false);
    assert_eq!(
        config["filter"],
        json!({"supported": true, "maxResults": 1000})
    );
    assert_eq!(config["changePassword"], json!({"supported": false}));
    assert_eq!(config["sort"], json!({"supported": false}));
    assert_eq!(config["etag"], json!({"supported": true}));
    assert!(config["authenticationSchemes"].is_array());
    assert_eq!(config["meta"]["resourceType"], "ServiceProviderConfig");

    // ResourceTypes and Schemas.
    let types = get(&client, &format!("{scim}/ResourceTypes")).await;
    assert_eq!(types.status, 200);
    assert_eq!(types.body["schemas"], json!([LIST]));
    assert_eq!(types.body["totalResults"], 1);
    let user_type = &types.body["Resources"][0];
    assert_eq!(user_type["id"], "User");
    assert_eq!(user_type["endpoint"], "/Users");
    assert_eq!(user_type["schema"], USER);
    assert_eq!(
        user_type["schemaExtensions"],
        json!([{"schema": ENTERPRISE, "required": false}])
    );
    assert_eq!(
        get(&client, &format!("{scim}/ResourceTypes/User"))
            .await
            .body,
        *user_type
    );
    let schemas = get(&client, &format!("{scim}/Schemas")).await;
    assert_eq!(schemas.status, 200);
    assert_eq!(schemas.body["schemas"], json!([LIST]));
    assert_eq!(ids(&schemas.body), [USER, ENTERPRISE]);
    let core = get(&client, &format!("{scim}/Schemas/{USER}")).await.body;
    let attributes: Vec<&str> = core["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attribute| attribute["name"].as_str().unwrap())
        .collect();
    for name in [
        "userName",
        "name",
        "displayName",
        "emails",
        "phoneNumbers",
        "active",
        "groups",
        "roles",
    ] {
        assert!(
            attributes.contains(&name),
            "{name} missing from {attributes:?}"
        );
    }
    assert_scim_error(
        &get(&client, &format!("{scim}/Schemas?filter=id%20eq%20%22x%22")).await,
        403,
        None,
    );

    // Read-only: writes are 501 SCIM errors.
    let response = client
        .post(format!("{scim}/Users"))
        .header("content-type", "application/scim+json")
        .body(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 501);

    // /v1/users and its filters.
    let admin = &daemon.admin;
    let v1 = |query: &str| {
        let client = client.clone();
        let url = format!("{admin}/v1/users{query}");
        async move {
            let response = client.get(url).send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, page) = v1("").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 4);
    let first = &page["users"][0];
    assert_eq!(first["source"], "fs");
    assert_eq!(first["version"], 1);
    assert_eq!(first["deleted"], false);
    assert_eq!(first["partial"], false);
    assert!(first["updated_at"].is_string());
    assert_eq!(first["user"]["id"], "93");
    let (_, page) = v1("?source=vcc").await;
    assert_eq!(page["total"], 3);
    let (_, page) = v1("?status=inactive").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["users"][0]["user"]["id"], "181");
    let (_, page) = v1("?source=vcc&status=active").await;
    assert_eq!(page["total"], 2);
    let (_, page) = v1("?user_name=RACHEL_SMITH").await;
    assert_eq!(page["users"][0]["user"]["id"], "180");
    let (_, page) = v1("?offset=1&limit=2").await;
    assert_eq!(page["total"], 4);
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
    assert_eq!(page["users"][0]["user"]["id"], "180");
    let (status, bob) = v1("/vcc/181").await;
    assert_eq!(status, 200);
    assert_eq!(bob["version"], 2);
    assert_eq!(bob["user"]["status"], "inactive");
    let (status, missing) = v1("/vcc/999").await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["code"], "not_found");
    assert!(missing["error"]["message"].is_string());
    let (status, bad) = v1("?limit=lots").await;
    assert_eq!(status, 400);
    assert!(bad["error"]["code"].is_string());

    // rollcall users list / get against the daemon.
    let (code, out, err) = rollcall(&["users", "list", "--source", "vcc", "--admin", admin]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["total"], 3);
    let (code, out, err) = rollcall(&["users", "list", "--status", "inactive", "--admin", admin]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["total"], 1);
    assert_eq!(out["users"][0]["user"]["username"], "bob_jones");
    let (code, out, err) = rollcall(&["users", "get", "vcc", "180", "--admin", admin]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["user"]["name"], "Rachel Smith");
    let (code, _, err) = rollcall(&["users", "get", "vcc", "999", "--admin", admin]);
    assert_eq!(code, 2);
    assert!(err.contains("not_found"), "{err}");

    // A deleted user is a tombstone: gone from SCIM, still in /v1/users on request.
    deliver(
        &client,
        &daemon,
        "fs",
        &fixture("freshservice", "onUserDelete.json"),
    )
    .await;
    let list = get(&client, &format!("{scim}/Users")).await;
    assert_eq!(list.body["totalResults"], 3);
    assert_eq!(ids(&list.body), ["vcc:180", "vcc:181", "vcc:182"]);
    assert_scim_error(
        &get(&client, &format!("{scim}/Users/fs:93")).await,
        404,
        None,
    );
    let gone = get(
        &client,
        &format!("{scim}/Users?filter=userName%20eq%20%22newagent30%40email.com%22"),
    )
    .await;
    assert_eq!(gone.body["totalResults"], 0);
    let (_, page) = v1("").await;
    assert_eq!(page["total"], 3);
    let (_, page) = v1("?include_deleted=true").await;
    assert_eq!(page["total"], 4);
    let (status, tombstone) = v1("/fs/93").await;
    assert_eq!(status, 200);
    assert_eq!(tombstone["deleted"], true);
    let (code, out, err) = rollcall(&[
        "users",
        "list",
        "--source",
        "fs",
        "--include-deleted",
        "--admin",
        admin,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["users"][0]["deleted"], true);

    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_answers_before_any_user_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &sources_toml());
    let client = client();
    let list = get(&client, &format!("{}/scim/v2/Users", daemon.admin)).await;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.body,
        json!({"schemas": [LIST], "totalResults": 0, "startIndex": 1, "itemsPerPage": 0, "Resources": []})
    );
    let (code, out, err) = rollcall(&["users", "list", "--admin", &daemon.admin]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["total"], 0);
}
