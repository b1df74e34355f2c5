//! Reading a tailscaled through its CLI, the same on both systems: `tailscale status --json` and `tailscale
//! debug prefs`, through the runner (so a simulated host's or a stand-in's `tailscale` answers in tests). A
//! `prefix` runs them inside a jail (`jexec -l -U root NAME`, `warden jail exec NAME --`).

use warden_core::tailscale::{parse_prefs, parse_status, Node};

use crate::runner::{Output, RunError, Runner};

/// Reads the tailscaled `prefix + tailscale …` talks to. A missing `tailscale` program reads as not installed;
/// a tailscaled that does not answer (the CLI fails, or prints what is not its JSON) leaves `status` empty and
/// says why in `error`.
pub fn observe(runner: &dyn Runner, prefix: &[&str]) -> Result<Node, RunError> {
    let run = |args: &[&str]| -> Result<Option<Output>, RunError> {
        let argv: Vec<String> = prefix.iter().chain(args).map(|s| s.to_string()).collect();
        match runner.run(&argv) {
            Ok(out) => Ok(Some(out)),
            Err(RunError::Spawn { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    };
    let mut node = Node::default();
    let Some(out) = run(&["tailscale", "status", "--json"])? else {
        return Ok(node);
    };
    // A jail's or a shell's "not found" (127) is a missing program too.
    if out.status == 127 {
        return Ok(node);
    }
    node.installed = true;
    if !out.ok() {
        node.error = first_line(&out);
        return Ok(node);
    }
    match parse_status(&out.stdout) {
        Ok(status) => node.status = Some(status),
        Err(why) => {
            node.error = why;
            return Ok(node);
        }
    }
    if let Some(out) = run(&["tailscale", "debug", "prefs"])?.filter(Output::ok) {
        node.prefs = parse_prefs(&out.stdout).ok();
    }
    Ok(node)
}

/// The first non-empty line of a command's stderr, else its stdout.
fn first_line(out: &Output) -> String {
    out.stderr
        .lines()
        .chain(out.stdout.lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Answers each command line from a table; other commands are missing programs.
    struct Canned(BTreeMap<&'static str, (i32, &'static str)>);

    impl Runner for Canned {
        fn run(&self, argv: &[String]) -> Result<Output, RunError> {
            match self.0.get(argv.join(" ").as_str()) {
                Some((status, text)) => Ok(Output {
                    status: *status,
                    stdout: if *status == 0 {
                        text.to_string()
                    } else {
                        String::new()
                    },
                    stderr: if *status == 0 {
                        String::new()
                    } else {
                        text.to_string()
                    },
                }),
                None => Err(RunError::Spawn {
                    program: argv[0].clone(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                }),
            }
        }
        fn read_file(&self, _: &str) -> Result<Option<String>, RunError> {
            Ok(None)
        }
        fn write_file(&self, _: &str, _: u32, _: &str) -> Result<(), RunError> {
            Ok(())
        }
        fn mode(&self, _: &str) -> Result<Option<u32>, RunError> {
            Ok(None)
        }
    }

    #[test]
    fn reads_status_and_prefs_or_says_why_not() {
        let up = Canned(BTreeMap::from([
            (
                "tailscale status --json",
                (
                    0,
                    r#"{"BackendState":"Running","TailscaleIPs":["100.64.0.7"],"Self":{"PrimaryRoutes":["10.0.1.0/24"]}}"#,
                ),
            ),
            (
                "tailscale debug prefs",
                (
                    0,
                    r#"{"WantRunning":true,"AdvertiseRoutes":["10.0.1.0/24"]}"#,
                ),
            ),
        ]));
        let node = observe(&up, &[]).unwrap();
        assert!(
            node.running() && node.advertised() == ["10.0.1.0/24"],
            "{node:?}"
        );
        let down = Canned(BTreeMap::from([(
            "jexec -l -U root j tailscale status --json",
            (
                1,
                "failed to connect to local tailscaled; it doesn't appear to be running\n",
            ),
        )]));
        let node = observe(&down, &["jexec", "-l", "-U", "root", "j"]).unwrap();
        assert!(node.installed && node.status.is_none());
        assert!(
            node.state_text().contains("doesn't appear to be running"),
            "{node:?}"
        );
        let none = observe(&Canned(BTreeMap::new()), &[]).unwrap();
        assert!(!none.installed && none.state_text() == "tailscale is not installed");
    }
}
