//! `runner status` and `runner recover`.

use std::process::ExitCode;
use std::sync::Arc;

use crate::audit::AuditLog;
use crate::backend::Backend;
use crate::backend::docker::DockerBackend;
use crate::backend::docker::endpoint::Endpoint;
use crate::backend::local::LocalBackend;
use crate::forward::ForwardRegistry;
use crate::recovery::lock::LockError;
use crate::recovery::report::{Mode, Outcome, PluginRef, Report};
use crate::recovery::{Engine, RunError, RunRequest};
use crate::settings;

use super::output;
use super::plugin_cmd::{self, fail};
use super::progress::Spinner;
use super::{BackendKind, RunArgs, docker_host, exit};

pub async fn run(args: RunArgs, recover: bool) -> ExitCode {
    // `--timeout` bounds everything from here: connect, identity, the run.
    let started = tokio::time::Instant::now();
    let mode = match (recover, args.dry_run) {
        (true, false) => Mode::Recover,
        (true, true) => Mode::DryRun,
        (false, _) => Mode::Status,
    };
    let mut reply = Reply::new(&args, mode);
    if !recover && args.dry_run {
        return reply.fail(
            exit::USAGE,
            "--dry-run applies to recover only; status never mutates",
        );
    }
    // Everything that can be a usage error is checked before any I/O on the
    // sandbox, so exit 2 always means "nothing was touched".
    if args.sandbox.trim().is_empty() {
        return reply.fail(exit::USAGE, "--sandbox is empty; name a sandbox");
    }
    let cli_settings = match settings::parse_assignments(&args.set) {
        Ok(s) => s,
        Err(e) => return reply.fail(exit::USAGE, &e.to_string()),
    };
    let endpoint = match args.backend {
        BackendKind::Docker => match docker_host::resolve_env() {
            Ok(e) => Some(e),
            Err(e) => return reply.fail(exit::USAGE, &e),
        },
        BackendKind::Local => None,
    };
    let runtime = match plugin_cmd::try_new_runtime() {
        Ok(r) => r,
        Err((code, message)) => return reply.fail(code, &message),
    };
    let plugin = match plugin_cmd::load(&runtime, &args.plugin).await {
        Ok(p) => p,
        Err((code, message)) => return reply.fail(code, &message),
    };
    reply.plugin = PluginRef {
        name: plugin.info.name.clone(),
        version: plugin.info.version.clone(),
        sha256: plugin.sha256.clone(),
    };
    if let Err(e) = settings::resolve(&plugin.info.name, &plugin.info.settings, &[&cli_settings]) {
        return reply.fail(exit::USAGE, &e.to_string());
    }
    // A recover that mutates must be able to audit: the log is checked now,
    // before the engine is reached, the lock taken or anything touched. An
    // unusable one (a symlink, a FIFO, a directory at its path) is a
    // problem of the state dir: exit 2.
    let audit = match mode {
        Mode::Recover => match AuditLog::open_default() {
            Ok(log) => Some(Arc::new(log)),
            Err(e) => return reply.fail(exit::USAGE, &e.to_string()),
        },
        Mode::Status | Mode::DryRun => None,
    };
    // From here on `fail` also gives `--json` its one report object.
    let fail = |code: u8, message: &str| reply.fail(code, message);
    let backend: Arc<dyn Backend> = match args.backend {
        BackendKind::Local => Arc::new(LocalBackend::new(&args.sandbox)),
        BackendKind::Docker => match DockerBackend::connect_endpoint_within(
            endpoint.as_ref().unwrap_or(&Endpoint::local()),
            args.timeout,
        )
        .await
        {
            Ok(d) => Arc::new(d),
            Err(e) => {
                let report = Report::unreachable(
                    &args.sandbox,
                    "docker",
                    PluginRef {
                        name: plugin.info.name.clone(),
                        version: plugin.info.version.clone(),
                        sha256: plugin.sha256.clone(),
                    },
                    mode,
                    e.to_string(),
                );
                print_report(&report, args.json);
                return ExitCode::from(report.outcome.exit_code());
            }
        },
    };

    // One identity per sandbox: a full id, a short id and the name all
    // lock, record forwards and audit under the name the engine gives it,
    // so `recover ID` and `recover NAME` at once still serialize. A sandbox
    // the engine does not know is reported by the run itself.
    let left = |limit: std::time::Duration| limit.saturating_sub(started.elapsed());
    let sandbox =
        match tokio::time::timeout(left(args.timeout), backend.inspect(&args.sandbox)).await {
            Ok(Ok(info)) if !info.name.is_empty() => info.name,
            _ => args.sandbox.clone(),
        };

    let spinner = Spinner::new(args.json);
    let engine = Engine {
        runtime: &runtime,
        backend,
        // A one-shot command: forwards it starts are detached processes that
        // outlive it, so the next status/recover finds them owned.
        forwards: Arc::new(ForwardRegistry::detached()),
        audit,
        progress: &spinner,
    };
    let report = match engine
        .run(RunRequest {
            plugin: &plugin,
            sandbox: &sandbox,
            mode,
            cli_settings: &cli_settings,
            timeout: left(args.timeout),
            lock_wait: args.timeout,
        })
        .await
    {
        Ok(r) => r,
        Err(RunError::Settings(e)) => return fail(exit::USAGE, &e.to_string()),
        // Not a lock at the lock's path: the state dir's problem.
        Err(RunError::Lock(e @ LockError::Unusable(_))) => {
            return fail(exit::USAGE, &e.to_string());
        }
        // Another recover of this sandbox held it for the whole timeout.
        Err(RunError::Lock(e)) => return fail(exit::UNKNOWN, &e.to_string()),
    };
    let code = exit_code(&report);
    print_report(&report, args.json);
    ExitCode::from(code)
}

