//! `warden site deploy TENANT [SITE] DIR` and `warden site list`: the cms jail's vhosts (`warden_core::cms`).
//! A deploy is a small plan applied and journaled like setup's: copy into a new release, swap the `current`
//! link, reload nginx gracefully, prune old releases. Its file steps are the hidden verbs below, which take
//! host paths (under `WARDEN_HOST_ROOT` on a simulated host) and work the same for both backends.

use std::path::{Path, PathBuf};

use warden_core::layout::Role;
use warden_core::plan::{Action, Plan, Step};
use warden_core::{bastille_cms, cms, linux_cms, Layout};
use warden_host::{site, Journal, SilentProgress};

use crate::backends;
use crate::cli::{BackendName, Global, SiteCommand};
use crate::context;
use crate::exit::Exit;

/// Runs one `warden site` verb.
pub fn run(global: &Global, command: &SiteCommand) -> Result<(), Exit> {
    let fail = |e: site::SiteError| Exit::failure(e.to_string());
    match command {
        SiteCommand::Deploy { args, backend } => deploy(global, args, *backend),
        SiteCommand::List { json, backend } => list(global, *json, *backend),
        SiteCommand::Placeholder { dir, name } => {
            site::placeholder(&local(dir), name).map_err(fail)?;
            Ok(())
        }
        SiteCommand::Stage { src, dir, id } => {
            site::stage(Path::new(src), &local(dir), id).map_err(fail)?;
            Ok(())
        }
        SiteCommand::Swap { dir, id } => site::swap(&local(dir), id).map_err(fail),
        SiteCommand::Prune { dir, keep } => {
            site::prune(&local(dir), *keep).map_err(fail)?;
            Ok(())
        }
    }
}

/// A host path as a local one (under the simulated host's root, if any).
fn local(path: &str) -> PathBuf {
    backends::host_root().join(path.trim_start_matches('/'))
}

/// Where `backend` keeps the cms jail's sites (a host path), and the argv that reloads its nginx.
fn target(
    layout: &Layout,
    backend: BackendName,
    state: &str,
) -> Result<(String, Vec<String>, String), Exit> {
    let svc = layout
        .service(Role::Cms)
        .ok_or_else(|| Exit::usage("the layout has no cms jail (slots.cms)"))?;
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "warden".into());
    let setup = format!(
        "warden setup --backend {} --step cms",
        match backend {
            BackendName::Linux => "linux",
            BackendName::Bastille => "bastille",
        }
    );
    Ok(match backend {
        BackendName::Linux => (
            linux_cms::sites_dir(state),
            linux_cms::reload_argv(&exe, state, &svc.jail),
            setup,
        ),
        BackendName::Bastille => (
            bastille_cms::sites_host_dir(layout, &svc.jail),
            bastille_cms::reload_argv(&svc.jail),
            setup,
        ),
    })
}

fn deploy(global: &Global, args: &[String], backend: Option<BackendName>) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    let (tenant, site_name, dir) = match args {
        [t, d] => (t, None, d),
        [t, s, d] => (t, Some(s.as_str()), d),
        _ => return Err(Exit::usage("usage: warden site deploy TENANT [SITE] DIR")),
    };
    let vhost = cms::find(&layout, tenant, site_name).map_err(Exit::usage)?;
    let src = std::fs::canonicalize(dir).map_err(|e| {
        Exit::usage(format!(
            "cannot read {dir}: {e}\n  fix: name an existing directory holding the built site"
        ))
    })?;
    let files = site::check_source(&src).map_err(|e| Exit::usage(e.to_string()))?;
    let backend = backend.unwrap_or_else(context::default_backend);
    let state_dir = context::state_dir(&layout, backend);
    let state = state_dir.display().to_string();
    let (sites, reload, setup) = target(&layout, backend, &state)?;
    let vdir = cms::vhost_dir(&sites, &vhost.name);
    if std::fs::symlink_metadata(local(&vdir).join("current")).is_err() {
        return Err(Exit::failure(format!(
            "the cms jail does not serve {} yet ({vdir}/current is missing)\n  fix: `{setup}`",
            vhost.name
        )));
    }
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let id = cms::release_id(millis);
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "warden".into());
    let src_s = src.display().to_string();
    let keep = cms::KEEP_RELEASES.to_string();
    let s = Step::Cms;
    let plan = Plan {
        actions: vec![
            Action::run(
                s,
                format!(
                    "copy {src_s} ({files} files) into {}'s release {id}",
                    vhost.name
                ),
                &[&exe, "site", "stage", &src_s, &vdir, &id],
            ),
            Action::run(
                s,
                format!(
                    "point {}'s current link at release {id} (atomic rename)",
                    vhost.name
                ),
                &[&exe, "site", "swap", &vdir, &id],
            ),
            Action::run(s, "reload nginx in the cms jail (graceful)", &reload),
            Action::run(
                s,
                format!("keep {}'s newest {keep} releases", vhost.name),
                &[&exe, "site", "prune", &vdir, "--keep", &keep],
            ),
        ],
        ..Default::default()
    };
    context::ensure_state_dir(&state_dir)?;
    let journal =
        Journal::open(&state_dir.join("journal.db")).map_err(|e| Exit::failure(e.to_string()))?;
    let runner = warden_host::SystemRunner::new();
    warden_host::apply(&plan, &runner, &journal, "site-deploy", &mut SilentProgress)
        .map_err(|e| Exit::failure(e.to_string()))?;
    eprintln!(
        "warden: deployed {files} files to http://{}/ (release {id})",
        vhost.name
    );
    println!("{id}");
    Ok(())
}

fn list(global: &Global, json: bool, backend: Option<BackendName>) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    let backend = backend.unwrap_or_else(context::default_backend);
    let state = context::state_dir(&layout, backend).display().to_string();
    let (sites, _, _) = target(&layout, backend, &state)?;
    let rows: Vec<serde_json::Value> = cms::vhosts(&layout)
        .into_iter()
        .map(|v| {
            let dir = local(&cms::vhost_dir(&sites, &v.name));
            serde_json::json!({
                "name": v.name,
                "kind": v.kind,
                "tenant": v.tenant,
                "site": v.site,
                "current": site::current(&dir),
                "releases": site::releases(&dir),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    println!("{:<36} {:<8} {:<12} CURRENT", "NAME", "KIND", "TENANT");
    for r in rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        println!(
            "{:<36} {:<8} {:<12} {}",
            s("name"),
            s("kind"),
            s("tenant"),
            r["current"].as_str().unwrap_or("(not set up)")
        );
    }
    Ok(())
}
