//! The rollcall host: the command line and the daemon.
//!
//! Connectors are linked in by cargo feature: each enabled connector crate is referenced
//! below so its `inventory` registration is part of the binary. Nothing else in the host
//! names a connector.
#![forbid(unsafe_code)]

#[cfg(feature = "freshservice")]
use rollcall_connector_freshservice as _;
#[cfg(feature = "highlevel")]
use rollcall_connector_highlevel as _;
#[cfg(feature = "okta")]
use rollcall_connector_okta as _;
#[cfg(feature = "vcclive")]
use rollcall_connector_vcclive as _;
#[cfg(feature = "zendesk")]
use rollcall_connector_zendesk as _;

pub mod admin_client;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod fuzzing;
pub mod logging;
pub mod metrics;
pub mod sync;

/// The JSON Schema of the unified event (`rollcall schema event`), version 1: later
/// versions add fields, never remove or change one.
pub const USER_EVENT_SCHEMA: &str = include_str!("../schemas/user-event.v1.json");

// Link the sink types (registered like connectors).
use rollcall_sinks as _;

#[cfg(test)]
mod tests {
    /// The connector features this build was compiled with.
    fn enabled_features() -> Vec<&'static str> {
        let mut enabled = Vec::new();
        if cfg!(feature = "freshservice") {
            enabled.push("freshservice");
        }
        if cfg!(feature = "highlevel") {
            enabled.push("highlevel");
        }
        if cfg!(feature = "okta") {
            enabled.push("okta");
        }
        if cfg!(feature = "vcclive") {
            enabled.push("vcclive");
        }
        if cfg!(feature = "zendesk") {
            enabled.push("zendesk");
        }
        enabled
    }

    // `cargo xtask ci` runs this once per connector feature alone (and with all of them), so
    // it proves both that features link their connector and that nothing else is linked.
    #[test]
    fn registers_exactly_the_connectors_of_the_enabled_features() {
        let registered: Vec<_> = rollcall_core::registrations()
            .iter()
            .map(|registration| registration.name)
            .collect();
        assert_eq!(registered, enabled_features());
    }
}
