//! A persistent jail's writable layer — what is the jail's own and what a snapshot copies: a thin jail's overlay
//! `upper` directory, a thick jail's `root` — and the crash-safe replacement of it that a rollback does.
//!
//! The replacement is journaled by directory names inside `jails/NAME/`, each change one atomic rename:
//! 1. [`stage`]: the new layer is copied into `.rollback.new` (a crash leaves a partial copy beside an intact
//!    layer: [`recover`] deletes it);
//! 2. [`swap`]: the layer is renamed to `.rollback.old`, then `.rollback.new` to the layer — the commit point (a
//!    crash between the two renames leaves no layer: [`recover`] renames `.rollback.old` back);
//! 3. [`finish`]: `.rollback.old` is deleted (a crash leaves it beside the new layer: [`recover`] deletes it).
//!
//! [`undo`] turns a committed swap back (layer → `.rollback.new`, `.rollback.old` → layer), so a crash in it too
//! ends in the old layer. So whatever the crash, [`recover`] leaves the old layer or the new one, never a mix.

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};
use crate::spec::Shape;

/// The staged new layer.
const NEW: &str = ".rollback.new";
/// The previous layer while a swap is not finished.
const OLD: &str = ".rollback.old";

/// The directory under `jails/NAME/` that holds the jail's own files.
pub fn layer_name(shape: Shape) -> &'static str {
    match shape {
        Shape::Thin => "upper",
        Shape::Thick => "root",
    }
}

/// Brings `jail_dir` to the old or the new layer after an interrupted replacement; what it did, if anything.
/// Callers hold the jail lock, and the jail is stopped.
pub fn recover(jail_dir: &Path, layer: &str) -> Result<Option<&'static str>> {
    let (cur, new, old) = (jail_dir.join(layer), jail_dir.join(NEW), jail_dir.join(OLD));
    let present = |p: &Path| fs::symlink_metadata(p).is_ok();
    if !present(&new) && !present(&old) {
        return Ok(None);
    }
    if present(&old) && !present(&cur) {
        // Cut off before the commit (or during an undo): the old layer goes back.
        rename(&old, &cur)?;
        remove(&new)?;
        return Ok(Some(
            "put the previous layer back (the replacement had not finished)",
        ));
    }
    if present(&old) {
        // Committed: only the removal of the previous layer was left.
        remove(&old)?;
        remove(&new)?;
        return Ok(Some(
            "removed the previous layer (the replacement had finished)",
        ));
    }
    // A staged copy that was never swapped in.
    remove(&new)?;
    Ok(Some("removed an unfinished copy"))
}

/// Step 1: copies `from` into `.rollback.new` (replacing a leftover).
pub fn stage(jail_dir: &Path, from: &Path) -> Result<()> {
    let new = jail_dir.join(NEW);
    remove(&new)?;
    if let Err(e) = copy_tree(from, &new) {
        let _ = remove(&new);
        return Err(e);
    }
    Ok(())
}

/// Discards a staged copy that will not be swapped in.
pub fn discard(jail_dir: &Path) -> Result<()> {
    remove(&jail_dir.join(NEW))
}

/// Step 2: the staged copy becomes the layer; the previous layer waits in `.rollback.old`.
pub fn swap(jail_dir: &Path, layer: &str) -> Result<()> {
    let (cur, new, old) = (jail_dir.join(layer), jail_dir.join(NEW), jail_dir.join(OLD));
    rename(&cur, &old)?;
    if let Err(e) = rename(&new, &cur) {
        rename(&old, &cur)?;
        return Err(e);
    }
    Ok(())
}

/// Turns a swap back: the previous layer is the layer again and the copy is gone.
pub fn undo(jail_dir: &Path, layer: &str) -> Result<()> {
    let (cur, new, old) = (jail_dir.join(layer), jail_dir.join(NEW), jail_dir.join(OLD));
    remove(&new)?;
    rename(&cur, &new)?;
    rename(&old, &cur)?;
    remove(&new)
}

/// Step 3: the previous layer is deleted.
pub fn finish(jail_dir: &Path) -> Result<()> {
    remove(&jail_dir.join(OLD))
}

