//! The Linux `debian` release of the service jails: Debian bookworm (debootstrap minbase) with the packages
//! the db, git and cms roles run, installed by apt inside the tree (chroot). `warden release build debian`
//! plans it as journaled actions, so an interrupted build continues where it stopped; it is built where the
//! network is (downloads), into a cache shared by state directories (`jails.release_cache`), under a key of
//! suite, recipe and package list, so a changed list builds a new tree. `warden setup` never downloads: its
//! `jails` step links the ready tree into the state directory, or is blocked naming the build command.

use crate::account;
use crate::layout::{Layout, Role};
use crate::linux_db::APT_INSTALL;
use crate::plan::{Action, Blocker, Plan, Step};

/// The release's name (`<state_dir>/releases/debian`).
pub const NAME: &str = "debian";
/// The roles whose jails run on it (with `jails.service_release = "debian"`); the ai jail stays on `host`.
pub const ROLES: [Role; 3] = [Role::Db, Role::Git, Role::Cms];
/// The Debian suite.
pub const SUITE: &str = "bookworm";
/// Bumped when the recipe below changes what a tree holds, so an old tree is not taken for a new one.
const RECIPE: u32 = 1;
/// The packages of the service roles: PostgreSQL (db; its client for git and cms), nginx, fcgiwrap and git
/// (git's smart HTTP; cms), CA certificates.
pub const PACKAGES: [&str; 7] = [
    "ca-certificates",
    "postgresql",
    "postgresql-client",
    "nginx",
    "fcgiwrap",
    "git",
    "procps",
];
/// Keeps package scripts from starting services in the tree while it is built (removed afterwards).
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";
/// Keeps the postgresql package from making Debian's `main` cluster: the db step makes its own.
const CREATECLUSTER_CONF: &str = "/etc/postgresql-common/createcluster.conf";

/// The build's key: suite, recipe and a hash of the package list (`bookworm-1-3f9a0c12`).
pub fn key() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in PACKAGES.join(" ").bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{SUITE}-{RECIPE}-{:08x}", hash >> 32)
}

/// The directory of built releases: `jails.release_cache`, else `<state_dir>/releases`.
pub fn cache_dir(layout: &Layout, state_dir: &str) -> String {
    if layout.release_cache.is_empty() {
        format!("{state_dir}/releases")
    } else {
        layout.release_cache.trim_end_matches('/').to_string()
    }
}

/// Where the build's parts live, for one cache and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPaths {
    /// The cache directory.
    pub cache: String,
    /// The key ([`key`]).
    pub key: String,
}

impl BuildPaths {
    /// The paths of the current key in `cache`.
    pub fn new(cache: &str) -> BuildPaths {
        BuildPaths {
            cache: cache.to_string(),
            key: key(),
        }
    }
    /// The finished tree (renamed into place when complete, never written to afterwards).
    pub fn tree(&self) -> String {
        format!("{}/{NAME}-{}", self.cache, self.key)
    }
    /// The tree while it is built.
    pub fn building(&self) -> String {
        format!("{}/.{NAME}-{}.building", self.cache, self.key)
    }
    /// What the tree holds, beside it (never inside: the tree is a jail's `/`).
    pub fn manifest(&self) -> String {
        format!("{}/.{NAME}-{}.txt", self.cache, self.key)
    }
    /// debootstrap's download cache (kept, so a retried bootstrap does not download again).
    pub fn debs(&self) -> String {
        format!("{}/debs-{SUITE}", self.cache)
    }
    /// The lock two builds take turns on.
    pub fn lock(&self) -> String {
        format!("{}/.build.lock", self.cache)
    }
}

/// The manifest's content: the key, the suite and the packages.
pub fn manifest(paths: &BuildPaths) -> String {
    format!(
        "key {}\nsuite {SUITE}\npackages {}\n",
        paths.key,
        PACKAGES.join(" ")
    )
}

