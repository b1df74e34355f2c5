//! bwrap and runc doing the same work as Warden's workers, for the ratios in the report.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};

use super::series::{ms, round, Series};

/// bwrap and runc on the same work (`true`), when installed; ratios against warden's numbers.
pub(super) fn compare(report: &mut Value, n: usize, state: &Path) {
    let time = |cmd: &mut Command| -> Option<f64> {
        let t = Instant::now();
        let st = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        st.success().then(|| ms(t.elapsed()))
    };
    let mut others = json!({});
    if which("bwrap") {
        let mut s = Series::default();
        for _ in 0..n {
            match time(Command::new("bwrap").args(["--unshare-all", "--ro-bind", "/", "/", "true"]))
            {
                Some(ms) => s.ms.push(ms),
                None => s.failures += 1,
            }
        }
        others["bwrap"] = s.json();
    }
    if which("runc") {
        if let Some(bundle) = runc_bundle(state) {
            let mut s = Series::default();
            for i in 0..n {
                let id = format!("wbench{}-{i}", std::process::id());
                match time(
                    Command::new("runc")
                        .arg("run")
                        .arg("--bundle")
                        .arg(&bundle)
                        .arg(&id),
                ) {
                    Some(ms) => s.ms.push(ms),
                    None => s.failures += 1,
                }
            }
            others["runc"] = s.json();
        }
    }
    let mut ratios = json!({});
    for (mine, label) in [
        ("cold", "cold"),
        ("pooled", "pooled"),
        ("cold_vnet", "cold_vnet"),
        ("cold_cli", "cold_cli"),
        ("cold_cli_vnet", "cold_cli_vnet"),
    ] {
        for tool in ["bwrap", "runc"] {
            let (a, b) = (
                report[mine]["p50_ms"].as_f64(),
                others[tool]["p50_ms"].as_f64(),
            );
            if let (Some(a), Some(b)) = (a, b) {
                if b > 0.0 {
                    ratios[format!("{label}_vs_{tool}_p50")] = json!(round(a / b));
                }
            }
        }
    }
    report["others"] = others;
    report["ratios"] = ratios;
}

/// Whether `tool` is on PATH.
fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// An OCI bundle whose rootfs is read-only binds of the host's system directories.
fn runc_bundle(state: &Path) -> Option<PathBuf> {
    let bundle = state.join("runc-bundle");
    std::fs::create_dir_all(bundle.join("rootfs/usr")).ok()?;
    let ok = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let path = bundle.join("config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = json!(["/usr/bin/true"]);
    cfg["root"]["readonly"] = true.into();
    let mounts = cfg["mounts"].as_array_mut()?;
    for d in ["usr", "bin", "lib", "lib64", "sbin"] {
        let host = Path::new("/").join(d);
        if host.is_symlink() {
            let target = std::fs::read_link(&host).ok()?;
            let _ = std::os::unix::fs::symlink(target, bundle.join("rootfs").join(d));
        } else if host.exists() {
            mounts.push(json!({"destination": format!("/{d}"), "type": "bind", "source": host, "options": ["rbind", "ro"]}));
        }
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).ok()?).ok()?;
    Some(bundle)
}
