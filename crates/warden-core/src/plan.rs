//! Plans: the ordered [`Action`]s that turn an observed host into the layout. A plan is a value: `warden plan`
//! prints it, `warden setup` applies exactly it.

use std::fmt;

/// The seeds' setup steps, in the order they run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// What the host needs before anything else: the packages Warden runs, the worker account, boot settings.
    Base,
    /// Host networking, config files, forwarding, firewall.
    Host,
    /// Releases and the service jails.
    Jails,
    /// The database jail's PostgreSQL.
    Db,
    /// The git jail's repositories.
    Git,
    /// The cms jail's web server.
    Cms,
    /// The Local AI Models jail.
    Ai,
    /// The agent workers run: pi (pinned) and the node that runs it.
    Agent,
    /// The managed block of `/etc/hosts`.
    Hosts,
    /// dnsmasq.
    Dns,
    /// How the tailnet reaches Clawdie (`tailscale.mode`).
    Tailscale,
    /// The doctor's checks.
    Verify,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 12] = [
        Step::Base,
        Step::Host,
        Step::Jails,
        Step::Db,
        Step::Git,
        Step::Cms,
        Step::Ai,
        Step::Agent,
        Step::Hosts,
        Step::Dns,
        Step::Tailscale,
        Step::Verify,
    ];

    /// The step's name as the CLI takes it.
    pub fn name(self) -> &'static str {
        match self {
            Step::Base => "base",
            Step::Host => "host",
            Step::Jails => "jails",
            Step::Db => "db",
            Step::Git => "git",
            Step::Cms => "cms",
            Step::Ai => "ai",
            Step::Agent => "agent",
            Step::Hosts => "hosts",
            Step::Dns => "dns",
            Step::Tailscale => "tailscale",
            Step::Verify => "verify",
        }
    }

    /// Every step in the order a teardown undoes them (the reverse of setup's).
    pub fn undo_order() -> impl Iterator<Item = Step> {
        Step::ALL.into_iter().rev()
    }

    /// Parses a step name.
    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A file to write: path, octal mode, full content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileWrite {
    /// Absolute path on the target host.
    pub path: String,
    /// Octal mode, e.g. `0644`.
    pub mode: String,
    /// The whole new content.
    pub content: String,
}

/// What an action does: run one command, or write one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Run this exact argv (no shell).
    Argv(Vec<String>),
    /// Write this file atomically.
    File(FileWrite),
    /// Remove this host file or directory tree (nothing to do if it is gone); through the runner, so a
    /// simulated host's root applies as it does to writes.
    Remove(String),
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Action {
    /// The setup step it belongs to.
    pub step: Step,
    /// One line saying what it does and why.
    pub summary: String,
    /// The command or the file.
    #[serde(flatten)]
    pub op: Op,
    /// A read-only command that must succeed afterwards; tools whose exit codes lie (Bastille) are checked by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Vec<String>>,
}

impl Action {
    /// An action that runs `argv`.
    pub fn run<S: AsRef<str>>(step: Step, summary: impl Into<String>, argv: &[S]) -> Action {
        Action {
            step,
            summary: summary.into(),
            op: Op::Argv(argv.iter().map(|s| s.as_ref().to_string()).collect()),
            verify: None,
        }
    }

    /// An action that writes a file.
    pub fn file(
        step: Step,
        summary: impl Into<String>,
        path: &str,
        mode: &str,
        content: String,
    ) -> Action {
        Action {
            step,
            summary: summary.into(),
            op: Op::File(FileWrite {
                path: path.to_string(),
                mode: mode.to_string(),
                content,
            }),
            verify: None,
        }
    }

    /// An action that removes a host file or directory tree.
    pub fn remove(step: Step, summary: impl Into<String>, path: &str) -> Action {
        Action {
            step,
            summary: summary.into(),
            op: Op::Remove(path.to_string()),
            verify: None,
        }
    }

    /// Adds a verification command.
    pub fn verified_by<S: AsRef<str>>(mut self, argv: &[S]) -> Action {
        self.verify = Some(argv.iter().map(|s| s.as_ref().to_string()).collect());
        self
    }

    /// A stable one-line form, used as the journal's key for this action.
    pub fn fingerprint(&self) -> String {
        match &self.op {
            Op::Argv(argv) => format!("{}:run:{}", self.step, argv.join("\u{1f}")),
            Op::File(f) => format!(
                "{}:file:{}:{}:{}",
                self.step,
                f.path,
                f.mode,
                fnv1a(f.content.as_bytes())
            ),
            Op::Remove(path) => format!("{}:remove:{path}", self.step),
        }
    }
}

/// 64-bit FNV-1a: a small, stable content hash for fingerprints (not for security).
fn fnv1a(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}")
}

