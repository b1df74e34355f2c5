//! A series of measured turns: latencies and their percentiles, failures, throughput, the host's busy CPU
//! share; running calls on concurrent clients; the median phase breakdown of a series' timings.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warden_linux::Timings;

/// Latencies of one series, ms.
#[derive(Default)]
pub(super) struct Series {
    pub(super) ms: Vec<f64>,
    pub(super) failures: usize,
    pub(super) wall: Duration,
    /// Through the API: turns that ran on a parked worker (the rest found none and ran cold).
    pub(super) pooled: Option<usize>,
    /// Share of the host's CPU time that was busy during the series (0–1), when measured.
    pub(super) cpu_busy: Option<f64>,
}

/// Busy and total CPU time of the host so far, in clock ticks (from `/proc/stat`).
pub(super) fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// The busy share between two [`cpu_ticks`] readings.
pub(super) fn busy_between(a: (u64, u64), b: (u64, u64)) -> Option<f64> {
    let total = b.1.checked_sub(a.1)?;
    (total > 0).then(|| b.0.saturating_sub(a.0) as f64 / total as f64)
}

/// The `p`th quantile (0–1) of `samples`: the sample at rank round((n − 1) · p) in sorted order; 0 for none.
pub(super) fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// A duration in milliseconds.
pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Series {
    fn pct(&self, p: f64) -> f64 {
        percentile(&self.ms, p)
    }

    /// The series as the report shows it.
    pub(super) fn json(&self) -> Value {
        let mut o = json!({
            "turns": self.ms.len(),
            "failures": self.failures,
            "p50_ms": round(self.pct(0.50)),
            "p95_ms": round(self.pct(0.95)),
            "p99_ms": round(self.pct(0.99)),
        });
        if let Some(p) = self.pooled {
            o["ran_pooled"] = json!(p);
        }
        if let Some(b) = self.cpu_busy {
            o["cpu_busy"] = json!(round(b));
        }
        if !self.wall.is_zero() {
            o["turns_per_s"] = json!(round(self.ms.len() as f64 / self.wall.as_secs_f64()));
        }
        o
    }
}

/// `x` to two decimals.
pub(super) fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Runs `total` calls of `one` on `clients` threads; `one` returns (ms, pooled) or None (failed).
pub(super) fn concurrent(
    clients: usize,
    total: usize,
    one: impl Fn(usize) -> Option<(f64, bool)> + Sync,
) -> (Series, usize) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let t0 = Instant::now();
    let cpu0 = cpu_ticks();
    let results: Vec<(Vec<f64>, usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let (mut ms, mut failed, mut cold) = (Vec::new(), 0, 0);
                    loop {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if n >= total {
                            break;
                        }
                        match one(n) {
                            Some((t, pooled)) => {
                                ms.push(t);
                                cold += usize::from(!pooled);
                            }
                            None => failed += 1,
                        }
                    }
                    (ms, failed, cold)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut s = Series {
        wall: t0.elapsed(),
        cpu_busy: busy_between(cpu0, cpu_ticks()),
        ..Series::default()
    };
    let mut cold = 0;
    for (ms, f, c) in results {
        s.ms.extend(ms);
        s.failures += f;
        cold += c;
    }
    (s, cold)
}

/// The median of each phase over `ts` (µs), null for no timings.
pub(super) fn phases(ts: &[Timings]) -> Value {
    if ts.is_empty() {
        return json!(null);
    }
    let med = |f: &dyn Fn(&Timings) -> u64| {
        let mut v: Vec<u64> = ts.iter().map(f).collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    json!({
        "spawn": med(&|t| t.spawn_us),
        "clone": med(&|t| t.clone_us),
        "cgroup": med(&|t| t.cgroup_us),
        "net_host": med(&|t| t.net_host_us),
        "mounts": med(&|t| t.mounts_us),
        "net_worker": med(&|t| t.net_worker_us),
        "exec": med(&|t| t.exec_us),
        "wait": med(&|t| t.wait_us),
        "report": med(&|t| t.report_us),
        "total": med(&|t| t.total_us),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_picks_the_rounded_rank_of_the_sorted_samples() {
        let v: Vec<f64> = (1..=101).rev().map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 51.0);
        assert_eq!(percentile(&v, 0.95), 96.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 1.0), 101.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[2.0, 1.0], 0.5), 2.0);
    }
}
