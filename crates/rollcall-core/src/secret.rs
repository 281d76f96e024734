//! A string that must never be printed.

use std::fmt;

/// A signing secret, API token or key. `Debug` and `Display` print `***`, and it does not
/// implement `Serialize`, so it cannot end up in a log line, an event or a stored row by
/// accident. Read it with [`Secret::expose`] at the one place that needs the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call it only where the bytes are used (a MAC, a comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// The secrets a source verifies with: one (`"s"`) or several (`["new", "old"]`). A delivery
/// verified by any of them is authentic; signing (`rollcall sign`, tests) uses the first.
/// Rotating a vendor secret: list the new one first and keep the old one until the vendor
/// sends only the new one, so no delivery is answered 401 in between.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    first: Secret,
    others: Vec<Secret>,
}

impl Secrets {
    pub fn new(first: Secret) -> Self {
        Self {
            first,
            others: Vec::new(),
        }
    }

    /// The secret that signs: the first listed.
    pub fn first(&self) -> &Secret {
        &self.first
    }

    /// Every secret, the first first.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        std::iter::once(&self.first).chain(&self.others)
    }

    /// `Ok` when `check` accepts the delivery with any of the secrets; otherwise the first
    /// secret's error (the one a vendor should be using).
    pub fn verify_any<E>(&self, mut check: impl FnMut(&Secret) -> Result<(), E>) -> Result<(), E> {
        let first = check(&self.first);
        if first.is_ok() {
            return first;
        }
        if self.others.iter().any(|secret| check(secret).is_ok()) {
            return Ok(());
        }
        first
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} x ***)", 1 + self.others.len())
    }
}

impl<'de> serde::Deserialize<'de> for Secrets {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let mut secrets = match OneOrMany::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("expected a secret or a list of secrets"))?
        {
            OneOrMany::One(secret) => vec![secret],
            OneOrMany::Many(secrets) => secrets,
        }
        .into_iter()
        .map(Secret::new);
        let Some(first) = secrets.next() else {
            return Err(serde::de::Error::custom("the list of secrets is empty"));
        };
        Ok(Self {
            first,
            others: secrets.collect(),
        })
    }
}

/// A secret is a string in the configuration (better: a `${VARIABLE}`).
impl schemars::JsonSchema for Secret {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

/// One secret, or a non-empty list of them.
impl schemars::JsonSchema for Secrets {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secrets".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" }, "minItems": 1 }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_secret_or_a_list_any_verifies_and_the_first_signs() {
        let one: Secrets = serde_json::from_value(serde_json::json!("a")).unwrap();
        assert_eq!(one.first().expose(), "a");
        let list: Secrets = serde_json::from_value(serde_json::json!(["new", "old"])).unwrap();
        assert_eq!(list.first().expose(), "new");
        let check = |secret: &Secret| {
            if secret.expose() == "old" {
                Ok(())
            } else {
                Err(secret.expose().to_owned())
            }
        };
        assert_eq!(list.verify_any(check), Ok(()));
        assert_eq!(one.verify_any(check), Err("a".to_owned()));
        let neither: Secrets = serde_json::from_value(serde_json::json!(["x", "y"])).unwrap();
        // The error is the first (current) secret's.
        assert_eq!(neither.verify_any(check), Err("x".to_owned()));
        assert_eq!(format!("{list:?}"), "Secrets(2 x ***)");
        assert!(serde_json::from_value::<Secrets>(serde_json::json!([])).is_err());
        assert!(serde_json::from_value::<Secrets>(serde_json::json!(7)).is_err());
    }

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(secret.expose(), "hunter2");
    }
}
