//! `bastille list` (reference/bastille.md §2): jails, releases, the table (per version), all, -j.

use super::{Bx, Version};
use crate::opts::{Spec, GETOPT};

struct Row {
    jid: String,
    name: String,
    boot: String,
    prio: String,
    state: String,
    kind: String,
    ip: String,
    ports: String,
    release: String,
    tags: String,
    hostname: String,
    path: String,
}

fn rows(b: &Bx, only: Option<&str>) -> Vec<Row> {
    let mut out = vec![];
    for name in b.jails() {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let dir = b.jail_dir(&name);
        let conf = std::fs::read_to_string(b.p(&format!("{dir}/jail.conf"))).unwrap_or_default();
        let params = crate::jail::parse_conf(&conf)
            .ok()
            .and_then(|m| m.get(&name).cloned());
        let fstab = std::fs::read_to_string(b.p(&format!("{dir}/fstab"))).unwrap_or_default();
        let first = |k: &str| {
            params
                .as_ref()
                .and_then(|p| p.get(k))
                .and_then(|v| v.first())
                .cloned()
                .unwrap_or_default()
        };
        let kind = if fstab.contains(&format!("{dir}/root/.bastille")) {
            "thin"
        } else if b.conf.zfs()
            && crate::zfs::prop(
                b.cx,
                &format!("{}/jails/{name}/root", b.conf.zfs_base()),
                "origin",
                true,
            )
            .is_some_and(|(o, _)| o != "-")
        {
            "clone"
        } else {
            "thick"
        };
        let running = b.cx.st.jails.get(&name);
        let ip = if params.as_ref().is_some_and(|p| p.contains_key("vnet")) {
            let rc = b.p(&format!("{dir}/root/etc/rc.conf"));
            crate::sysrc::get_var(&[rc], "ifconfig_vnet0")
                .and_then(|v| {
                    v.split_whitespace()
                        .nth(1)
                        .map(|a| a.split('/').next().unwrap_or(a).to_string())
                })
                .unwrap_or_default()
        } else {
            first("ip4.addr")
                .split('|')
                .nth(1)
                .unwrap_or("")
                .to_string()
        };
        let tags = std::fs::read_to_string(b.p(&format!("{dir}/tags"))).unwrap_or_default();
        let tags: Vec<&str> = tags.split_whitespace().collect();
        out.push(Row {
            jid: running.map(|j| j.jid.to_string()).unwrap_or("-".into()),
            boot: b.setting(&name, "boot"),
            prio: b.setting(&name, "priority"),
            state: if params.is_none() {
                "n/a"
            } else if running.is_some() {
                "Up"
            } else {
                "Down"
            }
            .into(),
            kind: kind.into(),
            ip: if ip.is_empty() { "-".into() } else { ip },
            ports: "-".into(),
            release: first("osrelease").trim_matches('"').to_string(),
            tags: if tags.is_empty() {
                "-".into()
            } else {
                tags.join(",")
            },
            hostname: first("host.hostname"),
            path: first("path"),
            name,
        });
    }
    out
}

fn table(b: &mut Bx, header: &[&str], cells: Vec<Vec<String>>) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let fmt = |b: &Bx, r: &[String]| -> String {
        let mut s = String::from(" ");
        for (i, v) in r.iter().enumerate() {
            if b.v == Version::Master {
                s.push_str(&format!("{v:<w$} ", w = widths[i]));
            } else {
                s.push_str(&format!("{v:<w$}", w = widths[i] + 2));
            }
        }
        s.trim_end().to_string()
    };
    let h: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    let line = fmt(b, &h);
    b.data(&line);
    for r in &cells {
        let line = fmt(b, r);
        b.data(&line);
    }
}

fn json(b: &mut Bx, keys: &[&str], cells: Vec<Vec<String>>, pretty: bool) {
    let arr: Vec<serde_json::Value> = cells
        .iter()
        .map(|r| {
            let mut m = serde_json::Map::new();
            for (k, v) in keys.iter().zip(r) {
                m.insert(k.to_string(), serde_json::Value::String(v.clone()));
            }
            serde_json::Value::Object(m)
        })
        .collect();
    let s = if pretty {
        serde_json::to_string_pretty(&arr).unwrap_or_default()
    } else {
        let items: Vec<String> = arr.iter().map(|v| format!("  {v}")).collect();
        format!("[\n{}\n]", items.join(",\n"))
    };
    b.data(&s);
}

