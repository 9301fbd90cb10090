//! The `bourse` command line. With no subcommand it is `bourse serve`.
//! Each subcommand is one variant of [`Command`] with its own argument
//! struct and one arm in [`run`]; commands that read the configuration
//! flatten [`ConfigArgs`] so `--config` and `--data-dir` mean the same
//! everywhere.
//!
//! Exit codes: 0 after a clean stop, 1 when the server fails, 2 for bad
//! arguments or configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::admin::{self, PasswordSource};
use crate::config::{self, Overrides};
use crate::server;
use crate::tools;

/// Exit code for a configuration the server refuses to start with.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for a server that could not start or stopped on an error.
pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, Parser)]
#[command(name = "bourse", version, about = "Bourse: a real-time exchange")]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `bourse [serve flags]` is `bourse serve [serve flags]`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the exchange (the default).
    Serve(ServeArgs),
    /// Check the event log (checksums, hash chain) and snapshots of a data directory, or a backup file; exit 1 on damage.
    Verify(tools::VerifyArgs),
    /// Write a stopped node's newest snapshot and the log after it to one checksummed (optionally encrypted) file.
    Backup(tools::BackupArgs),
    /// Rebuild a data directory from a backup, to its end or to a batch index or time; starts a new stream epoch.
    Restore(tools::RestoreArgs),
    /// Print the audit trail: who did what, when, from the operator events in the log.
    Audit(tools::AuditArgs),
}

/// Where the configuration comes from; shared by every subcommand that reads it.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// TOML configuration file [default: ./config.toml if present, else the built-in demo config]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides `data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Listen address, e.g. 0.0.0.0:8080 (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

impl ConfigArgs {
    /// Loads and validates the configuration, printing the reason and
    /// returning the exit code on failure.
    pub fn load(
        &self,
        listen: Option<String>,
    ) -> Result<(config::Config, config::Source), ExitCode> {
        let overrides = Overrides {
            listen,
            data_dir: self.data_dir.clone(),
        };
        config::load(self.config.as_deref(), &overrides).map_err(|e| {
            eprintln!("bourse: {e}");
            ExitCode::from(EXIT_CONFIG)
        })
    }
}

/// Runs the command line's command.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => serve(args),
        Command::Verify(args) => tools::verify(args),
        Command::Backup(args) => tools::backup(args),
        Command::Restore(args) => tools::restore(args),
        Command::Audit(args) => tools::audit(args),
    }
}

/// `bourse serve`: runs until SIGINT or SIGTERM, then stops cleanly.
pub fn serve(args: ServeArgs) -> ExitCode {
    let (cfg, source) = match args.config.load(args.listen) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::logging::init(cfg.log_format);
    bourse_actors::failstop::install();
    info!("{}", config::summary(&cfg, &source));
    crate::webdeps::ensure(&cfg.web_root);

    let password = match admin::admin_password(&cfg.data_dir) {
        Ok(p) => p,
        Err(e) => {
            error!("admin password: {e:#}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match &password.source {
        PasswordSource::Env => info!("admin password from {}", admin::ENV_ADMIN_PASSWORD),
        PasswordSource::File(p) => info!(path = %p.display(), "admin password from file"),
        PasswordSource::Generated(p) => {
            info!(path = %p.display(), "generated the admin password (user admin); it is in this file")
        }
    }

    let result = server::run_in_system(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(server::cancel_on_signal(shutdown.clone()));
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
        let given = password.source == PasswordSource::Env;
        let generated = match password.source {
            PasswordSource::Generated(p) => Some(p),
            _ => None,
        };
        let admin = bourse_actors::node::AdminSecret { password: password.password, given, generated };
        server::serve(cfg, admin, listener, shutdown).await
    });
    match result {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("{e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_shape() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["bourse"]).unwrap();
        assert!(cli.command.is_none());
        let cli = Cli::try_parse_from(["bourse", "--listen", "127.0.0.1:1"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen.as_deref(), Some("127.0.0.1:1"));
        assert!(Cli::try_parse_from(["bourse", "--listen", "127.0.0.1:1", "serve"]).is_err());
        let cli = Cli::try_parse_from([
            "bourse",
            "serve",
            "--config",
            "x.toml",
            "--listen",
            "0.0.0.0:1",
            "--data-dir",
            "/d",
        ])
        .unwrap();
        let Some(Command::Serve(a)) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(a.config.config, Some(PathBuf::from("x.toml")));
        assert_eq!(a.config.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(a.listen.as_deref(), Some("0.0.0.0:1"));
        assert!(Cli::try_parse_from(["bourse", "serve", "--bogus"]).is_err());
    }
}
