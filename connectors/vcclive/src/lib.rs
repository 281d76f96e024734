//! rollcall connector for VCC Live.
#![forbid(unsafe_code)]
