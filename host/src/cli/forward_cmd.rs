//! `runner forward list|stop` and the hidden `runner forward serve` that
//! `runner recover` starts detached (DESIGN §6, §8).

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};

use crate::audit::{AuditLog, AuditRecord};
use crate::backend::Backend;
use crate::backend::docker::DockerBackend;
use crate::backend::local::LocalBackend;
use crate::forward::serve::{DEFAULT_GONE_GRACE, ServeOptions};
use crate::forward::{
    ForwardError, ForwardRegistry, ForwardRow, ForwardSpec, StopOutcome, StopResult,
};

use super::output::{self, escape_control as e};
use super::plugin_cmd::fail;
use super::{BackendKind, exit, parse_duration};

#[derive(Debug, Subcommand)]
pub enum ForwardCommand {
    /// List runner's host forwards with their verified state and traffic.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Stop forwards: SIGTERM, then SIGKILL, only to a process whose
    /// identity (pid, start time, argv) matches its record.
    Stop(StopArgs),
    /// Serve one forward in the foreground (what `recover` starts detached).
    #[command(hide = true)]
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["port", "sandbox", "all"])))]
pub struct StopArgs {
    /// The host port of the forward.
    #[arg(long)]
    pub port: Option<u16>,
    /// The host address it listens on (with --port).
    #[arg(long, requires = "port", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Every forward of this sandbox.
    #[arg(long)]
    pub sandbox: Option<String>,
    /// Every forward.
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, value_enum, default_value = "docker")]
    pub backend: BackendKind,
    #[arg(long)]
    pub sandbox: String,
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub host_port: u16,
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub sandbox_port: u16,
    /// Host address to listen on; anything but loopback exposes the sandbox
    /// port to the network, so it is never the default.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Exit (with an error) once the sandbox has been gone this long.
    #[arg(long, value_parser = parse_duration)]
    pub gone_grace: Option<Duration>,
}

pub async fn run(cmd: ForwardCommand) -> ExitCode {
    if let ForwardCommand::Stop(StopArgs {
        sandbox: Some(sandbox),
        ..
    }) = &cmd
        && sandbox.trim().is_empty()
    {
        return fail(exit::USAGE, "--sandbox is empty; name a sandbox");
    }
    match cmd {
        ForwardCommand::List { json } => list(json).await,
        ForwardCommand::Stop(args) => stop(args).await,
        ForwardCommand::Serve(args) => serve(args).await,
    }
}

