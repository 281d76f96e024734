//! rollcall connector for Freshservice.
#![forbid(unsafe_code)]