/// `bastille list ...`.
pub fn run(b: &mut Bx, args: &[String]) -> i32 {
    // Options come before the listing's name (`list releases -p` is the listing's own -p).
    const SPEC: Spec = Spec {
        tool: "bastille",
        flags: "adjpux",
        long: &["json:j", "pretty:p", "up:u", "down:d", "debug:x"],
        ..GETOPT
    };
    let p = match b.parse_opts(SPEC, args, &[]) {
        Ok(p) => p,
        Err(c) => return c,
    };
    if p.has("a") {
        return b.error_exit("[ERROR]: \"-a\" is deprecated. Use \"all\" instead.");
    }
    let pretty = p.has("p");
    let js = p.has("j") || pretty;
    let (up, down) = (p.has("u"), p.has("d"));
    let rest = p.operands;
    let what = rest.first().cloned().unwrap_or_default();
    match what.as_str() {
        "jail" | "jails" | "container" | "containers" => {
            for j in b.jails() {
                b.data(&j);
            }
            0
        }
        "release" | "releases" => {
            releases(b, rest.get(1).is_some_and(|x| x == "-p"));
            0
        }
        "" | "all" => {
            let mut rs = rows(b, None);
            rs.retain(|r| (!up || r.state == "Up") && (!down || r.state == "Down"));
            let (keys, cells) = if what == "all" {
                all_cells(b, &rs)
            } else {
                let keys = if b.v == Version::Master {
                    &JAIL_KEYS_MASTER
                } else {
                    &JAIL_KEYS
                };
                (&keys[..], jail_cells(&rs))
            };
            if js {
                json(b, keys, cells, pretty)
            } else {
                table(b, keys, cells)
            }
            0
        }
        other if b.jails().iter().any(|j| j == other) => {
            let cells = jail_cells(&rows(b, Some(other)));
            table(b, &JAIL_KEYS, cells);
            0
        }
        other if b.v == Version::Master => {
            b.error_exit(&format!("[ERROR]: Jail not found: {other}"))
        }
        other => b.error_exit(&format!("Jail not found \"{other}\"")),
    }
}

/// The columns of `bastille list` (1.0–1.4.4) and of `bastille list NAME`.
const JAIL_KEYS: [&str; 10] = [
    "JID",
    "Name",
    "Boot",
    "Prio",
    "State",
    "Type",
    "IP Address",
    "Published Ports",
    "Release",
    "Tags",
];

/// The columns of master's `bastille list` (§2.2).
const JAIL_KEYS_MASTER: [&str; 10] = [
    "JID",
    "NAME",
    "BOOT",
    "PRIO",
    "STATE",
    "TYPE",
    "IP ADDRESS",
    "PORTS",
    "RELEASE",
    "TAGS",
];

/// One row of cells per jail, in [`JAIL_KEYS`] order.
fn jail_cells(rs: &[Row]) -> Vec<Vec<String>> {
    rs.iter()
        .map(|r| {
            vec![
                r.jid.clone(),
                r.name.clone(),
                r.boot.clone(),
                r.prio.clone(),
                r.state.clone(),
                r.kind.clone(),
                r.ip.clone(),
                r.ports.clone(),
                r.release.clone(),
                r.tags.clone(),
            ]
        })
        .collect()
}

/// `bastille list all`: its columns (master adds NAME) and cells.
fn all_cells(b: &Bx, rs: &[Row]) -> (&'static [&'static str], Vec<Vec<String>>) {
    let master = b.v == Version::Master;
    let keys: &'static [&'static str] = if master {
        &[
            "JID",
            "NAME",
            "BOOT",
            "PRIO",
            "STATE",
            "IP ADDRESS",
            "PORTS",
            "HOSTNAME",
            "RELEASE",
            "PATH",
        ]
    } else {
        &[
            "JID",
            "Boot",
            "Prio",
            "State",
            "IP Address",
            "Published Ports",
            "Hostname",
            "Release",
            "Path",
        ]
    };
    let cells = rs
        .iter()
        .map(|r| {
            // master's FIRST_IP bug: single-IP jails show an empty IP column (§2.2).
            let ip = if master {
                "-".to_string()
            } else {
                r.ip.clone()
            };
            let mut v = vec![r.jid.clone()];
            if master {
                v.push(r.name.clone());
            }
            v.extend([
                r.boot.clone(),
                r.prio.clone(),
                r.state.clone(),
                ip,
                r.ports.clone(),
                r.hostname.clone(),
                r.release.clone(),
                r.path.clone(),
            ]);
            v
        })
        .collect();
    (keys, cells)
}

/// `bastille list releases [-p]`: bootstrapped releases (master marks pkgbase ones).
fn releases(b: &mut Bx, with_patch: bool) {
    let dir = b.p(&b.conf.releasesdir());
    let mut rels: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("COPYRIGHT").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    rels.sort();
    for r in rels {
        let mut shown = r.clone();
        if with_patch {
            let script = std::fs::read_to_string(dir.join(&r).join("bin/freebsd-version"))
                .unwrap_or_default();
            if let Some(v) = script.lines().find_map(|l| {
                l.strip_prefix("USERLAND_VERSION=\"")
                    .and_then(|x| x.strip_suffix('"'))
            }) {
                shown = v.to_string();
            }
        }
        if b.v == Version::Master && dir.join(&r).join("var/db/pkg/local.sqlite").exists() {
            shown.push_str(" (pkgbase)");
        }
        b.data(&shown);
    }
}
