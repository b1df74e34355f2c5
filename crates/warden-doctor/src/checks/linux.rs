//! The doctor's Linux-only checks (compiled on Linux only; `linux_absent.rs` stands in elsewhere): commands in a
//! Linux service jail, each jail's checks, and the outbound probe from a VNET worker.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use warden_core::layout::Service;
use warden_host::Output;

use crate::report::Check;
use crate::{said, Ctx};

/// Parses `ip -j addr show dev BRIDGE`: whether it is up, and its IPv4 addresses.
pub fn parse_ip_addr_json(json: &str) -> Result<(bool, Vec<String>), String> {
    warden_linux::host::parse_ip_addr_json(json)
}

/// `outbound` on Linux: a VNET worker connects to `probe` through the gateway and the NAT.
pub fn outbound(ctx: &Ctx, probe: SocketAddrV4, expected: String) -> Vec<Check> {
    let deps = super::control_plane::OUTBOUND_DEPS;
    let layout = ctx.layout();
    let remedy = ctx.setup("host");
    let lease = match warden_linux::lease(&ctx.opts.state_dir, layout.workers) {
        Ok(l) => l,
        Err(e) => {
            return vec![Check::fail(
                "outbound",
                expected,
                format!("cannot lease a worker address: {e}"),
                "",
            )]
        }
    };
    let mut spec = warden_linux::WorkerSpec::new(
        &lease.worker_name(),
        &[
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/{}/{}", probe.ip(), probe.port()),
        ],
        &ctx.opts.state_dir,
    );
    spec.network = warden_linux::NetworkMode::Vnet(warden_linux::Vnet {
        addr: lease.addr(),
        prefix: 24,
        gateway: layout.gateway,
        bridge: layout.bridge.clone(),
        dns: layout.gateway,
        host_netns: None,
    });
    let budget = ctx
        .opts
        .timeout
        .saturating_sub(Duration::from_millis(1000))
        .clamp(Duration::from_millis(300), Duration::from_millis(1500));
    spec.limits.timeout_ms = Some(budget.as_millis() as u64);
    let t0 = Instant::now();
    let result = warden_linux::run_captured(&spec);
    let ms = t0.elapsed().as_millis();
    let from = lease.addr();
    // Keep the address until the worker is fully gone, so the next run cannot collide with its leftovers.
    warden_linux::wait_torn_down(&ctx.opts.state_dir, &spec.name, Duration::from_millis(500));
    drop(lease);
    let check = match result {
        Ok((outcome, _, stderr)) => match outcome.status {
            warden_linux::ExitKind::Exited(0) => Check::ok(
                "outbound",
                expected,
                format!("worker {from} connected to {probe} ({ms} ms)"),
            ),
            other => {
                let err = String::from_utf8_lossy(&stderr);
                let line = err
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("");
                let how = match other {
                    warden_linux::ExitKind::Limit(warden_linux::LimitKind::Timeout) => {
                        format!("no connection within {} ms", budget.as_millis())
                    }
                    warden_linux::ExitKind::Exited(code) => format!("exit {code}"),
                    other => format!("{other:?}"),
                };
                Check::fail(
                    "outbound",
                    expected,
                    format!("worker {from} could not connect to {probe}: {how} {line}")
                        .trim_end()
                        .to_string(),
                    remedy,
                )
            }
        },
        Err(e) => Check::fail(
            "outbound",
            expected,
            format!("cannot run a VNET worker: {e}"),
            "",
        ),
    };
    vec![check.depends(deps)]
}

