//! `bastille`: the main script (usr/local/bin/bastille) — config check, option parsing, dispatch —
//! and what every subcommand shares: logging per version (§0), config (§4.4), targets (§4.2).

mod bootstrap;
mod create;
mod jailcmds;
mod lifecycle;
mod list;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;

use crate::fsutil;
use crate::io::Io;
use crate::opts::{Parsed, Spec, GETOPT};
use crate::state::Ctx;

/// The Bastille version range being simulated (§0).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Version {
    /// 1.3.2.251225: info on stdout.
    V132,
    /// 1.4.4: info on stderr; error_exit prints an empty line on stdout.
    V144,
    /// master after 1.4.4: info on stdout unless -q; global -q/-j/-p/-x.
    Master,
}

impl Version {
    fn parse(s: &str) -> Option<Version> {
        match s {
            "1.3.2" | "1.3" => Some(Version::V132),
            "1.4.4" | "1.4" => Some(Version::V144),
            "master" => Some(Version::Master),
            _ => None,
        }
    }

    /// What `bastille -v` prints (master: the `make install` stamp, unverified).
    fn string(self) -> &'static str {
        match self {
            Version::V132 => "1.3.2.251225",
            Version::V144 => "1.4.4",
            Version::Master => "master-040f8061",
        }
    }
}

/// Parsed bastille.conf (sourced shell, §4.4).
pub struct Conf {
    vars: BTreeMap<String, String>,
    /// FreeBSD path of the file.
    pub path: String,
}

impl Conf {
    /// A variable's value (empty when unset, as in sh).
    pub fn get(&self, k: &str) -> String {
        self.vars.get(k).cloned().unwrap_or_default()
    }
    /// Whether a variable is set at all (`${x+x}`).
    pub fn is_set(&self, k: &str) -> bool {
        self.vars.contains_key(k)
    }
    /// `checkyesno bastille_zfs_enable` (and a non-empty pool, as create/destroy require).
    pub fn zfs(&self) -> bool {
        yes(&self.get("bastille_zfs_enable")) && !self.get("bastille_zfs_zpool").is_empty()
    }
    /// POOL/PREFIX.
    pub fn zfs_base(&self) -> String {
        format!(
            "{}/{}",
            self.get("bastille_zfs_zpool"),
            self.get("bastille_zfs_prefix")
        )
    }
    /// `bastille_jailsdir`.
    pub fn jailsdir(&self) -> String {
        self.get("bastille_jailsdir")
    }
    /// `bastille_releasesdir`.
    pub fn releasesdir(&self) -> String {
        self.get("bastille_releasesdir")
    }
}

/// `checkyesno` (yes/true/on/1, any case).
pub fn yes(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1")
}

/// One bastille invocation: host context, output, version, config, master's quiet flag.
pub struct Bx<'a> {
    /// The host.
    pub cx: &'a mut Ctx,
    /// Output buffers.
    pub io: &'a mut Io,
    /// Simulated version.
    pub v: Version,
    /// bastille.conf.
    pub conf: Conf,
    /// master `-q`.
    pub quiet: bool,
}

