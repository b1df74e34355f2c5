//! ZFS dataset and directory names of the Bastille layout (reference/bastille.md §1.7).

use warden_core::Layout;

/// `POOL/PREFIX`, the root of Bastille's datasets.
pub fn root(layout: &Layout) -> String {
    format!(
        "{}/{}",
        layout.bastille.zfs_pool, layout.bastille.zfs_prefix
    )
}

/// `POOL/PREFIX/jails/NAME`.
pub fn jail(layout: &Layout, name: &str) -> String {
    format!("{}/jails/{name}", root(layout))
}

/// `POOL/PREFIX/releases/REL`.
pub fn release(layout: &Layout, release: &str) -> String {
    format!("{}/releases/{release}", root(layout))
}

/// `POOL/PREFIX/workers/NAME`: Warden's own child of the prefix, so Bastille never lists workers as jails.
pub fn worker(layout: &Layout, name: &str) -> String {
    format!("{}/workers/{name}", root(layout))
}

/// The snapshot worker clones start from.
pub fn worker_template(layout: &Layout, release: &str) -> String {
    warden_core::bastille_agent::worker_template(layout, release)
}

/// `bastille_jailsdir` as Warden's bastille.conf sets it.
pub fn jails_dir(layout: &Layout) -> String {
    format!("{}/jails", layout.bastille.prefix)
}

/// `bastille_releasesdir` as Warden's bastille.conf sets it.
pub fn releases_dir(layout: &Layout) -> String {
    format!("{}/releases", layout.bastille.prefix)
}

/// Where a worker's clone is mounted (children inherit the prefix's mountpoint, §1.7).
pub fn worker_dir(layout: &Layout, name: &str) -> String {
    format!("{}/workers/{name}", layout.bastille.prefix)
}
