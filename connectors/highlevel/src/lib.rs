//! rollcall connector for HighLevel.
#![forbid(unsafe_code)]