impl Bx<'_> {
    /// `info` (levels 1/2; the stream depends on the version, §0).
    pub fn info(&mut self, msg: &str) {
        match self.v {
            Version::V144 => self.io.err(msg),
            Version::V132 => self.io.out(msg),
            Version::Master => {
                if !self.quiet {
                    self.io.out(msg)
                }
            }
        }
    }
    /// `info 3`: data, always stdout.
    pub fn data(&mut self, msg: &str) {
        self.io.out(msg);
    }
    /// `warn 1`.
    pub fn warn(&mut self, msg: &str) {
        match self.v {
            Version::V132 => self.io.out(msg),
            _ => {
                if !self.quiet {
                    self.io.err(msg)
                }
            }
        }
    }
    /// `error_notify`: stderr (master -q hides it).
    pub fn error_notify(&mut self, msg: &str) {
        if !(self.v == Version::Master && self.quiet) {
            self.io.err(msg);
        }
    }
    /// `error_exit`: the message, 1.4.x's empty stdout line, exit status 1.
    pub fn error_exit(&mut self, msg: &str) -> i32 {
        self.error_notify(msg);
        if self.v == Version::V144 {
            self.io.out("");
        }
        1
    }
    /// A subcommand's options through fakebsd's one parser. The spec's letters end with `x`, the per-command
    /// debug flag, which master dropped (§1.1). Bare words of `bare` before the operands count as the long
    /// options they spell (create.sh's `--no-boot|no-boot)`). A bad option is Bastille's `Unknown Option`.
    pub fn parse_opts(
        &mut self,
        spec: Spec,
        args: &[String],
        bare: &[&'static str],
    ) -> Result<Parsed, i32> {
        let spec = Spec {
            flags: if self.v == Version::Master {
                spec.flags.trim_end_matches('x')
            } else {
                spec.flags
            },
            ..spec
        };
        let mut all = Parsed::default();
        let mut words = args.to_vec();
        loop {
            let p = spec.parse(&words).map_err(|e| {
                self.error_exit(&format!("[ERROR]: Unknown Option: \"{}\"", e.word))
            })?;
            all.opts.extend(p.opts);
            match p.operands.split_first() {
                Some((w, rest)) if bare.contains(&w.as_str()) => {
                    let key = bare
                        .iter()
                        .find(|b| **b == w.as_str())
                        .copied()
                        .unwrap_or("");
                    all.opts.push((key, None));
                    words = rest.to_vec();
                }
                _ => {
                    all.operands = p.operands;
                    return Ok(all);
                }
            }
        }
    }
    /// `bastille_root_check` (lib/checks.sh, §1.2 step 1).
    pub fn root_check(&mut self) -> Result<(), i32> {
        if self.cx.is_root() {
            return Ok(());
        }
        self.error_notify("Bastille: Permission Denied");
        Err(self.error_exit("root / sudo / doas required"))
    }
    /// A FreeBSD path under the fake root.
    pub fn p(&self, path: &str) -> std::path::PathBuf {
        self.cx.host_path(path)
    }
    /// `bastille list jails`: directories of jailsdir holding a jail.conf, natural-sorted.
    pub fn jails(&self) -> Vec<String> {
        let dir = self.p(&self.conf.jailsdir());
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().join("jail.conf").is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by(|a, b| natural(a, b));
        v
    }
    /// The jail's directory (FreeBSD path).
    pub fn jail_dir(&self, name: &str) -> String {
        format!("{}/{name}", self.conf.jailsdir())
    }
    /// `settings.conf` value with Bastille's defaults.
    pub fn setting(&self, name: &str, key: &str) -> String {
        let p = self.p(&format!("{}/settings.conf", self.jail_dir(name)));
        crate::sysrc::get_var(&[p], key).unwrap_or_else(|| match key {
            "boot" => "on".into(),
            "priority" => "99".into(),
            _ => String::new(),
        })
    }
    /// Resolves TARGET as `set_target` does (§4.2): ALL, JID, exact, unique prefix, tag.
    pub fn set_target(&mut self, target: &str, reverse: bool) -> Result<Vec<String>, i32> {
        let all = self.jails();
        let mut out: Vec<String> = vec![];
        if target.eq_ignore_ascii_case("all") {
            out = all.clone();
        } else {
            for word in target.split_whitespace() {
                let is_dir = self.p(&self.jail_dir(word)).is_dir();
                if !is_dir && word.chars().all(|c| c.is_ascii_digit()) {
                    match crate::jail::find(self.cx, word) {
                        Some(n) => out.push(n),
                        None => self.error_notify(&format!(
                            "Error: JID \"{word}\" not found. Is jail running?"
                        )),
                    }
                    continue;
                }
                if all.iter().any(|j| j == word) {
                    out.push(word.to_string());
                    continue;
                }
                let matches: Vec<&String> = all.iter().filter(|j| j.starts_with(word)).collect();
                if matches.len() == 1 {
                    out.push(matches[0].clone());
                    continue;
                }
                if matches.len() > 1 {
                    let list: Vec<String> = matches.iter().map(|s| s.to_string()).collect();
                    if self.v == Version::Master {
                        return Err(self.error_exit(&format!(
                            "[ERROR]: Multiple jails found for {word}:\n{}",
                            list.join("\n")
                        )));
                    }
                    self.error_notify(&format!(
                        "Multiple jails found for {word}:\n{}",
                        list.join("\n")
                    ));
                    self.io.out("");
                    return Err(1);
                }
                let tagged: Vec<String> = all
                    .iter()
                    .filter(|j| {
                        let tags =
                            std::fs::read_to_string(self.p(&format!("{}/tags", self.jail_dir(j))))
                                .unwrap_or_default();
                        tags.split_whitespace().any(|t| t == word)
                    })
                    .cloned()
                    .collect();
                if !tagged.is_empty() {
                    out.extend(tagged);
                    continue;
                }
                if self.v == Version::Master {
                    self.error_notify(&format!("[ERROR]: Jail not found: {word}"));
                } else {
                    self.error_notify(&format!("Jail not found \"{word}\""));
                }
            }
        }
        if out.is_empty() {
            return Err(1);
        }
        out.sort();
        out.dedup();
        let mut keyed: Vec<(i64, String)> = out
            .into_iter()
            .map(|j| (self.setting(&j, "priority").parse().unwrap_or(99), j))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        if reverse {
            keyed.reverse();
        }
        Ok(keyed.into_iter().map(|(_, j)| j).collect())
    }
    /// Whether the jail runs (`jls name`).
    pub fn running(&self, name: &str) -> bool {
        self.cx.st.jails.contains_key(name)
    }
    /// Reads stdin for a prompt answer (`read`); prints the prompt on stderr only for a terminal.
    pub fn ask(&mut self, prompt: &str) -> String {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            self.io.err.push_str(prompt);
            self.io.flush();
        }
        let mut line = String::new();
        let _ = stdin.read_line(&mut line);
        line.trim().to_string()
    }
}

