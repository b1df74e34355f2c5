//! `pfctl` (reference/bastille.md §7.5). pf.ko is "loaded" by `kldload pf` or `service pf start`;
//! until then every command that needs `/dev/pf` fails like the real one.

use std::io::Read;

use crate::io::{fail, Io};
use crate::pf_conf;
use crate::state::Ctx;

const NOT_LOADED: &str = "pfctl: /dev/pf: No such file or directory";
const NOT_LOADED_RULES: &str = "pfctl: Syntax error in config file: pf rules not loaded";

/// Whether pf.ko is loaded.
pub fn loaded(cx: &Ctx) -> bool {
    cx.st.kmods.contains("pf")
}

/// Loads `path` (a FreeBSD path) as the main ruleset; errors are pfctl's lines.
pub fn load_file(
    cx: &mut Ctx,
    path: &str,
    anchor: Option<&str>,
    dry_run: bool,
) -> Result<(), Vec<String>> {
    let text = if path == "-" {
        let mut s = String::new();
        let _ = std::io::stdin().read_to_string(&mut s);
        s
    } else {
        match std::fs::read_to_string(cx.path(path)) {
            Ok(t) => t,
            Err(_) => {
                return Err(vec![
                    "pfctl: cannot open the main config file!: No such file or directory"
                        .to_string(),
                    NOT_LOADED_RULES.to_string(),
                ])
            }
        }
    };
    let shown = if path == "-" { "stdin" } else { path };
    let rs = match pf_conf::parse(&text, shown) {
        Ok(rs) => rs,
        Err(mut e) => {
            e.push(NOT_LOADED_RULES.to_string());
            return Err(e);
        }
    };
    if dry_run {
        return Ok(());
    }
    if let Some(a) = anchor {
        let mut rules = rs.nat.clone();
        rules.extend(rs.filter.clone());
        cx.st.pf.anchors.insert(a.to_string(), rules);
        return Ok(());
    }
    cx.st.pf.nat = rs.nat;
    cx.st.pf.filter = rs.filter;
    // Tables defined in the file: addresses listed there replace the old ones; a bare `persist` table
    // keeps its runtime addresses (unverified).
    let old = std::mem::take(&mut cx.st.pf.tables);
    for (name, addrs) in rs.tables {
        let set = if addrs.is_empty() {
            old.get(&name).cloned().unwrap_or_default()
        } else {
            addrs.into_iter().collect()
        };
        cx.st.pf.tables.insert(name, set);
    }
    Ok(())
}

/// Adds or deletes table addresses (creating the table on add). Returns pfctl's message.
pub fn table_edit(cx: &mut Ctx, table: &str, add: bool, addrs: &[String]) -> Vec<String> {
    let mut msgs = vec![];
    if add && !cx.st.pf.tables.contains_key(table) {
        cx.st
            .pf
            .tables
            .insert(table.to_string(), Default::default());
        msgs.push("1 table created.".to_string());
    }
    let Some(set) = cx.st.pf.tables.get_mut(table) else {
        return vec!["pfctl: Table does not exist.".into()];
    };
    let mut n = 0;
    for a in addrs {
        let changed = if add {
            set.insert(a.clone())
        } else {
            set.remove(a)
        };
        n += usize::from(changed);
    }
    let verb = if add { "added" } else { "deleted" };
    msgs.push(format!("{n}/{} addresses {verb}.", addrs.len()));
    msgs
}

fn status(cx: &Ctx) -> String {
    let pf = &cx.st.pf;
    let first = if pf.enabled {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let s = now.saturating_sub(pf.enabled_at);
        format!(
            "Status: Enabled for {} days {:02}:{:02}:{:02}",
            s / 86400,
            (s % 86400) / 3600,
            (s % 3600) / 60,
            s % 60
        )
    } else {
        "Status: Disabled".to_string()
    };
    let mut out = format!("{first:<44}{:>15}\n\n", "Debug: Urgent");
    out.push_str("State Table                          Total             Rate\n");
    out.push_str("  current entries                        0               \n");
    out.push_str("  searches                               0            0.0/s\n");
    out.push_str("  inserts                                0            0.0/s\n");
    out.push_str("  removals                               0            0.0/s\n");
    out.push_str("Counters\n");
    out.push_str("  match                                  0            0.0/s\n");
    out
}

