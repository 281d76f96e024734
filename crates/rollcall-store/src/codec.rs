//! How stored JSON documents are encoded: as they are when small, zstd-compressed above a
//! threshold, with a dictionary trained on the store's own documents once there are enough
//! of them.
//!
//! Webhook documents are small (a few KB) and alike (the same keys, the same vendor shapes),
//! which is where plain compression does worst and a dictionary best: on the benchmark's
//! Zendesk events a trained dictionary both shrinks each document several times more than
//! plain zstd and compresses it several times faster (no per-document entropy tables).
//!
//! The forms are told apart by their first bytes (a zstd frame's magic number; JSON starts
//! with `{`, `[` or `"`), and a frame names the dictionary it needs, so every row written
//! since the store began reads back whatever dictionary is current. Dictionaries are
//! durable before any document uses one, and never deleted (a few KB each).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::{Result, StoreError};

/// Documents shorter than this are stored as they are: compression would save little and
/// cost a frame header.
const COMPRESS_ABOVE: usize = 384;

/// zstd's fastest regular level: higher levels buy a few percent for several times the
/// CPU, which the single writer cannot spare.
const LEVEL: i32 = 1;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The largest document [`Codec::unpack`] will expand: far above any event (bodies are
/// capped at a few MiB), low enough that a damaged header cannot make it allocate gigabytes.
const MAX_DOCUMENT: u64 = 256 * 1024 * 1024;

/// The largest dictionary trained: the usual size for documents of a few KB.
const DICTIONARY_BYTES: usize = 16 * 1024;

/// When to train dictionaries, in documents packed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrainingPlan {
    /// Train the first dictionary after this many documents.
    pub(crate) first_after: u64,
    /// Train a fresh one after this many more (vendors' payloads drift).
    pub(crate) then_every: u64,
    /// Keep every `sample_every`-th document as a training sample...
    pub(crate) sample_every: u64,
    /// ...and at most this many (the most recent).
    pub(crate) samples: usize,
}

impl Default for TrainingPlan {
    fn default() -> Self {
        Self {
            first_after: 4_096,
            then_every: 1 << 20,
            sample_every: 2,
            samples: 2_000,
        }
    }
}

/// The dictionaries a store knows, shared by its writer and readers.
#[derive(Debug)]
pub(crate) struct Codec {
    /// Tells this store's cached decompressors from another's (tests open many stores).
    instance: u64,
    dictionaries: RwLock<HashMap<u32, Arc<[u8]>>>,
}

impl Default for Codec {
    fn default() -> Self {
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        Self {
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            dictionaries: RwLock::default(),
        }
    }
}

thread_local! {
    // A compression context costs tens of kilobytes of tables to set up; the profile showed
    // creating one per document as the store's largest single cost. One per thread (and per
    // dictionary), reused.
    static DECOMPRESSORS: RefCell<HashMap<(u64, u32), zstd::bulk::Decompressor<'static>>> =
        RefCell::new(HashMap::new());
}

impl Codec {
    /// Makes a stored dictionary known (at open, and after training).
    pub(crate) fn add_dictionary(&self, dictionary: Arc<[u8]>) -> Option<u32> {
        let id = zstd::zstd_safe::get_dict_id(&dictionary)?.get();
        self.dictionaries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id, dictionary);
        Some(id)
    }

    fn dictionary(&self, id: u32) -> Option<Arc<[u8]>> {
        self.dictionaries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&id)
            .cloned()
    }

    /// Decodes what [`Encoder::pack`] stored.
    pub(crate) fn unpack(&self, stored: Vec<u8>) -> Result<Vec<u8>> {
        if !stored.starts_with(&ZSTD_MAGIC) {
            return Ok(stored);
        }
        let size = zstd::zstd_safe::get_frame_content_size(&stored)
            .map_err(|_| corrupt("unreadable frame header"))?
            .ok_or_else(|| corrupt("no content size"))?;
        if size > MAX_DOCUMENT {
            return Err(corrupt(format!("claims {size} bytes")));
        }
        let dictionary_id =
            zstd::zstd_safe::get_dict_id_from_frame(&stored).map_or(0, |id| id.get());
        DECOMPRESSORS.with(|cell| {
            let mut decompressors = cell.borrow_mut();
            let key = (self.instance, dictionary_id);
            let decompressor = match decompressors.entry(key) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    let decompressor = if dictionary_id == 0 {
                        zstd::bulk::Decompressor::new()
                    } else {
                        let dictionary = self.dictionary(dictionary_id).ok_or_else(|| {
                            corrupt(format!("unknown dictionary {dictionary_id}"))
                        })?;
                        // The context copies the dictionary: it borrows nothing.
                        zstd::bulk::Decompressor::with_dictionary(&dictionary)
                    }
                    .map_err(corrupt)?;
                    entry.insert(decompressor)
                }
            };
            decompressor
                .decompress(&stored, size as usize)
                .map_err(corrupt)
        })
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("compressed document: {what}"))
}

/// The writer's side: packs documents, with the current dictionary once there is one, and
/// collects samples to train the next.
pub(crate) struct Encoder {
    plan: TrainingPlan,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    /// Documents packed since the current dictionary (or since the start).
    packed: u64,
    trained_once: bool,
    samples: std::collections::VecDeque<Vec<u8>>,
}

impl Encoder {
    pub(crate) fn new(plan: TrainingPlan, dictionary: Option<&[u8]>) -> Self {
        let compressor = match dictionary {
            Some(dictionary) => zstd::bulk::Compressor::with_dictionary(LEVEL, dictionary).ok(),
            None => zstd::bulk::Compressor::new(LEVEL).ok(),
        };
        Self {
            plan,
            compressor,
            packed: 0,
            trained_once: dictionary.is_some(),
            samples: std::collections::VecDeque::new(),
        }
    }

