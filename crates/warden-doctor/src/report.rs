//! What a check found, and the two ways of showing it: a table for people, JSON for machines.

use serde::Serialize;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As expected.
    Ok,
    /// Not checked: it does not apply here, or something it depends on already failed (`seen` says which).
    Skip,
    /// Works, but something is off or optional and absent.
    Warn,
    /// Broken.
    Fail,
}

impl Status {
    /// The word shown in the table.
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Status::Ok => "32",
            Status::Skip => "2",
            Status::Warn => "33",
            Status::Fail => "31",
        }
    }
}

/// One check: what was expected, what was seen, and the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable dotted name, e.g. `network.bridge`, `jail.clawdiegit.running`.
    pub name: String,
    /// The verdict.
    pub status: Status,
    /// What the layout wants.
    pub expected: String,
    /// What the host showed.
    pub seen: String,
    /// The exact command that fixes it (empty when nothing is to be done).
    pub remedy: String,
    /// How long the check took.
    pub duration_ms: u64,
    /// Checks whose failure makes this one meaningless; it is then shown as `skip` pointing at them.
    #[serde(skip)]
    pub depends_on: Vec<String>,
}

impl Check {
    /// A check with `status`; no remedy, no dependencies.
    pub fn new(
        name: impl Into<String>,
        status: Status,
        expected: impl Into<String>,
        seen: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status,
            expected: expected.into(),
            seen: seen.into(),
            remedy: String::new(),
            duration_ms: 0,
            depends_on: Vec::new(),
        }
    }

    /// Passed.
    pub fn ok(
        name: impl Into<String>,
        expected: impl Into<String>,
        seen: impl Into<String>,
    ) -> Check {
        Check::new(name, Status::Ok, expected, seen)
    }

    /// Failed; `remedy` fixes it.
    pub fn fail(
        name: impl Into<String>,
        expected: impl Into<String>,
        seen: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Check {
        Check::new(name, Status::Fail, expected, seen).with_remedy(remedy)
    }

    /// A warning; `remedy` clears it.
    pub fn warn(
        name: impl Into<String>,
        expected: impl Into<String>,
        seen: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Check {
        Check::new(name, Status::Warn, expected, seen).with_remedy(remedy)
    }

    /// Not checked, and why.
    pub fn skip(
        name: impl Into<String>,
        expected: impl Into<String>,
        why: impl Into<String>,
    ) -> Check {
        Check::new(name, Status::Skip, expected, why)
    }

    /// Ok when `good`, else a failure with `remedy`.
    pub fn verdict(
        name: impl Into<String>,
        good: bool,
        expected: impl Into<String>,
        seen: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Check {
        if good {
            Check::ok(name, expected, seen)
        } else {
            Check::fail(name, expected, seen, remedy)
        }
    }

    /// Sets the remedy.
    pub fn with_remedy(mut self, remedy: impl Into<String>) -> Check {
        self.remedy = remedy.into();
        self
    }

    /// Declares checks this one depends on.
    pub fn depends(mut self, on: &[&str]) -> Check {
        self.depends_on = on.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// Counts by status, and the wall time of the whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Number of checks.
    pub total: usize,
    /// Passed.
    pub ok: usize,
    /// Warnings.
    pub warn: usize,
    /// Failures.
    pub fail: usize,
    /// Not checked.
    pub skip: usize,
    /// Wall time of the whole run.
    pub duration_ms: u64,
    /// The backend checked (`linux`, `bastille`).
    pub backend: String,
}

/// Every check of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The checks, in a stable order.
    pub checks: Vec<Check>,
    /// The counts.
    pub summary: Summary,
}

impl Report {
    /// Builds the report: marks checks blocked by a failed dependency as `skip`, sorts, counts.
    pub fn new(mut checks: Vec<Check>, backend: &str, duration_ms: u64) -> Report {
        collapse_dependents(&mut checks);
        let mut summary = Summary {
            total: checks.len(),
            duration_ms,
            backend: backend.to_string(),
            ..Default::default()
        };
        for c in &checks {
            match c.status {
                Status::Ok => summary.ok += 1,
                Status::Warn => summary.warn += 1,
                Status::Fail => summary.fail += 1,
                Status::Skip => summary.skip += 1,
            }
        }
        Report { checks, summary }
    }

    /// Whether any check failed (the exit code is 1 then).
    pub fn failed(&self) -> bool {
        self.summary.fail > 0
    }

    /// The check named `name`.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// `{"checks":[…],"summary":{…}}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The table for people; ANSI colour only when `color`.
    pub fn to_table(&self, color: bool) -> String {
        let paint = |s: Status, text: &str| {
            if color {
                format!("\x1b[{}m{text}\x1b[0m", s.color())
            } else {
                text.to_string()
            }
        };
        let name_w = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = String::new();
        out.push_str(&format!(
            "{:<6} {:<name_w$}  {}\n",
            "STATUS", "CHECK", "DETAIL"
        ));
        for c in &self.checks {
            let word = format!("{:<6}", c.status.word());
            out.push_str(&format!("{} {:<name_w$}  ", paint(c.status, &word), c.name));
            if c.status == Status::Ok {
                out.push_str(&c.seen);
                out.push('\n');
                continue;
            }
            let pad = " ".repeat(7 + name_w + 2);
            out.push_str(&format!("expected: {}\n", c.expected));
            out.push_str(&format!("{pad}seen:     {}\n", c.seen));
            if !c.remedy.is_empty() {
                out.push_str(&format!("{pad}fix:      {}\n", c.remedy));
            }
        }
        let s = &self.summary;
        let verdict = if s.fail > 0 {
            paint(Status::Fail, "unhealthy")
        } else if s.warn > 0 {
            paint(Status::Warn, "healthy, with warnings")
        } else {
            paint(Status::Ok, "healthy")
        };
        out.push_str(&format!(
            "\n{verdict}: {} ok, {} warn, {} fail, {} skip ({} checks, backend {}, {} ms)\n",
            s.ok, s.warn, s.fail, s.skip, s.total, s.backend, s.duration_ms
        ));
        out
    }
}

/// A failed or warned check whose dependency failed is shown as `skip` naming the root cause, so the table
/// points at what to fix first. (The dependency's own failure keeps the run failing.)
fn collapse_dependents(checks: &mut [Check]) {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.name.clone())
        .collect();
    for c in checks.iter_mut() {
        if matches!(c.status, Status::Fail | Status::Warn) {
            if let Some(root) = c
                .depends_on
                .iter()
                .find(|d| failed.contains(d) && **d != c.name)
            {
                c.seen = format!("blocked by failing {root} ({})", c.seen);
                c.status = Status::Skip;
                c.remedy.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_collapses_and_renders() {
        let checks = vec![
            Check::fail(
                "network.bridge",
                "warden0 10.0.1.1/24",
                "no address",
                "warden setup --step host",
            ),
            Check::fail("dns.resolve.gateway", "answers", "unreachable", "x")
                .depends(&["network.bridge"]),
            Check::ok("network.forwarding", "on", "on"),
            Check::warn("control_plane.healthz", "200", "refused", "warden serve"),
        ];
        let r = Report::new(checks, "linux", 12);
        assert_eq!(
            (r.summary.ok, r.summary.warn, r.summary.fail, r.summary.skip),
            (1, 1, 1, 1)
        );
        assert!(r.failed());
        let blocked = r.get("dns.resolve.gateway").unwrap();
        assert_eq!(blocked.status, Status::Skip);
        assert!(blocked.seen.contains("blocked by failing network.bridge"));
        let table = r.to_table(false);
        assert!(
            table.contains("fix:      warden setup --step host"),
            "{table}"
        );
        assert!(!table.contains('\x1b'));
        assert!(r.to_table(true).contains("\x1b[31m"));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["checks"][0]["status"], "fail");
        for key in [
            "name",
            "status",
            "expected",
            "seen",
            "remedy",
            "duration_ms",
        ] {
            assert!(v["checks"][0].get(key).is_some(), "{key}");
        }
        assert_eq!(v["summary"]["fail"], 1);
    }
}
