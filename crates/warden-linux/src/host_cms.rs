//! What the Linux `cms` step compares: `<state_dir>/cms` and its sites directory (mode 0755), the rendered
//! `nginx.conf`, each vhost's `current` link, and whether nginx's master runs in the cms jail.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use warden_core::layout::{Layout, Role};
use warden_core::observed::{LinuxCms, LinuxHost};
use warden_core::{cms, linux_cms};
use warden_host::{HostError, Runner};

/// Fills `host.cms` and the config file's content (the jails must be observed already).
pub fn observe(
    runner: &dyn Runner,
    layout: &Layout,
    state: &str,
    host: &mut LinuxHost,
) -> Result<(), HostError> {
    let Some(svc) = layout.service(Role::Cms) else {
        return Ok(());
    };
    let mode_ok = |p: &str| {
        std::fs::metadata(p).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o7777 == 0o755)
    };
    let mut c = LinuxCms {
        dirs_ok: mode_ok(&linux_cms::cms_dir(state)) && mode_ok(&linux_cms::sites_dir(state)),
        ..Default::default()
    };
    let conf = linux_cms::conf_path(state);
    if let Some(content) = runner.read_file(&conf)? {
        host.files.insert(conf, content);
    }
    for v in cms::vhosts(layout) {
        let link =
            Path::new(&cms::vhost_dir(&linux_cms::sites_dir(state), &v.name)).join("current");
        if std::fs::symlink_metadata(&link).is_ok() {
            c.current.insert(v.name);
        }
    }
    if host.jails.get(&svc.jail).is_some_and(|j| j.running) {
        let argv = linux_cms::running_argv(&host.warden_exe, state, &svc.jail);
        c.running = runner.run(&argv)?.ok();
    }
    host.cms = c;
    Ok(())
}