/// `cp -a --reflink=auto SRC/. DST`: a full copy keeping owners, modes, times, hard links, special files (an
/// overlay's whiteouts) and extended attributes (its opaque directories), sharing blocks where the file system
/// can (btrfs, XFS).
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir_all(dst).map_err(|e| Error::io("create directory", dst, e))?;
    let out = std::process::Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(format!("{}/.", src.display()))
        .arg(dst)
        .output()
        .map_err(|e| Error::io("run cp -a from", src, e))?;
    if !out.status.success() {
        return Err(Error::Setup {
            name: "copy".into(),
            message: format!(
                "cp -a {} {} failed: {}",
                src.display(),
                dst.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// The bytes of the files under `dir` (their lengths; symbolic links are not followed).
pub fn tree_bytes(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| Error::io("rename", from, e))
}

/// Removes a directory tree if it is there.
fn remove(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_of(dir: &Path) -> String {
        fs::read_to_string(dir.join("upper/data")).unwrap_or_else(|_| "none".into())
    }

    /// Step `i` of a replacement, swap's two renames taken one at a time; a crash may follow any of them.
    const STEPS: usize = 4;
    fn step(i: usize, dir: &Path, snap: &Path) -> Result<()> {
        match i {
            0 => stage(dir, snap),
            1 => rename(&dir.join("upper"), &dir.join(OLD)),
            2 => rename(&dir.join(NEW), &dir.join("upper")),
            _ => finish(dir),
        }
    }

    #[test]
    fn a_crash_after_any_step_leaves_the_old_or_the_new_layer() {
        for crash_after in 0..=STEPS {
            let t = tempfile::tempdir().unwrap();
            let (dir, snap) = (t.path().join("jail"), t.path().join("snap"));
            fs::create_dir_all(dir.join("upper/sub")).unwrap();
            fs::write(dir.join("upper/data"), "old").unwrap();
            fs::create_dir_all(&snap).unwrap();
            fs::write(snap.join("data"), "new").unwrap();
            for i in 0..crash_after {
                step(i, &dir, &snap).unwrap();
            }
            recover(&dir, "upper").unwrap();
            let got = layer_of(&dir);
            let want = if crash_after >= 3 { "new" } else { "old" };
            assert_eq!(got, want, "crash after {crash_after} steps");
            // Nothing of the other layer is left, and recovery is idempotent.
            assert!(!dir.join(NEW).exists() && !dir.join(OLD).exists());
            assert_eq!(dir.join("upper/sub").exists(), want == "old");
            assert_eq!(recover(&dir, "upper").unwrap(), None);
        }
    }

    #[test]
    fn undo_and_a_crash_inside_it_restore_the_old_layer() {
        for crash_in_undo in [false, true] {
            let t = tempfile::tempdir().unwrap();
            let (dir, snap) = (t.path().join("jail"), t.path().join("snap"));
            fs::create_dir_all(dir.join("upper")).unwrap();
            fs::write(dir.join("upper/data"), "old").unwrap();
            fs::create_dir_all(&snap).unwrap();
            fs::write(snap.join("data"), "new").unwrap();
            stage(&dir, &snap).unwrap();
            swap(&dir, "upper").unwrap();
            assert_eq!(layer_of(&dir), "new");
            if crash_in_undo {
                // undo's first rename only: the layer is gone, the previous one waits.
                rename(&dir.join("upper"), &dir.join(NEW)).unwrap();
                assert_eq!(
                    recover(&dir, "upper").unwrap(),
                    Some("put the previous layer back (the replacement had not finished)")
                );
            } else {
                undo(&dir, "upper").unwrap();
            }
            assert_eq!(layer_of(&dir), "old");
            assert!(!dir.join(NEW).exists() && !dir.join(OLD).exists());
        }
    }

    #[test]
    fn tree_bytes_counts_file_lengths() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("a/b")).unwrap();
        fs::write(t.path().join("a/b/x"), vec![0u8; 1000]).unwrap();
        fs::write(t.path().join("y"), vec![0u8; 24]).unwrap();
        std::os::unix::fs::symlink("/usr", t.path().join("link")).unwrap();
        assert_eq!(tree_bytes(t.path()), 1024);
    }
}
