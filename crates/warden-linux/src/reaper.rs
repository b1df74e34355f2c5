//! The reaper: cleans what a killed warden (or helper) left behind, using the worker records
//! written before any resource was created.
//!
//! Mounts and namespaces need no reaping: they belong to the worker's init, which dies with its
//! helper (`PR_SET_PDEATHSIG`), and the kernel drops them with it. What can outlive a killed
//! helper is host-side state: cgroup directories, a veth whose removal was interrupted, the
//! record itself, and lease files that still name a dead holder.

use std::path::Path;
use std::time::Duration;

use crate::cgroup;
use crate::error::{Error, Result};
use crate::lease;
use crate::netlink::Netlink;
use crate::record::{self, Record};
use crate::veth;

/// Cleans every worker whose owning helper is dead, and every lease whose holder is dead.
/// Returns one line per thing cleaned, e.g. `w101: cgroup /sys/fs/cgroup/memory/warden/w101`.
pub fn reap_orphans(state_dir: &Path) -> Result<Vec<String>> {
    let mut cleaned = Vec::new();
    for name in record::list(state_dir) {
        let path = record::record_path(state_dir, &name);
        let rec = match Record::load(&path) {
            Ok(r) => r,
            Err(_) => {
                // A record torn by a crash while it was being written: nothing was created
                // after it, since records are written first.
                let _ = std::fs::remove_file(&path);
                cleaned.push(format!("{name}: unreadable record {}", path.display()));
                continue;
            }
        };
        if rec.owner_alive() {
            continue;
        }
        cleaned.extend(reap_record(state_dir, &rec)?);
    }
    cleaned.extend(lease::reap_dead(state_dir));
    Ok(cleaned)
}

/// Releases what one record holds (its owner is known to be dead) and removes the record.
pub fn reap_record(state_dir: &Path, rec: &Record) -> Result<Vec<String>> {
    let mut cleaned = Vec::new();
    let name = &rec.name;
    if let (Some(pid), Some(start)) = (rec.init_pid, rec.init_start) {
        if record::is_alive(pid, start) {
            // The start time check makes sure it is still the worker's init.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            cleaned.push(format!("{name}: killed init pid {pid}"));
        }
    }
    // Cgroups only under the name's host-wide claim: if a live helper holds it (another
    // state directory's worker of the same name, or the helper reclaiming this name, which
    // replaces leftovers itself), the directories are not ours to remove.
    if let Some(claim) = cgroup::claim(name)? {
        for dir in &rec.cgroups {
            if dir.exists() {
                cgroup::remove_dir(dir)?;
                cleaned.push(format!("{name}: cgroup {}", dir.display()));
            }
        }
        claim.release();
    }
    if let Some(host) = &rec.veth {
        let existed = veth::in_netns(rec.host_netns.as_deref(), || {
            let mut nl = Netlink::open()?;
            if nl.link_index(host)?.is_none() {
                return Ok(false);
            }
            // The kernel may still be destroying it with the worker's namespace: wait briefly.
            veth::wait_gone(&mut nl, host, Duration::from_millis(500))?;
            Ok(true)
        });
        match existed {
            Ok(true) => cleaned.push(format!("{name}: veth {host}")),
            Ok(false) => {}
            // The namespace holding the bridge is gone, and the veth with it.
            Err(Error::Io { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    for dir in &rec.dirs {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| Error::io("remove", dir, e))?;
            cleaned.push(format!("{name}: directory {}", dir.display()));
        }
    }
    Record::remove(state_dir, name)?;
    cleaned.push(format!("{name}: record"));
    Ok(cleaned)
}
