//! Which header and query parameter names carry credentials: what quarantine must never
//! keep. One list, read by the host when it keeps a request and by connectors that let an
//! operator name the header or parameter a secret arrives in (a name outside these lists
//! would carry the secret into quarantine, so such a name is refused at start).

/// Header names that are credentials whatever their words.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// A header whose name contains one of these carries a credential or a signature.
pub const CREDENTIAL_HEADER_WORDS: &[&str] = &[
    "signature",
    "secret",
    "token",
    "api-key",
    "apikey",
    "password",
];

/// A query parameter whose name contains one of these carries a credential (VCC Live's
/// `secret-key`, tokens, signatures).
pub const CREDENTIAL_PARAMETER_WORDS: &[&str] = &[
    "secret",
    "token",
    "key",
    "password",
    "signature",
    "sig",
    "auth",
];

/// Whether a header with this name carries a credential (case-insensitive).
pub fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    CREDENTIAL_HEADERS.contains(&name.as_str())
        || CREDENTIAL_HEADER_WORDS
            .iter()
            .any(|word| name.contains(word))
}

/// Whether a query parameter with this name carries a credential (case-insensitive).
pub fn is_credential_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    CREDENTIAL_PARAMETER_WORDS
        .iter()
        .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_are_recognised_in_any_case() {
        for header in [
            "Authorization",
            "X-Zendesk-Webhook-Signature",
            "X-Api-Key",
            "Cookie",
        ] {
            assert!(is_credential_header(header), "{header}");
        }
        for header in ["Content-Type", "X-Request-Id", "webhook-id"] {
            assert!(!is_credential_header(header), "{header}");
        }
        for parameter in ["secret-key", "API_KEY", "token", "auth"] {
            assert!(is_credential_parameter(parameter), "{parameter}");
        }
        assert!(!is_credential_parameter("iv"));
    }
}