    /// Encodes a JSON document for storage.
    pub(crate) fn pack(&mut self, json: Vec<u8>) -> Vec<u8> {
        if json.len() < COMPRESS_ABOVE {
            return json;
        }
        self.packed += 1;
        if self.packed.is_multiple_of(self.plan.sample_every.max(1)) {
            if self.samples.len() >= self.plan.samples {
                self.samples.pop_front();
            }
            self.samples.push_back(json.clone());
        }
        match self
            .compressor
            .as_mut()
            .and_then(|compressor| compressor.compress(&json).ok())
        {
            Some(packed) if packed.len() < json.len() => packed,
            // Incompressible (or the compressor failed): the plain document always reads.
            _ => json,
        }
    }

    /// A new dictionary trained on the samples, when it is time for one. The caller stores
    /// it durably, then hands it to [`Encoder::use_dictionary`] and [`Codec::add_dictionary`].
    #[cfg(test)]
    pub(crate) fn train_if_due(&mut self) -> Option<Vec<u8>> {
        train(&self.samples_if_due()?)
    }

    /// The samples to train the next dictionary on, when it is time for one ([`train`]
    /// them, on any thread: training takes a few hundred milliseconds of CPU). Collecting
    /// starts afresh for the one after.
    pub(crate) fn samples_if_due(&mut self) -> Option<Vec<Vec<u8>>> {
        let due = if self.trained_once {
            self.plan.then_every
        } else {
            self.plan.first_after
        };
        if self.packed < due || self.samples.len() < 8 {
            return None;
        }
        // Whatever the outcome, wait a whole period before trying again.
        self.packed = 0;
        self.trained_once = true;
        Some(std::mem::take(&mut self.samples).into())
    }

    /// Packs with `dictionary` from now on (it is durable and known to the [`Codec`]).
    pub(crate) fn use_dictionary(&mut self, dictionary: &[u8]) {
        if let Ok(compressor) = zstd::bulk::Compressor::with_dictionary(LEVEL, dictionary) {
            self.compressor = Some(compressor);
        }
    }
}

/// A dictionary trained on `samples`; `None` (logged) when zstd cannot make one.
pub(crate) fn train(samples: &[Vec<u8>]) -> Option<Vec<u8>> {
    let samples: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
    match zstd::dict::from_samples(&samples, DICTIONARY_BYTES) {
        Ok(dictionary) => Some(dictionary),
        Err(error) => {
            tracing::warn!(error = %error, "store: cannot train a compression dictionary; documents stay compressed without one");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(n: usize) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "type": "zen:event-type:user.created",
            "id": format!("event-{n}"),
            "detail": {"id": n, "email": format!("user{n}@example.com"), "role": "end-user",
                       "created_at": "2026-11-22T10:00:00Z", "organization_id": n % 7},
            "users": (0..20).map(|k| serde_json::json!({"id": k, "name": format!("member {k}")})).collect::<Vec<_>>()
        }))
        .unwrap()
    }

    #[test]
    fn small_documents_are_kept_as_they_are() {
        let mut encoder = Encoder::new(TrainingPlan::default(), None);
        let json = br#"{"id":"1"}"#.to_vec();
        assert_eq!(encoder.pack(json.clone()), json);
        assert_eq!(Codec::default().unpack(json.clone()).unwrap(), json);
    }

    #[test]
    fn large_documents_round_trip_compressed() {
        let mut encoder = Encoder::new(TrainingPlan::default(), None);
        let json = document(1);
        let packed = encoder.pack(json.clone());
        assert!(packed.starts_with(&ZSTD_MAGIC));
        assert!(
            packed.len() * 2 < json.len(),
            "{} -> {}",
            json.len(),
            packed.len()
        );
        assert_eq!(Codec::default().unpack(packed).unwrap(), json);
    }

    #[test]
    fn a_trained_dictionary_shrinks_documents_and_old_frames_still_read() {
        let plan = TrainingPlan {
            first_after: 200,
            then_every: 1_000_000,
            sample_every: 1,
            samples: 200,
        };
        let mut encoder = Encoder::new(plan, None);
        let codec = Codec::default();
        let before = encoder.pack(document(0));
        for n in 1..200 {
            encoder.pack(document(n));
        }
        let dictionary = encoder.train_if_due().expect("due after 200 documents");
        assert!(encoder.train_if_due().is_none(), "not due again at once");
        let id = codec.add_dictionary(dictionary.clone().into()).unwrap();
        encoder.use_dictionary(&dictionary);
        let json = document(10_000);
        let plain = Encoder::new(plan, None).pack(json.clone());
        let with_dictionary = encoder.pack(json.clone());
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_frame(&with_dictionary).map(|id| id.get()),
            Some(id)
        );
        assert!(
            with_dictionary.len() * 2 < plain.len(),
            "{} with the dictionary, {} without",
            with_dictionary.len(),
            plain.len()
        );
        assert_eq!(codec.unpack(with_dictionary.clone()).unwrap(), json);
        assert_eq!(codec.unpack(before).unwrap(), document(0));
        // A store that does not know the dictionary says so instead of guessing.
        assert!(matches!(
            Codec::default().unpack(with_dictionary),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_damaged_frame_is_corrupt_not_a_panic() {
        let mut packed = Encoder::new(TrainingPlan::default(), None).pack(vec![b'x'; 4096]);
        packed.truncate(8);
        assert!(matches!(
            Codec::default().unpack(packed),
            Err(StoreError::Corrupt(_))
        ));
    }
}
