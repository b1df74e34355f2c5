//! A closed stdout (`warden turns list | head`) ends the program quietly with status 0, as Unix tools do.
//!
//! Why a panic hook: Rust ignores SIGPIPE, so `println!` panics on EPIPE. Restoring SIGPIPE's default
//! action instead would also kill `warden` when a child it feeds (a worker's stdin) or a socket goes
//! away, so the printing sites' one failure mode is caught here, in one place, and nothing else is.
//! Other stdout errors (a full disk, EIO) still panic: exiting 0 then would hide lost output.

/// Installs the hook; every other panic goes on to the default hook unchanged.
pub fn end_quietly() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_closed_stdout(info.payload()) {
            // The reader is gone, so nobody can see more output: this is the end the user asked for.
            std::process::exit(0);
        }
        default(info);
    }));
}

/// True for the panic `print!`/`println!` raise when stdout's reader has gone (EPIPE).
fn is_closed_stdout(payload: &(dyn std::any::Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    // std formats it as "failed printing to stdout: {io::Error}".
    let epipe = std::io::Error::from_raw_os_error(libc::EPIPE).to_string();
    message.strip_prefix("failed printing to stdout: ") == Some(epipe.as_str())
}
