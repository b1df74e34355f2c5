//! Prometheus metrics, hand-written text format (a handful of series does not justify a crate):
//! turns by outcome, turn latency histogram, busy workers, queue depth.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

#[derive(Debug, Default)]
struct Inner {
    /// (status, failure) → count.
    outcomes: BTreeMap<(String, String), u64>,
    /// Counts per bucket (not cumulative), plus +Inf last.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum_seconds: f64,
    count: u64,
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Counts a finished turn: its status, failure reason and created→finished latency.
    pub fn turn_finished(&self, status: &str, failure: Option<&str>, latency_seconds: f64) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *m.outcomes
            .entry((status.to_string(), failure.unwrap_or("").to_string()))
            .or_default() += 1;
        let idx = LATENCY_BUCKETS
            .iter()
            .position(|b| latency_seconds <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        m.buckets[idx] += 1;
        m.sum_seconds += latency_seconds;
        m.count += 1;
    }

    /// The text exposition, with the gauges given by the caller.
    pub fn render(&self, workers_busy: usize, queue_depth: usize, concurrency: usize) -> String {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP warden_turns_total Finished turns by status and failure reason."
        );
        let _ = writeln!(out, "# TYPE warden_turns_total counter");
        for ((status, failure), n) in &m.outcomes {
            let _ = writeln!(
                out,
                "warden_turns_total{{status=\"{status}\",failure=\"{failure}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP warden_turn_duration_seconds Turn latency, created to finished."
        );
        let _ = writeln!(out, "# TYPE warden_turn_duration_seconds histogram");
        let mut cumulative = 0;
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += m.buckets[i];
            let _ = writeln!(
                out,
                "warden_turn_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        cumulative += m.buckets[LATENCY_BUCKETS.len()];
        let _ = writeln!(
            out,
            "warden_turn_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(out, "warden_turn_duration_seconds_sum {}", m.sum_seconds);
        let _ = writeln!(out, "warden_turn_duration_seconds_count {}", m.count);
        let _ = writeln!(out, "# HELP warden_workers_busy Workers running a turn.");
        let _ = writeln!(out, "# TYPE warden_workers_busy gauge");
        let _ = writeln!(out, "warden_workers_busy {workers_busy}");
        let _ = writeln!(out, "# HELP warden_workers_limit The concurrency limit.");
        let _ = writeln!(out, "# TYPE warden_workers_limit gauge");
        let _ = writeln!(out, "warden_workers_limit {concurrency}");
        let _ = writeln!(out, "# HELP warden_queue_depth Turns waiting for a worker.");
        let _ = writeln!(out, "# TYPE warden_queue_depth gauge");
        let _ = writeln!(out, "warden_queue_depth {queue_depth}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = Metrics::default();
        m.turn_finished("succeeded", None, 0.02);
        m.turn_finished("failed", Some("timeout"), 400.0);
        let text = m.render(1, 2, 4);
        assert!(text.contains("warden_turns_total{status=\"succeeded\",failure=\"\"} 1"));
        assert!(text.contains("warden_turns_total{status=\"failed\",failure=\"timeout\"} 1"));
        assert!(text.contains("warden_turn_duration_seconds_bucket{le=\"0.025\"} 1"));
        assert!(text.contains("warden_turn_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("warden_turn_duration_seconds_count 2"));
        assert!(text.contains("warden_workers_busy 1"));
        assert!(text.contains("warden_queue_depth 2"));
    }
}
