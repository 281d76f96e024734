//! The Freshworks forwarder app, run under Node.js and checked by rollcall's own verifier.
//!
//! Node.js is required: these tests fail (they do not skip) when `node` cannot be run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use rollcall_connector_freshservice::FreshserviceConnector;
use rollcall_core::{Connector, Delivery, ErrorCode, SourceOptions, Timestamp};
use serde_json::{json, Value};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_b3RoZXItc2VjcmV0LW9mLTMyLWJ5dGVzLWxvbmch";
const NOW: i64 = 1_767_225_600;

fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("forwarder-app")
}

fn signing_module() -> String {
    app_dir()
        .join("server/lib/standard-webhooks.js")
        .display()
        .to_string()
}

/// Runs a Node.js script with the given environment and returns its stdout as JSON.
fn node(script: &str, env: &[(&str, &str)]) -> Result<Value, String> {
    let output = Command::new("node")
        .arg("-e")
        .arg(script)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|error| {
            panic!("Node.js is required for the forwarder-app tests (`node`): {error}")
        });
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    serde_json::from_slice(&output.stdout).map_err(|error| {
        format!(
            "node printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Signs `payload` with the app's `signDelivery` at [`NOW`]; returns `{body, headers}`.
fn sign_delivery(secret: &str, payload: &Value) -> Result<Value, String> {
    let script = r#"
        const sw = require(process.env.SIGNING_MODULE);
        const payload = JSON.parse(process.env.PAYLOAD);
        const signed = sw.signDelivery(process.env.SECRET, payload, Number(process.env.NOW));
        process.stdout.write(JSON.stringify(signed));
    "#;
    node(
        script,
        &[
            ("SIGNING_MODULE", &signing_module()),
            ("PAYLOAD", &payload.to_string()),
            ("SECRET", secret),
            ("NOW", &NOW.to_string()),
        ],
    )
}

fn connector(secret: &str) -> FreshserviceConnector {
    let options = SourceOptions::new("freshservice-acme", json!({"signing_secret": secret}));
    FreshserviceConnector::from_options(&options).unwrap()
}

/// The delivery rollcall receives for a body and the headers the app sent.
fn delivery(body: &str, headers: &Value, received: i64) -> Delivery {
    let mut delivery = Delivery::new(
        "freshservice-acme",
        body.as_bytes().to_vec(),
        Timestamp::from_unix_seconds(received).unwrap(),
    )
    .with_header("content-type", "application/json");
    for (name, value) in headers.as_object().unwrap() {
        delivery = delivery.with_header(name.as_str(), value.as_str().unwrap());
    }
    delivery
}

fn sample(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A payload as the platform hands it to the handler: the event plus the app's iparams.
fn handler_payload(name: &str) -> Value {
    let mut payload = sample(name);
    payload["iparams"] = json!({
        "rollcall_host": "rollcall.example.com",
        "rollcall_path": "/hooks/freshservice-acme",
        "signing_secret": SECRET,
    });
    payload
}

#[test]
fn a_delivery_signed_by_the_app_passes_rollcall_verification() {
    let mut payload = sample("onUserUpdate.json");
    // Non-ASCII text: the app signs UTF-8, rollcall verifies the bytes it received.
    payload["data"]["user"]["first_name"] = json!("Zoë Ñúñez 测试");
    let signed = sign_delivery(SECRET, &payload).unwrap();
    let body = signed["body"].as_str().unwrap();
    let received = delivery(body, &signed["headers"], NOW + 3);
    assert_eq!(connector(SECRET).verify(&received), Ok(()));
    let events = connector(SECRET).normalize(&received).unwrap();
    assert_eq!(events[0].user.first_name.as_deref(), Some("Zoë Ñúñez 测试"));
}

#[test]
fn a_delivery_signed_by_the_app_fails_with_another_secret() {
    let signed = sign_delivery(SECRET, &sample("onUserCreate.json")).unwrap();
    let received = delivery(signed["body"].as_str().unwrap(), &signed["headers"], NOW);
    let error = connector(OTHER_SECRET).verify(&received).unwrap_err();
    assert_eq!(error.code(), ErrorCode::SignatureInvalid);
}

#[test]
fn the_app_signs_exactly_like_rollcall_and_the_standard_webhooks_reference() {
    let script = r#"
        const sw = require(process.env.SIGNING_MODULE);
        const headers = sw.sign(process.env.SECRET, 'msg_p5jXN8AQM9LWM0D4loKWxJek',
                                1614265330, '{"test": 2432232314}');
        process.stdout.write(JSON.stringify(headers));
    "#;
    let headers = node(
        script,
        &[("SIGNING_MODULE", &signing_module()), ("SECRET", SECRET)],
    )
    .unwrap();
    assert_eq!(
        headers,
        json!({
            "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "webhook-timestamp": "1614265330",
            "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        })
    );
}

#[test]
fn the_webhook_id_is_the_same_for_a_retried_event_and_differs_between_events() {
    let script = r#"
        const sw = require(process.env.SIGNING_MODULE);
        const payload = JSON.parse(process.env.PAYLOAD);
        const first = sw.signDelivery(process.env.SECRET, payload, 1767225600);
        const retry = sw.signDelivery(process.env.SECRET, payload, 1767225660);
        const other = sw.signDelivery(process.env.SECRET,
            Object.assign({}, payload, {event: 'onUserDelete'}), 1767225600);
        const numeric = sw.webhookId(Object.assign({}, payload, {account_id: 6957494}));
        process.stdout.write(JSON.stringify({first, retry, other, numeric}));
    "#;
    let payload = sample("onUserCreate.json");
    let out = node(
        script,
        &[
            ("SIGNING_MODULE", &signing_module()),
            ("PAYLOAD", &payload.to_string()),
            ("SECRET", SECRET),
        ],
    )
    .unwrap();
    let id = |name: &str| {
        out[name]["headers"]["webhook-id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(id("first").starts_with("msg_") && id("first").len() == 4 + 32);
    assert_eq!(id("first"), id("retry"));
    assert_ne!(
        out["first"]["headers"]["webhook-timestamp"],
        out["retry"]["headers"]["webhook-timestamp"]
    );
    assert_ne!(id("first"), id("other"));
    // "6957494" and 6957494 are the same account.
    assert_eq!(out["numeric"].as_str().unwrap(), id("first"));
    // rollcall deduplicates the two on that id.
    let connector = connector(SECRET);
    let first = delivery(
        out["first"]["body"].as_str().unwrap(),
        &out["first"]["headers"],
        NOW,
    );
    let retry = delivery(
        out["retry"]["body"].as_str().unwrap(),
        &out["retry"]["headers"],
        NOW + 60,
    );
    assert_eq!(connector.verify(&retry), Ok(()));
    assert_eq!(connector.dedup_key(&first), connector.dedup_key(&retry));
}

#[test]
fn a_secret_that_is_not_whsec_base64_is_refused_without_being_echoed() {
    let error = sign_delivery("whsec_no!such#base64", &sample("onUserCreate.json")).unwrap_err();
    assert!(error.contains("whsec_ followed by base64"), "{error}");
    assert!(!error.contains("no!such#base64"), "{error}");
}

/// Runs `server/server.js` the way the Freshworks runtime does (a script assigning
/// `exports`, with a `$request` global), with `invokeTemplate` answering `status`.
fn run_handler(handler: &str, payload: &Value, status: u16) -> Value {
    let script = r#"
        const fs = require('fs');
        const path = require('path');
        const vm = require('vm');
        const dir = path.join(process.env.APP_DIR, 'server');
        const logs = [];
        const calls = [];
        const log = (...args) => logs.push(args.map(String).join(' '));
        const status = Number(process.env.STATUS);
        const sandbox = {
          exports: {},
          require: (name) => require(name.startsWith('.') ? path.join(dir, name) : name),
          console: { log, info: log, warn: log, error: log },
          $request: {
            invokeTemplate: async (name, options) => {
              calls.push({ name, options });
              if (status >= 400) throw { status, response: '{"error":{"code":"signature_invalid"}}' };
              return { status, response: '{"accepted":1}' };
            },
          },
          Date, JSON, Object, Math, Number, String, Error, Promise,
        };
        vm.runInNewContext(fs.readFileSync(path.join(dir, 'server.js'), 'utf8'), sandbox);
        const handler = sandbox.exports[process.env.HANDLER];
        Promise.resolve()
          .then(() => handler(JSON.parse(process.env.PAYLOAD)))
          .then(() => 'resolved', (error) => 'rejected: ' + error.message)
          .then((outcome) => process.stdout.write(JSON.stringify({ outcome, calls, logs })));
    "#;
    node(
        script,
        &[
            ("APP_DIR", &app_dir().display().to_string()),
            ("HANDLER", handler),
            ("PAYLOAD", &payload.to_string()),
            ("STATUS", &status.to_string()),
        ],
    )
    .unwrap()
}

fn read_json(relative: &str) -> Value {
    serde_json::from_slice(&std::fs::read(app_dir().join(relative)).unwrap()).unwrap()
}

/// The headers the request template sends for a context (`<%= context.x %>` substituted).
fn template_headers(context: &Value) -> Value {
    let requests = read_json("config/requests.json");
    let headers = requests["forwardToRollcall"]["schema"]["headers"]
        .as_object()
        .unwrap();
    let mut sent = serde_json::Map::new();
    for (name, template) in headers {
        let mut value = template.as_str().unwrap().to_owned();
        for (key, replacement) in context.as_object().unwrap() {
            let placeholder = format!("<%= context.{key} %>");
            value = value.replace(&placeholder, replacement.as_str().unwrap());
        }
        assert!(!value.contains("<%"), "{name} is not filled: {value}");
        sent.insert(name.clone(), Value::String(value));
    }
    Value::Object(sent)
}

#[test]
fn each_handler_posts_the_whole_payload_signed_through_the_request_template() {
    let manifest = read_json("manifest.json");
    let events = manifest["modules"]["service_user"]["events"]
        .as_object()
        .unwrap();
    assert_eq!(events.len(), 3);
    for (event, fixture) in [
        ("onUserCreate", "onUserCreate.json"),
        ("onUserUpdate", "onUserUpdate.json"),
        ("onUserDelete", "onUserDelete.json"),
    ] {
        let handler = events[event]["handler"].as_str().unwrap();
        let payload = handler_payload(fixture);
        let run = run_handler(handler, &payload, 202);
        assert_eq!(run["outcome"], "resolved", "{event}: {run}");
        let call = &run["calls"][0];
        assert_eq!(call["name"], "forwardToRollcall");

        let body = call["options"]["body"].as_str().unwrap();
        let mut expected = payload.clone();
        expected.as_object_mut().unwrap().remove("iparams");
        let sent: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            sent, expected,
            "{event}: the payload must be forwarded whole"
        );
        assert_eq!(sent, sample(fixture));
        assert!(
            !body.contains(SECRET),
            "{event}: the secret must not be sent"
        );

        let headers = template_headers(&call["options"]["context"]);
        let now = Timestamp::now().unix_seconds();
        let received = delivery(body, &headers, now);
        assert_eq!(connector(SECRET).verify(&received), Ok(()), "{event}");
        let unified = connector(SECRET).normalize(&received).unwrap();
        assert_eq!(unified[0].vendor_event.event_type, event);

        let logs = run["logs"].to_string();
        assert!(!logs.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "{logs}");
    }
}

#[test]
fn a_rejected_delivery_fails_the_handler_without_logging_the_secret_or_the_user() {
    let run = run_handler(
        "onUserCreateHandler",
        &handler_payload("onUserCreate.json"),
        401,
    );
    let outcome = run["outcome"].as_str().unwrap();
    assert!(
        outcome.starts_with("rejected:") && outcome.contains("401"),
        "{outcome}"
    );
    let logs = run["logs"].to_string();
    assert!(!logs.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "{logs}");
    assert!(!logs.contains("newagent30@email.com"), "{logs}");
}

#[test]
fn a_missing_signing_secret_fails_the_handler_before_anything_is_sent() {
    let mut payload = handler_payload("onUserCreate.json");
    payload["iparams"]
        .as_object_mut()
        .unwrap()
        .remove("signing_secret");
    let run = run_handler("onUserCreateHandler", &payload, 202);
    assert!(run["outcome"].as_str().unwrap().starts_with("rejected:"));
    assert_eq!(run["calls"], json!([]));
}

/// The Marketplace Platform 3.0 rules the app's configuration can be checked against
/// (developers.freshworks.com, app-sdk v3.0: the `service_user` module's product events,
/// "Declaring App Manifest", and the request method): the platform version is `3.0`; the
/// app is declared per module under `modules`, with no 2.x `product` block and no
/// `whitelisted-domains`; request templates are declared in `modules.common.requests` and
/// defined in `config/requests.json`; Freshservice user events belong to the
/// `service_user` module; a template's host is a bare host name (no scheme, path or encoded
/// characters) over `https`; the engines name Node.js and an `fdk` of the 9.x line or later,
/// the first to build 3.0 apps.
#[test]
fn the_manifest_follows_the_platform_3_0_rules() {
    let manifest = read_json("manifest.json");
    assert_eq!(manifest["platform-version"], "3.0");
    assert!(manifest.get("product").is_none(), "2.x `product` block");
    assert!(manifest.get("whitelisted-domains").is_none());
    let modules = manifest["modules"].as_object().unwrap();
    let names: Vec<&str> = modules.keys().map(String::as_str).collect();
    assert_eq!(names, ["common", "service_user"]);

    // Requests: declared in `common`, each defined as a template, and every template
    // declared.
    let declared: Vec<&String> = modules["common"]["requests"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let requests = read_json("config/requests.json");
    let defined: Vec<&String> = requests.as_object().unwrap().keys().collect();
    assert_eq!(declared, defined);
    assert!(modules["common"].get("events").is_none());

    // Events: the three user events of `service_user`, each with a handler that server.js
    // exports (each_handler_posts_the_whole_payload_signed_through_the_request_template runs
    // them).
    let events = modules["service_user"]["events"].as_object().unwrap();
    let event_names: Vec<&str> = events.keys().map(String::as_str).collect();
    assert_eq!(
        event_names,
        ["onUserCreate", "onUserDelete", "onUserUpdate"]
    );
    let server = std::fs::read_to_string(app_dir().join("server/server.js")).unwrap();
    for event in events.values() {
        let handler = event["handler"].as_str().unwrap();
        assert!(
            server.contains(&format!("{handler}:")),
            "{handler} is exported"
        );
    }

    // The template: https to a bare host from a non-secure iparam (Freshworks substitutes
    // only non-secure iparams in a template's host and path), the secret never in it.
    let schema = &requests["forwardToRollcall"]["schema"];
    assert_eq!(schema["method"], "POST");
    assert_eq!(schema["protocol"], "https");
    let host = schema["host"].as_str().unwrap();
    assert_eq!(host, "<%= iparam.rollcall_host %>");
    // Outside the placeholder, nothing; the iparam's own regex holds the installer to a
    // bare host name.
    let literal = host.replace("<%= iparam.rollcall_host %>", "");
    assert!(!literal.contains("://") && !literal.contains('/') && !literal.contains('%'));
    assert!(iparams_regex("rollcall_host").starts_with('^'));
    assert_eq!(schema["path"], "<%= iparam.rollcall_path %>");
    let template = serde_json::to_string(&requests).unwrap();
    fn iparams_regex(name: &str) -> String {
        let iparams = read_json("config/iparams.json");
        let regex = iparams[name]["regex"].as_object().unwrap();
        regex.values().next().unwrap().as_str().unwrap().to_owned()
    }
    assert!(!template.contains("signing_secret"));
    let iparams = read_json("config/iparams.json");
    assert_eq!(iparams["signing_secret"]["secure"], true);
    for name in ["rollcall_host", "rollcall_path"] {
        assert!(iparams[name].is_object(), "{name} is declared");
        assert_ne!(iparams[name]["secure"], true, "{name} must not be secure");
    }

    // Engines: Node.js, and an FDK that builds 3.0 apps.
    assert!(manifest["engines"]["node"].is_string());
    let fdk = manifest["engines"]["fdk"].as_str().unwrap();
    let major: u32 = fdk.split('.').next().unwrap().parse().unwrap();
    assert!(major >= 9, "fdk {fdk}");
}
