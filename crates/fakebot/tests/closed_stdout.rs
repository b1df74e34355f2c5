//! `fakebot | head -1`: a closed stdout ends fakebot quietly with status 0, as it ends any Unix tool.

use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn a_closed_stdout_pipe_is_a_normal_end() {
    // The reader is gone before fakebot writes (read end closed first, so the write surely meets EPIPE).
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fakebot"));
    cmd.args(["--listen", "127.0.0.1:0"]).env_clear();
    let mut child = cmd
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fakebot");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fakebot kept running with its stdout closed (killed after 30 s)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}
