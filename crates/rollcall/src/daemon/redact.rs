//! What of a request may be kept: quarantine stores headers and the query string so a
//! delivery can be re-run, but never the credentials that came with it.

use rollcall_core::credentials::{is_credential_header, is_credential_parameter};

/// Headers with the credential-bearing ones removed.
pub fn headers<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    headers
        .filter(|(name, _)| !is_credential_header(name))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// The query string with credential-bearing parameters removed; `None` when nothing is left.
pub fn query(query: Option<&str>) -> Option<String> {
    let mut kept = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (name, value) in form_urlencoded::parse(query?.as_bytes()) {
        if !is_credential_parameter(&name) {
            kept.append_pair(&name, &value);
            any = true;
        }
    }
    any.then(|| kept.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_credential_headers_and_keeps_the_rest() {
        let kept = headers(
            [
                ("content-type", "application/json"),
                ("authorization", "Bearer x"),
                ("x-zendesk-webhook-signature", "abc"),
                ("webhook-id", "msg_1"),
            ]
            .into_iter(),
        );
        let names: Vec<_> = kept.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["content-type", "webhook-id"]);
    }

    #[test]
    fn drops_secret_query_parameters_and_keeps_the_iv() {
        assert_eq!(
            query(Some("secret-key=hunter2&iv=0a0b")).as_deref(),
            Some("iv=0a0b")
        );
        assert_eq!(query(Some("secret-key=hunter2")), None);
        assert_eq!(query(None), None);
    }
}
