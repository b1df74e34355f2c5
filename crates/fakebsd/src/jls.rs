//! `jls` (reference/bastille.md §7.1): text, parameter mode, and `--libxo json`.

use serde_json::{json, Value};

/// One JSON object with keys in the given order (libxo emits them in source order, §7.1).
fn object(fields: Vec<(String, Value)>) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{}", json!(k), v))
        .collect();
    format!("{{{}}}", parts.join(","))
}

use crate::io::{fail, Io};
use crate::jail;
use crate::opts::{Spec, GETOPT};
use crate::state::{Ctx, Jail};

fn param(name: &str, j: &Jail, p: &str) -> Option<String> {
    Some(match p {
        "jid" => j.jid.to_string(),
        "name" => name.to_string(),
        "path" => j.path.clone(),
        "host.hostname" | "hostname" => j.hostname.clone(),
        "ip4.addr" => j.ip4.join(","),
        "ip6.addr" => j.ip6.join(","),
        "vnet" => if j.vnet { "new" } else { "inherit" }.to_string(),
        "osrelease" => j.osrelease.clone(),
        "persist" => j.persist.to_string(),
        "dying" => "false".into(),
        other => j.params.get(other)?.clone(),
    })
}

/// jls's options (`dhj:Nnqsv`, and `c` as the simulation had it); `--libxo` is libxo's (`xo_parse_args`).
const SPEC: Spec = Spec {
    tool: "jls",
    flags: "cdhNnqsv",
    valued: "j",
    long: &["libxo="],
    usage: "usage: jls [-dhNnqv] [-j jail] [param ...]",
    ..GETOPT
};

/// What a `jls` call shows.
struct Show {
    json: bool,
    verbose: bool,
    by_name: bool,
}

/// The `jls` command line.
pub fn run(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let show = Show {
        json: p
            .value("libxo")
            .is_some_and(|v| v.split(',').any(|x| x == "json")),
        verbose: p.has("v"),
        by_name: p.has("N"),
    };
    let names = match selected(cx, p.value("j")) {
        Ok(n) => n,
        Err(key) => return fail(io, &format!("jls: jail \"{key}\" not found")),
    };
    let jails: Vec<(&String, &Jail)> = names.iter().map(|n| (n, &cx.st.jails[n])).collect();
    if !p.operands.is_empty() {
        return params(&jails, &p.operands, show.json, io);
    }
    if show.json {
        io.out(&envelope(&json_rows(&jails, &show)));
    } else if show.verbose {
        verbose_table(&jails, io);
    } else {
        table(&jails, show.by_name, io);
    }
    0
}

/// The jails shown, in jid order: all, or the one `-j KEY` names (`Err`: the key of a missing jail).
fn selected(cx: &Ctx, only: Option<&str>) -> Result<Vec<String>, String> {
    // Inside a jail there are no child jails.
    let mut names: Vec<String> = if cx.jail.is_some() {
        vec![]
    } else {
        let mut v: Vec<(u32, String)> = cx
            .st
            .jails
            .iter()
            .map(|(n, j)| (j.jid, n.clone()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect()
    };
    if let Some(key) = only {
        match jail::find(cx, key).filter(|_| cx.jail.is_none()) {
            Some(n) => names = vec![n],
            None => return Err(key.to_string()),
        }
    }
    Ok(names)
}

/// Parameter mode: `jls [-j JAIL] PARAM…`, one line (or JSON object) of values per jail.
fn params(jails: &[(&String, &Jail)], params: &[String], json: bool, io: &mut Io) -> i32 {
    for p in params {
        if jails.first().is_some_and(|(n, j)| param(n, j, p).is_none()) {
            return fail(io, &format!("jls: unknown parameter: {p}"));
        }
    }
    if json {
        let rows: Vec<String> = jails
            .iter()
            .map(|(n, j)| {
                let mut m: Vec<(String, Value)> = vec![];
                for p in params {
                    let v = param(n, j, p).unwrap_or_default();
                    let v = if p.ends_with(".addr") {
                        json!(v.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>())
                    } else {
                        json!(v)
                    };
                    m.push((p.clone(), v));
                }
                object(m)
            })
            .collect();
        io.out(&envelope(&rows));
    } else {
        for (n, j) in jails {
            let vals: Vec<String> = params
                .iter()
                .map(|p| param(n, j, p).unwrap_or_default())
                .collect();
            io.out(&vals.join(" "));
        }
    }
    0
}

/// `--libxo json [-v] [-N]`: one object per jail.
fn json_rows(jails: &[(&String, &Jail)], show: &Show) -> Vec<String> {
    jails
        .iter()
        .map(|(n, j)| {
            let mut m: Vec<(String, Value)> = vec![];
            if show.verbose {
                m.push(("jid".into(), json!(j.jid)));
                m.push(("hostname".into(), json!(j.hostname)));
                m.push(("path".into(), json!(j.path)));
                m.push(("name".into(), json!(n)));
                m.push(("state".into(), json!("ACTIVE")));
                m.push(("cpusetid".into(), json!(j.jid + 1)));
                m.push(("ipv4_addrs".into(), json!(j.ip4)));
                m.push(("ipv6_addrs".into(), json!(j.ip6)));
            } else {
                if show.by_name {
                    m.push(("name".into(), json!(n)));
                } else {
                    m.push(("jid".into(), json!(j.jid)));
                }
                m.push((
                    "ipv4".into(),
                    json!(j.ip4.first().cloned().unwrap_or_default()),
                ));
                m.push(("hostname".into(), json!(j.hostname)));
                m.push(("path".into(), json!(j.path)));
            }
            object(m)
        })
        .collect()
}

/// `jls -v`.
fn verbose_table(jails: &[(&String, &Jail)], io: &mut Io) {
    io.out("   JID  Hostname                      Path");
    io.out("        Name                          State");
    io.out("        CPUSetID");
    io.out("        IP Address(es)");
    for (n, j) in jails {
        io.out(&format!("{:>6}  {:<29.29} {}", j.jid, j.hostname, j.path));
        io.out(&format!("        {:<29.29} ACTIVE", n));
        io.out(&format!("        {}", j.jid + 1));
        for a in j.ip4.iter().chain(j.ip6.iter()) {
            io.out(&format!("        {a}"));
        }
    }
}

/// Plain `jls [-N]`.
fn table(jails: &[(&String, &Jail)], by_name: bool, io: &mut Io) {
    let first = if by_name { "  Name" } else { "   JID" };
    io.out(&format!(
        "{first}  IP Address      Hostname                      Path"
    ));
    for (n, j) in jails {
        let id = if by_name {
            n.to_string()
        } else {
            j.jid.to_string()
        };
        let ip = j.ip4.first().cloned().unwrap_or_default();
        io.out(&format!(
            "{:>6}  {:<15.15} {:<29.29} {:.74}",
            id, ip, j.hostname, j.path
        ));
    }
}

/// libxo's JSON envelope (§7.1): `{"__version": "2", "jail-information": {"jail": [...]}}`.
fn envelope(rows: &[String]) -> String {
    let items = rows;
    format!(
        "{{\"__version\": \"2\", \"jail-information\": {{\"jail\": [{}]}}\n}}",
        items.join(", ")
    )
}
