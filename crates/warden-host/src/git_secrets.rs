//! The git owners' credentials on the host: setup's `git credentials` action generates each missing owner's
//! password (`<state>/git/OWNER.password`, 0600 in a 0700 directory) and writes the htpasswd file nginx checks
//! (`AUTH_DIR/OWNER`: one line `OWNER:{SSHA}…`, a salted SHA-1 of the password, which nginx reads itself).
//! A password never reaches an argv, the journal or an error. The `warden` CLI and the FreeBSD test driver
//! both call these.

use std::os::unix::fs::DirBuilderExt;

use base64::Engine;
use warden_core::{db, forgejo, git, names, Layout};

/// The password of `owner`, checked to be one Warden generated (its content is never shown).
pub fn read_password(state: &str, owner: &str) -> Result<String, String> {
    let path = git::password_path(state, owner);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!("failed to read the git password of {owner} ({path}): {e}\n  fix: `warden setup --step git` generates it")
    })?;
    let pw = text.trim().to_string();
    if !db::valid_password(&pw) {
        return Err(format!(
            "the password file {path} does not hold a password Warden generated (32-128 lowercase hex digits)\n  fix: remove it and run `warden setup --step git` (a new one is generated)"
        ));
    }
    Ok(pw)
}

/// `{SSHA}` of `password` with `salt` (RFC 2307 style, as nginx's auth_basic reads it).
pub fn ssha(password: &str, salt: &[u8]) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(password.as_bytes());
    h.update(salt);
    let mut raw = h.digest().bytes().to_vec();
    raw.extend_from_slice(salt);
    format!(
        "{{SSHA}}{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Whether the htpasswd `line` is `owner`'s and matches `password`.
pub fn line_matches(line: &str, owner: &str, password: &str) -> bool {
    let Some(hash) = line
        .trim()
        .strip_prefix(owner)
        .and_then(|r| r.strip_prefix(":{SSHA}"))
    else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(hash) else {
        return false;
    };
    raw.len() > 20 && ssha(password, &raw[20..]) == format!("{{SSHA}}{hash}")
}

/// Generates the missing passwords of `owners` and (re)writes each owner's htpasswd file in `auth_dir`
/// (0755; files 0644: nginx's workers read them) unless it already matches the password.
pub fn credentials(state: &str, auth_dir: &str, owners: &[String]) -> Result<(), String> {
    if let Some((o, e)) = owners
        .iter()
        .find_map(|o| names::check_label(o).err().map(|e| (o, e)))
    {
        return Err(format!("bad owner name {o:?}: {e}"));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(auth_dir)
        .map_err(|e| format!("failed to create {auth_dir}: {e}"))?;
    for owner in owners {
        crate::secrets::ensure_password_file(
            &git::secrets_dir(state),
            &git::password_path(state, owner),
        )?;
        let password = read_password(state, owner)?;
        let path = format!("{auth_dir}/{owner}");
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if line_matches(&current, owner, &password) {
            continue;
        }
        let salt = crate::secrets::random_hex(4)?;
        let line = format!("{owner}:{}\n", ssha(&password, salt.as_bytes()));
        crate::secrets::write_private(&path, &line, 0o644)?;
    }
    Ok(())
}

/// Renders Forgejo's `app.ini` for `layout` with the git db role's password and Forgejo's own keys (each
/// generated into `<state>/git` if missing, mode 0600) and writes it to `out` (mode 0600).
pub fn forgejo_config(state: &str, layout: &Layout, out: &str) -> Result<(), String> {
    let role = forgejo::db_role(layout);
    let db_password = crate::db_secrets::read_password(state, &role).map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    for (name, path, bytes) in forgejo::secret_files(state) {
        crate::secrets::ensure_secret_file(&git::secrets_dir(state), &path, bytes)?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("failed to read Forgejo's {name} ({path}): {e}"))?;
        let hex = text.trim();
        if hex.len() != bytes * 2 || !db::valid_password(hex) {
            return Err(format!(
                "{path} does not hold Forgejo's {name} as Warden generates it ({} hex digits)\n  fix: remove it and run `warden setup --step git` (a new one is generated)",
                bytes * 2
            ));
        }
        keys.push(hex.to_string());
    }
    let raw: Vec<u8> = (0..keys[2].len() / 2)
        .filter_map(|i| u8::from_str_radix(&keys[2][2 * i..2 * i + 2], 16).ok())
        .collect();
    let secrets = forgejo::Secrets {
        db_password,
        secret_key: keys[0].clone(),
        internal_token: keys[1].clone(),
        jwt_secret: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
    };
    crate::secrets::write_private(out, &forgejo::app_ini(layout, &secrets), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn ssha_matches_a_known_value_and_only_its_password() {
        // printf 'secretsalt' | sha1sum, then base64 of digest+salt (checked with openssl).
        let h = ssha("secret", b"salt");
        assert_eq!(h, "{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0");
        assert!(line_matches(&format!("alice:{h}\n"), "alice", "secret"));
        assert!(!line_matches(&format!("alice:{h}"), "alice", "other"));
        assert!(!line_matches(&format!("alice:{h}"), "bob", "secret"));
        assert!(!line_matches("alice:{SSHA}!!", "alice", "secret"));
    }

    #[test]
    fn credentials_are_generated_once_and_files_have_their_modes() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().display().to_string();
        let auth = format!("{state}/git-http/htpasswd");
        let owners = vec!["system".to_string(), "atlas".to_string()];
        credentials(&state, &auth, &owners).unwrap();
        let pw = read_password(&state, "atlas").unwrap();
        let line = std::fs::read_to_string(format!("{auth}/atlas")).unwrap();
        assert!(line_matches(&line, "atlas", &pw) && !line.contains(&pw));
        let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&git::password_path(&state, "atlas")), 0o600);
        assert_eq!(mode(&git::secrets_dir(&state)), 0o700);
        assert_eq!(mode(&format!("{auth}/atlas")), 0o644);
        credentials(&state, &auth, &owners).unwrap();
        assert_eq!(
            std::fs::read_to_string(format!("{auth}/atlas")).unwrap(),
            line
        );
        assert_eq!(read_password(&state, "atlas").unwrap(), pw);
        let e = credentials(&state, &auth, &["a/b".to_string()]).unwrap_err();
        assert!(e.contains("bad owner name"), "{e}");
    }
}
