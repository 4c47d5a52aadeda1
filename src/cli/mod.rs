//! The `video-status` command line: thin over the library (parse flags, call it, print).

pub mod migrate;
pub mod payloads;
pub mod rebuild;
pub mod serve;
pub mod simulate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};
use crate::telemetry::Telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "video-status",
    version,
    about = "Verified video-provider webhooks, one live status per video"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (no config: embedded SQLite store, 127.0.0.1:8080, a `demo` provider).
    Serve(ServeArgs),
    /// Play signed video lifecycles into a running server and report throughput and latency.
    ///
    /// Exits 1 when a delivery never got its 200 (no server, a 4xx, or a 503 past `--retries`).
    Simulate(simulate::SimulateArgs),
    /// Create or upgrade the store's schema, then exit.
    Migrate(StoreArgs),
    /// Re-fold every stream of the log into a fresh status table.
    Rebuild(rebuild::RebuildArgs),
}

/// `--config`, `--store`: what every command that opens the store takes.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// TOML config file (see ops/video-status.toml).
    #[arg(long, env = crate::config::CONFIG_FILE_VARIABLE)]
    pub config: Option<PathBuf>,
    /// Store URL, overriding the config (`sqlite://PATH`).
    #[arg(long)]
    pub store: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Listen address, overriding the config.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

impl StoreArgs {
    pub(crate) fn load(
        &self,
        listen: Option<SocketAddr>,
    ) -> Result<Config, crate::config::ConfigError> {
        Config::load(
            self.config.as_deref(),
            &Overrides {
                listen,
                store: self.store.clone(),
            },
        )
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // `serve` installs its own, once its config says where spans go.
    if !matches!(cli.command, Command::Serve(_)) {
        let _logs = Telemetry::logs_only();
    }
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Simulate(args) => {
            let report = simulate::run(args).await?;
            println!("{report}");
            // A script or a CI job can tell a run in which a delivery never got its 200.
            Ok(if report.unacknowledged() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Migrate(args) => migrate::run(args).await,
        Command::Rebuild(args) => rebuild::run(args).await,
    }
}

/// An error as the command line prints it: the message, then each cause the message does not
/// already tell. Most of the crate's errors spell out their cause (`config: <why>`) and also
/// expose it as their source; printing the whole chain said every reason twice.
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[derive(Debug, thiserror::Error)]
    #[error("config: {0}")]
    struct Told(#[from] std::io::Error);

    fn io(message: &str) -> std::io::Error {
        std::io::Error::other(message.to_owned())
    }

    #[test]
    fn a_cause_the_message_already_tells_is_said_once() {
        let error = anyhow::Error::from(Told(io("listen is not an address")));
        assert_eq!(describe(&error), "config: listen is not an address");
    }

    #[test]
    fn a_cause_the_message_does_not_tell_follows_it() {
        let error =
            anyhow::Error::from(io("connection refused")).context("cannot reach the server");
        assert_eq!(
            describe(&error),
            "cannot reach the server: connection refused"
        );
    }
}
