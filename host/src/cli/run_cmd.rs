//! `runner status` and `runner recover`.

use std::process::ExitCode;
use std::sync::Arc;

use crate::audit::AuditLog;
use crate::backend::Backend;
use crate::backend::docker::DockerBackend;
use crate::backend::local::LocalBackend;
use crate::forward::ForwardRegistry;
use crate::recovery::lock::SandboxLock;
use crate::recovery::report::{Mode, PluginRef, Report};
use crate::recovery::{Engine, RunError, RunRequest};
use crate::settings;

use super::plugin_cmd::{fail, load_or_exit, new_runtime};
use super::progress::Spinner;
use super::{BackendKind, RunArgs, exit};

pub async fn run(args: RunArgs, recover: bool) -> ExitCode {
    let mode = match (recover, args.dry_run) {
        (true, false) => Mode::Recover,
        (true, true) => Mode::DryRun,
        (false, false) => Mode::Status,
        (false, true) => {
            return fail(
                exit::USAGE,
                "--dry-run applies to recover only; status never mutates",
            );
        }
    };
    // Everything that can be a usage error is checked before any I/O on the
    // sandbox, so exit 2 always means "nothing was touched".
    let cli_settings = match settings::parse_assignments(&args.set) {
        Ok(s) => s,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    let runtime = match new_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let plugin = match load_or_exit(&runtime, &args.plugin).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(e) = settings::resolve(&plugin.info.name, &plugin.info.settings, &[&cli_settings]) {
        return fail(exit::USAGE, &e.to_string());
    }
    let backend: Arc<dyn Backend> = match args.backend {
        BackendKind::Local => Arc::new(LocalBackend::new(&args.sandbox)),
        BackendKind::Docker => match DockerBackend::connect().await {
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

    // Two recovers of one sandbox serialize; a status needs no lock.
    let _lock = if mode == Mode::Recover {
        match SandboxLock::acquire(backend.kind(), &args.sandbox, args.timeout).await {
            Ok(l) => Some(l),
            Err(e) => return fail(exit::UNKNOWN, &e.to_string()),
        }
    } else {
        None
    };

    let spinner = Spinner::new(args.json);
    let engine = Engine {
        runtime: &runtime,
        backend,
        // A one-shot command: forwards it starts are detached processes that
        // outlive it, so the next status/recover finds them owned.
        forwards: Arc::new(ForwardRegistry::detached()),
        audit: Some(Arc::new(AuditLog::new(AuditLog::default_path()))),
        progress: &spinner,
    };
    let report = match engine
        .run(RunRequest {
            plugin: &plugin,
            sandbox: &args.sandbox,
            mode,
            cli_settings: &cli_settings,
            timeout: args.timeout,
        })
        .await
    {
        Ok(r) => r,
        Err(RunError::Settings(e)) => return fail(exit::USAGE, &e.to_string()),
    };
    print_report(&report, args.json);
    ExitCode::from(report.outcome.exit_code())
}

fn print_report(report: &Report, json: bool) {
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_human());
    }
}