/// A command inside a running Linux jail (what `warden jail exec NAME -- ARGV` does), output captured: the exec
/// spec from `warden_linux::jail`, run by this binary's exec helper (`<exe> __worker exec SPEC`), as the jail's
/// unprivileged user. The helper is killed after `limit`.
fn linux_exec(
    ctx: &Ctx,
    jail: &str,
    argv: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> Result<Output, String> {
    use std::process::{Command, Stdio};
    use warden_linux::jail::{exec_spec, ExecOpts};
    let opts = ExecOpts {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        cwd: None,
        root: false,
    };
    let spec = exec_spec(&ctx.opts.state_dir, jail, &opts).map_err(|e| one_line(&e))?;
    let json = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
    // The helper is this very binary (`warden`), re-executed: the same way `warden jail exec` starts it.
    let mut child = Command::new("/proc/self/exe")
        .arg(warden_linux::HELPER_ARG)
        .arg(warden_linux::jail_exec::EXEC_ARG)
        .arg(json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("failed to start the exec helper: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} ms", limit.as_millis()));
            }
            Err(e) => return Err(format!("failed to wait for the exec helper: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("failed to read the exec helper's output: {e}"))?;
    Ok(Output {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The newest Debian psql under `root` (`<root>/usr/lib/postgresql/N/bin/psql`), as a path inside `root`.
fn debian_psql(root: &std::path::Path) -> Option<String> {
    let bin = warden_linux::host::postgres_bin_with(&root.join("usr/lib/postgresql"), "psql")?;
    let inside = bin.strip_prefix(root.to_str()?)?;
    Some(format!("/{}/psql", inside.trim_start_matches('/')))
}

/// The argv that runs the running Linux jail `jail`'s own psql in its network namespace:
/// `nsenter --target PID --net --root -- /usr/lib/postgresql/N/bin/psql` (PID: the jail's init).
///
/// Why nsenter and not the jail exec helper (`warden jail exec`): the helper takes its whole spec, environment
/// included, as JSON on its command line, where any process could read a password; nsenter is a child of this
/// process and passes its environment on, so PGPASSWORD stays out of every argv. Entering the network namespace
/// is what matters for the probe: the connection leaves from the jail's veth with the jail's address, over the
/// bridge and through the nftables service paths like the real clients'. `--root` runs the psql (and libpq) of
/// the jail's release from the jail's root, not whatever the host has.
/// Err is (seen, fix).
pub fn psql_in_jail(ctx: &Ctx, jail: &str) -> Result<Vec<String>, (String, String)> {
    use warden_linux::jail::{self as lj, State};
    let start = format!("{} jail start {jail}", ctx.opts.warden);
    let info = lj::list(&ctx.opts.state_dir)
        .map_err(|e| (one_line(&e), String::new()))?
        .into_iter()
        .find(|j| j.name == jail)
        .ok_or_else(|| (format!("no jail {jail}"), ctx.setup("jails")))?;
    let pid = match (info.state, info.pid) {
        (State::Running, Some(pid)) => pid,
        _ => return Err((format!("{jail} is not running"), start)),
    };
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    let psql = debian_psql(&root).ok_or_else(|| {
        let fix = if info.release == "host" {
            "apt-get install postgresql-client (the host release's /usr is the host's)".to_string()
        } else {
            format!(
                "{} release build {} (its package list has postgresql-client)",
                ctx.opts.warden, info.release
            )
        };
        (
            format!(
                "no /usr/lib/postgresql/N/bin/psql in {jail}'s root (release {})",
                info.release
            ),
            fix,
        )
    })?;
    Ok(vec![
        "nsenter".into(),
        "--target".into(),
        pid.to_string(),
        "--net".into(),
        "--root".into(),
        "--".into(),
        psql,
    ])
}

/// An error and its causes on one line, without `fix:` lines (a check's remedy says what to do).
fn one_line(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg.lines().next().unwrap_or("").to_string()
}

/// Linux: every check of one service jail (`warden_linux::jail`): it exists with its slot's address, runs, has
/// that address live and its name as hostname, reaches the gateway and resolves its name through it.
pub fn jail(ctx: &Ctx, jail: &str) -> Vec<Check> {
    use warden_linux::jail::{self as lj, State};
    let layout = ctx.layout();
    let n = |what: &str| format!("jail.{jail}.{what}");
    let Some(svc) = layout.jails().find(|s| s.jail == jail) else {
        return vec![Check::fail(
            n("exists"),
            "a jail of the layout",
            format!("{jail} is not in the layout"),
            "",
        )];
    };
    let state_dir = &ctx.opts.state_dir;
    let w = &ctx.opts.warden;
    let (exists, record) = jail_exists(ctx, svc, n("exists"));
    let mut out = vec![exists];
    let Some(record) = record else {
        return out;
    };
    let run_expected = format!("{jail} running");
    let running = lj::state(state_dir, &record) == State::Running;
    out.push(Check::verdict(
        n("running"),
        running,
        run_expected,
        if running { "running" } else { "stopped" },
        format!("{w} jail start {jail}"),
    ));
    let in_jail: [(&str, String); 4] = [
        ("addr", format!("{}/24 on the jail's interface", svc.addr)),
        ("hostname", format!("hostname {jail}")),
        (
            "gateway",
            format!("reaches the gateway {} (TCP port 53)", layout.gateway),
        ),
        (
            "dns",
            format!("resolves {} to {} inside the jail", svc.fqdn, svc.addr),
        ),
    ];
    if !running {
        let dep = n("running");
        for (what, expected) in in_jail {
            out.push(
                Check::skip(n(what), expected, format!("{jail} is not running"))
                    .depends(&[dep.as_str()]),
            );
        }
        return out;
    }
    let [addr_c, hostname_c, gateway_c, dns_c] =
        in_jail.map(|(what, expected)| (n(what), expected));
    let gateway_name = gateway_c.0.clone();
    let probe = Probe {
        ctx,
        svc,
        restart: format!("{w} jail stop {jail} && {w} jail start {jail}"),
        limit: ctx.opts.timeout * 3 / 4,
    };
    // Each check is one command in the jail; they run at once, so the jail costs one round trip.
    let panicked =
        |(name, expected): &(String, String)| Check::fail(name, expected, "the check panicked", "");
    let [addr, hostname, gateway, dns] = std::thread::scope(|s| {
        let a = s.spawn(|| probe.addr(&addr_c));
        let h = s.spawn(|| probe.hostname(&hostname_c));
        let g = s.spawn(|| probe.gateway(&gateway_c));
        let d = s.spawn(|| probe.dns(&dns_c));
        [
            a.join().unwrap_or_else(|_| panicked(&addr_c)),
            h.join().unwrap_or_else(|_| panicked(&hostname_c)),
            g.join().unwrap_or_else(|_| panicked(&gateway_c)),
            d.join().unwrap_or_else(|_| panicked(&dns_c)),
        ]
    });
    out.push(addr);
    out.push(hostname);
    out.push(gateway.depends(&["network.bridge", "dns.service"]));
    out.push(dns.depends(&[
        "network.bridge",
        "dns.service",
        "dns.resolve.gateway",
        &gateway_name,
    ]));
    out
}

/// `jail.J.exists` (named `name`): the jail is there, loads, and has its slot's address; the jail's record when it
/// loads.
fn jail_exists(
    ctx: &Ctx,
    svc: &Service,
    name: String,
) -> (Check, Option<warden_linux::jail::Jail>) {
    use warden_linux::jail as lj;
    let jail = svc.jail.as_str();
    let state_dir = &ctx.opts.state_dir;
    let w = &ctx.opts.warden;
    let expected = format!("{} jail {jail} at {}/24", svc.role.name(), svc.addr);
    if !lj::names(state_dir).iter().any(|j| j == jail) {
        let check = Check::fail(
            name,
            expected,
            format!("no jail {jail} in {}", lj::jails_dir(state_dir).display()),
            ctx.setup("jails"),
        );
        return (check, None);
    }
    let record = match lj::load(state_dir, jail) {
        Ok(r) => r,
        Err(e) => {
            let check = Check::fail(
                name,
                expected,
                one_line(&e),
                format!("{w} jail destroy --force {jail} && {}", ctx.setup("jails")),
            );
            return (check, None);
        }
    };
    let addr = record.network.as_ref().map(|net| net.addr);
    let check = Check::verdict(
        name,
        addr == Some(svc.addr),
        expected,
        format!(
            "{jail} at {} on release {}",
            addr.map(|a| a.to_string())
                .unwrap_or_else(|| "no address".into()),
            record.release
        ),
        // Recreating is the only way to move a jail; its data goes with it, so the remedy says --force.
        format!("{w} jail destroy --force {jail} && {}", ctx.setup("jails")),
    );
    (check, Some(record))
}

/// The checks inside a running Linux jail, each one command run by `jail exec` within `limit`. Each takes its
/// check's name and expectation.
struct Probe<'a> {
    ctx: &'a Ctx,
    svc: &'a Service,
    /// The remedy of a jail whose own state is wrong.
    restart: String,
    limit: Duration,
}

impl Probe<'_> {
    fn exec(&self, argv: &[&str], env: &[(&str, &str)]) -> Result<Output, String> {
        linux_exec(self.ctx, &self.svc.jail, argv, env, self.limit)
    }

    /// Its slot's address, live.
    fn addr(&self, (name, expected): &(String, String)) -> Check {
        let want = format!("{}/24", self.svc.addr);
        match self.exec(&["ip", "-4", "-o", "addr", "show"], &[]) {
            Ok(o) if o.ok() => {
                let addrs: Vec<&str> = o
                    .stdout
                    .lines()
                    .filter_map(|l| {
                        let mut words = l.split_whitespace();
                        words.find(|w| *w == "inet")?;
                        words.next()
                    })
                    .filter(|a| !a.starts_with("127."))
                    .collect();
                let seen = if addrs.is_empty() {
                    "no IPv4 address but loopback".to_string()
                } else {
                    addrs.join(", ")
                };
                Check::verdict(
                    name,
                    addrs.contains(&want.as_str()),
                    expected,
                    seen,
                    &self.restart,
                )
            }
            Ok(o) => Check::fail(
                name,
                expected,
                format!("ip addr → {}", said(&o)),
                &self.restart,
            ),
            Err(e) => Check::fail(name, expected, e, &self.restart),
        }
    }

    /// Its name as hostname.
    fn hostname(&self, (name, expected): &(String, String)) -> Check {
        match self.exec(&["cat", "/proc/sys/kernel/hostname"], &[]) {
            Ok(o) if o.ok() => {
                let h = o.stdout.trim().to_string();
                Check::verdict(
                    name,
                    h == self.svc.jail,
                    expected,
                    format!("hostname {h}"),
                    &self.restart,
                )
            }
            Ok(o) => Check::fail(
                name,
                expected,
                format!("hostname → {}", said(&o)),
                &self.restart,
            ),
            Err(e) => Check::fail(name, expected, e, &self.restart),
        }
    }

    /// The gateway: a TCP connection to its dnsmasq (no ping in a minimal root; ICMP needs privileges). Two
    /// seconds let TCP resend a SYN lost to a stale neighbour entry (it does after one).
    fn gateway(&self, (name, expected): &(String, String)) -> Check {
        let connect = format!("exec 3<>/dev/tcp/{}/53", self.ctx.layout().gateway);
        let argv = ["timeout", "2", "bash", "-c", &connect];
        let remedy = self.ctx.setup("host");
        match self.exec(&argv, &[]) {
            Ok(o) => Check::verdict(
                name,
                o.ok(),
                expected,
                if o.ok() {
                    "connected".to_string()
                } else {
                    said(&o)
                },
                remedy,
            ),
            Err(e) => Check::fail(name, expected, e, remedy),
        }
    }

    /// The resolver: the jail's resolv.conf names the gateway; its /etc/hosts holds only its own name.
    fn dns(&self, (name, expected): &(String, String)) -> Check {
        let fqdn = self.svc.fqdn.as_str();
        // A lost first query would otherwise wait out glibc's 5 s retry; quick tries fit the limit.
        let resolver = [("RES_OPTIONS", "timeout:1 attempts:2")];
        let remedy = self.ctx.setup("dns");
        match self.exec(&["getent", "hosts", fqdn], &resolver) {
            Ok(o) if o.ok() => {
                let seen = o.stdout.lines().next().unwrap_or("").trim().to_string();
                let hit =
                    seen.split_whitespace().next() == Some(self.svc.addr.to_string().as_str());
                Check::verdict(name, hit, expected, seen, remedy)
            }
            Ok(o) => Check::fail(
                name,
                expected,
                format!("getent hosts {fqdn} → {}", said(&o)),
                remedy,
            ),
            Err(e) => Check::fail(name, expected, e, remedy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::debian_psql;

    #[test]
    fn debian_psql_is_the_newest_version_with_a_psql_as_a_path_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let lib = root.path().join("usr/lib/postgresql");
        for v in ["13", "15", "16"] {
            std::fs::create_dir_all(lib.join(v).join("bin")).unwrap();
        }
        assert_eq!(debian_psql(root.path()), None);
        for v in ["13", "15"] {
            std::fs::write(lib.join(v).join("bin/psql"), "").unwrap();
        }
        // 16 has no psql: the newest that has one.
        assert_eq!(
            debian_psql(root.path()).as_deref(),
            Some("/usr/lib/postgresql/15/bin/psql")
        );
    }
}
