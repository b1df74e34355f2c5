//! The setup flow lives in `warden_host::setup` (it is the same on every backend); these tests prove it on the
//! Bastille backend.

pub use warden_host::setup::{filter_steps, interrupted_runs, setup, SetupError, SetupReport};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BastilleBackend;
    use warden_core::config::load;
    use warden_core::{Action, Layout, Plan, Step};
    use warden_host::runner::Call;
    use warden_host::Journal;
    use warden_host::{RecordingRunner, SilentProgress};

    fn layout() -> Layout {
        Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap()
    }

    #[test]
    fn interrupted_runs_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.db")).unwrap();
        let run = journal.begin_run("bastille").unwrap();
        let a = Action::run(Step::Jails, "create the git jail", &["bastille", "create"]);
        journal.started(run, 0, &a).unwrap();
        journal.finished(run, 0, true, "").unwrap();
        journal.started(run, 1, &a).unwrap();
        assert_eq!(
            interrupted_runs(&journal).unwrap(),
            vec!["resuming after an interrupted run: action 2 (create the git jail) was started but not confirmed".to_string()]
        );
    }

    /// The recording runner answers 0 with no output and changes nothing, like a tool whose exit code lies: setup
    /// must apply the plan in order, observe again, and refuse to call that a success.
    #[test]
    fn lying_host_is_not_called_converged_and_order_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.db")).unwrap();
        let backend = BastilleBackend::new(RecordingRunner::new(), dir.path());
        let err = setup(
            &backend,
            &layout(),
            &[Step::Host],
            &journal,
            &mut SilentProgress,
        )
        .unwrap_err();
        assert!(matches!(err, SetupError::NotConverged { .. }), "{err}");
        let calls = backend.inner().calls();
        let pos = |want: &Call| {
            calls
                .iter()
                .position(|c| c == want)
                .unwrap_or_else(|| panic!("{want:?} missing"))
        };
        let run = |s: &str| Call::Run(s.split(' ').map(str::to_string).collect());
        let versions: Vec<usize> = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == run("bastille -v"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(versions.len(), 2, "observed before and after applying");
        let conf = calls.iter().position(|c| matches!(c, Call::Write(p, ..) if p == warden_core::bastille_plan::BASTILLE_CONF)).unwrap();
        // `ifconfig warden0` exits 0 here, so the bridge reads as existing and only its address is planned.
        let gateway = pos(&run("sysrc gateway_enable=YES"));
        let addr = pos(&run("ifconfig warden0 inet 10.0.1.1/24 up"));
        let pf = pos(&run("service pf start"));
        assert!(
            versions[0] < conf && conf < gateway && gateway < addr && addr < pf && pf < versions[1],
            "{calls:#?}"
        );
        assert!(!calls.iter().any(
            |c| matches!(c, Call::Run(a) if a[..2] == ["bastille".to_string(), "create".into()])
        ));
    }

    #[test]
    fn steps_filter() {
        let plan = Plan {
            actions: vec![
                Action::run(Step::Host, "a", &["a"]),
                Action::run(Step::Dns, "b", &["b"]),
            ],
            notes: vec![],
            ..Default::default()
        };
        assert_eq!(filter_steps(plan.clone(), &[Step::Dns]).actions.len(), 1);
        assert_eq!(filter_steps(plan, &[]).actions.len(), 2);
    }
}
