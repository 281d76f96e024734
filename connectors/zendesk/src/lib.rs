//! rollcall connector for Zendesk.
#![forbid(unsafe_code)]
