//! `pfctl` (reference/bastille.md §7.5). pf.ko is "loaded" by `kldload pf` or `service pf start`;
//! until then every command that needs `/dev/pf` fails like the real one.

use std::io::Read;

use crate::io::{fail, Io};
use crate::opts::{Parsed, Spec, GETOPT};
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
        let s = now_secs().saturating_sub(pf.enabled_at);
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

const USAGE: &str = "usage: pfctl [-AdeghMmNnOPqRrvz] [-a anchor] [-D macro=value] [-F modifier]\n\t[-f file] [-i interface] [-K host | network]\n\t[-k host | network | gateway | label | id] [-o level] [-p device]\n\t[-s modifier] [-t table -T command [address ...]] [-x level]";

/// pfctl's getopt string (`a:AdD:eqf:F:ghi:k:K:mMnNOo:Pp:rRs:t:T:vx:z`).
const SPEC: Spec = Spec {
    tool: "pfctl",
    flags: "AdeghMmNnOPqRrvz",
    valued: "aDfFiKkopsTtx",
    usage: USAGE,
    ..GETOPT
};

/// The `pfctl` command line: the modes run in pfctl's order (disable, show, flush, table, load, enable).
pub fn run(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    if p.opts.iter().all(|(k, _)| ["q", "v", "n"].contains(k)) {
        return fail(io, USAGE.lines().next().unwrap_or(USAGE));
    }
    if !p.operands.is_empty() && !p.has("T") {
        return fail(
            io,
            &format!(
                "pfctl: unknown command line argument: {} ...\n{USAGE}",
                p.operands[0]
            ),
        );
    }
    let dry = p.has("n");
    if !dry {
        if !cx.is_root() {
            return fail(io, "pfctl: /dev/pf: Permission denied");
        }
        if !loaded(cx) {
            return fail(io, NOT_LOADED);
        }
    }
    match modes(cx, &p, io) {
        Ok(code) => code,
        Err(code) => code,
    }
}

/// Runs each mode asked for; the first failing one ends the run (`Err`: its exit status).
fn modes(cx: &mut Ctx, p: &Parsed, io: &mut Io) -> Result<i32, i32> {
    let dry = p.has("n");
    let quiet = p.has("q");
    let anchor = p.value("a");
    if p.has("d") && !dry {
        disable(cx, io)?;
    }
    if let Some(what) = p.value("s") {
        show(cx, what, anchor, io)?;
    }
    if let Some(what) = p.value("F") {
        flush(cx, what, anchor, quiet, io);
    }
    let mut code = 0;
    if let Some(cmd) = p.value("T") {
        let Some(table) = p.value("t") else {
            return Err(fail(io, "pfctl: table command requires table name (-t)"));
        };
        code = table_cmd(cx, cmd, table, &p.operands, quiet, io)?;
    }
    if let Some(file) = p.value("f") {
        if let Err(lines) = load_file(cx, file, anchor, dry) {
            for l in lines {
                io.err(&l);
            }
            return Err(1);
        }
    }
    if p.has("e") && !dry {
        enable(cx, io)?;
    }
    Ok(code)
}

/// Seconds since the epoch (pf's enable time).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `-d`.
fn disable(cx: &mut Ctx, io: &mut Io) -> Result<(), i32> {
    if !cx.st.pf.enabled {
        return Err(fail(io, "pfctl: pf not enabled"));
    }
    cx.st.pf.enabled = false;
    io.err("pf disabled");
    Ok(())
}

/// `-e`.
fn enable(cx: &mut Ctx, io: &mut Io) -> Result<(), i32> {
    if cx.st.pf.enabled {
        return Err(fail(io, "pfctl: pf already enabled"));
    }
    cx.st.pf.enabled = true;
    cx.st.pf.enabled_at = now_secs();
    io.err("pf enabled");
    Ok(())
}

/// Whether a rule line is a translation rule (shown by `-sn`, not `-sr`).
fn is_nat(rule: &str) -> bool {
    [
        "nat",
        "rdr",
        "binat",
        "nat-anchor",
        "rdr-anchor",
        "binat-anchor",
        "no",
    ]
    .contains(&rule.split(' ').next().unwrap_or(""))
}

