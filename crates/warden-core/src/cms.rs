//! The cms role, the same on both backends: nginx in the cms jail with one server block per name the cms
//! serves — `cms.<domain>`, every tenant (`<tenant>.<domain>`) and every site (`<site>.<tenant>.<domain>`)
//! of the layout — each with its own docroot `<sites>/<name>/current`, a symlink to one release directory.
//!
//! A deploy copies a directory into `releases/<id>`, then renames a new symlink over `current` (atomic), then
//! reloads nginx gracefully: a request sees the whole old release or the whole new one, never a half copy.

use crate::layout::{Layout, Role};

/// nginx's port in the cms jail.
pub use crate::layout::CMS_HTTP_PORT as HTTP_PORT;
/// The response header naming the vhost that answered (the doctor checks it: a request that fell through to
/// the catch-all block, or to another jail, does not carry it).
pub const VHOST_HEADER: &str = "X-Warden-Vhost";
/// How many releases of a vhost a deploy keeps (the current one among them).
pub const KEEP_RELEASES: usize = 3;
/// The release setup links before anything is deployed (sorts before every deploy's id).
pub const PLACEHOLDER_RELEASE: &str = "0-setup";

/// What one vhost is for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VhostKind {
    /// `cms.<domain>`.
    Cms,
    /// A tenant's home.
    Tenant,
    /// A tenant's site.
    Site,
}

/// One name nginx serves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Vhost {
    /// The fully qualified name (also its directory under the sites root).
    pub name: String,
    /// What it is.
    pub kind: VhostKind,
    /// The tenant it belongs to (none for `cms.<domain>`).
    pub tenant: Option<String>,
    /// The site label (sites only).
    pub site: Option<String>,
}

/// Every vhost of the layout, in a stable order: cms first, then each tenant followed by its sites.
pub fn vhosts(layout: &Layout) -> Vec<Vhost> {
    let Some(cms) = layout.service(Role::Cms) else {
        return Vec::new();
    };
    let mut out = vec![Vhost {
        name: cms.fqdn.clone(),
        kind: VhostKind::Cms,
        tenant: None,
        site: None,
    }];
    for t in &layout.tenants {
        out.push(Vhost {
            name: t.fqdn.clone(),
            kind: VhostKind::Tenant,
            tenant: Some(t.name.clone()),
            site: None,
        });
        for s in &t.sites {
            out.push(Vhost {
                name: format!("{s}.{}", t.fqdn),
                kind: VhostKind::Site,
                tenant: Some(t.name.clone()),
                site: Some(s.clone()),
            });
        }
    }
    out
}

/// The vhost `warden site deploy TENANT [SITE]` publishes to, or an error naming the fix.
pub fn find(layout: &Layout, tenant: &str, site: Option<&str>) -> Result<Vhost, String> {
    let all = vhosts(layout);
    if all.is_empty() {
        return Err("the layout has no cms jail (slots.cms)".into());
    }
    let Some(t) = layout.tenants.iter().find(|t| t.name == tenant) else {
        let known: Vec<&str> = layout.tenants.iter().map(|t| t.name.as_str()).collect();
        return Err(format!(
            "no tenant {tenant:?} in this layout (tenants: {})\n  fix: add it to the config (`[[tenants]] name = \"{tenant}\"`, or TENANT_ID), then `warden setup --step cms`",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ));
    };
    if let Some(s) = site {
        if !t.sites.iter().any(|x| x == s) {
            return Err(format!(
                "tenant {tenant} has no site {s:?} (sites: {})\n  fix: add it to the tenant's `sites` in the config, then `warden setup --step cms`",
                if t.sites.is_empty() { "none".to_string() } else { t.sites.join(", ") }
            ));
        }
    }
    all.into_iter()
        .find(|v| v.tenant.as_deref() == Some(tenant) && v.site.as_deref() == site)
        .ok_or_else(|| format!("no vhost for tenant {tenant}"))
}

/// Where one backend's nginx keeps its files, as seen inside the cms jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxPaths {
    /// The account nginx's workers run as (`user` directive: user and group).
    pub user: &'static str,
    /// The pid file.
    pub pid: &'static str,
    /// The directory of `error.log` and `access.log`.
    pub log_dir: &'static str,
    /// The directory holding one directory per vhost.
    pub sites: String,
}

/// A vhost's directory under `sites`.
pub fn vhost_dir(sites: &str, name: &str) -> String {
    format!("{sites}/{name}")
}

