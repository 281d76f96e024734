//! Prometheus metrics on `prometheus-client`: one [`Metrics`] holding a typed family per
//! metric, each registered once with its help text, and typed handles for the callers.
//!
//! Names follow `rollcall_<what>_<unit>[_total]`; labels are bounded: configured source and
//! sink ids, error codes and fixed outcomes, never anything a request can choose. Counters
//! are registered without `_total` because the crate appends it: the exposed names stay the
//! ones dashboards query.
//!
//! The exposition is Prometheus's text format 0.0.4 ([`CONTENT_TYPE`]), which every
//! Prometheus reads; the crate escapes label values and writes histogram bounds as
//! Prometheus's own client does (`le="1"`).
//!
//! The hot paths hold resolved handles ([`SourceMetrics`], [`SinkMetrics`]), built once per
//! configured source and sink: counting then is an atomic add, with no lookup and no
//! allocation. Other callers ask [`Metrics`] for a handle by typed labels; a label set costs
//! no allocation either, an [`Id`] being shared.

use std::fmt::{self, Write as _};
use std::hash::Hash;
use std::sync::Arc;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};
use rollcall_core::ErrorCode;
use rollcall_store::CommitStats;

/// The `Content-Type` of [`Metrics::render`]'s text: `text/plain; version=0.0.4; charset=utf-8`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Histogram buckets, in seconds: request and delivery latencies from 100 µs to 30 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// A histogram family with [`BUCKETS`].
type LatencyFamily<Labels> = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_family<Labels: Clone + Hash + Eq>() -> LatencyFamily<Labels> {
    Family::new_with_constructor(|| Histogram::new(BUCKETS.iter().copied()))
}

/// A configured source's or sink's id as a label value. Shared: a label set naming it is
/// built without allocating.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id(Arc<str>);

impl Id {
    pub fn new(id: &str) -> Self {
        Self(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl EncodeLabelValue for Id {
    /// As it is: the encoder escapes what the text format wants escaped.
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        encoder.write_str(self.as_str())
    }
}

/// A label value from a fixed set: an enum whose variants spell the exposed values once.
macro_rules! label_value {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($(#[$variant_meta:meta])* $variant:ident => $value:literal,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            /// The label value as exposed.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value,)+
                }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
                encoder.write_str(self.as_str())
            }
        }
    };
}

label_value! {
    /// How an ingest request ended (`rollcall_ingest_requests_total{outcome}`).
    pub enum RequestOutcome {
        /// Committed: 202.
        Accepted => "accepted",
        /// A repeat of a committed delivery: 200.
        Duplicate => "duplicate",
        /// A vendor's verification handshake, answered without an event.
        Handshake => "handshake",
        /// Answered with an error; its code counts in `rollcall_ingest_rejected_total`.
        Rejected => "rejected",
    }
}

label_value! {
    /// A failed send attempt's kind (`rollcall_sink_failed_total{kind}`).
    pub enum FailureKind {
        Transient => "transient",
        Permanent => "permanent",
    }
}

label_value! {
    /// What retention deleted (`rollcall_pruned_total{what}`).
    pub enum Pruned {
        Journal => "journal",
        Dedup => "dedup",
        Quarantine => "quarantine",
        DeadLetters => "dead_letters",
        /// Open quarantine entries nobody replayed in time.
        QuarantineExpired => "quarantine_expired",
    }
}

label_value! {
    /// What enrichment did with a partial event (`rollcall_enrich_total{outcome}`).
    pub enum EnrichOutcome {
        /// Now complete.
        Ok => "ok",
        /// The connector's error, or out of time.
        Failed => "failed",
        /// Left partial by a connector that answered `Ok`, or that cannot enrich.
        Skipped => "skipped",
    }
}

label_value! {
    /// What a sync found for a user (`rollcall_sync_users_total{outcome}`).
    pub enum SyncOutcome {
        Created => "created",
        Updated => "updated",
        Deleted => "deleted",
        Unchanged => "unchanged",
        Stale => "stale",
    }
}

/// An error code as a label value (the code's stable snake_case name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Code(ErrorCode);

