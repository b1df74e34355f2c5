//! `warden`: the thin CLI. Parses arguments, loads config, and hands each verb to its module.

#![forbid(unsafe_code)]

mod backends;
mod cli;
mod closed_stdout;
mod commands;
mod context;
mod exit;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ConfigCommand};
use exit::Exit;

fn main() -> ExitCode {
    // `run` re-execs this binary as a small single-threaded helper that creates one worker.
    backends::linux::helper_if_asked();
    closed_stdout::end_quietly();
    let cli = Cli::parse();
    // The warden commands a plan runs (`warden jail …`) load the configuration again from the environment: an
    // identity given as a flag must reach them, or what derives from it (jail names, `tailscale.jail`'s check)
    // disagrees. Still single-threaded here.
    if let Some(identity) = &cli.global.identity {
        std::env::set_var("WARDEN_IDENTITY", identity);
    }
    init_logging();
    match dispatch(&cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(Exit { code, message }) => {
            if !message.is_empty() {
                eprintln!("warden: error: {message}");
            }
            ExitCode::from(code)
        }
    }
}

fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn dispatch(cli: &Cli) -> Result<(), Exit> {
    let g = &cli.global;
    match &cli.command {
        Command::Run(args) => match commands::run::run(g, args)? {
            0 => Ok(()),
            code => Err(Exit {
                code,
                message: String::new(),
            }),
        },
        Command::Jail { command } => match commands::jail::run(g, command)? {
            0 => Ok(()),
            code => Err(Exit {
                code,
                message: String::new(),
            }),
        },
        Command::Release { command } => commands::release::run(g, command),
        Command::Init(args) => commands::init::run(g, args),
        Command::Config {
            command: ConfigCommand::Show { json },
        } => commands::config::show(g, *json),
        Command::Layout { json } => commands::layout::run(g, *json),
        Command::Render { name, jail } => commands::render::run(g, name, jail.as_deref()),
        Command::Plan(args) => commands::plan::plan(g, args),
        Command::Setup(args) => commands::plan::setup(g, args),
        Command::Teardown(args) => commands::plan::teardown(g, args),
        Command::Doctor(args) => commands::doctor::run(g, args),
        Command::PiConfig { json } => commands::pi_config::run(g, *json),
        Command::Serve(args) => commands::serve::run(g, args),
        Command::Turn(args) => commands::turn::run(g, args),
        Command::Turns { command } => commands::turns::run(g, command),
        Command::Telegram { command } => commands::telegram::run(g, command),
        Command::Token => commands::turn::token(g),
        Command::Bench(args) => commands::bench::run(g, args),
        Command::Snapshot(command) => commands::snapshot::run(g, command),
        Command::Db { command } => commands::db::run(g, command),
        Command::Git { command } => commands::git::run(g, command),
        Command::Site { command } => commands::site::run(g, command),
    }
}
