//! Snapshots of persistent jails: a copy of the jail's writable layer ([`crate::jail_layer`]: a thin jail's
//! overlay `upper`, a thick jail's `root`) taken while the jail is stopped, kept in
//! `<state_dir>/snapshots/NAME/TAG/` (`layer/` and `snapshot.json`). Whatever the release, the layer is all a jail
//! writes, so a copy of it is the jail's state.
//!
//! Both operations hold the jail lock throughout, stop a running jail (so its files are at rest: PostgreSQL has
//! shut down) and start it again afterwards. A snapshot is built in `.TAG.taking` and renamed into place; a
//! rollback stages the copy before it stops the jail, then replaces the layer as `jail_layer` journals it, so a
//! crash leaves the old layer or the new one, and a rollback whose jail does not start again puts the old layer
//! back.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::jail::{self, Jail};
use crate::jail_layer;

/// `snapshot.json`: one snapshot of one jail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The jail.
    pub jail: String,
    /// Its name among the jail's snapshots.
    pub tag: String,
    /// Unix time it was taken.
    pub created: u64,
    /// The bytes of its files.
    pub bytes: u64,
    /// The layer it copies (`upper` or `root`).
    pub layer: String,
}

/// What a snapshot or a rollback did.
#[derive(Debug, Clone)]
pub struct Done {
    /// The snapshot taken, or rolled back to.
    pub snapshot: Snapshot,
    /// Whether the jail was running, so was stopped and started again.
    pub restarted: bool,
}

/// `<state_dir>/snapshots`.
pub fn snapshots_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("snapshots")
}

fn jail_snapshots(state_dir: &Path, jail: &str) -> PathBuf {
    snapshots_dir(state_dir).join(jail)
}

fn input(what: &'static str, name: &str, why: String) -> Error {
    Error::Input {
        what,
        name: name.to_string(),
        why,
    }
}

/// Loads jail `name`, or says which jails exist.
fn existing_jail(state_dir: &Path, name: &str) -> Result<Jail> {
    jail::validate_jail_name(name)?;
    if !jail::jail_dir(state_dir, name).join("jail.json").exists() {
        let all = jail::names(state_dir);
        let known = if all.is_empty() {
            "there are no jails yet".to_string()
        } else {
            format!("the jails are: {}", all.join(", "))
        };
        return Err(input(
            "no jail",
            name,
            format!("{known}\n  fix: name one of them (`warden jail list`); `warden snapshots JAIL` lists a jail's snapshots"),
        ));
    }
    jail::load(state_dir, name)
}

fn check_tag(tag: &str) -> Result<()> {
    warden_core::snapshot_tag::check_tag(tag).map_err(|why| {
        input(
            "invalid snapshot tag",
            tag,
            format!("{why}\n  fix: e.g. `before-upgrade`"),
        )
    })
}

/// The snapshots of jail `name`, oldest first.
pub fn list(state_dir: &Path, name: &str) -> Result<Vec<Snapshot>> {
    existing_jail(state_dir, name)?;
    Ok(read_all(state_dir, name))
}

/// Every complete snapshot of `name` (names with a leading dot are unfinished), oldest first.
fn read_all(state_dir: &Path, name: &str) -> Vec<Snapshot> {
    let Ok(rd) = fs::read_dir(jail_snapshots(state_dir, name)) else {
        return Vec::new();
    };
    let mut out: Vec<Snapshot> = rd
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| fs::read(e.path().join("snapshot.json")).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a: &Snapshot, b: &Snapshot| (a.created, &a.tag).cmp(&(b.created, &b.tag)));
    out
}

