//! A tiny dispatch binary for the crate's own tests and benchmarks: `__worker` → the helper;
//! `run <spec-json>` → one worker with inherited stdio, printing the outcome as JSON on stderr
//! (used to test `kill -9` of a parent mid-run).

#[cfg(target_os = "linux")]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(warden_linux::HELPER_ARG) {
        warden_linux::helper_main();
    }
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("run"), Some(json)) => {
            let spec: warden_linux::WorkerSpec = match serde_json::from_str(json) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("failed to decode spec: {e}");
                    std::process::exit(2);
                }
            };
            match warden_linux::run(&spec, warden_linux::Io::Inherit) {
                Ok(o) => {
                    eprintln!("{}", serde_json::to_string(&o).unwrap_or_default());
                    std::process::exit(0);
                }
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            }
        }
        _ => {
            eprintln!("usage: warden-linux-test __worker … | run <spec-json>");
            std::process::exit(2);
        }
    }
}

/// The worker runtime exists only on Linux.
#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("warden-linux-test: Linux only");
    std::process::exit(2);
}
