//! Host memory of the pool's parked workers.

use std::path::Path;

use serde_json::{json, Value};
use warden_linux::pool::Pool;

use super::series::round;

/// Host memory of the parked workers: proportional set size of each helper and its init
/// (shared pages split between sharers), plus what each worker's memory cgroup holds (its
/// tmpfs root and /etc files, kernel objects charged to it).
pub(super) fn parked_memory(pool: &Pool, state: &Path) -> Value {
    let pids = pool.parked_pids();
    if pids.is_empty() {
        return json!(null);
    }
    let mut pss_kb = 0u64;
    for pid in &pids {
        pss_kb += pss(*pid);
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for c in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            pss_kb += pss(c);
        }
    }
    let mut cg_bytes = 0u64;
    for name in warden_linux::record::list(state) {
        let f = Path::new("/sys/fs/cgroup/memory/warden")
            .join(&name)
            .join("memory.usage_in_bytes");
        cg_bytes += std::fs::read_to_string(f)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    let n = pids.len() as u64;
    let per = (pss_kb * 1024 + cg_bytes) / n;
    json!({
        "workers": n,
        "bytes": per,
        "mib": round(per as f64 / (1u64 << 20) as f64),
        "pss_bytes": pss_kb * 1024 / n,
        "cgroup_bytes": cg_bytes / n,
    })
}

/// Proportional set size of process `pid`, KiB (0 if unreadable).
fn pss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
