//! The worker account (`workers.user`, `clawdie` by default): the seeds' service account, which workers and
//! `warden serve`'s workers run as. Setup creates it on the host and in every worker release with the same
//! fixed uid and gid, so files a worker writes into a tenant's workspace have one owner on every release.

/// The worker account's uid (above the 1000–1499 range login users usually get, below 32000).
pub const WORKER_UID: u32 = 1500;
/// The worker account's gid (its own group, named like the account).
pub const WORKER_GID: u32 = 1500;
/// The account's home: none (it never logs in).
pub const HOME: &str = "/nonexistent";
/// The account's GECOS field.
pub const COMMENT: &str = "Warden worker";

/// Parses `/etc/passwd` text: name → (uid, gid).
pub fn parse_passwd(text: &str) -> Vec<(String, u32, u32)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((
                f.first()?.to_string(),
                f.get(2)?.parse().ok()?,
                f.get(3)?.parse().ok()?,
            ))
        })
        .collect()
}

/// Parses `/etc/group` text: name → gid.
pub fn parse_group(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?))
        })
        .collect()
}

/// The worker account's login shell on Debian.
pub const NOLOGIN: &str = "/usr/sbin/nologin";

/// `groupadd` and `useradd` of the worker account (fixed uid/gid, no login shell, no password: useradd locks
/// it), on the host or with `--root` in a release's tree.
pub fn add_argv(user: &str, root: Option<&str>) -> (Vec<String>, Vec<String>) {
    let (uid, gid) = (WORKER_UID.to_string(), WORKER_GID.to_string());
    let mut group = vec!["groupadd", "--system", "--gid", &gid, user];
    let mut useradd = vec![
        "useradd",
        "--system",
        "--uid",
        &uid,
        "--gid",
        &gid,
        "--home-dir",
        HOME,
        "--no-create-home",
        "--shell",
        NOLOGIN,
        "--comment",
        COMMENT,
        user,
    ];
    if let Some(r) = root {
        group.splice(1..1, ["--root", r]);
        useradd.splice(1..1, ["--root", r]);
    }
    (
        group.iter().map(|s| s.to_string()).collect(),
        useradd.iter().map(|s| s.to_string()).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_parse() {
        let p = parse_passwd("# c\nroot:x:0:0:root:/root:/bin/sh\nclawdie:*:1500:1500:W:/nonexistent:/usr/sbin/nologin\nbad\n");
        assert_eq!(
            p,
            vec![("root".into(), 0, 0), ("clawdie".into(), 1500, 1500)]
        );
        assert_eq!(
            parse_group("clawdie:*:1500:\n"),
            vec![("clawdie".into(), 1500)]
        );
    }
}