/// The rendered `nginx.conf`: a catch-all block answering 404 (a name the layout does not know gets no
/// tenant's content), then one block per vhost, rooted at its `current` link. Self-contained (its own MIME
/// types), so it needs nothing from the package's config directory.
pub fn nginx_conf(layout: &Layout, paths: &NginxPaths) -> String {
    let mut out = format!(
        r#"# Written by Warden (warden setup --step cms); edits are replaced.
# One server block per name the cms serves; `warden site deploy` swaps each block's `current` link.
user {user};
worker_processes 1;
pid {pid};
error_log {log}/error.log;

events {{
    worker_connections 256;
}}

http {{
    types {{
        text/html html htm;
        text/css css;
        text/plain txt md;
        text/xml xml;
        application/javascript js mjs;
        application/json json;
        application/pdf pdf;
        application/wasm wasm;
        image/svg+xml svg;
        image/png png;
        image/jpeg jpg jpeg;
        image/gif gif;
        image/webp webp;
        image/x-icon ico;
        font/woff woff;
        font/woff2 woff2;
    }}
    default_type application/octet-stream;
    charset utf-8;
    sendfile on;
    server_tokens off;
    access_log {log}/access.log;

    # Names the layout does not know.
    server {{
        listen {HTTP_PORT} default_server;
        server_name _;
        return 404;
    }}
"#,
        user = paths.user,
        pid = paths.pid,
        log = paths.log_dir,
    );
    for v in vhosts(layout) {
        let what = match (&v.kind, &v.tenant, &v.site) {
            (VhostKind::Cms, _, _) => "the web service".to_string(),
            (VhostKind::Tenant, Some(t), _) => format!("tenant {t}"),
            (VhostKind::Site, Some(t), Some(s)) => format!("site {s} of tenant {t}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            r#"
    # {what}
    server {{
        listen {HTTP_PORT};
        server_name {name};
        root {root}/current;
        add_header {VHOST_HEADER} {name} always;
        location / {{
            try_files $uri $uri/ =404;
        }}
    }}
"#,
            name = v.name,
            root = vhost_dir(&paths.sites, &v.name),
        ));
    }
    out.push_str("}\n");
    out
}

/// The page setup links as a vhost's first release, so every name answers before anything is deployed.
pub fn placeholder_page(name: &str) -> String {
    format!(
        "<!doctype html>\n<title>{name}</title>\n<p>{name}: nothing deployed yet (<code>warden site deploy</code>).</p>\n"
    )
}

/// Whether `id` can name a release directory: letters, digits, `-`, `_`, `.`, not starting with `.`.
pub fn valid_release_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A release id for a deploy at `unix_millis`: sortable by time (`YYYYmmddTHHMMSS.mmmZ`), later than
/// [`PLACEHOLDER_RELEASE`].
pub fn release_id(unix_millis: u64) -> String {
    let (date, time) = crate::snapshot_tag::civil(unix_millis / 1000);
    format!(
        "{}T{}.{:03}Z",
        date.replace('-', ""),
        time.replace(':', ""),
        unix_millis % 1000
    )
}

/// The releases a prune removes: all but the newest `keep` (by id), never `current`, never an unfinished
/// copy (`*.partial`, which a running deploy may be writing).
pub fn to_prune(releases: &[String], current: Option<&str>, keep: usize) -> Vec<String> {
    let mut done: Vec<&String> = releases
        .iter()
        .filter(|r| !r.ends_with(".partial"))
        .collect();
    done.sort();
    let cut = done.len().saturating_sub(keep);
    done[..cut]
        .iter()
        .filter(|r| Some(r.as_str()) != current)
        .map(|r| r.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, TenantConfig};

    fn layout() -> Layout {
        let mut loaded = load(None, &|_| None, &vec![]).unwrap();
        loaded.config.tenants = vec![TenantConfig {
            name: "atlas".into(),
            sites: vec!["blog".into()],
        }];
        Layout::from_loaded(&loaded).unwrap()
    }

    #[test]
    fn vhosts_follow_the_registry() {
        let names: Vec<String> = vhosts(&layout()).into_iter().map(|v| v.name).collect();
        assert_eq!(
            names,
            ["cms.home.arpa", "atlas.home.arpa", "blog.atlas.home.arpa"]
        );
        // Every vhost is a name dnsmasq answers with the cms slot.
        let l = layout();
        for n in &names {
            assert!(l
                .records
                .iter()
                .any(|r| &r.name == n && r.addr.to_string() == "10.0.1.3"));
        }
    }

    #[test]
    fn find_names_the_fix() {
        let l = layout();
        assert_eq!(find(&l, "atlas", None).unwrap().name, "atlas.home.arpa");
        assert_eq!(
            find(&l, "atlas", Some("blog")).unwrap().name,
            "blog.atlas.home.arpa"
        );
        let e = find(&l, "nope", None).unwrap_err();
        assert!(
            e.contains("no tenant \"nope\"") && e.contains("fix:"),
            "{e}"
        );
        let e = find(&l, "atlas", Some("shop")).unwrap_err();
        assert!(e.contains("no site \"shop\"") && e.contains("blog"), "{e}");
    }

    #[test]
    fn release_ids_sort_by_time_and_prune_keeps_the_newest() {
        assert_eq!(release_id(0), "19700101T000000.000Z");
        assert_eq!(release_id(1_796_389_200_123), "20261204T130000.123Z");
        assert!(PLACEHOLDER_RELEASE < release_id(0).as_str());
        assert!(valid_release_id(&release_id(5)) && !valid_release_id("../x"));
        let r: Vec<String> = ["a", "b", "c", "d", "e.partial"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(to_prune(&r, Some("d"), 3), ["a"]);
        assert_eq!(to_prune(&r, Some("a"), 2), ["b"]);
        assert!(to_prune(&r, None, 10).is_empty());
    }
}