/// What a build has done so far, observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildState {
    /// The finished tree exists (it is renamed into place last).
    pub ready: bool,
    /// The directory being built exists.
    pub building: bool,
    /// debootstrap finished in it (apt-get present, debootstrap's own work directory gone).
    pub bootstrapped: bool,
    /// Packages dpkg lists as installed in it.
    pub installed: std::collections::BTreeSet<String>,
    /// The policy-rc.d guard is in it.
    pub policy: bool,
    /// Its `/etc/passwd` has the worker account, and its `/etc/group` the group.
    pub user: bool,
    /// The group.
    pub group: bool,
    /// The manifest beside the tree.
    pub manifest: Option<String>,
    /// debootstrap's download cache exists.
    pub debs: bool,
}

/// The names dpkg's `status` file lists as installed.
pub fn installed_packages(status: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for para in status.split("\n\n") {
        let field = |name: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(name).map(str::trim))
        };
        if let (Some(p), Some("install ok installed")) = (field("Package:"), field("Status:")) {
            out.insert(p.to_string());
        }
    }
    out
}

/// The actions that finish the build from `state` (none when the tree is ready), `mirror` being the Debian
/// mirror debootstrap downloads from.
pub fn build_plan(paths: &BuildPaths, mirror: &str, worker_user: &str, state: &BuildState) -> Plan {
    let mut plan = Plan::default();
    if state.ready {
        return plan;
    }
    let out = &mut plan.actions;
    let s = Step::Jails;
    let b = paths.building();
    if state.building && !state.bootstrapped {
        out.push(Action::remove(
            s,
            format!("remove the remains of an interrupted debootstrap ({b})"),
            &b,
        ));
    }
    if !state.bootstrapped && !state.debs {
        out.push(Action::run(
            s,
            "create debootstrap's download cache (kept for the next build)",
            &["mkdir", "-p", &paths.debs()],
        ));
    }
    if !state.bootstrapped {
        out.push(
            Action::run(
                s,
                format!("debootstrap Debian {SUITE} (minbase) from {mirror}"),
                &[
                    "debootstrap",
                    "--variant=minbase",
                    &format!("--cache-dir={}", paths.debs()),
                    SUITE,
                    &b,
                    mirror,
                ],
            )
            .verified_by(&["test", "-x", &format!("{b}/usr/bin/apt-get")]),
        );
    }
    let missing = PACKAGES.iter().any(|p| !state.installed.contains(*p));
    if missing {
        packages(&b, state, out);
    }
    if state.policy || missing {
        out.push(Action::remove(
            s,
            "let services start again (remove policy-rc.d)",
            &format!("{b}{POLICY_RC_D}"),
        ));
    }
    let (groupadd, useradd) = account::add_argv(worker_user, Some(&b));
    if !state.group {
        out.push(Action::run(
            s,
            format!("create the group {worker_user} in the release"),
            &groupadd,
        ));
    }
    if !state.user {
        out.push(Action::run(
            s,
            format!("create the worker account {worker_user} in the release"),
            &useradd,
        ));
    }
    let content = manifest(paths);
    if state.manifest.as_deref() != Some(content.as_str()) {
        out.push(Action::file(
            s,
            "write the release's manifest beside it (key, suite, packages)",
            &paths.manifest(),
            "0644",
            content,
        ));
    }
    out.push(
        Action::run(
            s,
            format!("move the finished release into place: {}", paths.tree()),
            &["mv", "-T", &b, &paths.tree()],
        )
        .verified_by(&["test", "-d", &format!("{}/usr", paths.tree())]),
    );
    plan
}

