//! `warden`: the thin CLI. Parses arguments, loads config, and hands each verb to its module.

mod backends;
mod cli;
mod commands;
mod context;
mod exit;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ConfigCommand};
use exit::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::Init(args) => commands::init::run(g, args),
        Command::Config {
            command: ConfigCommand::Show { json },
        } => commands::config::show(g, *json),
        Command::Layout { json } => commands::layout::run(g, *json),
        Command::Render { name, jail } => commands::render::run(g, name, jail.as_deref()),
        Command::Plan(args) => commands::plan::plan(g, args),
        Command::Setup(args) => commands::plan::setup(g, args),
    }
}
