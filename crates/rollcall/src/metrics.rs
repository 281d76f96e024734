//! Prometheus metrics, rendered by hand.
//!
//! Names follow `rollcall_<what>_<unit>[_total]`; labels are bounded: configured source and
//! sink ids, error codes and fixed outcomes, never anything a request can choose.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram buckets, in seconds: request and delivery latencies from 100 µs to 30 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Families {
    counters: BTreeMap<(&'static str, Labels), u64>,
    gauges: BTreeMap<(&'static str, Labels), i64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// The process's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    families: Mutex<Families>,
}

/// Help text per metric name, printed as `# HELP`.
const HELP: &[(&str, &str, &str)] = &[
    (
        "rollcall_ingest_requests_total",
        "counter",
        "Requests received on the ingest listener, by source and outcome.",
    ),
    (
        "rollcall_ingest_rejected_total",
        "counter",
        "Requests rejected, by source and error code.",
    ),
    (
        "rollcall_events_accepted_total",
        "counter",
        "Unified events committed to the journal, by source.",
    ),
    (
        "rollcall_ingest_request_duration_seconds",
        "histogram",
        "Time from request to answer on the ingest listener.",
    ),
    (
        "rollcall_sink_sent_total",
        "counter",
        "Events a sink accepted.",
    ),
    (
        "rollcall_sink_failed_total",
        "counter",
        "Failed send attempts, by sink and kind (transient, permanent).",
    ),
    (
        "rollcall_sink_lag_events",
        "gauge",
        "Journal events a sink has not finished yet (after its position, plus the events parked behind a held user).",
    ),
    (
        "rollcall_sink_oldest_undelivered_seconds",
        "gauge",
        "Age of the oldest event a sink has not finished yet (0 when none), by sink.",
    ),
    (
        "rollcall_sink_inflight",
        "gauge",
        "Requests a sink's worker has in flight, by sink.",
    ),
    (
        "rollcall_sink_parked_events",
        "gauge",
        "Events waiting behind a user whose line a transient failure holds, by sink.",
    ),
    (
        "rollcall_dead_letters_total",
        "counter",
        "Events that became dead letters, by sink.",
    ),
    (
        "rollcall_delivery_duration_seconds",
        "histogram",
        "Time of one send attempt to a sink.",
    ),
    (
        "rollcall_quarantined_total",
        "counter",
        "Deliveries kept in quarantine, by source and error code.",
    ),
    (
        "rollcall_pruned_total",
        "counter",
        "Rows deleted by retention, by what (journal, dedup, quarantine, dead_letters).",
    ),
    (
        "rollcall_enrich_total",
        "counter",
        "Partial events sent for enrichment from the vendor's API, by source and outcome (ok, failed, skipped).",
    ),
    (
        "rollcall_sync_users_total",
        "counter",
        "Users a sync compared with the directory, by source and outcome (created, updated, deleted, unchanged, stale).",
    ),
    (
        "rollcall_sync_last_success_timestamp_seconds",
        "gauge",
        "Unix time at which a sync of the source last completed its listing without error.",
    ),
];

impl Metrics {
    pub fn increment(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1);
    }

    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], value: u64) {
        let key = (name, owned(labels));
        let mut families = self.lock();
        *families.counters.entry(key).or_default() += value;
    }

    pub fn set_gauge(&self, name: &'static str, labels: &[(&'static str, &str)], value: i64) {
        let key = (name, owned(labels));
        self.lock().gauges.insert(key, value);
    }

    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let key = (name, owned(labels));
        let mut families = self.lock();
        let histogram = families.histograms.entry(key).or_insert_with(|| Histogram {
            counts: vec![0; BUCKETS.len()],
            ..Histogram::default()
        });
        for (bucket, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
            if seconds <= *bucket {
                *count += 1;
            }
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    /// A gauge's current value (for tests).
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Option<i64> {
        let key = (name, owned(labels));
        self.lock().gauges.get(&key).copied()
    }

    /// A counter's current value (for tests and the ledger).
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        let key = (name, owned(labels));
        self.lock().counters.get(&key).copied().unwrap_or(0)
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let families = self.lock();
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((metric, labels), value) in &families.counters {
                if metric == name {
                    let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
                }
            }
            for ((metric, labels), value) in &families.gauges {
                if metric == name {
                    let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
                }
            }
            for ((metric, labels), histogram) in &families.histograms {
                if metric != name {
                    continue;
                }
                for (bucket, count) in BUCKETS.iter().zip(&histogram.counts) {
                    let le = bucket.to_string();
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {count}",
                        render_labels(labels, Some(&le))
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    render_labels(labels, Some("+Inf")),
                    histogram.count
                );
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    render_labels(labels, None),
                    histogram.sum
                );
                let _ = writeln!(
                    out,
                    "{name}_count{} {}",
                    render_labels(labels, None),
                    histogram.count
                );
            }
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Families> {
        // Metrics are best effort: a panic elsewhere must not stop them.
        self.families
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn owned(labels: &[(&'static str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(key, value)| (*key, (*value).to_owned()))
        .collect()
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms_in_text_format() {
        let metrics = Metrics::default();
        metrics.increment(
            "rollcall_ingest_requests_total",
            &[("source", "zd"), ("outcome", "accepted")],
        );
        metrics.increment(
            "rollcall_ingest_requests_total",
            &[("source", "zd"), ("outcome", "accepted")],
        );
        metrics.set_gauge("rollcall_sink_lag_events", &[("sink", "archive")], 3);
        metrics.observe(
            "rollcall_ingest_request_duration_seconds",
            &[("source", "zd")],
            Duration::from_millis(3),
        );
        let text = metrics.render();
        assert!(
            text.contains("rollcall_ingest_requests_total{source=\"zd\",outcome=\"accepted\"} 2")
        );
        assert!(text.contains("rollcall_sink_lag_events{sink=\"archive\"} 3"));
        assert!(text.contains(
            "rollcall_ingest_request_duration_seconds_bucket{source=\"zd\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "rollcall_ingest_request_duration_seconds_bucket{source=\"zd\",le=\"0.001\"} 0"
        ));
        assert!(text.contains("rollcall_ingest_request_duration_seconds_count{source=\"zd\"} 1"));
        assert!(text.contains("# TYPE rollcall_sink_lag_events gauge"));
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::default();
        metrics.increment("rollcall_ingest_rejected_total", &[("code", "a\"b")]);
        assert!(metrics.render().contains("code=\"a\\\"b\""));
    }
}
