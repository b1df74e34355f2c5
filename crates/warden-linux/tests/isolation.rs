//! Root tests: a worker with no network cannot see the host's files or processes, cannot
//! write to its release, runs unprivileged, and leaves nothing behind.
#![cfg(target_os = "linux")]

mod common;

use common::{assert_no_residue, root_test, spec, state_dir, unique};
use warden_linux::{run_captured, Bind, ExitKind, ReleaseRef};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn cannot_read_a_host_file_outside_its_root() {
    let Some(_lock) = root_test("cannot_read_a_host_file_outside_its_root") else {
        return;
    };
    let state = state_dir();
    let secret = tempfile::Builder::new()
        .prefix("wsecret")
        .tempfile_in("/tmp")
        .unwrap();
    std::fs::write(secret.path(), "top secret").unwrap();
    let name = unique("s");
    let script = format!(
        "cat {p} 2>/dev/null && echo LEAK; ls -A /tmp; cat /proc/1/root{p} 2>/dev/null && echo LEAK2; echo end",
        p = secret.path().display()
    );
    let (o, out, err) = run_captured(&spec(&name, &["sh", "-c", &script], state.path())).unwrap();
    assert_eq!(o.status, ExitKind::Exited(0), "stderr: {}", text(&err));
    assert_eq!(text(&out), "end\n", "the worker saw host files");
    assert_no_residue(state.path(), &[name], None);
}

#[test]
fn sees_only_its_own_processes_and_is_unprivileged() {
    let Some(_lock) = root_test("sees_only_its_own_processes_and_is_unprivileged") else {
        return;
    };
    let state = state_dir();
    let name = unique("p");
    let script = "ls /proc | grep -c '^[0-9]'; id -u; id -g; hostname; grep -E '^(CapEff|CapBnd|CapPrm|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' '";
    let (o, out, err) = run_captured(&spec(&name, &["sh", "-c", script], state.path())).unwrap();
    assert_eq!(o.status, ExitKind::Exited(0), "stderr: {}", text(&err));
    let out = text(&out);
    let lines: Vec<&str> = out.lines().collect();
    // sh, ls and grep at most (the pipeline), never the host's hundreds.
    let procs: u32 = lines[0].parse().unwrap();
    assert!(procs <= 4, "worker sees {procs} processes");
    assert_eq!(&lines[1..4], &["65534", "65534", name.as_str()]);
    assert!(out.contains("CapEff: 0000000000000000"), "{out}");
    assert!(out.contains("CapPrm: 0000000000000000"), "{out}");
    assert!(out.contains("CapBnd: 0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs: 1"), "{out}");
    assert_no_residue(state.path(), &[name], None);
}

#[test]
fn even_root_in_a_worker_cannot_write_the_host_release() {
    let Some(_lock) = root_test("even_root_in_a_worker_cannot_write_the_host_release") else {
        return;
    };
    let state = state_dir();
    let name = unique("r");
    let mut s = spec(&name, &["sh", "-c", "for f in /usr/wx /etc/wx /wx /bin/wx; do touch $f 2>/dev/null && echo wrote $f; done; touch /tmp/ok && echo tmp-ok"], state.path());
    s.user = Some((0, 0));
    let (o, out, _) = run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Exited(0));
    assert_eq!(text(&out), "tmp-ok\n");
    assert!(!std::path::Path::new("/usr/wx").exists());
    assert_no_residue(state.path(), &[name], None);
}

