//! `warden git create|list|delete|url`, and the hidden `git credentials` verb setup's git step runs so that no
//! password is ever in a plan, an argv, the journal or an error. Repository operations run in the git jail as
//! its git account: `warden jail exec` on Linux, `jexec` on FreeBSD.

use std::process::Command;

use warden_core::git::{self, RepoOp};
use warden_core::layout::Role;
use warden_core::Layout;
use warden_host::git_secrets;

use crate::cli::{BackendName, GitCommand, GitRepoArgs, Global};
use crate::context;
use crate::exit::Exit;

/// Runs one `warden git` verb.
pub fn run(global: &Global, command: &GitCommand) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    match command {
        GitCommand::Create(a) => {
            let owner = repo(&layout, a)?;
            in_jail(&layout, a.backend, RepoOp::Create, &owner, &a.repo)?;
            let fqdn = layout.service(Role::Git).map(|s| s.fqdn.clone());
            println!(
                "created {owner}/{}: http://{}/{owner}/{}.git (`warden git url {}{}` prints a clone URL with the credential)",
                a.repo,
                fqdn.unwrap_or_default(),
                a.repo,
                a.repo,
                a.tenant.as_ref().map(|t| format!(" --tenant {t}")).unwrap_or_default()
            );
            Ok(())
        }
        GitCommand::List { tenant, backend } => {
            let owner = git::owner(&layout, tenant.as_deref()).map_err(Exit::usage)?;
            let out = in_jail(&layout, *backend, RepoOp::List, &owner, "")?;
            print!("{out}");
            Ok(())
        }
        GitCommand::Delete(a) => {
            let owner = repo(&layout, a)?;
            in_jail(&layout, a.backend, RepoOp::Delete, &owner, &a.repo)?;
            println!("deleted {owner}/{}", a.repo);
            Ok(())
        }
        GitCommand::Url(a) => {
            let owner = repo(&layout, a)?;
            let backend = a.backend.unwrap_or_else(context::default_backend);
            let state = context::state_dir(&layout, backend).display().to_string();
            let password = git_secrets::read_password(&state, &owner).map_err(Exit::failure)?;
            let url = git::url(&layout, &owner, &password, &a.repo)
                .ok_or_else(|| Exit::usage("the layout has no git jail (slots.git)"))?;
            println!("{url}");
            Ok(())
        }
        GitCommand::Credentials { auth_dir, owners } => git_secrets::credentials(
            &context::verb_state_dir(&layout),
            &host_path(auth_dir),
            owners,
        )
        .map_err(Exit::failure),
        GitCommand::ForgejoConfig { out } => {
            git_secrets::forgejo_config(&context::verb_state_dir(&layout), &layout, &host_path(out))
                .map_err(Exit::failure)
        }
    }
}

/// A host path as this process reaches it: under a simulated host's root when there is one (the plan names
/// the FreeBSD path, as it names every other).
fn host_path(path: &str) -> String {
    warden_host::SystemRunner::with_root(crate::backends::host_root())
        .local(path)
        .display()
        .to_string()
}

/// The repository's owner, with its name and the tenant checked (bad input: exit 2 naming the fix).
fn repo(layout: &Layout, a: &GitRepoArgs) -> Result<String, Exit> {
    git::check_repo(&a.repo).map_err(Exit::usage)?;
    git::owner(layout, a.tenant.as_deref()).map_err(Exit::usage)
}

/// Runs `op`'s script in the git jail as the git account; its stdout, or a failure naming the fix.
fn in_jail(
    layout: &Layout,
    backend: Option<BackendName>,
    op: RepoOp,
    owner: &str,
    repo: &str,
) -> Result<String, Exit> {
    let svc = layout
        .service(Role::Git)
        .ok_or_else(|| Exit::usage("the layout has no git jail (slots.git)"))?;
    let backend = backend.unwrap_or_else(context::default_backend);
    let state = context::state_dir(layout, backend).display().to_string();
    let script = git::repo_script(op, owner, repo);
    let argv = match backend {
        BackendName::Linux => {
            let exe = std::env::current_exe()
                .map_err(|e| Exit::failure(format!("cannot find this warden binary: {e}")))?;
            warden_core::linux_git::as_git(
                &exe.display().to_string(),
                &state,
                &svc.jail,
                &["sh", "-c", &script],
            )
        }
        BackendName::Bastille => git::jexec_as_git(&svc.jail, &script),
    };
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| Exit::failure(format!("failed to run {}: {e}", argv[0])))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match out.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Some(3) => Err(Exit::failure(stderr)),
        _ => Err(Exit::failure(format!(
            "the git jail {} could not run the command ({}): {stderr}\n  fix: `warden setup --backend {} --step git` (the jail and its git account must be up)",
            svc.jail,
            out.status,
            match backend {
                BackendName::Linux => "linux",
                BackendName::Bastille => "bastille",
            }
        ))),
    }
}