/// `-s WHAT [-a ANCHOR]`.
fn show(cx: &Ctx, what: &str, anchor: Option<&str>, io: &mut Io) -> Result<(), i32> {
    let anchor_rules = anchor.map(|a| cx.st.pf.anchors.get(a).cloned().unwrap_or_default());
    let print = |io: &mut Io, rules: &[String]| {
        for r in rules {
            io.out(r);
        }
    };
    match what.to_ascii_lowercase().as_str() {
        "i" | "info" => io.out.push_str(&status(cx)),
        "n" | "nat" => match &anchor_rules {
            Some(r) => print(
                io,
                &r.iter().filter(|x| is_nat(x)).cloned().collect::<Vec<_>>(),
            ),
            None => print(io, &cx.st.pf.nat),
        },
        "r" | "rules" => match &anchor_rules {
            Some(r) => print(
                io,
                &r.iter().filter(|x| !is_nat(x)).cloned().collect::<Vec<_>>(),
            ),
            None => print(io, &cx.st.pf.filter),
        },
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
            print(io, &cx.st.pf.nat);
            io.out("\nFILTER RULES:");
            print(io, &cx.st.pf.filter);
            io.out("");
            io.out.push_str(&status(cx));
        }
        _ => return Err(fail(io, &format!("pfctl: Unknown show modifier '{what}'"))),
    }
    Ok(())
}

/// `-F WHAT [-a ANCHOR]`.
fn flush(cx: &mut Ctx, what: &str, anchor: Option<&str>, quiet: bool, io: &mut Io) {
    let pf = &mut cx.st.pf;
    if let Some(a) = anchor {
        pf.anchors.remove(a);
    } else {
        match what.to_ascii_lowercase().as_str() {
            "nat" | "n" => pf.nat.clear(),
            "rules" | "r" => pf.filter.clear(),
            "tables" | "t" => pf.tables.clear(),
            "all" | "a" => {
                pf.nat.clear();
                pf.filter.clear();
                pf.tables.clear();
                pf.anchors.clear();
            }
            _ => {}
        }
    }
    if !quiet {
        io.err(&format!("{what} cleared"));
    }
}

/// `-t TABLE -T CMD [ADDRESS…]`; `Ok` is the exit status (2: `test` found an address missing).
fn table_cmd(
    cx: &mut Ctx,
    cmd: &str,
    table: &str,
    addrs: &[String],
    quiet: bool,
    io: &mut Io,
) -> Result<i32, i32> {
    const MISSING: &str = "pfctl: Table does not exist.";
    let say = |io: &mut Io, m: &str| {
        if !quiet {
            io.err(m);
        }
    };
    match cmd {
        "show" | "s" => {
            let set = cx
                .st
                .pf
                .tables
                .get(table)
                .ok_or_else(|| fail(io, MISSING))?;
            for a in set {
                io.out(&format!("   {a}"));
            }
        }
        "add" | "a" | "delete" | "d" => {
            for a in addrs {
                let host = a.split('/').next().unwrap_or(a);
                if host.parse::<std::net::IpAddr>().is_err() {
                    return Err(fail(io, "pfctl: Invalid argument."));
                }
            }
            let msgs = table_edit(cx, table, cmd.starts_with('a'), addrs);
            if msgs.iter().any(|m| m.starts_with("pfctl:")) {
                return Err(fail(io, &msgs.join("\n")));
            }
            for m in msgs {
                say(io, &m);
            }
        }
        "flush" | "f" => {
            let set = cx
                .st
                .pf
                .tables
                .get_mut(table)
                .ok_or_else(|| fail(io, MISSING))?;
            let n = set.len();
            set.clear();
            say(io, &format!("{n} addresses deleted."));
        }
        "kill" | "k" => {
            if cx.st.pf.tables.remove(table).is_none() {
                return Err(fail(io, MISSING));
            }
            say(io, "1 table deleted.");
        }
        "test" | "t" => {
            let set = cx.st.pf.tables.get(table).cloned().unwrap_or_default();
            let n = addrs.iter().filter(|a| set.contains(*a)).count();
            say(io, &format!("{n}/{} addresses match.", addrs.len()));
            return Ok(if n == addrs.len() { 0 } else { 2 });
        }
        other => return Err(fail(io, &format!("pfctl: Unknown table command '{other}'"))),
    }
    Ok(0)
}