/// The `pfctl` command line.
pub fn run(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    const WITH_ARG: &str = "aDfFiKkoOpsTtx";
    let mut flags = String::new();
    let mut vals: Vec<(char, String)> = vec![];
    let mut operands: Vec<String> = vec![];
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a.len() > 1 && a.starts_with('-') {
            let chars: Vec<char> = a[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                if WITH_ARG.contains(c) {
                    let rest: String = chars[j + 1..].iter().collect();
                    let v = if !rest.is_empty() {
                        rest
                    } else {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => return fail(io, &format!("pfctl: option requires an argument -- {c}\nusage: pfctl [-AdeghMmNnOPqRrvz] [-a anchor] [-D macro=value] [-F modifier]\n\t[-f file] [-i interface] [-K host | network]\n\t[-k host | network | gateway | label | id] [-o level] [-p device]\n\t[-s modifier] [-t table -T command [address ...]] [-x level]")),
                        }
                    };
                    vals.push((c, v));
                    break;
                }
                if !"AdeghMmNnPqRrvz".contains(c) {
                    return fail(io, &format!("pfctl: illegal option -- {c}\nusage: pfctl [-AdeghMmNnOPqRrvz] [-a anchor] [-D macro=value] [-F modifier]\n\t[-f file] [-i interface] [-K host | network]\n\t[-k host | network | gateway | label | id] [-o level] [-p device]\n\t[-s modifier] [-t table -T command [address ...]] [-x level]"));
                }
                flags.push(c);
                j += 1;
            }
        } else {
            operands.push(a.clone());
        }
        i += 1;
    }
    let val = |c: char| {
        vals.iter()
            .rev()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.clone())
    };
    let quiet = flags.contains('q');
    let dry = flags.contains('n');
    let anchor = val('a');
    if vals.is_empty() && flags.chars().all(|c| "qvn".contains(c)) {
        return fail(
            io,
            "usage: pfctl [-AdeghMmNnOPqRrvz] [-a anchor] [-D macro=value] [-F modifier]",
        );
    }
    if !dry {
        if !cx.is_root() {
            return fail(io, "pfctl: /dev/pf: Permission denied");
        }
        if !loaded(cx) {
            return fail(io, NOT_LOADED);
        }
    }
    let mut code = 0;
    if flags.contains('d') && !dry {
        if !cx.st.pf.enabled {
            return fail(io, "pfctl: pf not enabled");
        }
        cx.st.pf.enabled = false;
        io.err("pf disabled");
    }
    if let Some(what) = val('s') {
        let what_l = what.to_ascii_lowercase();
        let anchor_rules = anchor
            .as_ref()
            .map(|a| cx.st.pf.anchors.get(a).cloned().unwrap_or_default());
        let is_nat = |r: &String| {
            [
                "nat",
                "rdr",
                "binat",
                "nat-anchor",
                "rdr-anchor",
                "binat-anchor",
                "no",
            ]
            .contains(&r.split(' ').next().unwrap_or(""))
        };
        match what_l.as_str() {
            "i" | "info" => io.out.push_str(&status(cx)),
            "n" | "nat" => {
                let rules = match &anchor_rules {
                    Some(r) => r.iter().filter(|x| is_nat(x)).cloned().collect(),
                    None => cx.st.pf.nat.clone(),
                };
                for r in rules {
                    io.out(&r);
                }
            }
            "r" | "rules" => {
                let rules = match &anchor_rules {
                    Some(r) => r.iter().filter(|x| !is_nat(x)).cloned().collect(),
                    None => cx.st.pf.filter.clone(),
                };
                for r in rules {
                    io.out(&r);
                }
            }
            "t" | "tables" => {
                for t in cx.st.pf.tables.keys() {
                    io.out(t);
                }
            }
            "a" | "anchors" => {
                for a in cx.st.pf.anchors.keys() {
                    io.out(&format!("  {a}"));
                }
            }
            "s" | "states" | "m" | "memory" | "o" | "osfp" | "l" | "labels" | "q" | "queue"
            | "timeouts" | "ifaces" | "I" | "Sources" | "S" => {}
            "all" => {
                io.out("TRANSLATION RULES:");
                for r in cx.st.pf.nat.clone() {
                    io.out(&r);
                }
                io.out("\nFILTER RULES:");
                for r in cx.st.pf.filter.clone() {
                    io.out(&r);
                }
                io.out("");
                io.out.push_str(&status(cx));
            }
            _ => return fail(io, &format!("pfctl: Unknown show modifier '{what}'")),
        }
    }
    if let Some(what) = val('F') {
        if let Some(a) = &anchor {
            cx.st.pf.anchors.remove(a);
        } else {
            match what.to_ascii_lowercase().as_str() {
                "nat" | "n" => cx.st.pf.nat.clear(),
                "rules" | "r" => cx.st.pf.filter.clear(),
                "tables" | "t" => cx.st.pf.tables.clear(),
                "all" | "a" => {
                    cx.st.pf.nat.clear();
                    cx.st.pf.filter.clear();
                    cx.st.pf.tables.clear();
                    cx.st.pf.anchors.clear();
                }
                _ => {}
            }
        }
        if !quiet {
            io.err(&format!("{what} cleared"));
        }
    }
    if let Some(cmd) = val('T') {
        let Some(table) = val('t') else {
            return fail(io, "pfctl: table command requires table name (-t)");
        };
        match cmd.as_str() {
            "show" | "s" => match cx.st.pf.tables.get(&table) {
                Some(set) => {
                    for a in set {
                        io.out(&format!("   {a}"));
                    }
                }
                None => return fail(io, "pfctl: Table does not exist."),
            },
            "add" | "a" | "delete" | "d" => {
                for a in &operands {
                    let host = a.split('/').next().unwrap_or(a);
                    if host.parse::<std::net::IpAddr>().is_err() {
                        return fail(io, "pfctl: Invalid argument.");
                    }
                }
                let add = cmd.starts_with('a');
                let msgs = table_edit(cx, &table, add, &operands);
                if msgs.iter().any(|m| m.starts_with("pfctl:")) {
                    return fail(io, &msgs.join("\n"));
                }
                if !quiet {
                    for m in msgs {
                        io.err(&m);
                    }
                }
            }
            "flush" | "f" => match cx.st.pf.tables.get_mut(&table) {
                Some(set) => {
                    let n = set.len();
                    set.clear();
                    if !quiet {
                        io.err(&format!("{n} addresses deleted."));
                    }
                }
                None => return fail(io, "pfctl: Table does not exist."),
            },
            "kill" | "k" => {
                if cx.st.pf.tables.remove(&table).is_none() {
                    return fail(io, "pfctl: Table does not exist.");
                }
                if !quiet {
                    io.err("1 table deleted.");
                }
            }
            "test" | "t" => {
                let set = cx.st.pf.tables.get(&table).cloned().unwrap_or_default();
                let n = operands.iter().filter(|a| set.contains(*a)).count();
                if !quiet {
                    io.err(&format!("{n}/{} addresses match.", operands.len()));
                }
                if n != operands.len() {
                    code = 2;
                }
            }
            other => return fail(io, &format!("pfctl: Unknown table command '{other}'")),
        }
    }
    if let Some(file) = val('f') {
        if let Err(lines) = load_file(cx, &file, anchor.as_deref(), dry) {
            for l in lines {
                io.err(&l);
            }
            return 1;
        }
    }
    if flags.contains('e') && !dry {
        if cx.st.pf.enabled {
            return fail(io, "pfctl: pf already enabled");
        }
        cx.st.pf.enabled = true;
        cx.st.pf.enabled_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        io.err("pf enabled");
    }
    code
}