/// The guards, then apt-get install of the service packages inside the tree, then its download cache
/// emptied (the packages stay in the debootstrap cache's stead only while building).
fn packages(b: &str, state: &BuildState, out: &mut Vec<Action>) {
    let s = Step::Jails;
    if !state.policy {
        out.push(Action::file(
            s,
            "keep package scripts from starting services in the release (policy-rc.d)",
            &format!("{b}{POLICY_RC_D}"),
            "0755",
            "#!/bin/sh\n# Written by warden while it builds this release; removed when done.\nexit 101\n".into(),
        ));
    }
    out.push(Action::file(
        s,
        "no `main` cluster from the postgresql package (the db step makes its own)",
        &format!("{b}{CREATECLUSTER_CONF}"),
        "0644",
        "# Written by warden: the db step initialises its own cluster.\ncreate_main_cluster = false\n"
            .into(),
    ));
    let mut argv: Vec<&str> = vec!["chroot", b];
    argv.extend(APT_INSTALL);
    argv.extend(PACKAGES);
    let mut verify = vec!["chroot", b, "dpkg-query", "-W"];
    verify.extend(PACKAGES);
    out.push(
        Action::run(
            s,
            format!(
                "install {} with apt inside the release",
                PACKAGES.join(", ")
            ),
            &argv,
        )
        .verified_by(&verify),
    );
    out.push(Action::run(
        s,
        "empty the release's apt download cache",
        &["chroot", b, "apt-get", "clean"],
    ));
}

/// The `jails` step's part: the ready tree linked as `<state_dir>/releases/debian`, or a blocker naming the
/// build command when it is not built (setup never downloads: it may run without an uplink).
/// While thin jails (`overlaid`) run over a tree linked for another package list, the link is left alone, with
/// a note: moving it would change their root under their upper directories.
pub fn link(
    layout: &Layout,
    state_dir: &str,
    ready: bool,
    linked_to: Option<&str>,
    overlaid: &[&str],
    plan: &mut Plan,
) {
    let paths = BuildPaths::new(&cache_dir(layout, state_dir));
    let tree = paths.tree();
    match linked_to {
        Some(t) if t == tree => return,
        Some(old) if !overlaid.is_empty() => {
            plan.notes.push(format!(
                "the {NAME} release is linked to {old}, not to {tree} (the current package list); thin jails {} overlay it: left alone; `warden jail destroy --force` them (their data is lost) and `warden setup` to move them",
                overlaid.join(", ")
            ));
            return;
        }
        _ => {}
    }
    if !ready {
        plan.blocked.push(Blocker {
            step: Step::Jails,
            problem: format!(
                "the {NAME} release of the service jails ({}) is not built in {}",
                paths.key, paths.cache
            ),
            fix: format!(
                "`warden release build {NAME}` (downloads ~150 MB; run where the network is), or set jails.service_release = \"host\" to run the roles from this host's packages"
            ),
        });
        return;
    }
    let at = format!("{state_dir}/releases/{NAME}");
    plan.actions.push(Action::run(
        Step::Jails,
        "create the state directory's releases directory",
        &["mkdir", "-p", &format!("{state_dir}/releases")],
    ));
    plan.actions.push(
        Action::run(
            Step::Jails,
            format!(
                "use the built {NAME} release {} for the service jails",
                paths.key
            ),
            &["ln", "-sfnT", &tree, &at],
        )
        .verified_by(&["test", "-d", &format!("{at}/usr")]),
    );
}

