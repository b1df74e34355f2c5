//! The command line: clap definitions only. Every verb is parsed here and executed in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Warden: isolated places for an AI assistant to run.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every verb takes; they override the config file and the environment.
#[derive(Debug, Args)]
pub struct Global {
    /// Config file (TOML); without it only defaults and the environment apply.
    #[arg(long, global = true, env = "WARDEN_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Override network.subnet (e.g. 10.0.1 or 10.0.1.0/24).
    #[arg(long, global = true, value_name = "SUBNET")]
    pub subnet: Option<String>,
    /// Override dns.domain.
    #[arg(long, global = true, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Override network.bridge.
    #[arg(long, global = true, value_name = "NAME")]
    pub bridge: Option<String>,
    /// Override state_dir.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<String>,
    /// Override identity.
    #[arg(long, global = true, value_name = "NAME")]
    pub identity: Option<String>,
}

impl Global {
    /// The flags as config overrides: (flag, key, value).
    pub fn overrides(&self) -> warden_core::config::FlagOverrides {
        let pairs = [
            ("--subnet", "network.subnet", &self.subnet),
            ("--domain", "dns.domain", &self.domain),
            ("--bridge", "network.bridge", &self.bridge),
            ("--state-dir", "state_dir", &self.state_dir),
            ("--identity", "identity", &self.identity),
        ];
        pairs
            .into_iter()
            .filter_map(|(flag, key, v)| {
                v.as_ref()
                    .map(|v| (flag.to_string(), key.to_string(), v.clone()))
            })
            .collect()
    }
}

/// Which host backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendName {
    /// FreeBSD with Bastille, ZFS and pf (production).
    Bastille,
    /// Linux namespaces, overlayfs, cgroups, nftables.
    Linux,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented config holding every default, and the control plane's token.
    Init(InitArgs),
    /// Show the effective config.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Show the layout: slots, roles, jail names, DNS names.
    Layout {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print one generated file to stdout.
    Render {
        /// The file: bastille.conf, pf.conf, dnsmasq.conf, hosts, rc.conf, jail.conf, rc.d, nftables.
        name: String,
        /// The jail, for jail.conf.
        #[arg(long)]
        jail: Option<String>,
    },
    /// Print the ordered actions that turn this host into the layout.
    Plan(PlanArgs),
    /// Plan, then apply with progress; journaled, resumable after a crash.
    Setup(SetupArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Print the config to stdout instead of writing files.
    #[arg(long)]
    pub stdout: bool,
    /// Overwrite an existing config file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Every key, its value and where the value came from (flag > env > file > default).
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The host backend (default: bastille on FreeBSD, linux elsewhere).
    #[arg(long, value_enum)]
    pub backend: Option<BackendName>,
    /// Only this step: host, jails, db, git, cms, ai, hosts, dns, verify.
    #[arg(long)]
    pub step: Option<String>,
    /// Print JSON: {"actions":[…]}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Show the plan and change nothing (same as `warden plan`).
    #[arg(long)]
    pub dry_run: bool,
}