/// The snapshot `tag` of `name` (the newest when `None`), or an error naming `warden snapshots NAME`.
fn find(state_dir: &Path, name: &str, tag: Option<&str>) -> Result<Snapshot> {
    let all = read_all(state_dir, name);
    let found = match tag {
        Some(t) => all.iter().find(|s| s.tag == t),
        None => all.last(),
    };
    found.cloned().ok_or_else(|| match tag {
        Some(t) => input(
            "no snapshot",
            t,
            format!("jail {name} has {}\n  fix: `warden snapshots {name}` lists them", count(all.len())),
        ),
        None => input(
            "no snapshot of jail",
            name,
            format!("there is nothing to roll back to\n  fix: take one first with `warden snapshot {name}`; `warden snapshots {name}` lists them"),
        ),
    })
}

fn count(n: usize) -> String {
    match n {
        0 => "no snapshots".into(),
        1 => "one snapshot".into(),
        n => format!("{n} snapshots"),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Removes what interrupted snapshots and deletions of `name` left (`.TAG.taking`, `.TAG.deleting`).
fn clean_taking(state_dir: &Path, name: &str) -> Result<()> {
    let Ok(rd) = fs::read_dir(jail_snapshots(state_dir, name)) else {
        return Ok(());
    };
    for e in rd.filter_map(|e| e.ok()) {
        let file = e.file_name().to_string_lossy().into_owned();
        if file.ends_with(".taking") || file.ends_with(".deleting") {
            fs::remove_dir_all(e.path()).map_err(|err| Error::io("remove", e.path(), err))?;
        }
    }
    Ok(())
}

/// Takes snapshot `tag` of jail `name`: stops it if it runs (a PostgreSQL in it shut down cleanly, see
/// [`jail::stop`]), copies its layer, starts it again.
pub fn take(
    state_dir: &Path,
    name: &str,
    tag: &str,
    cgroup_root: &Path,
    timeout: Duration,
) -> Result<Done> {
    check_tag(tag)?;
    let lock = jail::lock(state_dir)?;
    let jail = existing_jail(state_dir, name)?;
    if let Some(s) = read_all(state_dir, name).into_iter().find(|s| s.tag == tag) {
        return Err(input(
            "snapshot",
            tag,
            format!(
                "jail {name} has a snapshot of that name already (taken {} UTC)\n  fix: choose another tag; `warden snapshots {name}` lists them",
                warden_core::snapshot_tag::utc_text(s.created)
            ),
        ));
    }
    clean_taking(state_dir, name)?;
    let layer = jail_layer::layer_name(jail.shape);
    let dir = jail::jail_dir(state_dir, name);
    jail_layer::recover(&dir, layer)?;
    let restarted = jail::stop_held(&lock, state_dir, name, timeout)?;
    let copied = copy_layer(state_dir, name, tag, &dir.join(layer), layer);
    if restarted {
        jail::start_held(&lock, state_dir, name, cgroup_root).map_err(|e| {
            let taken = if copied.is_ok() { "was taken" } else { "failed" };
            Error::Refused {
                op: "start again jail",
                name: name.to_string(),
                why: format!(
                    "the snapshot {taken}, then the jail did not start: {}\n  fix: `warden jail start {name}`",
                    crate::error_chain(&e)
                ),
            }
        })?;
    }
    Ok(Done {
        snapshot: copied?,
        restarted,
    })
}

/// Copies `layer_dir` into `snapshots/NAME/.TAG.taking`, writes its `snapshot.json` and renames it to `TAG`.
fn copy_layer(
    state_dir: &Path,
    name: &str,
    tag: &str,
    layer_dir: &Path,
    layer: &str,
) -> Result<Snapshot> {
    let parent = jail_snapshots(state_dir, name);
    let taking = parent.join(format!(".{tag}.taking"));
    let copy = || -> Result<Snapshot> {
        jail_layer::copy_tree(layer_dir, &taking.join("layer"))?;
        let snap = Snapshot {
            jail: name.to_string(),
            tag: tag.to_string(),
            created: now(),
            bytes: jail_layer::tree_bytes(&taking.join("layer")),
            layer: layer.to_string(),
        };
        let body = serde_json::to_vec_pretty(&snap).map_err(|e| Error::Json {
            op: "encode snapshot.json",
            source: e,
        })?;
        let meta = taking.join("snapshot.json");
        fs::write(&meta, body).map_err(|e| Error::io("write", &meta, e))?;
        let done = parent.join(tag);
        fs::rename(&taking, &done).map_err(|e| Error::io("rename into place", &done, e))?;
        Ok(snap)
    };
    copy().inspect_err(|_| {
        let _ = fs::remove_dir_all(&taking);
    })
}

/// Deletes snapshot `tag` of jail `name`: renamed to `.TAG.deleting` (out of the list at once, so a crash
/// leaves it listed whole or not at all), then removed. Holds the jail lock like a snapshot or a rollback, so
/// one under way (a rollback copies from the snapshot while it stages) finishes before the snapshot goes.
pub fn delete(state_dir: &Path, name: &str, tag: &str) -> Result<Snapshot> {
    check_tag(tag)?;
    let _lock = jail::lock(state_dir)?;
    existing_jail(state_dir, name)?;
    let snapshot = find(state_dir, name, Some(tag))?;
    let parent = jail_snapshots(state_dir, name);
    let doomed = parent.join(format!(".{tag}.deleting"));
    let from = parent.join(tag);
    fs::rename(&from, &doomed).map_err(|e| Error::io("rename aside", &from, e))?;
    clean_taking(state_dir, name)?;
    Ok(snapshot)
}

/// Rolls jail `name` back to snapshot `tag` (the newest when `None`): its layer becomes a copy of the snapshot's
/// (the snapshot stays, as do later ones). A running jail is stopped (once the copy is staged) and started
/// again; if it does not start, the old layer is put back and started.
pub fn rollback(
    state_dir: &Path,
    name: &str,
    tag: Option<&str>,
    cgroup_root: &Path,
    timeout: Duration,
) -> Result<Done> {
    if let Some(t) = tag {
        check_tag(t)?;
    }
    let lock = jail::lock(state_dir)?;
    let jail = existing_jail(state_dir, name)?;
    let snapshot = find(state_dir, name, tag)?;
    let layer = jail_layer::layer_name(jail.shape);
    if snapshot.layer != layer {
        return Err(Error::Refused {
            op: "roll back jail",
            name: name.to_string(),
            why: format!(
                "snapshot {} copies a {} layer and the jail's is {layer} (the jail was recreated with another shape)\n  fix: roll back to a snapshot taken since; `warden snapshots {name}` lists them",
                snapshot.tag, snapshot.layer
            ),
        });
    }
    let dir = jail::jail_dir(state_dir, name);
    jail_layer::recover(&dir, layer)?;
    // Copied while the jail still runs: it is stopped only for the renames.
    let from = jail_snapshots(state_dir, name)
        .join(&snapshot.tag)
        .join("layer");
    jail_layer::stage(&dir, &from)?;
    let restarted = match jail::stop_held(&lock, state_dir, name, timeout) {
        Ok(r) => r,
        Err(e) => {
            jail_layer::discard(&dir)?;
            return Err(e);
        }
    };
    jail_layer::swap(&dir, layer)?;
    if restarted {
        if let Err(e) = jail::start_held(&lock, state_dir, name, cgroup_root) {
            // A half-started jail holds nothing: stop it (reaping what a dead start left), then the old layer.
            jail::stop_held(&lock, state_dir, name, timeout)?;
            jail_layer::undo(&dir, layer)?;
            let again = jail::start_held(&lock, state_dir, name, cgroup_root)
                .map(|_| "started again".to_string())
                .unwrap_or_else(|e2| {
                    format!("it did not start either: {}", crate::error_chain(&e2))
                });
            return Err(Error::Refused {
                op: "roll back jail",
                name: name.to_string(),
                why: format!(
                    "on snapshot {} the jail did not start ({}); its previous files are back and {again}\n  fix: see {}",
                    snapshot.tag,
                    crate::error_chain(&e),
                    dir.join("console.log").display()
                ),
            });
        }
    }
    jail_layer::finish(&dir)?;
    Ok(Done {
        snapshot,
        restarted,
    })
}
