//! ZFS snapshots of service jails (seed 000): `zfs` directly, never `bastille zfs`, whose snapshot, rollback and
//! destroy failures exit 0 (reference/bastille.md §3 zfs, §4.1). Every change (snapshot, rollback, destroy) is
//! verified with `zfs list`.

use warden_core::names::check_jail_name;
use warden_core::Layout;
use warden_host::{Output, RunError, Runner};

use crate::datasets;
use crate::parse::zfs::{self, Snapshot};

/// Why a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The jail name or tag is not acceptable.
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        /// `jail` or `tag`.
        what: &'static str,
        /// The value given.
        value: String,
        /// The rule.
        why: String,
    },
    /// A command could not be started.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A command failed.
    #[error("failed to {what}: `{command}` exited {status}: {stderr}")]
    Failed {
        /// What was being done.
        what: String,
        /// The command.
        command: String,
        /// Its exit status.
        status: i32,
        /// Its stderr.
        stderr: String,
    },
    /// `zfs list` printed something unexpected.
    #[error("failed to parse `zfs list` output: {0}")]
    Parse(#[from] crate::parse::ParseError),
    /// The command succeeded but `zfs list` does not show the result.
    #[error("failed to {what}: zfs reported success but {check}")]
    Unverified {
        /// What was being done.
        what: String,
        /// What the check found.
        check: String,
    },
}

fn run(runner: &dyn Runner, what: &str, argv: &[&str]) -> Result<Output, SnapshotError> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let out = runner.run(&argv)?;
    if out.ok() {
        Ok(out)
    } else {
        Err(SnapshotError::Failed {
            what: what.to_string(),
            command: warden_core::plan::shell_words(&argv),
            status: out.status,
            stderr: out.stderr.trim().to_string(),
        })
    }
}

fn check_jail(jail: &str) -> Result<(), SnapshotError> {
    check_jail_name(jail).map_err(|why| SnapshotError::Invalid {
        what: "jail",
        value: jail.to_string(),
        why,
    })
}

/// ZFS snapshot names allow `[A-Za-z0-9_.:-]`; Warden keeps to that set (`warden_core::snapshot_tag`).
fn check_tag(tag: &str) -> Result<(), SnapshotError> {
    warden_core::snapshot_tag::check_tag(tag).map_err(|why| SnapshotError::Invalid {
        what: "tag",
        value: tag.to_string(),
        why,
    })
}

/// Snapshots of `jail`'s datasets (the jail dataset and its children), oldest first.
pub fn snapshots(
    runner: &dyn Runner,
    layout: &Layout,
    jail: &str,
) -> Result<Vec<Snapshot>, SnapshotError> {
    check_jail(jail)?;
    let ds = datasets::jail(layout, jail);
    let out = run(
        runner,
        &format!("list the snapshots of {jail}"),
        &[
            "zfs",
            "list",
            "-Hp",
            "-t",
            "snapshot",
            "-o",
            "name,used,creation",
            "-r",
            &ds,
        ],
    )?;
    let mut snaps = zfs::snapshots(&out.stdout)?;
    snaps.sort_by(|a, b| (a.creation, &a.name).cmp(&(b.creation, &b.name)));
    Ok(snaps)
}

/// `zfs snapshot -r POOL/PREFIX/jails/NAME@TAG` (default tag from the clock); returns the tag.
pub fn snapshot(
    runner: &dyn Runner,
    layout: &Layout,
    jail: &str,
    tag: Option<&str>,
) -> Result<String, SnapshotError> {
    check_jail(jail)?;
    let tag = match tag {
        Some(t) => t.to_string(),
        None => warden_core::snapshot_tag::default_tag(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        ),
    };
    check_tag(&tag)?;
    let ds = datasets::jail(layout, jail);
    let what = format!("snapshot {jail} as {tag}");
    run(
        runner,
        &what,
        &["zfs", "snapshot", "-r", &format!("{ds}@{tag}")],
    )?;
    // `zfs snapshot -r` covers `/root` too; the top dataset is the one every jail has (§1.3, §1.7).
    if !snapshots(runner, layout, jail)?
        .iter()
        .any(|s| s.dataset == ds && s.tag == tag)
    {
        return Err(SnapshotError::Unverified {
            what,
            check: format!("{ds}@{tag} is not listed"),
        });
    }
    Ok(tag)
}

