//! Commands of the FreeBSD service steps inside a jail: the `jexec` argv, the step's actions with what observe
//! saw in the jail ([`InJail`]), and the `warden` binary and state directory setup's hidden verbs run.

use crate::layout::Layout;
use crate::observed::{BastilleHost, JailState};
use crate::plan::{Action, Step};

/// Commands inside a jail as `user`, with the real exit status.
pub(crate) fn jexec(jail: &str, user: &str, cmd: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = ["jexec", "-l", "-U", user, jail]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.extend(cmd.iter().map(|s| s.to_string()));
    argv
}

/// The actions of one service step inside one jail, with what observe saw in it.
pub(crate) struct InJail<'a> {
    pub(crate) step: Step,
    pub(crate) jail: &'a str,
    pub(crate) state: JailState,
    pub(crate) out: &'a mut Vec<Action>,
}

impl InJail<'_> {
    pub(crate) fn push(&mut self, summary: String, argv: Vec<String>) {
        self.out.push(Action {
            step: self.step,
            summary,
            op: crate::plan::Op::Argv(argv),
            verify: None,
        });
    }

    pub(crate) fn pkg(&mut self, pkg: &str) {
        if !self.state.packages.contains(pkg) {
            let argv = jexec(
                self.jail,
                "root",
                &["env", "ASSUME_ALWAYS_YES=yes", "pkg", "install", pkg],
            );
            let summary = format!("install {pkg} in {}", self.jail);
            self.out.push(Action {
                step: self.step,
                summary,
                op: crate::plan::Op::Argv(argv),
                verify: Some(jexec(self.jail, "root", &["pkg", "info", "-e", pkg])),
            });
        }
    }

    pub(crate) fn enable(&mut self, var: &str) {
        if self.state.rc_conf.get(var).map(String::as_str) != Some("YES") {
            self.push(
                format!("set {var}=YES in {}'s rc.conf", self.jail),
                jexec(self.jail, "root", &["sysrc", &format!("{var}=YES")]),
            );
        }
    }

    /// `sysrc VAR=VALUE` unless rc.conf already says exactly that.
    pub(crate) fn set(&mut self, var: &str, value: &str) {
        if self.state.rc_conf.get(var).map(String::as_str) != Some(value) {
            self.push(
                format!("set {var}=\"{value}\" in {}'s rc.conf", self.jail),
                jexec(self.jail, "root", &["sysrc", &format!("{var}={value}")]),
            );
        }
    }

    pub(crate) fn start(&mut self, service: &str) {
        if !self.state.services_running.contains(service) {
            self.push(
                format!("start {service} in {}", self.jail),
                jexec(self.jail, "root", &["service", service, "start"]),
            );
        }
    }
}

/// The `warden` binary setup's hidden verbs run (the observing one, else `warden` on PATH) and the state
/// directory they are given.
pub(crate) fn warden_and_state(layout: &Layout, host: &BastilleHost) -> (String, String) {
    let exe = if host.warden_exe.is_empty() {
        "warden".to_string()
    } else {
        host.warden_exe.clone()
    };
    let state = if host.state_dir.is_empty() {
        crate::bastille_agent::state_dir(layout)
    } else {
        host.state_dir.clone()
    };
    (exe, state)
}
