//! What the broker sinks (`nats`, `redis`) share: destination names with placeholders,
//! and timeouts.
//!
//! In a name template (the `nats` subject, the `redis` stream key), `{type}` becomes the
//! event type (`user.created`) and `{source}` the source id (`zendesk-acme`); everything
//! else is kept as written. Any other `{...}`, and a brace that opens or closes nothing, is
//! an error when the configuration is loaded.

use std::time::Duration;

use rollcall_core::{ConfigError, OutboundEvent};

/// The longest timeout an option may ask for.
pub(crate) const MAX_TIMEOUT_SECONDS: u64 = 3600;

/// `value` seconds as a timeout, between 1 and [`MAX_TIMEOUT_SECONDS`].
pub(crate) fn seconds(key: &str, value: u64) -> Result<Duration, ConfigError> {
    if value == 0 || value > MAX_TIMEOUT_SECONDS {
        return Err(ConfigError::new(
            key,
            format!("must be between 1 and {MAX_TIMEOUT_SECONDS} seconds"),
        ));
    }
    Ok(Duration::from_secs(value))
}

/// A parsed name template; `Debug` shows it as written.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Template {
    text: String,
    parts: Vec<Part>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.text, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Type,
    Source,
}

impl Template {
    /// Reads `text`; the error says what is wrong, for a `ConfigError` on the option.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(position) = rest.find(['{', '}']) {
            literal.push_str(&rest[..position]);
            rest = &rest[position..];
            if rest.starts_with('}') {
                return Err("has a `}` that closes no placeholder".to_owned());
            }
            let Some(end) = rest.find('}') else {
                return Err("has a `{` that is never closed".to_owned());
            };
            let part = match &rest[..=end] {
                "{type}" => Part::Type,
                "{source}" => Part::Source,
                other => {
                    return Err(format!(
                        "has an unknown placeholder `{other}`: only {{type}} and {{source}} exist"
                    ))
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &rest[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self {
            text: text.to_owned(),
            parts,
        })
    }

    /// The name for `event`.
    pub(crate) fn render(&self, event: &OutboundEvent) -> String {
        self.render_with(event.event_type.as_str(), &event.source)
    }

    /// The name with the placeholders replaced by `event_type` and `source`.
    pub(crate) fn render_with(&self, event_type: &str, source: &str) -> String {
        let mut name = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => name.push_str(text),
                Part::Type => name.push_str(event_type),
                Part::Source => name.push_str(source),
            }
        }
        name
    }

    /// The text before the first placeholder (all of it when there is none).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn fixed_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Text(text)) => text,
            _ => "",
        }
    }

    /// Whether the template has no placeholder.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn is_fixed(&self) -> bool {
        self.parts.iter().all(|part| matches!(part, Part::Text(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_between_one_second_and_an_hour() {
        assert_eq!(seconds("t", 1), Ok(Duration::from_secs(1)));
        assert_eq!(seconds("t", 3600), Ok(Duration::from_secs(3600)));
        for bad in [0, 3601] {
            let error = seconds("t", bad).unwrap_err();
            assert_eq!(error.key, "t");
            assert!(error.message.contains("between 1 and 3600"), "{error:?}");
        }
    }

    #[test]
    fn placeholders_are_replaced_and_the_rest_is_kept() {
        let template = Template::parse("rollcall.{source}.{type}").unwrap();
        assert_eq!(
            template.render_with("user.created", "okta-main"),
            "rollcall.okta-main.user.created"
        );
        assert!(!template.is_fixed());
        assert_eq!(template.fixed_prefix(), "rollcall.");
        assert_eq!(format!("{template:?}"), r#""rollcall.{source}.{type}""#);
    }

    #[test]
    fn a_template_without_placeholders_is_fixed() {
        let template = Template::parse("rollcall:users").unwrap();
        assert_eq!(template.render_with("user.deleted", "x"), "rollcall:users");
        assert!(template.is_fixed());
        assert_eq!(template.fixed_prefix(), "rollcall:users");
    }

    #[test]
    fn adjacent_and_leading_placeholders_work() {
        let template = Template::parse("{type}{source}").unwrap();
        assert_eq!(template.render_with("a", "b"), "ab");
        assert_eq!(template.fixed_prefix(), "");
    }

    #[test]
    fn bad_templates_say_why() {
        for (text, expected) in [
            ("", "must not be empty"),
            ("a.{kind}", "unknown placeholder `{kind}`"),
            ("a.{type", "never closed"),
            ("a.}", "closes no placeholder"),
            ("a.{}", "unknown placeholder `{}`"),
        ] {
            let error = Template::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
