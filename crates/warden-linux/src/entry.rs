//! The entry of every process that `warden` re-execs as itself (`<exe> __worker …`): a worker's
//! helper, the zygote, or `jail exec`'s helper. The top layer: it only dispatches.

/// Entry of the re-exec'd helper; call it when `argv[1]` is [`HELPER_ARG`](crate::HELPER_ARG). Never returns.
pub fn helper_main() -> ! {
    let args: Vec<String> = std::env::args().collect();
    match args.get(2).map(String::as_str) {
        Some(crate::jail_exec::EXEC_ARG) => {
            crate::jail_exec::exec_main(args.get(3).map(String::as_str))
        }
        Some(crate::zygote::ZYGOTE_ARG) => crate::zygote::zygote_main(),
        _ => std::process::exit(crate::helper::run_helper(&args)),
    }
}
