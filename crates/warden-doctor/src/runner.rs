//! Runs the checks concurrently (one std thread per task) and bounds each by a timeout: a task that has not
//! answered when its time is up becomes a failing check that says so, and the run goes on without it.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::report::{Check, Status};

/// One unit of concurrent work: a family of related checks (e.g. the bridge, or one jail's checks).
pub struct Task {
    /// Shown as the check name if the task times out or panics.
    pub name: String,
    /// Produces the checks.
    pub run: Box<dyn FnOnce() -> Vec<Check> + Send + 'static>,
    /// Checks whose failure explains this task timing out (given to the timeout's check).
    pub depends_on: Vec<String>,
}

impl Task {
    /// A task named `name` running `f`.
    pub fn new(name: impl Into<String>, f: impl FnOnce() -> Vec<Check> + Send + 'static) -> Task {
        Task {
            name: name.into(),
            run: Box::new(f),
            depends_on: Vec::new(),
        }
    }

    /// Declares the checks whose failure would explain a timeout of this task.
    pub fn depends(mut self, on: &[&str]) -> Task {
        self.depends_on = on.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// Runs every task at once and returns their checks in task order. A task still running after `timeout` is
/// reported as a failed check; its thread is left to finish on its own (it only reads the host).
pub fn run_all(tasks: Vec<Task>, timeout: Duration) -> Vec<Check> {
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<(usize, Vec<Check>)>();
    let mut names = Vec::with_capacity(tasks.len());
    let mut deps: Vec<Vec<String>> = Vec::with_capacity(tasks.len());
    let mut not_started: Vec<(usize, Check)> = Vec::new();
    for (index, task) in tasks.into_iter().enumerate() {
        names.push(task.name.clone());
        deps.push(task.depends_on.clone());
        let tx = tx.clone();
        let name = task.name;
        let run = task.run;
        let spawned = std::thread::Builder::new()
            .name(format!("doctor-{index}"))
            .spawn(move || {
                let t0 = Instant::now();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
                let elapsed = t0.elapsed().as_millis() as u64;
                let mut checks = match result {
                    Ok(checks) => checks,
                    Err(panic) => {
                        let why = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        vec![Check::fail(
                            name,
                            "the check completes",
                            format!("the check panicked: {why}"),
                            "report this as a bug in warden doctor",
                        )]
                    }
                };
                for c in &mut checks {
                    if c.duration_ms == 0 {
                        c.duration_ms = elapsed;
                    }
                }
                let _ = tx.send((index, checks));
            });
        if let Err(e) = spawned {
            not_started.push((
                index,
                Check::fail(
                    names[index].clone(),
                    "a thread to run the check",
                    format!("failed to start a thread: {e}"),
                    "",
                ),
            ));
        }
    }
    drop(tx);
    let mut results: Vec<Option<Vec<Check>>> = names.iter().map(|_| None).collect();
    let deadline = started + timeout;
    let mut pending = names.len();
    for (index, check) in not_started {
        results[index] = Some(vec![check]);
        pending -= 1;
    }
    while pending > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((index, checks)) => {
                if results[index].is_none() {
                    pending -= 1;
                }
                results[index] = Some(checks);
            }
            Err(_) => break,
        }
    }
    let ms = timeout.as_millis() as u64;
    results
        .into_iter()
        .zip(names.into_iter().zip(deps))
        .flat_map(|(checks, (name, depends_on))| {
            checks.unwrap_or_else(|| {
                let mut c = Check::new(
                    name,
                    Status::Fail,
                    format!("an answer within {ms} ms"),
                    format!("timed out after {ms} ms (the host did not answer)"),
                );
                c.duration_ms = ms;
                c.depends_on = depends_on;
                vec![c]
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_concurrently_keeps_order_and_times_out() {
        let t0 = Instant::now();
        let tasks = vec![
            Task::new("slow", || {
                std::thread::sleep(Duration::from_millis(150));
                vec![Check::ok("slow", "", "")]
            }),
            Task::new("stuck", || {
                std::thread::sleep(Duration::from_secs(120));
                vec![Check::ok("stuck", "", "")]
            }),
            Task::new("fast", || {
                vec![Check::ok("fast.a", "", ""), Check::ok("fast.b", "", "")]
            }),
            Task::new("boom", || panic!("bad input")),
        ];
        // The per-check timeout only has to separate "stuck" (two minutes) from the others, so it is far above
        // what a loaded 2-core machine needs for a 150 ms sleep or a panic with its backtrace (a CI failure at
        // 400 ms, and one at 2 s under a load average of 12).
        let checks = run_all(tasks, Duration::from_millis(15_000));
        let elapsed = t0.elapsed();
        // run_all returned long before the stuck check would have: it does not wait for a timed-out check.
        assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["slow", "stuck", "fast.a", "fast.b", "boom"]);
        assert_eq!(checks[0].status, Status::Ok);
        assert!(checks[0].duration_ms >= 150);
        assert_eq!(checks[1].status, Status::Fail);
        assert!(checks[1].seen.contains("timed out after 15000 ms"));
        assert_eq!(checks[4].status, Status::Fail);
        assert!(checks[4].seen.contains("bad input"));
    }
}
