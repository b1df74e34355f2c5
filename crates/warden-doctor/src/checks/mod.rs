//! The check families, and which of them run on which backend.

pub mod ai;
pub mod bastille;
pub mod cms;
pub mod control_plane;
pub mod db;
pub mod dns;
pub mod expose;
pub mod git;
pub mod hosts;
pub mod jails;
// The Linux backend's checks exist on Linux only; elsewhere a stand-in says so.
#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
#[path = "linux_absent.rs"]
mod linux;
pub mod network;
pub mod tailscale;
pub mod telegram;

use std::sync::Arc;

use crate::report::Check;
use crate::runner::Task;
use crate::{BackendKind, Ctx};

fn task(ctx: &Arc<Ctx>, name: &str, f: fn(&Ctx) -> Vec<Check>) -> Task {
    let ctx = Arc::clone(ctx);
    Task::new(name, move || f(&ctx))
}

/// Every task for the context's backend, in report order.
pub fn tasks(ctx: &Arc<Ctx>) -> Vec<Task> {
    let mut out = vec![
        task(ctx, "network.bridge", network::bridge),
        task(ctx, "network.forwarding", network::forwarding),
    ];
    if ctx.opts.backend == BackendKind::Bastille {
        out.push(task(ctx, "network.pf", network::pf));
    }
    out.push(task(ctx, "network.nat", network::nat));
    if ctx.opts.backend == BackendKind::Linux {
        out.push(task(ctx, "network.paths", network::paths));
    }
    out.extend([
        task(ctx, "dns.service", dns::service),
        task(ctx, "dns.listen", dns::listen),
        task(ctx, "dns.zone", dns::zone),
        task(ctx, "dns.resolve.loopback", dns::resolve_loopback),
        task(ctx, "dns.resolve.gateway", dns::resolve_gateway),
        task(ctx, "hosts.block", hosts::block),
    ]);
    match ctx.opts.backend {
        BackendKind::Linux => {
            for svc in ctx.layout().jails() {
                let c = Arc::clone(ctx);
                let jail = svc.jail.clone();
                // A dead bridge or resolver makes the in-jail round trips wait out their limits.
                out.push(
                    Task::new(format!("jail.{jail}"), move || linux::jail(&c, &jail))
                        .depends(&["network.bridge", "dns.service"]),
                );
            }
        }
        BackendKind::Bastille => {
            for svc in ctx.layout().jails() {
                let c = Arc::clone(ctx);
                let jail = svc.jail.clone();
                out.push(Task::new(format!("jail.{jail}"), move || {
                    jails::bastille_jail(&c, &jail)
                }));
            }
        }
    }
    // A dead bridge makes the probe wait out its limit.
    out.push(task(ctx, "ai.models", ai::models).depends(&["network.bridge"]));
    for role in db::role_names(ctx) {
        let c = Arc::clone(ctx);
        let deps = db::depends_on(ctx, &role);
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        out.push(Task::new(format!("db.{role}"), move || db::role(&c, &role)).depends(&deps));
    }
    if let Some(svc) = ctx.layout().service(warden_core::layout::Role::Git) {
        let deps = git::depends_on(&svc.jail);
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        out.push(task(ctx, git::NAME, git::http).depends(&deps));
    }
    for index in expose::indices(ctx) {
        let c = Arc::clone(ctx);
        let name = ctx.layout().exposures[index].check_name();
        out.push(Task::new(name, move || expose::check(&c, index)));
    }
    for name in cms::vhost_names(ctx) {
        let c = Arc::clone(ctx);
        out.push(
            Task::new(format!("cms.vhost.{name}"), move || cms::vhost(&c, &name))
                .depends(&["network.bridge", "dns.service"]),
        );
    }
    out.extend([
        task(ctx, "outbound", control_plane::outbound).depends(control_plane::OUTBOUND_DEPS),
        task(ctx, "control_plane.healthz", control_plane::healthz),
        task(ctx, "state_dir", control_plane::state_dir),
    ]);
    out.extend(tailscale::tasks(ctx));
    if ctx.opts.telegram.is_some() {
        out.push(task(ctx, "telegram.bot", telegram::bot));
    }
    if ctx.opts.backend == BackendKind::Bastille {
        out.push(task(ctx, "bastille", bastille::invariants));
        out.push(task(ctx, "workers.limits", bastille::limits));
    }
    out
}
