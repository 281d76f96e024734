//! Okta's one-time verification GET is answered with the challenge it carries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rollcall_connector_okta as _;
use rollcall_core::{Connector, Delivery};
use serde_json::{json, Value};

const CONNECTOR: &str = "okta";

fn connector() -> Box<dyn Connector> {
    rollcall_testkit::offline_connector(CONNECTOR)
}

fn request(method: &str, headers: &[(&str, &str)]) -> Delivery {
    headers.iter().fold(
        rollcall_testkit::delivery(CONNECTOR, Vec::new()).with_method(method),
        |delivery, (name, value)| delivery.with_header(*name, *value),
    )
}

#[test]
fn the_verification_get_is_answered_with_the_challenge_as_json() {
    let challenge = "X6bzW3Em0AYqDpk6ZPF2dCb0qSoBCkvH5VJvWBJqwkxg";
    let answer = connector()
        .handshake(&request(
            "GET",
            &[("X-Okta-Verification-Challenge", challenge)],
        ))
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.headers,
        [("content-type".to_owned(), "application/json".to_owned())]
    );
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(body, json!({ "verification": challenge }));
}

#[test]
fn any_challenge_value_is_echoed_exactly_and_stays_valid_json() {
    for challenge in [
        "lowercase-header",
        "with \"quotes\" and \\backslashes\\",
        "</script><script>alert(1)</script>",
        "ünïcödé ✓",
        &"x".repeat(4096),
    ] {
        let answer = connector()
            .handshake(&request(
                "GET",
                &[("x-okta-verification-challenge", challenge)],
            ))
            .unwrap();
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["verification"], challenge);
        assert_eq!(body.as_object().unwrap().len(), 1);
    }
}

#[test]
fn the_handshake_needs_no_secret_and_ignores_the_authorization_header() {
    let registration = rollcall_core::registration(CONNECTOR).unwrap();
    let options = rollcall_core::SourceOptions::new(
        CONNECTOR,
        json!({"authorization_secret": "the hook's secret"}),
    );
    let online = (registration.build)(&options).unwrap();
    for connector in [online, connector()] {
        for headers in [
            vec![("X-Okta-Verification-Challenge", "c1")],
            vec![
                ("X-Okta-Verification-Challenge", "c1"),
                ("Authorization", "wrong"),
            ],
        ] {
            assert!(connector.handshake(&request("GET", &headers)).is_some());
        }
    }
}

#[test]
fn only_a_get_with_a_challenge_is_a_handshake() {
    let challenge = ("X-Okta-Verification-Challenge", "c1");
    for (method, headers) in [
        ("POST", vec![challenge]),
        ("PUT", vec![challenge]),
        ("GET", vec![]),
        ("GET", vec![("X-Okta-Verification-Challenge", "")]),
        ("GET", vec![("X-Okta-Verification-Challenge", "  ")]),
        ("GET", vec![("X-Verification-Challenge", "c1")]),
    ] {
        assert_eq!(
            connector().handshake(&request(method, &headers)),
            None,
            "{method} {headers:?}"
        );
    }
}

#[test]
fn a_lowercase_method_is_still_a_get() {
    let delivery = request("get", &[("X-Okta-Verification-Challenge", "c1")]);
    assert!(connector().handshake(&delivery).is_some());
}
