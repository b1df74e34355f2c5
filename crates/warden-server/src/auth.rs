//! Bearer-token auth: the token lives in `<state_dir>/token` (mode 0600, created if missing) and
//! is compared in constant time. `/healthz` is the only unauthenticated route.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::error::{error_response, ServerError};

/// Name of the token file inside the state directory (the same file `warden init` writes).
pub const TOKEN_FILE: &str = "token";

/// The token file of a state directory.
pub fn token_path(state_dir: &Path) -> PathBuf {
    state_dir.join(TOKEN_FILE)
}

/// Reads the token (trimmed) from `<state_dir>/token`.
pub fn read_token(state_dir: &Path) -> Result<String, ServerError> {
    let path = token_path(state_dir);
    let text =
        std::fs::read_to_string(&path).map_err(|e| ServerError::io("read token", &path, e))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(ServerError::Options(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    Ok(token)
}

/// Reads the token, creating a random one (mode 0600, never widened) if the file is missing.
pub fn load_or_create_token(state_dir: &Path) -> Result<String, ServerError> {
    let path = token_path(state_dir);
    if !path.exists() {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| ServerError::io("create directory", state_dir, e))?;
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|e| ServerError::io("read", "/dev/urandom", e))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match created {
            Ok(mut f) => {
                writeln!(f, "{hex}").map_err(|e| ServerError::io("write token", &path, e))?
            }
            // Another process created it between the check and the open: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ServerError::io("create token", &path, e)),
        }
    }
    read_token(state_dir)
}

/// Whether `presented` equals `expected`, in time independent of where they differ.
pub fn token_matches(expected: &str, presented: &str) -> bool {
    // Lengths leak through ct_eq's early exit, which is fine: every token has the same length.
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// Middleware: 401 with a JSON error unless `Authorization: Bearer <token>` matches.
pub async fn require_token(State(token): State<Arc<String>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        None => error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing bearer token: send `Authorization: Bearer <token>` (the token is in <state_dir>/token)",
        ),
        Some(p) if !token_matches(&token, p) => {
            error_response(StatusCode::UNAUTHORIZED, "unauthorized", "wrong bearer token")
        }
        Some(_) => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_token(dir.path()).unwrap();
        assert_eq!(a.len(), 64);
        let mode = std::fs::metadata(token_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_token(dir.path()).unwrap(), a);
    }

    #[test]
    fn comparison() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abc", "abd"));
        assert!(!token_matches("abc", "ab"));
        assert!(!token_matches("abc", ""));
    }
}
