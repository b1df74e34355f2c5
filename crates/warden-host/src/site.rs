//! A vhost's releases on disk, for `warden site deploy` on both backends: `DIR/releases/<id>` holds one
//! complete copy of a site, `DIR/current` is a relative symlink to one of them (so it resolves the same on the
//! host and inside the cms jail). A copy is made under `<id>.partial` and renamed when complete; the link is
//! replaced by renaming a new link over it (rename(2) is atomic), so a request never sees a half copy.
//! Everything nginx's workers read is made world-readable (dirs 0755, files 0644 or 0755).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use warden_core::cms;

/// Why a release operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// A file operation failed.
    #[error("failed to {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The directory to publish is not usable.
    #[error("{0}")]
    Source(String),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SiteError + 'a {
    move |source| SiteError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// `DIR/releases`.
pub fn releases_dir(vhost: &Path) -> PathBuf {
    vhost.join("releases")
}

/// The release `current` names, if the link exists.
pub fn current(vhost: &Path) -> Option<String> {
    let target = fs::read_link(vhost.join("current")).ok()?;
    target.file_name()?.to_str().map(str::to_string)
}

/// The release directories, sorted (unfinished copies included, as `<id>.partial`).
pub fn releases(vhost: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(releases_dir(vhost))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

/// Creates `dir` (and missing parents) and makes it mode 0755.
fn dir_0755(dir: &Path) -> Result<(), SiteError> {
    fs::create_dir_all(dir).map_err(io("create", dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(io("chmod", dir))
}

/// Checks that `src` is a directory of regular files and directories only (a symlink could point nginx at
/// anything in the jail); returns how many files it holds.
pub fn check_source(src: &Path) -> Result<u64, SiteError> {
    let meta = fs::metadata(src).map_err(|e| {
        SiteError::Source(format!(
            "cannot read {}: {e}\n  fix: name an existing directory holding the built site",
            src.display()
        ))
    })?;
    if !meta.is_dir() {
        return Err(SiteError::Source(format!(
            "{} is not a directory\n  fix: name the directory holding the built site (e.g. dist/)",
            src.display()
        )));
    }
    let mut files = 0;
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).map_err(io("read", &dir))? {
            let e = e.map_err(io("read", &dir))?;
            let t = e.file_type().map_err(io("stat", &e.path()))?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                files += 1;
            } else {
                return Err(SiteError::Source(format!(
                    "{} is not a regular file or directory\n  fix: replace it with the file it stands for; deploys copy files and directories only",
                    e.path().display()
                )));
            }
        }
    }
    Ok(files)
}

/// Copies the tree `src` into the new directory `dst` (dirs 0755, files 0644, or 0755 if executable).
fn copy_tree(src: &Path, dst: &Path) -> Result<(), SiteError> {
    dir_0755(dst)?;
    for e in fs::read_dir(src).map_err(io("read", src))? {
        let e = e.map_err(io("read", src))?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let meta = fs::metadata(&from).map_err(io("stat", &from))?;
        if meta.is_dir() {
            copy_tree(&from, &to)?;
        } else {
            fs::copy(&from, &to).map_err(io("copy", &from))?;
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            fs::set_permissions(&to, fs::Permissions::from_mode(mode)).map_err(io("chmod", &to))?;
        }
    }
    Ok(())
}

/// Copies `src` into `DIR/releases/<id>`: into `<id>.partial` first, renamed when complete. An unfinished
/// copy of the same id from a crashed deploy is removed first.
pub fn stage(src: &Path, vhost: &Path, id: &str) -> Result<PathBuf, SiteError> {
    if !cms::valid_release_id(id) {
        return Err(SiteError::Source(format!("bad release id {id:?}")));
    }
    check_source(src)?;
    dir_0755(vhost)?;
    let rel = releases_dir(vhost);
    dir_0755(&rel)?;
    let done = rel.join(id);
    if done.exists() {
        return Ok(done);
    }
    let partial = rel.join(format!("{id}.partial"));
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(io("remove", &partial))?;
    }
    if let Err(e) = copy_tree(src, &partial) {
        let _ = fs::remove_dir_all(&partial);
        return Err(e);
    }
    fs::rename(&partial, &done).map_err(io("rename", &partial))?;
    Ok(done)
}