/// The worker account's entries in a release's `/etc/passwd` and `/etc/group`.
pub fn has_account(passwd: &str, group: &str, user: &str) -> (bool, bool) {
    (
        account::parse_passwd(passwd)
            .iter()
            .any(|(n, ..)| n == user),
        account::parse_group(group).iter().any(|(n, _)| n == user),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Op;

    #[test]
    fn a_fresh_build_bootstraps_installs_and_moves_into_place_then_nothing() {
        let paths = BuildPaths::new("/var/cache/r");
        assert!(
            paths.key.starts_with("bookworm-1-") && paths.key.len() == 19,
            "{}",
            paths.key
        );
        let plan = build_plan(&paths, "http://m/debian", "clawdie", &BuildState::default());
        let text = plan.to_text();
        assert!(text.contains(&format!(
            "$ debootstrap --variant=minbase --cache-dir=/var/cache/r/debs-bookworm bookworm /var/cache/r/.debian-{}.building http://m/debian\n",
            paths.key
        )), "{text}");
        assert!(text.contains("$ chroot /var/cache/r/.debian-"), "{text}");
        assert!(text.contains("apt-get install -y -q --no-install-recommends ca-certificates postgresql postgresql-client nginx fcgiwrap git procps\n"), "{text}");
        assert!(
            text.contains("useradd --root /var/cache/r/.debian-"),
            "{text}"
        );
        let last = plan.actions.last().unwrap();
        assert!(matches!(&last.op, Op::Argv(a) if a[0] == "mv"), "{last:?}");
        // Resumed after apt finished but before the guard went: only the rest.
        let state = BuildState {
            building: true,
            bootstrapped: true,
            installed: PACKAGES.iter().map(|p| p.to_string()).collect(),
            policy: true,
            ..Default::default()
        };
        let rest: Vec<String> = build_plan(&paths, "http://m/debian", "clawdie", &state)
            .actions
            .iter()
            .map(|a| a.summary.clone())
            .collect();
        assert_eq!(rest.len(), 5, "{rest:#?}");
        assert!(rest[0].contains("policy-rc.d"), "{rest:#?}");
        // A half-done debootstrap is removed and run again.
        let half = BuildState {
            building: true,
            ..Default::default()
        };
        let p = build_plan(&paths, "http://m/debian", "clawdie", &half);
        assert!(matches!(&p.actions[0].op, Op::Remove(_)), "{p:?}");
        let done = BuildState {
            ready: true,
            ..Default::default()
        };
        assert!(build_plan(&paths, "m", "clawdie", &done).is_empty());
    }

    #[test]
    fn dpkg_status_lists_installed_packages_only() {
        let status = "Package: git\nStatus: install ok installed\nVersion: 1\n\nPackage: nginx\nStatus: deinstall ok config-files\n\nPackage: procps\nStatus: install ok installed\n";
        let got: Vec<String> = installed_packages(status).into_iter().collect();
        assert_eq!(got, ["git", "procps"]);
    }

    #[test]
    fn setup_links_a_built_release_and_is_blocked_without_one() {
        let layout =
            Layout::from_loaded(&crate::config::load(None, &|_| None, &vec![]).unwrap()).unwrap();
        let mut plan = Plan::default();
        link(&layout, "/s", false, None, &[], &mut plan);
        assert!(plan.actions.is_empty());
        assert!(
            plan.blocked_text().contains("warden release build debian"),
            "{}",
            plan.blocked_text()
        );
        let mut plan = Plan::default();
        link(&layout, "/s", true, None, &[], &mut plan);
        let key = key();
        assert!(
            plan.to_text().contains(&format!(
                "$ ln -sfnT /s/releases/debian-{key} /s/releases/debian\n"
            )),
            "{}",
            plan.to_text()
        );
        let mut plan = Plan::default();
        let tree = format!("/s/releases/debian-{key}");
        link(&layout, "/s", true, Some(&tree), &["clawdiegit"], &mut plan);
        assert!(plan.is_empty());
        // Linked for an older package list: relinked, unless thin jails overlay it.
        let mut plan = Plan::default();
        link(
            &layout,
            "/s",
            true,
            Some("/s/releases/debian-old"),
            &[],
            &mut plan,
        );
        assert_eq!(plan.actions.len(), 2, "{plan:?}");
        let mut plan = Plan::default();
        link(
            &layout,
            "/s",
            true,
            Some("/s/releases/debian-old"),
            &["clawdiegit"],
            &mut plan,
        );
        assert!(
            plan.actions.is_empty() && plan.notes[0].contains("left alone"),
            "{plan:?}"
        );
    }
}
