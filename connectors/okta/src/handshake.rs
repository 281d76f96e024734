//! Okta's one-time verification request.
//!
//! Before an event hook delivers anything, an Okta admin verifies it: Okta then sends one
//! GET to the endpoint with the header `X-Okta-Verification-Challenge`, and the endpoint
//! proves it is the one the admin configured by answering `{"verification": "<value>"}`.
//! Okta's documentation says the GET is the only one it sends: events always come as POST.
//!
//! The answer is given without checking the `Authorization` header: Okta's documentation
//! does not say the verification request carries it, and echoing the challenge reveals
//! nothing (deliveries are still authenticated one by one).

use rollcall_core::{Delivery, HandshakeResponse};

/// The header the challenge arrives in.
pub const CHALLENGE_HEADER: &str = "X-Okta-Verification-Challenge";

/// The answer to a GET carrying a challenge; `None` for every other request.
pub fn answer(delivery: &Delivery) -> Option<HandshakeResponse> {
    if delivery.method != "GET" {
        return None;
    }
    let challenge = delivery
        .header(CHALLENGE_HEADER)
        .filter(|value| !value.trim().is_empty())?;
    let body = serde_json::json!({ "verification": challenge }).to_string();
    Some(HandshakeResponse {
        status: 200,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: body.into(),
    })
}