/// The jail's dataset, once the jail name and the tag are acceptable.
fn checked_dataset(layout: &Layout, jail: &str, tag: &str) -> Result<String, SnapshotError> {
    check_jail(jail)?;
    check_tag(tag)?;
    Ok(datasets::jail(layout, jail))
}

/// Rolls `jail` back to `tag`: `zfs rollback -r` on the jail dataset and its `/root`, then checks that `tag` is
/// now the newest snapshot of both (rollback -r destroys later ones). The jail should be stopped first.
pub fn rollback(
    runner: &dyn Runner,
    layout: &Layout,
    jail: &str,
    tag: &str,
) -> Result<(), SnapshotError> {
    let ds = checked_dataset(layout, jail, tag)?;
    let what = format!("roll {jail} back to {tag}");
    let before = snapshots(runner, layout, jail)?;
    let targets: Vec<String> = [ds.clone(), format!("{ds}/root")]
        .into_iter()
        .filter(|d| before.iter().any(|s| &s.dataset == d && s.tag == tag))
        .collect();
    if !targets.contains(&ds) {
        return Err(SnapshotError::Invalid {
            what: "tag",
            value: tag.to_string(),
            why: format!("{ds}@{tag} does not exist"),
        });
    }
    for d in &targets {
        run(
            runner,
            &what,
            &["zfs", "rollback", "-r", &format!("{d}@{tag}")],
        )?;
    }
    let after = snapshots(runner, layout, jail)?;
    for d in &targets {
        let at = before
            .iter()
            .find(|s| &s.dataset == d && s.tag == tag)
            .map(|s| s.creation)
            .unwrap_or(0);
        let later: Vec<&str> = after
            .iter()
            .filter(|s| &s.dataset == d && s.tag != tag && s.creation > at)
            .map(|s| s.tag.as_str())
            .collect();
        if !after.iter().any(|s| &s.dataset == d && s.tag == tag) || !later.is_empty() {
            return Err(SnapshotError::Unverified {
                what,
                check: format!("{d}@{tag} is missing or later snapshots remain: {later:?}"),
            });
        }
    }
    Ok(())
}

/// Destroys snapshot `tag` of `jail`: `zfs destroy -r POOL/PREFIX/jails/NAME@TAG` (the jail dataset's and its
/// `/root`'s, as `zfs snapshot -r` took them), then checks with `zfs list` that no dataset of the jail keeps it.
/// An unknown tag is bad input naming `warden snapshots JAIL`.
pub fn destroy(
    runner: &dyn Runner,
    layout: &Layout,
    jail: &str,
    tag: &str,
) -> Result<(), SnapshotError> {
    let ds = checked_dataset(layout, jail, tag)?;
    if !snapshots(runner, layout, jail)?
        .iter()
        .any(|s| s.dataset == ds && s.tag == tag)
    {
        return Err(SnapshotError::Invalid {
            what: "tag",
            value: tag.to_string(),
            why: format!(
                "{ds}@{tag} does not exist\n  fix: `warden snapshots {jail}` lists the jail's snapshots"
            ),
        });
    }
    let what = format!("destroy snapshot {tag} of {jail}");
    run(
        runner,
        &what,
        &["zfs", "destroy", "-r", &format!("{ds}@{tag}")],
    )?;
    let left: Vec<String> = snapshots(runner, layout, jail)?
        .into_iter()
        .filter(|s| s.tag == tag)
        .map(|s| s.name)
        .collect();
    if !left.is_empty() {
        return Err(SnapshotError::Unverified {
            what,
            check: format!("{} still listed", left.join(", ")),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_names_are_checked() {
        assert!(check_tag("warden-20261123-173405").is_ok());
        assert!(
            check_tag("a b").is_err()
                && check_tag("").is_err()
                && check_tag("-x").is_err()
                && check_tag("a@b").is_err()
        );
        assert!(check_jail("clawdiedb").is_ok() && check_jail("clawdie-db").is_err());
    }
}