/// Natural ("ls -v") order.
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| -> Vec<(String, u64)> {
        let mut v = vec![];
        let mut text = String::new();
        let mut num = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else {
                if !num.is_empty() {
                    v.push((std::mem::take(&mut text), num.parse().unwrap_or(0)));
                    num.clear();
                }
                text.push(c);
            }
        }
        v.push((text, num.parse().unwrap_or(0)));
        v
    };
    key(a).cmp(&key(b))
}

fn usage(io: &mut Io) -> i32 {
    io.out("\t\nBastille is an open-source system for automating deployment and management of\ncontainerized applications on FreeBSD.\n\nUsage:\n  bastille [option(s)] COMMAND [option(s)] TARGET ARGS\n\nUse \"bastille -v|--version\" for version information.\nUse \"bastille command -h|--help\" for more information about a command.\nUse \"bastille -c|--config FILE command\" to specify a non-default config file.\n");
    1
}

const DEFAULT_CONF: &str = "/usr/local/etc/bastille/bastille.conf";

/// The `bastille` command line (usr/local/bin/bastille).
pub fn run(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let v = std::env::var("FAKEBSD_BASTILLE_VERSION")
        .ok()
        .and_then(|s| Version::parse(&s))
        .or_else(|| Version::parse(&cx.st.bastille_version))
        .unwrap_or(Version::V144);
    let conf_path = std::env::var("BASTILLE_CONFIG")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_CONF.to_string());
    // bastille_conf_check (§4.4): a missing config is fatal unless the arguments mention `setup`.
    if !cx.host_path(&conf_path).is_file() {
        if args.iter().any(|a| a == "setup") {
            let sample = cx.host_path("/usr/local/etc/bastille/bastille.conf.sample");
            let _ = std::fs::copy(sample, cx.host_path(DEFAULT_CONF));
        } else {
            io.out("\n[ERROR]: No config file found!");
            io.out("Please run 'bastille setup' to configure Bastille.\n");
            return 1;
        }
    }
    let mut bx = Bx {
        conf: load_conf(cx, &conf_path),
        cx,
        io,
        v,
        quiet: false,
    };
    // bastille_perms_check (§4.4). Applied strictly: the real script runs it before sourcing the config.
    let prefix = bx.conf.get("bastille_prefix");
    if !prefix.is_empty() {
        if let Ok(m) = std::fs::metadata(bx.p(&prefix)) {
            if m.is_dir() && m.permissions().mode() & 0o7777 != 0o750 {
                bx.error_notify(&format!("Insecure permissions on {prefix}"));
                return bx.error_exit(&format!("Try: chmod 0750 {prefix}"));
            }
        }
    }
    let (quiet, json, mut args) = match global_options(&mut bx, args) {
        Ok(g) => g,
        Err(c) => return c,
    };
    bx.quiet = quiet;
    if args.is_empty() {
        return usage(bx.io);
    }
    let cmd = match args.remove(0).as_str() {
        "destory" => "destroy".to_string(),
        "limit" => "limits".to_string(),
        "net" => "network".to_string(),
        "unmount" => "umount".to_string(),
        other => other.to_string(),
    };
    if !crate::pkg::BASTILLE_CMDS.contains(&cmd.as_str()) {
        return usage(bx.io);
    }
    if json && cmd != "config" {
        return bx.error_exit(&format!(
            "[ERROR]: Command does not support json output: {cmd}"
        ));
    }
    let script = format!("{}/{cmd}.sh", bx.conf.get("bastille_sharedir"));
    if !bx.p(&script).is_file() {
        return bx.error_exit(&format!("{script} not found."));
    }
    dispatch(&mut bx, &cmd, &args)
}

