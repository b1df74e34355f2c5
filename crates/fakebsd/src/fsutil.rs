//! Small filesystem helpers: recursive copy/remove/size, and rc.conf-style `NAME="value"` files.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// Copies `src` into `dst` (like `cp -a src/. dst`), skipping any path in `skip`.
pub fn copy_tree(src: &Path, dst: &Path, skip: &[PathBuf]) -> io::Result<()> {
    fs::create_dir_all(dst)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        if skip.iter().any(|s| s == &from) {
            continue;
        }
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from)?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&from)?;
            let _ = fs::remove_file(&to);
            symlink(target, &to)?;
        } else if meta.is_dir() {
            copy_tree(&from, &to, skip)?;
            fs::set_permissions(&to, meta.permissions())?;
        } else {
            fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// Like [`copy_tree`] without a skip list, but files are hard links where the filesystem allows (a large tree
/// costs no space); a copy elsewhere.
pub fn link_tree(src: &Path, dst: &Path) -> io::Result<()> {
    fs::create_dir_all(dst)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from)?;
        if meta.file_type().is_symlink() {
            let _ = fs::remove_file(&to);
            symlink(fs::read_link(&from)?, &to)?;
        } else if meta.is_dir() {
            link_tree(&from, &to)?;
            fs::set_permissions(&to, meta.permissions())?;
        } else {
            let _ = fs::remove_file(&to);
            if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to)?;
            }
        }
    }
    Ok(())
}

/// Removes everything inside `dir` except the paths in `keep` (and the parents leading to them).
pub fn clear_dir(dir: &Path, keep: &[PathBuf]) -> io::Result<()> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in rd {
        let p = entry?.path();
        if keep.iter().any(|k| k == &p) {
            continue;
        }
        if keep.iter().any(|k| k.starts_with(&p)) {
            clear_dir(&p, keep)?;
            continue;
        }
        remove_any(&p)?;
    }
    Ok(())
}

/// Removes a file, symlink or directory tree; a missing path is fine.
pub fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
    }
}

/// Total size in bytes of the regular files under `p`.
pub fn tree_size(p: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(p) else {
        return 0;
    };
    if meta.is_dir() {
        fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| tree_size(&e.path())).sum())
            .unwrap_or(0)
    } else {
        meta.len()
    }
}

/// Writes `text` to `p`, creating parent directories.
pub fn write_file(p: &Path, text: &str) -> io::Result<()> {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(p, text)
}

/// Writes an executable script.
pub fn write_exec(p: &Path, text: &str) -> io::Result<()> {
    write_file(p, text)?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o755))
}

/// Parses a shell-style assignment line `NAME=value`, `NAME="value"` or `NAME='value'` (with a trailing
/// `# comment` allowed). `vars` expands `${x}`/`$x` in double-quoted and bare values, as sh would.
pub fn parse_assignment(line: &str, vars: &BTreeMap<String, String>) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = line.split_once('=')?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let mut value = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut raw = String::new();
                loop {
                    match chars.next() {
                        None | Some('"') => break,
                        Some('\\') => {
                            if let Some(n) = chars.next() {
                                raw.push(n);
                            }
                        }
                        Some(x) => raw.push(x),
                    }
                }
                value.push_str(&expand(&raw, vars));
            }
            '\'' => {
                for x in chars.by_ref() {
                    if x == '\'' {
                        break;
                    }
                    value.push(x);
                }
            }
            ' ' | '\t' | '#' | ';' => break,
            _ => {
                let mut raw = String::from(c);
                while let Some(&n) = chars.peek() {
                    if matches!(n, ' ' | '\t' | '"' | '\'' | ';') {
                        break;
                    }
                    raw.push(n);
                    chars.next();
                }
                value.push_str(&expand(&raw, vars));
            }
        }
    }
    Some((name.to_string(), value))
}

/// Expands `${name}` and `$name` from `vars` (unknown names expand to nothing, as in sh).
pub fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut name = String::new();
        if chars.peek() == Some(&'{') {
            chars.next();
            for x in chars.by_ref() {
                if x == '}' {
                    break;
                }
                name.push(x);
            }
        } else {
            while let Some(&x) = chars.peek() {
                if x.is_ascii_alphanumeric() || x == '_' {
                    name.push(x);
                    chars.next();
                } else {
                    break;
                }
            }
            if name.is_empty() {
                out.push('$');
                continue;
            }
        }
        out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
    }
    out
}

/// Reads every assignment of an rc.conf-style file (later ones win). A missing file is empty.
pub fn read_vars(p: &Path, vars: &mut BTreeMap<String, String>) {
    let Ok(text) = fs::read_to_string(p) else {
        return;
    };
    for line in text.lines() {
        if let Some((k, v)) = parse_assignment(line, vars) {
            vars.insert(k, v);
        }
    }
}
