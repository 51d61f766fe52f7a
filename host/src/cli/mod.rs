//! The command line (docs/cli.md). Parsing and output live here; everything
//! else is library code.

mod conformance_cmd;
mod demo_cmd;
mod docker_host;
pub mod exit;
mod forward_cmd;
pub mod output;
mod plugin_cmd;
mod progress;
mod run_cmd;
mod watch_cmd;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::recovery::report::{Mode, Outcome, PluginRef, Report};

#[derive(Debug, Parser)]
#[command(
    name = "runner",
    version,
    about = "Probe every link of an AI-agent sandbox, repair only what is broken, prove the result"
)]
pub struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info`, `runner=debug`.
    #[arg(long, global = true, env = "RUNNER_LOG", default_value = "warn")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe, repair what is broken in dependency order, verify, report.
    Recover(RunArgs),
    /// Probe only; never mutates.
    Status(RunArgs),
    /// Inspect plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Break a fixture sandbox like a restart does, then status, recover, status.
    Demo(DemoArgs),
    /// Host port forwards started by runner: list, stop.
    #[command(subcommand)]
    Forward(forward_cmd::ForwardCommand),
    /// Supervise sandboxes: recover on container start, crash-loop policy, metrics.
    Watch(WatchArgs),
    /// Certify a plugin component against the contract (no engine needed).
    Conformance(ConformanceArgs),
}

#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// A path to a .wasm component, or a built-in name (`openclaw`, `hermes`).
    pub plugin: String,
    /// Override a plugin setting for the suite (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print one JSON object (schema runner.conformance/v1).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// TOML config: sandboxes to watch, policy, interval (see README).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Serve Prometheus metrics on GET /metrics at this address, e.g. 127.0.0.1:9477.
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Liveness check of every sandbox this often (procfs only) [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Mean time between full plugin passes of a healthy sandbox, jittered
    /// 0.5–1.5× [default: 15m].
    #[arg(long, value_parser = parse_duration)]
    pub full_interval: Option<Duration>,
    /// Urgent recovers (events, failed checks) at once across sandboxes [default: 16].
    #[arg(long)]
    pub max_concurrent: Option<usize>,
    /// Deadline of one recover [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// On SIGTERM, how long in-flight repairs may finish [default: 20s].
    #[arg(long, value_parser = parse_duration)]
    pub shutdown_grace: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The fixture image (built by `tests/images/build.sh fixture`).
    #[arg(long, default_value = "runner-test/fixture:latest")]
    pub image: String,
    /// Keep the demo sandbox afterwards.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the built-in plugins.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a plugin's links, settings, capabilities and hash.
    Inspect {
        /// A built-in name (e.g. `openclaw`) or a path to a .wasm component.
        plugin: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    Docker,
    Local,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A built-in plugin name (`openclaw`, `hermes`) or a path to a .wasm component.
    #[arg(long)]
    pub plugin: String,
    /// The sandbox: a container name or id (docker), any label (local).
    #[arg(long)]
    pub sandbox: String,
    #[arg(long, value_enum, default_value = "docker")]
    pub backend: BackendKind,
    /// Override a plugin setting (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the plan; mutate nothing (recover only).
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object (schema runner.report/v1).
    #[arg(long)]
    pub json: bool,
    /// Overall deadline, e.g. `60s`, `2m`, `500ms`.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `500ms`, `60s`, `2m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 60s, 2m or 500ms"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("'{text}': unit must be ms, s, m or h")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("'{text}' must be between 1ms and 24h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A command line clap refused (exit 2). Help and version go to stdout as
/// usual; an error goes to stderr, and when the refused line asked for
/// `--json` on `status`/`recover`, stdout still gets its one report object.
pub fn parse_error(error: clap::Error, args: &[std::ffi::OsString]) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        // Printing help cannot fail the run; a lost help text is harmless.
        let _ = error.print();
        return ExitCode::from(if error.use_stderr() {
            exit::USAGE
        } else {
            exit::HEALTHY
        });
    }
    let _ = error.print();
    let args: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let command = args.iter().find(|a| !a.starts_with('-'));
    let wants_json = args.iter().any(|a| a == "--json");
    if let (Some(command), true) = (command, wants_json)
        && (command == "status" || command == "recover")
    {
        let value = |flag: &str| -> String {
            let prefixed = format!("{flag}=");
            args.iter()
                .enumerate()
                .find_map(|(i, a)| {
                    if a == flag {
                        args.get(i + 1).cloned()
                    } else {
                        a.strip_prefix(&prefixed).map(str::to_string)
                    }
                })
                .unwrap_or_default()
        };
        let backend = value("--backend");
        let mode = match (command.as_str(), args.iter().any(|a| a == "--dry-run")) {
            ("recover", true) => Mode::DryRun,
            ("recover", false) => Mode::Recover,
            _ => Mode::Status,
        };
        let report = Report::not_run(
            &value("--sandbox"),
            if backend.is_empty() {
                "docker"
            } else {
                &backend
            },
            PluginRef {
                name: value("--plugin"),
                version: String::new(),
                sha256: String::new(),
            },
            mode,
            Outcome::Unknown,
            format!("usage: {}", first_line(&error.to_string())),
        );
        output::print_json(&report.to_json());
    }
    ExitCode::from(exit::USAGE)
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("").trim();
    line.strip_prefix("error: ").unwrap_or(line)
}

pub async fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Recover(args) => run_cmd::run(args, true).await,
        Command::Status(args) => run_cmd::run(args, false).await,
        Command::Demo(args) => demo_cmd::run(args).await,
        Command::Forward(cmd) => forward_cmd::run(cmd).await,
        Command::Watch(args) => watch_cmd::run(args).await,
        Command::Conformance(args) => conformance_cmd::run(args).await,
        Command::Plugin(PluginCommand::List { json }) => plugin_cmd::list(json).await,
        Command::Plugin(PluginCommand::Inspect { plugin, json }) => {
            plugin_cmd::inspect(&plugin, json).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_common_units() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