impl EncodeLabelValue for Code {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        encoder.write_str(self.0.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: Id,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    source: Id,
    outcome: RequestOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabels {
    source: Id,
    code: Code,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EnrichLabels {
    source: Id,
    outcome: EnrichOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SyncLabels {
    source: Id,
    outcome: SyncOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SinkLabels {
    sink: Id,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FailureLabels {
    sink: Id,
    kind: FailureKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PrunedLabels {
    what: Pruned,
}

/// The process's metrics: every family, registered once.
#[derive(Debug)]
pub struct Metrics {
    ingest_requests: Family<RequestLabels, Counter>,
    ingest_rejected: Family<CodeLabels, Counter>,
    events_accepted: Family<SourceLabels, Counter>,
    ingest_request_duration: LatencyFamily<SourceLabels>,
    sink_sent: Family<SinkLabels, Counter>,
    sink_failed: Family<FailureLabels, Counter>,
    sink_lag: Family<SinkLabels, Gauge>,
    sink_oldest_undelivered: Family<SinkLabels, Gauge>,
    sink_inflight: Family<SinkLabels, Gauge>,
    sink_parked: Family<SinkLabels, Gauge>,
    dead_letters: Family<SinkLabels, Counter>,
    delivery_duration: LatencyFamily<SinkLabels>,
    quarantined: Family<CodeLabels, Counter>,
    pruned: Family<PrunedLabels, Counter>,
    enrich: Family<EnrichLabels, Counter>,
    sync_users: Family<SyncLabels, Counter>,
    sync_last_success: Family<SourceLabels, Gauge>,
    registry: Registry,
    /// The `source` label of requests whose path names no configured source.
    unknown_source: Id,
}

/// `metric`, after registering it in `registry`.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family, registered in exposition order. The crate ends each help text with a
    /// full stop.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        Self {
            ingest_requests: registered(
                &mut registry,
                "rollcall_ingest_requests",
                "Requests received on the ingest listener, by source and outcome",
                Family::default(),
            ),
            ingest_rejected: registered(
                &mut registry,
                "rollcall_ingest_rejected",
                "Requests rejected, by source and error code",
                Family::default(),
            ),
            events_accepted: registered(
                &mut registry,
                "rollcall_events_accepted",
                "Unified events committed to the journal, by source",
                Family::default(),
            ),
            ingest_request_duration: registered(
                &mut registry,
                "rollcall_ingest_request_duration_seconds",
                "Time from request to answer on the ingest listener",
                latency_family(),
            ),
            sink_sent: registered(
                &mut registry,
                "rollcall_sink_sent",
                "Events a sink accepted",
                Family::default(),
            ),
            sink_failed: registered(
                &mut registry,
                "rollcall_sink_failed",
                "Failed send attempts, by sink and kind (transient, permanent)",
                Family::default(),
            ),
            sink_lag: registered(
                &mut registry,
                "rollcall_sink_lag_events",
                "Journal events a sink has not finished yet (after its position, plus the events parked behind a held user)",
                Family::default(),
            ),
            sink_oldest_undelivered: registered(
                &mut registry,
                "rollcall_sink_oldest_undelivered_seconds",
                "Age of the oldest event a sink has not finished yet (0 when none), by sink",
                Family::default(),
            ),
            sink_inflight: registered(
                &mut registry,
                "rollcall_sink_inflight",
                "Requests a sink's worker has in flight, by sink",
                Family::default(),
            ),
            sink_parked: registered(
                &mut registry,
                "rollcall_sink_parked_events",
                "Events waiting behind a user whose line a transient failure holds, by sink",
                Family::default(),
            ),
            dead_letters: registered(
                &mut registry,
                "rollcall_dead_letters",
                "Events that became dead letters, by sink",
                Family::default(),
            ),
            delivery_duration: registered(
                &mut registry,
                "rollcall_delivery_duration_seconds",
                "Time of one send attempt to a sink",
                latency_family(),
            ),
            quarantined: registered(
                &mut registry,
                "rollcall_quarantined",
                "Deliveries kept in quarantine, by source and error code",
                Family::default(),
            ),
            pruned: registered(
                &mut registry,
                "rollcall_pruned",
                "Rows deleted by retention, by what (journal, dedup, quarantine, dead_letters, quarantine_expired)",
                Family::default(),
            ),
            enrich: registered(
                &mut registry,
                "rollcall_enrich",
                "Partial events sent for enrichment from the vendor's API, by source and outcome (ok, failed, skipped)",
                Family::default(),
            ),
            sync_users: registered(
                &mut registry,
                "rollcall_sync_users",
                "Users a sync compared with the directory, by source and outcome (created, updated, deleted, unchanged, stale)",
                Family::default(),
            ),
            sync_last_success: registered(
                &mut registry,
                "rollcall_sync_last_success_timestamp_seconds",
                "Unix time at which a sync of the source last completed its listing without error",
                Family::default(),
            ),
            registry,
            unknown_source: Id::new("_unknown"),
        }
    }

    /// `source`'s ingest handles, resolved once (their series exist from now on, at 0).
    pub fn source(&self, source: &str) -> SourceMetrics {
        let id = Id::new(source);
        let requests = |outcome| self.ingest_requests(&id, outcome);
        SourceMetrics {
            accepted: requests(RequestOutcome::Accepted),
            duplicate: requests(RequestOutcome::Duplicate),
            handshake: requests(RequestOutcome::Handshake),
            rejected: requests(RequestOutcome::Rejected),
            request_duration: self.ingest_request_duration(&id),
            events_accepted: self.events_accepted(&id),
            id,
        }
    }

    /// `sink`'s delivery handles, resolved once (their series exist from now on, at 0).
    pub fn sink(&self, sink: &str) -> SinkMetrics {
        let id = Id::new(sink);
        SinkMetrics {
            sent: self.sink_sent(&id),
            failed_transient: self.sink_failed(&id, FailureKind::Transient),
            failed_permanent: self.sink_failed(&id, FailureKind::Permanent),
            lag_events: self.sink_lag_events(&id),
            oldest_undelivered_seconds: self.sink_oldest_undelivered_seconds(&id),
            inflight: self.sink_inflight(&id),
            parked_events: self.sink_parked_events(&id),
            dead_letters: self.dead_letters(&id),
            delivery_duration: self.delivery_duration(&id),
            id,
        }
    }

    /// The `source` label of requests whose path names no configured source.
    pub fn unknown_source(&self) -> &Id {
        &self.unknown_source
    }

    /// `rollcall_ingest_requests_total{source,outcome}`.
    pub fn ingest_requests(&self, source: &Id, outcome: RequestOutcome) -> Counter {
        self.ingest_requests.get_or_create_owned(&RequestLabels {
            source: source.clone(),
            outcome,
        })
    }

    /// `rollcall_ingest_rejected_total{source,code}`.
    pub fn ingest_rejected(&self, source: &Id, code: ErrorCode) -> Counter {
        self.ingest_rejected.get_or_create_owned(&CodeLabels {
            source: source.clone(),
            code: Code(code),
        })
    }

    /// `rollcall_events_accepted_total{source}`.
    pub fn events_accepted(&self, source: &Id) -> Counter {
        self.events_accepted.get_or_create_owned(&SourceLabels {
            source: source.clone(),
        })
    }

    /// `rollcall_ingest_request_duration_seconds{source}`.
    pub fn ingest_request_duration(&self, source: &Id) -> Histogram {
        self.ingest_request_duration
            .get_or_create_owned(&SourceLabels {
                source: source.clone(),
            })
    }

    /// `rollcall_sink_sent_total{sink}`.
    pub fn sink_sent(&self, sink: &Id) -> Counter {
        self.sink_sent.get_or_create_owned(&sink_labels(sink))
    }

    /// `rollcall_sink_failed_total{sink,kind}`.
    pub fn sink_failed(&self, sink: &Id, kind: FailureKind) -> Counter {
        self.sink_failed.get_or_create_owned(&FailureLabels {
            sink: sink.clone(),
            kind,
        })
    }

    /// `rollcall_sink_lag_events{sink}`.
    pub fn sink_lag_events(&self, sink: &Id) -> Gauge {
        self.sink_lag.get_or_create_owned(&sink_labels(sink))
    }

    /// `rollcall_sink_oldest_undelivered_seconds{sink}`.
    pub fn sink_oldest_undelivered_seconds(&self, sink: &Id) -> Gauge {
        self.sink_oldest_undelivered
            .get_or_create_owned(&sink_labels(sink))
    }

    /// `rollcall_sink_inflight{sink}`.
    pub fn sink_inflight(&self, sink: &Id) -> Gauge {
        self.sink_inflight.get_or_create_owned(&sink_labels(sink))
    }

    /// `rollcall_sink_parked_events{sink}`.
    pub fn sink_parked_events(&self, sink: &Id) -> Gauge {
        self.sink_parked.get_or_create_owned(&sink_labels(sink))
    }

    /// `rollcall_dead_letters_total{sink}`.
    pub fn dead_letters(&self, sink: &Id) -> Counter {
        self.dead_letters.get_or_create_owned(&sink_labels(sink))
    }

    /// `rollcall_delivery_duration_seconds{sink}`.
    pub fn delivery_duration(&self, sink: &Id) -> Histogram {
        self.delivery_duration
            .get_or_create_owned(&sink_labels(sink))
    }

    /// `rollcall_quarantined_total{source,code}`.
    pub fn quarantined(&self, source: &Id, code: ErrorCode) -> Counter {
        self.quarantined.get_or_create_owned(&CodeLabels {
            source: source.clone(),
            code: Code(code),
        })
    }

    /// `rollcall_pruned_total{what}`.
    pub fn pruned(&self, what: Pruned) -> Counter {
        self.pruned.get_or_create_owned(&PrunedLabels { what })
    }

    /// `rollcall_enrich_total{source,outcome}`.
    pub fn enrich(&self, source: &Id, outcome: EnrichOutcome) -> Counter {
        self.enrich.get_or_create_owned(&EnrichLabels {
            source: source.clone(),
            outcome,
        })
    }

    /// `rollcall_sync_users_total{source,outcome}`.
    pub fn sync_users(&self, source: &Id, outcome: SyncOutcome) -> Counter {
        self.sync_users.get_or_create_owned(&SyncLabels {
            source: source.clone(),
            outcome,
        })
    }

    /// `rollcall_sync_last_success_timestamp_seconds{source}`.
    pub fn sync_last_success_timestamp_seconds(&self, source: &Id) -> Gauge {
        self.sync_last_success.get_or_create_owned(&SourceLabels {
            source: source.clone(),
        })
    }

    /// The exposition ([`CONTENT_TYPE`]): every family that has a series, then the store's
    /// group-commit counters (`rollcall_store_commits_total`, `rollcall_store_writes_total`:
    /// writes per commit is the batching factor).
    pub fn render(&self, store: CommitStats) -> Result<String, fmt::Error> {
        let mut store_counters = Registry::default();
        store_counters.register(
            "rollcall_store_commits",
            "Transactions the store's writer committed",
            ConstCounter::new(store.commits),
        );
        store_counters.register(
            "rollcall_store_writes",
            "Writes committed (several share one commit)",
            ConstCounter::new(store.writes),
        );
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)?;
        prometheus_text::encode(&mut text, &store_counters)?;
        Ok(text)
    }
}

fn sink_labels(sink: &Id) -> SinkLabels {
    SinkLabels { sink: sink.clone() }
}

/// A configured source's handles on the ingest path.
#[derive(Debug, Clone)]
pub struct SourceMetrics {
    id: Id,
    accepted: Counter,
    duplicate: Counter,
    handshake: Counter,
    rejected: Counter,
    request_duration: Histogram,
    events_accepted: Counter,
}

impl SourceMetrics {
    /// The source's id as a label value, for the families not resolved here.
    pub fn id(&self) -> &Id {
        &self.id
    }

    /// `rollcall_ingest_requests_total{source,outcome}`.
    pub fn ingest_requests(&self, outcome: RequestOutcome) -> &Counter {
        match outcome {
            RequestOutcome::Accepted => &self.accepted,
            RequestOutcome::Duplicate => &self.duplicate,
            RequestOutcome::Handshake => &self.handshake,
            RequestOutcome::Rejected => &self.rejected,
        }
    }

    /// `rollcall_ingest_request_duration_seconds{source}`.
    pub fn ingest_request_duration(&self) -> &Histogram {
        &self.request_duration
    }

    /// `rollcall_events_accepted_total{source}`.
    pub fn events_accepted(&self) -> &Counter {
        &self.events_accepted
    }
}

/// A configured sink's handles on the delivery path.
#[derive(Debug, Clone)]
pub struct SinkMetrics {
    id: Id,
    sent: Counter,
    failed_transient: Counter,
    failed_permanent: Counter,
    lag_events: Gauge,
    oldest_undelivered_seconds: Gauge,
    inflight: Gauge,
    parked_events: Gauge,
    dead_letters: Counter,
    delivery_duration: Histogram,
}

impl SinkMetrics {
    pub fn id(&self) -> &Id {
        &self.id
    }

    /// `rollcall_sink_sent_total{sink}`.
    pub fn sent(&self) -> &Counter {
        &self.sent
    }

    /// `rollcall_sink_failed_total{sink,kind}`.
    pub fn failed(&self, kind: FailureKind) -> &Counter {
        match kind {
            FailureKind::Transient => &self.failed_transient,
            FailureKind::Permanent => &self.failed_permanent,
        }
    }

    /// `rollcall_sink_lag_events{sink}`.
    pub fn lag_events(&self) -> &Gauge {
        &self.lag_events
    }

    /// `rollcall_sink_oldest_undelivered_seconds{sink}`.
    pub fn oldest_undelivered_seconds(&self) -> &Gauge {
        &self.oldest_undelivered_seconds
    }

    /// `rollcall_sink_inflight{sink}`.
    pub fn inflight(&self) -> &Gauge {
        &self.inflight
    }

    /// `rollcall_sink_parked_events{sink}`.
    pub fn parked_events(&self) -> &Gauge {
        &self.parked_events
    }

    /// `rollcall_dead_letters_total{sink}`.
    pub fn dead_letters(&self) -> &Counter {
        &self.dead_letters
    }

    /// `rollcall_delivery_duration_seconds{sink}`.
    pub fn delivery_duration(&self) -> &Histogram {
        &self.delivery_duration
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// One series of each family, with every value of the fixed label sets.
    fn one_of_each() -> Metrics {
        let metrics = Metrics::new();
        let source = Id::new("zd");
        let sink = Id::new("crm");
        for outcome in RequestOutcome::ALL {
            metrics.ingest_requests(&source, *outcome).inc();
        }
        metrics
            .ingest_rejected(&source, ErrorCode::SignatureInvalid)
            .inc();
        metrics.events_accepted(&source).inc_by(3);
        metrics.ingest_request_duration(&source).observe(0.003);
        metrics.sink_sent(&sink).inc();
        for kind in FailureKind::ALL {
            metrics.sink_failed(&sink, *kind).inc();
        }
        metrics.sink_lag_events(&sink).set(3);
        metrics.sink_oldest_undelivered_seconds(&sink).set(12);
        metrics.sink_inflight(&sink).set(1);
        metrics.sink_parked_events(&sink).set(2);
        metrics.dead_letters(&sink).inc();
        metrics.delivery_duration(&sink).observe(0.2);
        metrics
            .quarantined(&source, ErrorCode::PayloadInvalid)
            .inc();
        for what in Pruned::ALL {
            metrics.pruned(*what).inc();
        }
        for outcome in EnrichOutcome::ALL {
            metrics.enrich(&source, *outcome).inc();
        }
        for outcome in SyncOutcome::ALL {
            metrics.sync_users(&source, *outcome).inc();
        }
        metrics
            .sync_last_success_timestamp_seconds(&source)
            .set(1_700_000_000);
        metrics
    }

    fn render(metrics: &Metrics) -> String {
        metrics
            .render(CommitStats {
                commits: 4,
                writes: 10,
            })
            .unwrap()
    }

    /// A sample line: its name, its labels in order, its value.
    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    /// A family as exposed: `# HELP`, `# TYPE` and its samples.
    #[derive(Debug, Default)]
    struct Exposed {
        help: String,
        kind: String,
        samples: Vec<Sample>,
    }

    /// Parses text format 0.0.4 as Prometheus reads it, failing on anything out of place: a
    /// family without `# HELP` and `# TYPE`, a sample outside its family or with a name its
    /// type does not allow (which Prometheus would take as untyped), a malformed label set
    /// or value.
    fn parse(text: &str) -> Vec<(String, Exposed)> {
        assert!(text.ends_with('\n'), "{text}");
        let mut families: Vec<(String, Exposed)> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                assert!(
                    families.iter().all(|(known, _)| known != name),
                    "{name} twice"
                );
                let family = Exposed {
                    help: help.to_owned(),
                    ..Exposed::default()
                };
                families.push((name.to_owned(), family));
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                let (current, family) = families.last_mut().expect("# HELP before # TYPE");
                assert_eq!(current, name, "# TYPE of another family");
                family.kind = kind.to_owned();
            } else {
                assert!(!line.starts_with('#'), "unexpected comment: {line}");
                let (current, family) = families.last_mut().expect("a family before samples");
                let sample = parse_sample(line);
                let suffixes: &[&str] = match family.kind.as_str() {
                    "counter" | "gauge" => &[""],
                    "histogram" => &["_bucket", "_sum", "_count"],
                    other => panic!("unexpected type {other}"),
                };
                assert!(
                    suffixes
                        .iter()
                        .any(|suffix| sample.name == format!("{current}{suffix}")),
                    "{} in family {current} ({})",
                    sample.name,
                    family.kind
                );
                family.samples.push(sample);
            }
        }
        families
    }

    fn parse_sample(line: &str) -> Sample {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            value => value.parse().unwrap(),
        };
        let Some((name, labels)) = series.split_once('{') else {
            return Sample {
                name: series.to_owned(),
                labels: Vec::new(),
                value,
            };
        };
        let mut rest = labels.strip_suffix('}').expect("a closed label set");
        let mut labels = Vec::new();
        while !rest.is_empty() {
            let (key, after) = rest.split_once("=\"").unwrap();
            let mut label_value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().expect("a closed label value") {
                    (at, '"') => break at,
                    (_, '\\') => match chars.next().unwrap().1 {
                        'n' => label_value.push('\n'),
                        escaped @ ('\\' | '"') => label_value.push(escaped),
                        other => panic!("unknown escape \\{other}"),
                    },
                    (_, other) => label_value.push(other),
                }
            };
            labels.push((key.to_owned(), label_value));
            rest = &after[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        Sample {
            name: name.to_owned(),
            labels,
            value,
        }
    }

    /// A family's name, type and label names but `le`.
    fn queried(name: &str, family: &Exposed) -> (String, String, Vec<String>) {
        let labels = family
            .samples
            .first()
            .map(|sample| {
                sample
                    .labels
                    .iter()
                    .map(|(key, _)| key.clone())
                    .filter(|key| key != "le")
                    .collect()
            })
            .unwrap_or_default();
        (name.to_owned(), family.kind.clone(), labels)
    }

    #[test]
    fn every_family_is_exposed_with_help_type_and_the_names_dashboards_query() {
        let families = parse(&render(&one_of_each()));
        let exposed: Vec<_> = families
            .iter()
            .map(|(name, family)| queried(name, family))
            .collect();
        let expected: &[(&str, &str, &[&str])] = &[
            (
                "rollcall_ingest_requests_total",
                "counter",
                &["source", "outcome"],
            ),
            (
                "rollcall_ingest_rejected_total",
                "counter",
                &["source", "code"],
            ),
            ("rollcall_events_accepted_total", "counter", &["source"]),
            (
                "rollcall_ingest_request_duration_seconds",
                "histogram",
                &["source"],
            ),
            ("rollcall_sink_sent_total", "counter", &["sink"]),
            ("rollcall_sink_failed_total", "counter", &["sink", "kind"]),
            ("rollcall_sink_lag_events", "gauge", &["sink"]),
            (
                "rollcall_sink_oldest_undelivered_seconds",
                "gauge",
                &["sink"],
            ),
            ("rollcall_sink_inflight", "gauge", &["sink"]),
            ("rollcall_sink_parked_events", "gauge", &["sink"]),
            ("rollcall_dead_letters_total", "counter", &["sink"]),
            ("rollcall_delivery_duration_seconds", "histogram", &["sink"]),
            ("rollcall_quarantined_total", "counter", &["source", "code"]),
            ("rollcall_pruned_total", "counter", &["what"]),
            ("rollcall_enrich_total", "counter", &["source", "outcome"]),
            (
                "rollcall_sync_users_total",
                "counter",
                &["source", "outcome"],
            ),
            (
                "rollcall_sync_last_success_timestamp_seconds",
                "gauge",
                &["source"],
            ),
            ("rollcall_store_commits_total", "counter", &[]),
            ("rollcall_store_writes_total", "counter", &[]),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(name, kind, labels)| {
                let labels = labels.iter().map(|label| (*label).to_owned()).collect();
                ((*name).to_owned(), (*kind).to_owned(), labels)
            })
            .collect();
        assert_eq!(exposed, expected);
        for (name, family) in &families {
            // One full stop: the crate adds it to the registered text.
            assert!(
                family.help.ends_with('.') && !family.help.ends_with(".."),
                "{name}: {}",
                family.help
            );
        }
    }

    #[test]
    fn fixed_label_values_are_the_documented_ones() {
        let families = parse(&render(&one_of_each()));
        let values = |family: &str, label: &str| -> BTreeSet<String> {
            let (_, exposed) = families.iter().find(|(name, _)| name == family).unwrap();
            exposed
                .samples
                .iter()
                .flat_map(|sample| &sample.labels)
                .filter(|(key, _)| key == label)
                .map(|(_, value)| value.clone())
                .collect()
        };
        let set = |values: &[&str]| -> BTreeSet<String> {
            values.iter().map(|value| (*value).to_owned()).collect()
        };
        assert_eq!(
            values("rollcall_ingest_requests_total", "outcome"),
            set(&["accepted", "duplicate", "handshake", "rejected"])
        );
        assert_eq!(
            values("rollcall_ingest_rejected_total", "code"),
            set(&["signature_invalid"])
        );
        assert_eq!(
            values("rollcall_quarantined_total", "code"),
            set(&["payload_invalid"])
        );
        assert_eq!(
            values("rollcall_sink_failed_total", "kind"),
            set(&["permanent", "transient"])
        );
        assert_eq!(
            values("rollcall_pruned_total", "what"),
            set(&[
                "dead_letters",
                "dedup",
                "journal",
                "quarantine",
                "quarantine_expired"
            ])
        );
        assert_eq!(
            values("rollcall_enrich_total", "outcome"),
            set(&["failed", "ok", "skipped"])
        );
        assert_eq!(
            values("rollcall_sync_users_total", "outcome"),
            set(&["created", "deleted", "stale", "unchanged", "updated"])
        );
    }

    #[test]
    fn values_are_exposed_as_counted() {
        let metrics = Metrics::new();
        let zd = Id::new("zd");
        metrics.ingest_requests(&zd, RequestOutcome::Accepted).inc();
        metrics.ingest_requests(&zd, RequestOutcome::Accepted).inc();
        metrics.sink_lag_events(&Id::new("archive")).set(3);
        metrics.ingest_request_duration(&zd).observe(0.003);
        let text = render(&metrics);
        for line in [
            r#"rollcall_ingest_requests_total{source="zd",outcome="accepted"} 2"#,
            r#"rollcall_sink_lag_events{sink="archive"} 3"#,
            r#"rollcall_ingest_request_duration_seconds_bucket{source="zd",le="0.0025"} 0"#,
            r#"rollcall_ingest_request_duration_seconds_bucket{source="zd",le="0.005"} 1"#,
            // Bounds as Prometheus's own clients write them (and this exposition always did).
            r#"rollcall_ingest_request_duration_seconds_bucket{source="zd",le="1"} 1"#,
            r#"rollcall_ingest_request_duration_seconds_bucket{source="zd",le="+Inf"} 1"#,
            r#"rollcall_ingest_request_duration_seconds_count{source="zd"} 1"#,
            "rollcall_store_commits_total 4",
            "rollcall_store_writes_total 10",
        ] {
            assert!(
                text.lines().any(|exposed| exposed == line),
                "{line}\n{text}"
            );
        }
    }

    #[test]
    fn histograms_keep_the_latency_buckets() {
        let families = parse(&render(&one_of_each()));
        for histogram in [
            "rollcall_ingest_request_duration_seconds",
            "rollcall_delivery_duration_seconds",
        ] {
            let (_, exposed) = families.iter().find(|(name, _)| name == histogram).unwrap();
            let bounds: Vec<f64> = exposed
                .samples
                .iter()
                .filter(|sample| sample.name.ends_with("_bucket"))
                .flat_map(|sample| &sample.labels)
                .filter(|(key, _)| key == "le")
                .map(|(_, value)| match value.as_str() {
                    "+Inf" => f64::INFINITY,
                    value => value.parse().unwrap(),
                })
                .collect();
            let mut expected = BUCKETS.to_vec();
            expected.push(f64::INFINITY);
            assert_eq!(bounds, expected, "{histogram}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.sink_sent(&Id::new("a\"b\\c\nd")).inc();
        let text = render(&metrics);
        assert!(
            text.contains(r#"rollcall_sink_sent_total{sink="a\"b\\c\nd"} 1"#),
            "{text}"
        );
        let families = parse(&text);
        let sent = &families[0].1.samples[0];
        assert_eq!(
            sent.labels,
            vec![("sink".to_owned(), "a\"b\\c\nd".to_owned())]
        );
    }

    #[test]
    fn resolved_handles_count_in_the_series_the_registry_exposes() {
        let metrics = Metrics::new();
        let zd = metrics.source("zd");
        let crm = metrics.sink("crm");
        zd.ingest_requests(RequestOutcome::Duplicate).inc();
        zd.events_accepted().inc_by(2);
        crm.failed(FailureKind::Transient).inc();
        crm.inflight().set(4);
        assert_eq!(
            metrics
                .ingest_requests(zd.id(), RequestOutcome::Duplicate)
                .get(),
            1
        );
        assert_eq!(metrics.events_accepted(zd.id()).get(), 2);
        assert_eq!(
            metrics.sink_failed(crm.id(), FailureKind::Transient).get(),
            1
        );
        assert_eq!(metrics.sink_inflight(crm.id()).get(), 4);
        // Resolved series are exposed from the start, at 0, so rates exist before the first
        // request.
        let samples: BTreeMap<String, f64> = parse(&render(&metrics))
            .into_iter()
            .flat_map(|(_, family)| family.samples)
            .map(|sample| {
                let labels: Vec<String> = sample
                    .labels
                    .iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect();
                (
                    format!("{}{{{}}}", sample.name, labels.join(",")),
                    sample.value,
                )
            })
            .collect();
        assert_eq!(
            samples.get("rollcall_ingest_requests_total{source=zd,outcome=accepted}"),
            Some(&0.0)
        );
        assert_eq!(
            samples.get("rollcall_ingest_requests_total{source=zd,outcome=duplicate}"),
            Some(&1.0)
        );
        assert_eq!(
            samples.get("rollcall_sink_failed_total{sink=crm,kind=permanent}"),
            Some(&0.0)
        );
    }

    #[test]
    fn families_without_a_series_are_left_out() {
        let families = parse(&render(&Metrics::new()));
        let names: Vec<&str> = families.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "rollcall_store_commits_total",
                "rollcall_store_writes_total"
            ]
        );
    }
}
