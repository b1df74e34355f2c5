//! `warden snapshot|rollback|snapshots JAIL` (and `snapshots JAIL --delete TAG`) on the Linux backend (`warden_linux::snapshot`): copies of a jail's
//! writable layer, taken and restored with the jail stopped. A layout service jail that was running is started
//! again with its services: the setup step of its role (`db`: PostgreSQL, `git`: nginx and fcgiwrap…) is
//! applied, journaled like any setup.

use std::path::Path;
use std::time::Duration;

use warden_core::snapshot_tag;
use warden_core::{Layout, Step};
use warden_linux::snapshot::{self, Done};

use crate::cli::{BackendName, Global, SnapshotCommand};
use crate::commands::jail::{exit_for, CGROUP_ROOT};
use crate::context;
use crate::exit::Exit;

/// How long a jail's processes get to exit before SIGKILL (as `warden jail stop`'s default).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs one snapshot verb against the Linux jails of the state directory.
pub fn run(global: &Global, command: &SnapshotCommand) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    let state_dir = context::state_dir(&layout, BackendName::Linux);
    let cgroups = Path::new(CGROUP_ROOT);
    match command {
        SnapshotCommand::Snapshot { jail, tag, .. } => {
            let tag = tag.clone().unwrap_or_else(|| {
                snapshot_tag::default_tag(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0),
                )
            });
            let done =
                snapshot::take(&state_dir, jail, &tag, cgroups, STOP_TIMEOUT).map_err(exit_for)?;
            eprintln!(
                "warden: snapshot {jail}@{tag} taken ({} bytes of {}/{}){}",
                done.snapshot.bytes,
                jail,
                done.snapshot.layer,
                restarted_text(&done)
            );
            restart_services(global, &layout, jail, &done)?;
            println!("{tag}");
            Ok(())
        }
        SnapshotCommand::Rollback { jail, tag, .. } => {
            let done = snapshot::rollback(&state_dir, jail, tag.as_deref(), cgroups, STOP_TIMEOUT)
                .map_err(exit_for)?;
            eprintln!(
                "warden: rolled {jail} back to {} (taken {} UTC; the snapshots are kept){}",
                done.snapshot.tag,
                snapshot_tag::utc_text(done.snapshot.created),
                restarted_text(&done)
            );
            restart_services(global, &layout, jail, &done)
        }
        SnapshotCommand::Snapshots {
            jail,
            delete: Some(tag),
            ..
        } => {
            let gone = snapshot::delete(&state_dir, jail, tag).map_err(exit_for)?;
            eprintln!(
                "warden: snapshot {jail}@{tag} deleted ({} bytes)",
                gone.bytes
            );
            Ok(())
        }
        SnapshotCommand::Snapshots { jail, json, .. } => {
            let snaps = snapshot::list(&state_dir, jail).map_err(exit_for)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&snaps).unwrap_or_default()
                );
                return Ok(());
            }
            println!("{:<32} {:<20} SIZE", "TAG", "CREATED (UTC)");
            for s in &snaps {
                println!(
                    "{:<32} {:<20} {}",
                    s.tag,
                    snapshot_tag::utc_text(s.created),
                    s.bytes
                );
            }
            Ok(())
        }
    }
}

fn restarted_text(done: &Done) -> &'static str {
    if done.restarted {
        "; the jail was stopped meanwhile and is running again"
    } else {
        ""
    }
}

/// Starts the services of a layout service jail that was restarted: the setup step of its role, if it has one.
fn restart_services(global: &Global, layout: &Layout, jail: &str, done: &Done) -> Result<(), Exit> {
    if !done.restarted {
        return Ok(());
    }
    let Some(step) = layout
        .jails()
        .find(|s| s.jail == jail)
        .and_then(|s| Step::parse(s.role.name()))
    else {
        return Ok(());
    };
    eprintln!(
        "warden: starting the services of {jail} (setup step {})",
        step.name()
    );
    crate::commands::plan::setup_steps(global, &[step]).map_err(|e| {
        Exit::failure(format!(
            "{}\n  the jail runs, but its services did not start\n  fix: `warden setup --backend linux --step {}`",
            e.message,
            step.name()
        ))
    })
}