/// Points `DIR/current` at `releases/<id>`: a new link renamed over the old one (atomic).
pub fn swap(vhost: &Path, id: &str) -> Result<(), SiteError> {
    let target = Path::new("releases").join(id);
    if !vhost.join(&target).is_dir() {
        return Err(SiteError::Source(format!(
            "no release {id} in {}",
            releases_dir(vhost).display()
        )));
    }
    let tmp = vhost.join(format!(".current.{id}.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    symlink(&target, &tmp).map_err(io("create the link", &tmp))?;
    let link = vhost.join("current");
    fs::rename(&tmp, &link).map_err(io("rename over", &link))?;
    if let Ok(d) = fs::File::open(vhost) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Gives a vhost without a `current` link a placeholder page as its first release (nothing if it has one);
/// whether it did.
pub fn placeholder(vhost: &Path, name: &str) -> Result<bool, SiteError> {
    if fs::symlink_metadata(vhost.join("current")).is_ok() {
        return Ok(false);
    }
    if let Some(parent) = vhost.parent() {
        dir_0755(parent)?;
    }
    let dir = releases_dir(vhost).join(cms::PLACEHOLDER_RELEASE);
    dir_0755(vhost)?;
    dir_0755(&releases_dir(vhost))?;
    dir_0755(&dir)?;
    let page = dir.join("index.html");
    crate::runner::write_atomic(&page, 0o644, cms::placeholder_page(name).as_bytes())
        .map_err(io("write", &page))?;
    swap(vhost, cms::PLACEHOLDER_RELEASE)?;
    Ok(true)
}

/// Removes all but the newest `keep` releases (never the current one, never an unfinished copy); the ids
/// removed.
pub fn prune(vhost: &Path, keep: usize) -> Result<Vec<String>, SiteError> {
    let cur = current(vhost);
    let gone = cms::to_prune(&releases(vhost), cur.as_deref(), keep);
    for id in &gone {
        let p = releases_dir(vhost).join(id);
        fs::remove_dir_all(&p).map_err(io("remove", &p))?;
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_swap_prune() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir_all(src.join("css")).unwrap();
        fs::write(src.join("index.html"), "v1").unwrap();
        fs::write(src.join("css/a.css"), "x").unwrap();
        let vhost = d.path().join("sites/a.home.arpa");
        assert!(placeholder(&vhost, "a.home.arpa").unwrap());
        assert!(!placeholder(&vhost, "a.home.arpa").unwrap());
        assert_eq!(current(&vhost).as_deref(), Some(cms::PLACEHOLDER_RELEASE));
        for (i, id) in ["r1", "r2", "r3", "r4"].iter().enumerate() {
            fs::write(src.join("index.html"), format!("v{i}")).unwrap();
            stage(&src, &vhost, id).unwrap();
            swap(&vhost, id).unwrap();
            assert_eq!(
                fs::read_to_string(vhost.join("current/index.html")).unwrap(),
                format!("v{i}")
            );
        }
        let mode = fs::metadata(vhost.join("current/css/a.css"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(prune(&vhost, 3).unwrap(), ["0-setup", "r1"]);
        assert_eq!(releases(&vhost), ["r2", "r3", "r4"]);
        assert!(fs::read_link(vhost.join("current")).unwrap().is_relative());
        // A symlink in the source is refused before anything is copied.
        symlink("/etc/passwd", src.join("leak")).unwrap();
        let e = stage(&src, &vhost, "r5").unwrap_err().to_string();
        assert!(e.contains("leak") && e.contains("fix:"), "{e}");
        assert!(!releases_dir(&vhost).join("r5.partial").exists());
        let e = check_source(&d.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("fix:"), "{e}");
    }
}