/// The subcommand's own script.
fn dispatch(bx: &mut Bx, cmd: &str, args: &[String]) -> i32 {
    match cmd {
        "create" => create::run(bx, args),
        "bootstrap" => bootstrap::run(bx, args),
        "list" => list::run(bx, args),
        "start" => lifecycle::start_cmd(bx, args),
        "stop" => lifecycle::stop_cmd(bx, args),
        "restart" => lifecycle::restart_cmd(bx, args),
        "destroy" => lifecycle::destroy_cmd(bx, args),
        "cmd" => jailcmds::cmd(bx, args),
        "config" => jailcmds::config(bx, args),
        "service" => jailcmds::service(bx, args),
        "sysrc" => jailcmds::sysrc(bx, args),
        "zfs" => jailcmds::zfs(bx, args),
        "setup" => jailcmds::setup(bx, args),
        "tags" => jailcmds::tags(bx, args),
        other => bx.error_exit(&format!(
            "[ERROR]: fakebsd does not simulate 'bastille {other}'"
        )),
    }
}

/// The main script's options before the command (master added -q, -j/-p and a global -x): quiet, json and
/// the command with its arguments; `Err` is the exit status of `-h`, `-v`, `help`, `version` or a bad option.
fn global_options(bx: &mut Bx, args: &[String]) -> Result<(bool, bool, Vec<String>), i32> {
    let v = bx.v;
    let spec = Spec {
        tool: "bastille",
        flags: if v == Version::Master { "hvqjpx" } else { "hv" },
        valued: "c",
        long: &[
            "help:h",
            "version:v",
            "config:c",
            "quiet:q",
            "json:j",
            "pretty:p",
            "debug:x",
        ],
        ..GETOPT
    };
    let p = spec
        .parse(args)
        .map_err(|e| bx.error_exit(&format!("Unknown Option: \"{}\"", e.word)))?;
    let (mut quiet, mut json) = (false, false);
    for (key, value) in &p.opts {
        match *key {
            "h" => return Err(usage(bx.io)),
            "v" => {
                bx.info(v.string());
                return Err(0);
            }
            "c" => {
                let name = value.clone().unwrap_or_default();
                let full = format!("/usr/local/etc/bastille/{name}");
                if name.is_empty() || !bx.p(&full).is_file() {
                    return Err(bx.error_exit(&format!("Not a valid config file: {name}")));
                }
                bx.info(&format!("Using custom config: {full}"));
                bx.conf = load_conf(bx.cx, &full);
            }
            "q" => quiet = true,
            "j" | "p" => (quiet, json) = (true, true),
            _ => {}
        }
    }
    match p.operands.first().map(String::as_str) {
        Some("help") => Err(usage(bx.io)),
        Some("version") => {
            bx.info(v.string());
            Err(0)
        }
        _ => Ok((quiet, json, p.operands)),
    }
}

/// Splits `-o k=v -o k=v` (bastille_zfs_options, which `zfs create` reads) into properties.
pub fn zfs_props(opts: &str) -> Vec<(String, String)> {
    const SPEC: Spec = Spec {
        tool: "zfs",
        valued: "o",
        permute: true,
        ..GETOPT
    };
    let words: Vec<String> = opts.split_whitespace().map(str::to_string).collect();
    let Ok(p) = SPEC.parse(&words) else {
        return vec![];
    };
    let values = p.opts.iter().filter_map(|(_, v)| v.as_deref());
    values
        .chain(p.operands.iter().map(String::as_str))
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Sources bastille.conf: assignments with `${var}` expansion, nothing else.
fn load_conf(cx: &Ctx, path: &str) -> Conf {
    let mut vars = BTreeMap::new();
    fsutil::read_vars(&cx.host_path(path), &mut vars);
    Conf {
        vars,
        path: path.to_string(),
    }
}