/// Choices of the operator that change what a plan does (not what the host is).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// `--no-install`: the operator manages packages; a missing one blocks its step instead of being installed.
    pub no_install: bool,
}

/// Choices of the operator for `warden teardown`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TeardownOptions {
    /// `--force`: destroy the thick db jail and its secrets too; without it their data is kept (`--keep-data`,
    /// the default, says so explicitly).
    pub force: bool,
}

/// Teardown of one of the layout's jails, the same on both backends: a thick jail (the db's data) is only
/// stopped, when running, and kept unless `--force`; any other is destroyed. `stop` and `destroy` are the
/// backend's commands for it.
pub fn teardown_jail(
    plan: &mut Plan,
    svc: &crate::layout::Service,
    running: bool,
    options: &TeardownOptions,
    stop: &[&str],
    destroy: &[&str],
) {
    let (name, role) = (svc.jail.as_str(), svc.role.name());
    if svc.shape == crate::layout::Shape::Thick && !options.force {
        if running {
            plan.actions.push(Action::run(
                Step::Jails,
                format!("stop the {role} jail {name} (thick: its data is kept)"),
                stop,
            ));
        }
        plan.notes.push(format!(
            "kept the thick {role} jail {name} and its data (stopped); `warden teardown --force` destroys it"
        ));
    } else {
        plan.actions.push(Action::run(
            Step::Jails,
            format!("stop and destroy the {role} jail {name}"),
            destroy,
        ));
    }
}

/// Something a step needs that setup does not do itself (a package the operator installs with
/// `--no-install`, a node too old for pi): the step cannot be applied until the operator fixes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Blocker {
    /// The step that cannot run.
    pub step: Step,
    /// What is missing.
    pub problem: String,
    /// The exact command (or change) that fixes it.
    pub fix: String,
}

/// An ordered list of actions, plus notes for the operator (assumptions, undesigned steps).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// The actions, in the order they must run.
    pub actions: Vec<Action>,
    /// Things the operator should know that are not actions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What stops steps from being applied; `warden setup` refuses those steps before changing anything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<Blocker>,
}

impl Plan {
    /// Keeps only the actions (and blockers) of `step`.
    pub fn only(self, step: Step) -> Plan {
        self.only_steps(&[step])
    }

    /// Keeps only the actions (and blockers) of `steps`; all of them when `steps` is empty.
    pub fn only_steps(mut self, steps: &[Step]) -> Plan {
        if !steps.is_empty() {
            self.actions.retain(|a| steps.contains(&a.step));
            self.blocked.retain(|b| steps.contains(&b.step));
        }
        self
    }

    /// The blockers as one message: each problem with its fix.
    pub fn blocked_text(&self) -> String {
        self.blocked
            .iter()
            .map(|b| format!("[{}] {}\n  fix: {}", b.step, b.problem, b.fix))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The plan as text for people: one block per step, one line per action, the argv or the file after it.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut current = None;
        for (i, a) in self.actions.iter().enumerate() {
            if current != Some(a.step) {
                out.push_str(&format!(
                    "{}[{}]\n",
                    if current.is_some() { "\n" } else { "" },
                    a.step
                ));
                current = Some(a.step);
            }
            out.push_str(&format!("{:>3}. {}\n", i + 1, a.summary));
            match &a.op {
                Op::Argv(argv) => out.push_str(&format!("     $ {}\n", shell_words(argv))),
                Op::File(f) => out.push_str(&format!(
                    "     write {} (mode {}, {} lines)\n",
                    f.path,
                    f.mode,
                    f.content.lines().count()
                )),
                Op::Remove(path) => out.push_str(&format!("     remove {path}\n")),
            }
        }
        if self.actions.is_empty() && self.blocked.is_empty() {
            out.push_str("nothing to do: the host matches the layout\n");
        }
        for b in &self.blocked {
            out.push_str(&format!(
                "blocked: [{}] {}\n  fix: {}\n",
                b.step, b.problem, b.fix
            ));
        }
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }
}

/// Quotes an argv for display only (it is never run through a shell).
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_matches_the_issue() {
        let a = Action::run(Step::Jails, "create", &["bastille", "create"]);
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"step":"jails","summary":"create","argv":["bastille","create"]})
        );
        let f = Action::file(Step::Dns, "write", "/x", "0644", "a\n".into());
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v["file"],
            serde_json::json!({"path":"/x","mode":"0644","content":"a\n"})
        );
        let back: Action = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn display_quotes_only_when_needed() {
        assert_eq!(
            shell_words(&["a".into(), "b c".into(), "it's".into()]),
            r"a 'b c' 'it'\''s'"
        );
    }
}