/// How a run that ends early answers: one line on stderr and, with
/// `--json`, one `runner.report/v1` object on stdout (docs/cli.md).
struct Reply {
    json: bool,
    sandbox: String,
    backend: &'static str,
    mode: Mode,
    plugin: PluginRef,
}

impl Reply {
    fn new(args: &RunArgs, mode: Mode) -> Self {
        Self {
            json: args.json,
            sandbox: args.sandbox.clone(),
            backend: match args.backend {
                BackendKind::Docker => "docker",
                BackendKind::Local => "local",
            },
            mode,
            // Until the plugin is loaded: its name as given.
            plugin: PluginRef {
                name: args.plugin.clone(),
                version: String::new(),
                sha256: String::new(),
            },
        }
    }

    fn fail(&self, code: u8, message: &str) -> ExitCode {
        if self.json {
            let outcome = if code == exit::PLUGIN_FAULT {
                Outcome::PluginFault
            } else {
                Outcome::Unknown
            };
            let report = Report::not_run(
                &self.sandbox,
                self.backend,
                self.plugin.clone(),
                self.mode,
                outcome,
                message.to_string(),
            );
            output::print_json(&report.to_json());
        }
        fail(code, message)
    }
}

/// What the engine prefixes to a probe that returned an error instead of
/// link reports (recovery/mod.rs), and how the SDK's typed setting getters
/// begin theirs (plugins/sdk/src/settings.rs).
const PROBE_ERROR: &str = "probe could not run: ";
const SDK_SETTING_ERROR: &str = "setting '";

/// The report's exit code, except that a probe refusing a setting value
/// (`setting 'port' = 'x' is not a TCP port`) before anything was mutated
/// is a configuration error (2), not an unknown state (3). Matched on the
/// message because WIT 0.1's probe error is a plain string; the host has
/// already checked every value its key-name convention types.
fn exit_code(report: &Report) -> u8 {
    let settings_error = report.outcome == Outcome::Unknown
        && report.mutations.is_empty()
        && report
            .message
            .as_deref()
            .and_then(|m| m.strip_prefix(PROBE_ERROR))
            .is_some_and(|m| m.starts_with(SDK_SETTING_ERROR));
    if settings_error {
        exit::USAGE
    } else {
        report.outcome.exit_code()
    }
}

/// A report that cannot be written (a full stdout) is said so on stderr;
/// the exit code stays the run's (output.rs).
fn print_report(report: &Report, json: bool) {
    if json {
        output::print_json(&report.to_json());
    } else {
        output::print(&report.to_human());
    }
}
