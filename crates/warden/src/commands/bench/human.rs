//! The report for a terminal (`--json` prints it whole).

use serde_json::Value;

/// Prints the report's series, throughput, other tools, parked memory, ratios and phases.
pub(super) fn print_human(r: &Value) {
    println!(
        "warden bench (via {}, load {}, pool {})",
        r["via"].as_str().unwrap_or("?"),
        r["load_avg"].as_str().unwrap_or("?"),
        r["pool_size"]
    );
    let line = |label: &str, v: &Value| {
        if v.is_null() {
            return;
        }
        println!(
            "  {label:<22} p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms{}  ({} turns, {} failed)",
            v["p50_ms"].as_f64().unwrap_or(0.0),
            v["p95_ms"].as_f64().unwrap_or(0.0),
            v["p99_ms"].as_f64().unwrap_or(0.0),
            v["turns_per_s"]
                .as_f64()
                .map(|t| format!("  {t:>7.1} turns/s"))
                .unwrap_or_default(),
            v["turns"],
            v["failures"],
        );
    };
    for k in [
        "cold",
        "cold_vnet",
        "cold_cli",
        "cold_cli_vnet",
        "pooled",
        "pooled_vnet",
    ] {
        line(k, &r[k]);
    }
    if let Some(t) = r["throughput"].as_object() {
        for (k, v) in t {
            line(&format!("throughput {k}"), v);
        }
    }
    if let Some(o) = r["others"].as_object() {
        for (k, v) in o {
            line(k, v);
        }
    }
    if !r["parked_worker"].is_null() {
        println!(
            "  parked worker: {} MiB of host memory (pss {} B + cgroup {} B, {} workers)",
            r["parked_worker"]["mib"],
            r["parked_worker"]["pss_bytes"],
            r["parked_worker"]["cgroup_bytes"],
            r["parked_worker"]["workers"]
        );
    }
    if let Some(o) = r["ratios"].as_object() {
        for (k, v) in o {
            println!("  ratio {k}: {v}");
        }
    }
    for k in [
        "phases_cold_us",
        "phases_cold_vnet_us",
        "phases_pooled_us",
        "phases_pooled_vnet_us",
    ] {
        if !r[k].is_null() {
            println!("  {k}: {}", r[k]);
        }
    }
}
