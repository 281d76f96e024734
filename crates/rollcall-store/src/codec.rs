//! How stored JSON documents are encoded: as they are when small, zstd-compressed above a
//! threshold. The two are told apart by the first bytes (a zstd frame's magic number; JSON
//! starts with `{`, `[` or `"`), so rows written before compression existed still read.

use std::cell::RefCell;

use crate::{Result, StoreError};

/// Documents shorter than this are stored as they are: compression would save little and
/// cost a frame header.
const COMPRESS_ABOVE: usize = 384;

/// zstd's fastest levels compress JSON 3-5x at a few hundred MB/s; higher levels buy a few
/// percent for several times the CPU, which the single writer cannot spare.
const LEVEL: i32 = 1;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The largest document [`unpack`] will expand: far above any event (bodies are capped at a
/// few MiB), low enough that a damaged header cannot make it allocate gigabytes.
const MAX_DOCUMENT: u64 = 256 * 1024 * 1024;

thread_local! {
    // A compression context costs tens of kilobytes of tables to set up; the profile showed
    // creating one per document as the store's largest single cost. One per thread, reused.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Encodes a JSON document for storage.
pub(crate) fn pack(json: Vec<u8>) -> Vec<u8> {
    if json.len() < COMPRESS_ABOVE {
        return json;
    }
    let packed = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = zstd::bulk::Compressor::new(LEVEL).ok();
        }
        cell.as_mut()?.compress(&json).ok()
    });
    match packed {
        Some(packed) if packed.len() < json.len() => packed,
        // Incompressible (or the compressor failed): the plain document is always readable.
        _ => json,
    }
}

/// Decodes what [`pack`] stored.
pub(crate) fn unpack(stored: Vec<u8>) -> Result<Vec<u8>> {
    if !stored.starts_with(&ZSTD_MAGIC) {
        return Ok(stored);
    }
    let corrupt =
        |what: &dyn std::fmt::Display| StoreError::Corrupt(format!("compressed document: {what}"));
    let size = zstd::zstd_safe::get_frame_content_size(&stored)
        .map_err(|_| corrupt(&"unreadable frame header"))?
        .ok_or_else(|| corrupt(&"no content size"))?;
    if size > MAX_DOCUMENT {
        return Err(corrupt(&format!("claims {size} bytes")));
    }
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(zstd::bulk::Decompressor::new().map_err(|error| corrupt(&error))?);
        }
        let decompressor = cell.as_mut().ok_or_else(|| corrupt(&"no decompressor"))?;
        decompressor
            .decompress(&stored, size as usize)
            .map_err(|error| corrupt(&error))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_documents_are_kept_as_they_are() {
        let json = br#"{"id":"1"}"#.to_vec();
        assert_eq!(pack(json.clone()), json);
        assert_eq!(unpack(json.clone()).unwrap(), json);
    }

    #[test]
    fn large_documents_round_trip_compressed() {
        let json = serde_json::to_vec(&serde_json::json!({
            "users": (0..50).map(|n| serde_json::json!({"id": n, "email": format!("user{n}@example.com")})).collect::<Vec<_>>()
        }))
        .unwrap();
        let packed = pack(json.clone());
        assert!(packed.starts_with(&ZSTD_MAGIC));
        assert!(
            packed.len() * 3 < json.len(),
            "{} -> {}",
            json.len(),
            packed.len()
        );
        assert_eq!(unpack(packed).unwrap(), json);
    }

    #[test]
    fn a_damaged_frame_is_corrupt_not_a_panic() {
        let mut packed = pack(vec![b'x'; 4096]);
        packed.truncate(8);
        assert!(matches!(unpack(packed), Err(StoreError::Corrupt(_))));
    }
}
