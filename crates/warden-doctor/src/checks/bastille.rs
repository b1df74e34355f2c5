//! Bastille's own invariants (reference/bastille.md §4.4): `bastille_prefix` has mode 0750 (Bastille refuses to
//! run otherwise), `bastille_sharedir` is set and exists, and the ZFS settings are coherent
//! (`bastille_zfs_enable=YES` ⇒ `bastille_zfs_zpool` names a pool `zfs list` knows).

use std::collections::BTreeMap;

use warden_core::bastille_plan::{racct_in_loader_conf, BASTILLE_CONF, LOADER_CONF, RACCT_LINE};

use crate::report::Check;
use crate::{said, sh_quote, Ctx};

/// The `name=value` assignments of a shell-sourced config (quotes stripped, comments ignored).
pub fn parse_conf(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            let k = k.trim();
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            let v = v.split(" #").next().unwrap_or("").trim();
            Some((
                k.to_string(),
                v.trim_matches('"').trim_matches('\'').to_string(),
            ))
        })
        .collect()
}

/// rc.subr's `checkyesno`.
fn yes(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1")
}

/// `bastille.conf`, `bastille.prefix`, `bastille.sharedir`, `bastille.zfs`.
pub fn invariants(ctx: &Ctx) -> Vec<Check> {
    let layout = ctx.layout();
    let host_step = ctx.setup("host");
    let conf = match ctx.runner.read_file(BASTILLE_CONF) {
        Ok(Some(t)) => parse_conf(&t),
        Ok(None) => {
            return vec![Check::fail(
                "bastille.conf",
                format!("{BASTILLE_CONF} exists"),
                "missing",
                host_step,
            )]
        }
        Err(e) => {
            return vec![Check::fail(
                "bastille.conf",
                format!("{BASTILLE_CONF} readable"),
                e.to_string(),
                host_step,
            )]
        }
    };
    let mut out = vec![Check::ok(
        "bastille.conf",
        format!("{BASTILLE_CONF} exists"),
        format!("{} settings", conf.len()),
    )];

    let prefix = conf
        .get("bastille_prefix")
        .cloned()
        .unwrap_or_else(|| layout.bastille.prefix.clone());
    let expected = format!("bastille_prefix {prefix} with mode 0750");
    out.push(match ctx.runner.mode(&prefix) {
        Ok(Some(0o750)) => Check::ok("bastille.prefix", expected, "mode 0750"),
        Ok(Some(m)) => Check::fail(
            "bastille.prefix",
            expected,
            format!("mode {m:04o}"),
            format!("chmod 0750 {}", sh_quote(&prefix)),
        ),
        Ok(None) => Check::fail(
            "bastille.prefix",
            expected,
            format!("{prefix} does not exist"),
            host_step.clone(),
        ),
        Err(e) => Check::fail("bastille.prefix", expected, e.to_string(), ""),
    });

    let expected = "bastille_sharedir set to an existing directory";
    out.push(
        match conf.get("bastille_sharedir").filter(|s| !s.is_empty()) {
            None => Check::fail(
                "bastille.sharedir",
                expected,
                "bastille_sharedir is not set",
                host_step.clone(),
            ),
            Some(dir) => match ctx.runner.mode(dir) {
                Ok(Some(_)) => Check::ok("bastille.sharedir", expected, dir.clone()),
                Ok(None) => Check::fail(
                    "bastille.sharedir",
                    expected,
                    format!("{dir} does not exist (Bastille is not installed there)"),
                    "pkg install -y bastille",
                ),
                Err(e) => Check::fail("bastille.sharedir", expected, e.to_string(), ""),
            },
        },
    );

    let enabled = conf
        .get("bastille_zfs_enable")
        .map(|v| yes(v))
        .unwrap_or(false);
    let pool = conf.get("bastille_zfs_zpool").cloned().unwrap_or_default();
    if !enabled {
        out.push(Check::ok(
            "bastille.zfs",
            "ZFS settings coherent",
            "bastille_zfs_enable is off: no pool needed",
        ));
        return out;
    }
    let expected = format!(
        "bastille_zfs_enable=YES with an existing pool (layout: {})",
        layout.bastille.zfs_pool
    );
    if pool.is_empty() {
        out.push(Check::fail(
            "bastille.zfs",
            expected,
            "bastille_zfs_zpool is empty",
            host_step,
        ));
        return out;
    }
    out.push(match ctx.run(&["zfs", "list", "-H", "-o", "name", &pool]) {
        Ok(o) if o.ok() => Check::ok("bastille.zfs", expected, format!("pool {pool} exists")),
        Ok(o) => Check::fail(
            "bastille.zfs",
            expected,
            format!("zfs list {pool} → {}", said(&o)),
            host_step,
        ),
        Err(e) => Check::fail("bastille.zfs", expected, e.to_string(), ""),
    });
    out
}

/// `workers.limits`: rctl can enforce workers' memory and process limits — `kern.racct.enable` is 1 in the
/// running kernel. It is a boot tunable: after setup writes it to `/boot/loader.conf` the doctor says "reboot
/// needed" until a reboot makes it active. Until then workers refuse to start unless `workers.allow_unlimited`.
pub fn limits(ctx: &Ctx) -> Vec<Check> {
    let name = "workers.limits";
    let expected = "kern.racct.enable = 1 (rctl enforces workers' memory and process limits)";
    let active = match ctx.run(&["sysctl", "-n", "kern.racct.enable"]) {
        Ok(out) if out.ok() => out.stdout.trim() == "1",
        Ok(out) => {
            return vec![Check::fail(
                name,
                expected,
                format!("sysctl -n kern.racct.enable → {}", said(&out)),
                "a kernel with RACCT/RCTL (GENERIC has them)",
            )]
        }
        Err(e) => {
            return vec![Check::fail(
                name,
                expected,
                e.to_string(),
                "run on the FreeBSD host",
            )]
        }
    };
    if active {
        return vec![Check::ok(name, expected, "kern.racct.enable = 1")];
    }
    let allowed = ctx.layout().allow_unlimited;
    let unlimited = if allowed {
        "workers run without memory and process limits (workers.allow_unlimited)"
    } else {
        "workers refuse to start until then (or set workers.allow_unlimited)"
    };
    let loader = ctx
        .runner
        .read_file(LOADER_CONF)
        .ok()
        .flatten()
        .unwrap_or_default();
    if racct_in_loader_conf(&loader) {
        vec![Check::warn(
            name,
            expected,
            format!("reboot needed: {LOADER_CONF} has {RACCT_LINE} but the running kernel has 0; {unlimited}"),
            "shutdown -r now",
        )]
    } else if allowed {
        vec![Check::warn(
            name,
            expected,
            format!("kern.racct.enable = 0 and not in {LOADER_CONF}; {unlimited}"),
            ctx.setup("base"),
        )]
    } else {
        vec![Check::fail(
            name,
            expected,
            format!("kern.racct.enable = 0 and not in {LOADER_CONF}; {unlimited}"),
            format!("{}, then reboot", ctx.setup("base")),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shell_assignments() {
        let c = parse_conf("# c\nbastille_prefix=\"/usr/local/bastille\" # note\nbastille_zfs_enable=YES\nfoo bar\n");
        assert_eq!(c["bastille_prefix"], "/usr/local/bastille");
        assert_eq!(c["bastille_zfs_enable"], "YES");
        assert_eq!(c.len(), 2);
        assert!(yes("yes") && yes("ON") && !yes("NO"));
    }
}
