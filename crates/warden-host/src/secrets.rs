//! Password files Warden generates at setup (db roles, git owners): 128 random bits as lowercase hex, mode
//! 0600 in a 0700 directory, each written whole under a temporary name first. Errors never hold a password.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` (0700) and, if missing, the password file `path` (0600); whether it was created.
pub fn ensure_password_file(dir: &str, path: &str) -> Result<bool, String> {
    ensure_secret_file(dir, path, 16)
}

/// Like [`ensure_password_file`] with `bytes` random bytes (as hex) in a new file.
pub fn ensure_secret_file(dir: &str, path: &str, bytes: usize) -> Result<bool, String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("failed to create {dir}: {e}"))?;
    if Path::new(path).exists() {
        return Ok(false);
    }
    let hex = random_hex(bytes)?;
    write_private(path, &format!("{hex}\n"), 0o600)?;
    Ok(true)
}

/// `n` random bytes from the kernel as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, String> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("failed to read /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `text` to `path` whole (a temporary name first, then renamed) with `mode`.
pub fn write_private(path: &str, text: &str, mode: u32) -> Result<(), String> {
    let tmp = format!("{path}.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("failed to write {path}: {e}"))
}