async fn list(json: bool) -> ExitCode {
    let rows = ForwardRegistry::detached().rows().await;
    let text = if json {
        serde_json::to_string_pretty(&rows).expect("rows serialize") + "\n"
    } else if rows.is_empty() {
        "No forwards.\n".to_string()
    } else {
        table(&rows)
    };
    output::print_then(&text, exit::HEALTHY)
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn table(rows: &[ForwardRow]) -> String {
    let header = [
        "SANDBOX",
        "BIND",
        "PORT",
        "TARGET",
        "PID",
        "STATE",
        "CONNS",
        "BYTES",
        "LAST-ERROR",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                e(&r.sandbox).into_owned(),
                r.bind.clone(),
                r.host_port.to_string(),
                format!(":{}", r.sandbox_port),
                r.pid.to_string(),
                r.state.as_str().to_string(),
                r.connections.to_string(),
                human_bytes(r.bytes),
                r.last_error
                    .as_deref()
                    .map_or_else(|| "-".into(), |m| e(m).into_owned()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let mut out = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i + 1 == cols.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.map(str::to_string));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

fn describe(o: &StopOutcome) -> String {
    let what = format!(
        "{}:{} ({}, pid {})",
        o.bind,
        o.host_port,
        e(&o.sandbox),
        o.pid
    );
    match &o.result {
        StopResult::Terminated => format!("stopped {what}"),
        StopResult::Killed => format!("killed {what} (it ignored SIGTERM)"),
        StopResult::AlreadyGone => {
            format!("removed the record of {what}: the process was already gone")
        }
        StopResult::NotAForward(why) => {
            format!(
                "removed the record of {what} without signalling: {}",
                e(why)
            )
        }
        StopResult::Refused(why) => format!("left {what} alone: {}", e(why)),
        StopResult::Failed(why) => format!("could not stop {what}: {}", e(why)),
    }
}

async fn stop(args: StopArgs) -> ExitCode {
    // Stopping is a mutation: no stop without a usable audit log (exit 2).
    let audit = match AuditLog::open_default() {
        Ok(log) => log,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    let registry = ForwardRegistry::detached();
    let outcomes = match (&args.port, &args.sandbox, args.all) {
        (Some(port), _, _) => registry.stop(args.bind, *port).await,
        (None, Some(sandbox), _) => registry.stop_sandbox(sandbox).await,
        _ => registry.stop_all().await,
    };
    for o in &outcomes {
        audit_stop(&audit, o);
    }
    let failed = outcomes
        .iter()
        .any(|o| matches!(o.result, StopResult::Failed(_) | StopResult::Refused(_)));
    let text = if args.json {
        serde_json::to_string_pretty(&outcomes).expect("outcomes serialize") + "\n"
    } else if outcomes.is_empty() {
        "No matching forwards.\n".to_string()
    } else {
        outcomes.iter().map(|o| describe(o) + "\n").collect()
    };
    output::print_then(&text, if failed { exit::BROKEN } else { exit::HEALTHY })
}

/// One audit line per forward `stop` acted on: a signal sent or a record
/// removed. A forward left alone (served by `runner watch`) was not
/// mutated and is not audited.
fn audit_stop(audit: &AuditLog, o: &StopOutcome) {
    let result = match &o.result {
        StopResult::Terminated => "terminated".to_string(),
        StopResult::Killed => "killed".to_string(),
        StopResult::AlreadyGone => "already-gone".to_string(),
        StopResult::NotAForward(why) => format!("not-a-forward: {why}"),
        StopResult::Failed(why) => format!("failed: {why}"),
        StopResult::Refused(_) => return,
    };
    audit.append(&AuditRecord {
        sandbox: &o.sandbox,
        plugin: "-",
        link: "forward",
        action: "forward.stop",
        detail: &format!(
            "{}:{} pid {} (runner forward stop)",
            o.bind, o.host_port, o.pid
        ),
        result: &result,
    });
}

async fn serve(args: ServeArgs) -> ExitCode {
    let backend: Arc<dyn Backend> = match args.backend {
        BackendKind::Local => Arc::new(LocalBackend::new(&args.sandbox)),
        BackendKind::Docker => {
            let endpoint = match super::docker_host::resolve_env() {
                Ok(e) => e,
                Err(e) => return fail(exit::USAGE, &e),
            };
            match DockerBackend::connect_endpoint(&endpoint).await {
                Ok(d) => Arc::new(d),
                Err(e) => return fail(exit::UNKNOWN, &e.to_string()),
            }
        }
    };
    let opts = ServeOptions {
        state_dir: crate::paths::state_dir(),
        sandbox: args.sandbox,
        spec: ForwardSpec {
            host_port: args.host_port,
            sandbox_port: args.sandbox_port,
            bind: args.bind,
        },
        gone_grace: args.gone_grace.unwrap_or(DEFAULT_GONE_GRACE),
    };
    match crate::forward::serve::serve(backend, opts).await {
        Ok(()) => ExitCode::from(exit::HEALTHY),
        Err(e @ ForwardError::Bind { .. }) => {
            fail(exit::BROKEN, &format!("{e}; see `runner forward list`"))
        }
        Err(e @ ForwardError::SandboxGone { .. }) => fail(exit::BROKEN, &e.to_string()),
        Err(e) => fail(exit::UNKNOWN, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::{ForwardState, RecordMode};

    #[test]
    fn bytes_read_like_docker_stats() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn the_table_has_the_documented_columns() {
        let row = ForwardRow {
            sandbox: "my-sandbox".into(),
            bind: "127.0.0.1".into(),
            host_port: 18789,
            sandbox_port: 18789,
            pid: 4242,
            state: ForwardState::Owned,
            mode: RecordMode::Detached,
            backend: "docker".into(),
            started_at: String::new(),
            connections: 3,
            bytes: 2048,
            errors: 0,
            last_error: None,
        };
        let text = table(&[row]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "SANDBOX",
                "BIND",
                "PORT",
                "TARGET",
                "PID",
                "STATE",
                "CONNS",
                "BYTES",
                "LAST-ERROR"
            ]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "my-sandbox",
                "127.0.0.1",
                "18789",
                ":18789",
                "4242",
                "owned",
                "3",
                "2.0",
                "KiB",
                "-"
            ]
        );
    }
}
