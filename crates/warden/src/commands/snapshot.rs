//! `warden snapshot|rollback|snapshots JAIL` (and `snapshots JAIL --delete TAG`): on the bastille backend ZFS snapshots of FreeBSD service jails
//! (`warden_freebsd::snapshot`), through the same host runner the backend uses; on the Linux backend copies of a
//! jail's writable layer (`commands::snapshot_linux`).

use warden_core::Layout;
use warden_freebsd::SnapshotError;
use warden_host::Runner;

use crate::backends;
use crate::cli::{BackendName, Global, SnapshotCommand};
use crate::context;
use crate::exit::Exit;

/// Runs one snapshot verb on the backend it names (default: this OS's).
pub fn run(global: &Global, command: &SnapshotCommand) -> Result<(), Exit> {
    let backend = match command {
        SnapshotCommand::Snapshot { backend, .. }
        | SnapshotCommand::Rollback { backend, .. }
        | SnapshotCommand::Snapshots { backend, .. } => {
            backend.unwrap_or_else(context::default_backend)
        }
    };
    match backend {
        BackendName::Linux => crate::commands::snapshot_linux::run(global, command),
        BackendName::Bastille => bastille(global, command),
    }
}

/// The bastille backend's verbs: `zfs` on the FreeBSD host (or fakebsd's).
fn bastille(global: &Global, command: &SnapshotCommand) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    if !backends::on_path("zfs") {
        return Err(Exit::usage(
            "jail snapshots need ZFS, and zfs is not on PATH\n  fix: run on the FreeBSD host (snapshots are a feature of the bastille backend)",
        ));
    }
    let state_dir = context::state_dir(&layout, BackendName::Bastille);
    let runner = backends::bastille_runner(&state_dir);
    match command {
        SnapshotCommand::Snapshot { jail, tag, .. } => {
            check_jail(&runner, &layout, jail)?;
            let tag = warden_freebsd::snapshot(&runner, &layout, jail, tag.as_deref())
                .map_err(exit_for)?;
            eprintln!("warden: snapshot {jail}@{tag} taken");
            println!("{tag}");
            Ok(())
        }
        SnapshotCommand::Rollback { jail, tag, .. } => {
            check_jail(&runner, &layout, jail)?;
            if is_running(&runner, jail) {
                return Err(Exit::usage(format!(
                    "jail {jail} is running; rolling back files under running services is unsafe\n  fix: `bastille stop {jail}`, roll back, then `bastille start {jail}`"
                )));
            }
            let tag = match tag {
                Some(t) => t.clone(),
                None => newest_tag(&runner, &layout, jail)?,
            };
            warden_freebsd::rollback(&runner, &layout, jail, &tag).map_err(exit_for)?;
            eprintln!("warden: rolled {jail} back to {tag} (later snapshots are destroyed)");
            Ok(())
        }
        SnapshotCommand::Snapshots {
            jail,
            delete: Some(tag),
            ..
        } => {
            check_jail(&runner, &layout, jail)?;
            warden_freebsd::destroy(&runner, &layout, jail, tag).map_err(exit_for)?;
            eprintln!("warden: snapshot {jail}@{tag} destroyed");
            Ok(())
        }
        SnapshotCommand::Snapshots { jail, json, .. } => {
            check_jail(&runner, &layout, jail)?;
            let snaps = warden_freebsd::snapshots(&runner, &layout, jail).map_err(exit_for)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&snaps).unwrap_or_default()
                );
                return Ok(());
            }
            let top = warden_freebsd::datasets::jail(&layout, jail);
            println!("{:<32} {:<20} USED", "TAG", "CREATED (UTC)");
            for s in snaps.iter().filter(|s| s.dataset == top) {
                // The jail dataset and its /root child share each tag; USED counts both.
                let used: u64 = snaps
                    .iter()
                    .filter(|o| o.tag == s.tag)
                    .map(|o| o.used)
                    .sum();
                println!(
                    "{:<32} {:<20} {used}",
                    s.tag,
                    warden_core::snapshot_tag::utc_text(s.creation)
                );
            }
            Ok(())
        }
    }
}

/// Bad jail names and tags are usage errors (nothing changed); everything else is a failure.
fn exit_for(e: SnapshotError) -> Exit {
    match e {
        SnapshotError::Invalid { .. } => Exit::usage(e.to_string()),
        other => Exit::failure(other.to_string()),
    }
}

/// The jails that have a dataset under `POOL/PREFIX/jails` (the ones that can be snapshotted).
fn jails(runner: &dyn Runner, layout: &Layout) -> Result<Vec<String>, Exit> {
    let parent = format!("{}/jails", warden_freebsd::datasets::root(layout));
    let argv: Vec<String> = ["zfs", "list", "-H", "-o", "name", "-d", "1", &parent]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = runner
        .run(&argv)
        .map_err(|e| Exit::failure(format!("failed to list the jails: {e}")))?;
    if !out.ok() {
        // No jails dataset yet: a host without jails.
        return Ok(Vec::new());
    }
    let prefix = format!("{parent}/");
    Ok(warden_freebsd::parse::zfs::names(&out.stdout)
        .into_iter()
        .filter_map(|n| n.strip_prefix(&prefix).map(str::to_string))
        .collect())
}

/// A jail that does not exist is bad input: exit 2 naming the jails that do.
fn check_jail(runner: &dyn Runner, layout: &Layout, jail: &str) -> Result<(), Exit> {
    let all = jails(runner, layout)?;
    if all.iter().any(|j| j == jail) {
        return Ok(());
    }
    let known = if all.is_empty() {
        "there are no jails yet".to_string()
    } else {
        format!("the jails are: {}", all.join(", "))
    };
    Err(Exit::usage(format!(
        "no jail {jail:?}: {known}\n  fix: name one of them (`warden layout` lists the service jails; `warden setup --backend bastille` creates them)"
    )))
}

fn is_running(runner: &dyn Runner, jail: &str) -> bool {
    let argv: Vec<String> = ["jls", "-j", jail, "jid"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    runner.run(&argv).is_ok_and(|o| o.ok())
}

/// The newest snapshot of the jail's dataset, for `rollback` without a tag.
fn newest_tag(runner: &dyn Runner, layout: &Layout, jail: &str) -> Result<String, Exit> {
    let top = warden_freebsd::datasets::jail(layout, jail);
    let snaps = warden_freebsd::snapshots(runner, layout, jail).map_err(exit_for)?;
    snaps
        .iter()
        .rev()
        .find(|s| s.dataset == top)
        .map(|s| s.tag.clone())
        .ok_or_else(|| {
            Exit::usage(format!(
                "jail {jail} has no snapshots to roll back to\n  fix: take one first with `warden snapshot {jail}`"
            ))
        })
}
