//! Host-side `pkg` and `pw` (outside any jail), `rctl`, and `fakebsd reboot`.
//!
//! `pkg` and `pw` are the in-jail implementations (`pkg.rs`, `injail.rs`) run on the host's own files: the
//! package database `/var/db/pkg/fakebsd-installed`, `/etc/passwd`, `/etc/group` under the fake root.
//! `pw -R DIR` works on the tree at DIR (e.g. a Bastille release). A fresh host has neither Bastille nor
//! dnsmasq: `pkg install bastille dnsmasq` brings their files (see `pkg.rs`), and until then `bastille`
//! answers like a shell that cannot find it (exit 127).
//!
//! `kern.racct.enable` is a boot tunable: `sysctl` refuses to set it, and `fakebsd reboot` applies
//! `/boot/loader.conf`'s value — the only part of a reboot simulated (jails, interfaces and services stay).

use std::collections::BTreeMap;

use std::path::Path;

use crate::io::{fail, Io};
use crate::jailfs::{JailEnv, JailFs};
use crate::opts::{Spec, GETOPT};
use crate::state::Ctx;

/// The host's own view of its files (no jail root, no nullfs mounts).
fn host_fs(root: &str) -> JailFs {
    JailFs::at(root)
}

fn host_env(cx: &Ctx) -> JailEnv {
    JailEnv {
        name: String::new(),
        user: if cx.is_root() {
            "root".into()
        } else {
            "user".into()
        },
        env: std::env::vars().collect::<BTreeMap<_, _>>(),
        cwd: "/".into(),
        lock_held: true,
    }
}

/// Host `pkg [-r|--rootdir DIR] …`: the same tool as in jails, on the host's files, or with `--rootdir` on the
/// packages of the tree at DIR (e.g. a Bastille release) with the host's own pkg.
pub fn pkg(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let je = host_env(cx);
    let g = match crate::pkg::GLOBAL.parse(args) {
        Ok(g) => g,
        Err(e) => return e.report(io),
    };
    let root = g.value("r").unwrap_or("").trim_end_matches('/').to_string();
    if !root.is_empty() && !cx.host_path(&root).is_dir() {
        return fail(
            io,
            &format!("pkg: Unable to open rootdir {root}: No such file or directory"),
        );
    }
    crate::pkg::pkg_on(cx, &host_fs(&root), &host_fs(""), &je, &g, io)
}

/// The variable naming a local npm mirror: an npm install prefix (`DIR/node_modules/…`) standing in for the
/// registry, which the simulated host cannot reach.
pub const ENV_NPM_MIRROR: &str = "FAKEBSD_NPM_MIRROR";

/// Host `npm`, present once the `npm-node22` package is: `npm install --prefix DIR [--no-audit] [--no-fund]
/// [--prefer-offline] [--loglevel=L] @mariozechner/pi-coding-agent@VERSION`. With [`ENV_NPM_MIRROR`] it
/// installs the real package from that mirror (its whole `node_modules`, dependencies included, as npm would
/// fetch them; the version must match); without, it lays out pi's `package.json` and a placeholder
/// `dist/cli.js` under DIR.
pub fn npm(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    if !cx.host_path("/usr/local/bin/npm").exists() {
        io.err("npm: not found");
        return 127;
    }
    // The options fakebsd simulates (npm's own parser takes them anywhere); any other is refused by name.
    const SPEC: Spec = Spec {
        tool: "npm",
        long: &[
            "prefix=",
            "no-audit",
            "no-fund",
            "prefer-offline",
            "loglevel=",
        ],
        permute: true,
        usage: "npm: fakebsd simulates only `npm install --prefix DIR [--no-audit] [--no-fund] [--prefer-offline] [--loglevel=L] SPEC`",
        ..GETOPT
    };
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let prefix = p.value("prefix").map(str::to_string);
    let Some((cmd, specs)) = p.operands.split_first() else {
        return fail(
            io,
            "npm <command>\n\nUsage: npm install [<package-spec> ...]",
        );
    };
    if cmd != "install" && cmd != "i" {
        return fail(
            io,
            &format!("npm: fakebsd simulates only `npm install`, not `npm {cmd}`"),
        );
    }
    let Some(prefix) = prefix else {
        return fail(
            io,
            "npm: fakebsd simulates only `npm install --prefix DIR SPEC`",
        );
    };
    for spec in specs {
        let Some((name, version)) = spec.rsplit_once('@').filter(|(n, _)| !n.is_empty()) else {
            return fail(io, &format!("npm error code ETARGET\nnpm error notarget No matching version found for {spec}."));
        };
        if name != "@mariozechner/pi-coding-agent" {
            return fail(io, &format!("npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/{name} - not simulated by fakebsd"));
        }
        let modules = cx.host_path(&format!("{}/node_modules", prefix.trim_end_matches('/')));
        if let Some(mirror) = std::env::var_os(ENV_NPM_MIRROR) {
            if let Err(e) = install_from_mirror(Path::new(&mirror), &modules, name, version) {
                return fail(io, &e);
            }
            io.out("\nadded 1 package in 1s");
            continue;
        }
        let dir = modules.join(name);
        let files = [
            (
                dir.join("package.json"),
                format!("{{\"name\":\"{name}\",\"version\":\"{version}\",\"engines\":{{\"node\":\">=20.6.0\"}}}}\n"),
            ),
            (
                dir.join("dist/cli.js"),
                format!("#!/usr/bin/env node\n// {name} {version}: a placeholder laid out by fakebsd's npm\n"),
            ),
        ];
        for (path, text) in files {
            if let Err(e) = crate::fsutil::write_file(&path, &text) {
                return fail(io, &format!("npm error {e}"));
            }
        }
        io.out("\nadded 1 package in 1s");
    }
    0
}