#[test]
fn a_thin_dir_release_is_written_only_through_its_overlay() {
    let Some(_lock) = root_test("a_thin_dir_release_is_written_only_through_its_overlay") else {
        return;
    };
    let state = state_dir();
    // A tiny release: merged-usr symlinks, /usr bound read-only from the host, its own /etc.
    let rel = tempfile::tempdir().unwrap();
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        std::os::unix::fs::symlink(target, rel.path().join(link)).unwrap();
    }
    std::fs::create_dir_all(rel.path().join("etc")).unwrap();
    std::fs::create_dir_all(rel.path().join("usr")).unwrap();
    std::fs::write(
        rel.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(rel.path().join("etc/motd"), "release\n").unwrap();
    let name = unique("o");
    let mut s = spec(
        &name,
        &[
            "sh",
            "-c",
            "echo changed > /etc/motd && cat /etc/motd && mkdir /data && echo ok",
        ],
        state.path(),
    );
    s.release = ReleaseRef::Dir(rel.path().to_path_buf());
    s.user = Some((0, 0));
    s.binds.push(Bind {
        source: "/usr".into(),
        target: "/usr".into(),
        writable: false,
    });
    let (o, out, err) = run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Exited(0), "stderr: {}", text(&err));
    assert_eq!(text(&out), "changed\nok\n");
    // The release is untouched: the writes went to the worker's upper layer and died with it.
    assert_eq!(
        std::fs::read_to_string(rel.path().join("etc/motd")).unwrap(),
        "release\n"
    );
    assert!(!rel.path().join("data").exists());
    assert_no_residue(state.path(), &[name], None);
}

#[test]
fn binds_are_read_only_or_writable_as_asked() {
    let Some(_lock) = root_test("binds_are_read_only_or_writable_as_asked") else {
        return;
    };
    let state = state_dir();
    let ws = tempfile::tempdir().unwrap();
    let ro = tempfile::tempdir().unwrap();
    std::fs::write(ro.path().join("tool"), "pi").unwrap();
    // The worker user must be able to write its workspace.
    nix::unistd::chown(ws.path(), Some(65534.into()), Some(65534.into())).unwrap();
    let name = unique("b");
    let mut s = spec(
        &name,
        &[
            "sh",
            "-c",
            "echo hi > /work/out; cat /opt/pi/tool; touch /opt/pi/x 2>/dev/null || echo ro",
        ],
        state.path(),
    );
    s.binds.push(Bind {
        source: ws.path().into(),
        target: "/work".into(),
        writable: true,
    });
    s.binds.push(Bind {
        source: ro.path().into(),
        target: "/opt/pi".into(),
        writable: false,
    });
    s.cwd = "/work".into();
    let (o, out, err) = run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Exited(0), "stderr: {}", text(&err));
    assert_eq!(text(&out), "piro\n");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("out")).unwrap(),
        "hi\n"
    );
    assert_no_residue(state.path(), &[name], None);
}

#[test]
fn exit_codes_signals_and_setup_errors_are_reported() {
    let Some(_lock) = root_test("exit_codes_signals_and_setup_errors_are_reported") else {
        return;
    };
    let state = state_dir();
    let a = unique("e");
    let (o, _, _) = run_captured(&spec(&a, &["sh", "-c", "exit 3"], state.path())).unwrap();
    assert_eq!(o.status, ExitKind::Exited(3));
    let b = unique("k");
    let (o, _, _) = run_captured(&spec(
        &b,
        &["python3", "-c", "import ctypes; ctypes.string_at(0)"],
        state.path(),
    ))
    .unwrap();
    assert_eq!(o.status, ExitKind::Signaled(11));
    // The command is pid 2 (the init is its reaper), so it can be killed from inside too.
    let (o, _, _) = run_captured(&spec(
        &unique("kk"),
        &["sh", "-c", "kill -9 $$"],
        state.path(),
    ))
    .unwrap();
    assert_eq!(o.status, ExitKind::Signaled(9));
    let c = unique("m");
    let err = run_captured(&spec(&c, &["/no/such/program"], state.path())).unwrap_err();
    assert!(
        err.to_string()
            .contains("failed to execute /no/such/program"),
        "{err}"
    );
    let bad = spec("Bad_Name", &["true"], state.path());
    assert!(matches!(
        run_captured(&bad),
        Err(warden_linux::Error::Spec { .. })
    ));
    assert_no_residue(state.path(), &[a, b, c], None);
}