/// Installs `name@version` from the mirror prefix `mirror` into `modules` (hard links: no space is copied).
fn install_from_mirror(
    mirror: &Path,
    modules: &Path,
    name: &str,
    version: &str,
) -> Result<(), String> {
    let src = mirror.join("node_modules");
    let json = std::fs::read_to_string(src.join(name).join("package.json")).unwrap_or_default();
    let found = serde_json::from_str::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_string));
    if found.as_deref() != Some(version) {
        return Err(format!(
            "npm error code ETARGET\nnpm error notarget No matching version found for {name}@{version} in the mirror {} ({ENV_NPM_MIRROR}; it has {})",
            mirror.display(),
            found.as_deref().unwrap_or("none")
        ));
    }
    crate::fsutil::link_tree(&src, modules).map_err(|e| format!("npm error {e}"))
}

/// Host `test`: the in-jail `test` on the host's files (FreeBSD paths under the simulated root).
pub fn test(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    crate::injail::host_test(cx, &host_fs(""), &host_env(cx), args, io)
}

/// Host `pw [-R DIR] …`: on the host's files, or the tree at DIR.
pub fn pw(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    // pw's own options before the command: `-R rootdir`, `-V etcdir`.
    const SPEC: Spec = Spec {
        tool: "pw",
        valued: "RV",
        usage: "usage:\n  pw [-V etcdir | -R rootdir] [user|group|lock|unlock] [add|del|mod|show|next] [help|switches/values]",
        status: 64,
        ..GETOPT
    };
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let root = p.value("R").unwrap_or("").trim_end_matches('/').to_string();
    let rest = &p.operands;
    if !root.is_empty() && !cx.host_path(&root).is_dir() {
        return fail(
            io,
            &format!("pw: chroot({root}): No such file or directory"),
        );
    }
    crate::injail::pw(cx, &host_fs(&root), rest, io)
}

/// Whether Bastille is installed on the host (its program exists, as `pkg install bastille` puts it).
pub fn bastille_installed(cx: &Ctx) -> bool {
    cx.host_path("/usr/local/bin/bastille").exists()
}

/// `rctl [-a RULE | -r FILTER]`: rules are kept in the state (nothing is enforced); like the real tool, it
/// refuses while `kern.racct.enable` is 0.
pub fn rctl(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    if cx.st.sysctls.get("kern.racct.enable").map(String::as_str) != Some("1") {
        return fail(
            io,
            "rctl: RACCT/RCTL present, but disabled; enable using kern.racct.enable=1 tunable",
        );
    }
    match args {
        [] => {
            for r in &cx.st.rctl_rules {
                io.out(r);
            }
            0
        }
        [flag, rule] if flag == "-a" => {
            if !cx.is_root() {
                return fail(io, "rctl: failed to add rule: Operation not permitted");
            }
            if rule.split(':').count() != 4 || !rule.contains('=') {
                return fail(
                    io,
                    &format!("rctl: failed to add rule '{rule}': Invalid argument"),
                );
            }
            if !cx.st.rctl_rules.contains(rule) {
                cx.st.rctl_rules.push(rule.clone());
            }
            0
        }
        [flag, filter] if flag == "-r" => {
            if !cx.is_root() {
                return fail(io, "rctl: failed to remove rules: Operation not permitted");
            }
            let prefix = format!("{}:", filter.trim_end_matches(':'));
            cx.st.rctl_rules.retain(|r| !r.starts_with(&prefix));
            0
        }
        _ => fail(
            io,
            "usage: rctl [ -h ] [-a rule | -l filter | -r filter | -u filter | filter]",
        ),
    }
}

/// `fakebsd reboot`: boot tunables from `/boot/loader.conf` take effect (`kern.racct.enable`).
pub fn reboot(cx: &mut Ctx) {
    let text = std::fs::read_to_string(cx.host_path("/boot/loader.conf")).unwrap_or_default();
    let mut racct = "0".to_string();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == "kern.racct.enable" {
                racct = v.trim().trim_matches('"').to_string();
            }
        }
    }
    cx.st.sysctls.insert("kern.racct.enable".into(), racct);
    cx.st.rctl_rules.clear();
}
