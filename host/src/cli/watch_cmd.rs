//! `runner watch [--config FILE] [--metrics ADDR] [--interval 10s] [--full-interval 15m]
//! [--max-concurrent 16]`.

use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::watch;

use crate::backend::docker::DockerBackend;
use crate::watch::config::WatchConfig;
use crate::watch::{self as supervisor, WatchOptions};

use super::plugin_cmd::{fail, new_runtime};
use super::{WatchArgs, exit};

/// Between liveness checks (procfs reads only).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Mean time between full plugin passes of a healthy sandbox.
const DEFAULT_FULL_INTERVAL: Duration = Duration::from_secs(900);
/// Urgent recovers at once (routine full passes get half as many).
const DEFAULT_MAX_CONCURRENT: usize = 16;

pub async fn run(args: WatchArgs) -> ExitCode {
    let endpoint = match super::docker_host::resolve_env() {
        Ok(e) => e,
        Err(e) => return fail(exit::USAGE, &e),
    };
    // The watcher repairs: without a usable audit log it must not start
    // (exit 2, before the engine is reached). `watch::run` opens it again.
    if let Err(e) = crate::audit::AuditLog::open_default() {
        return fail(exit::USAGE, &e.to_string());
    }
    let config = match &args.config {
        Some(path) => match WatchConfig::load(path) {
            Ok(c) => c,
            Err(e) => return fail(exit::USAGE, &e.to_string()),
        },
        None => WatchConfig::default(),
    };
    let max_concurrent = args
        .max_concurrent
        .or(config.max_concurrent)
        .unwrap_or(DEFAULT_MAX_CONCURRENT);
    if !(1..=64).contains(&max_concurrent) {
        return fail(exit::USAGE, "--max-concurrent must be 1..=64");
    }
    let opts = WatchOptions {
        interval: args
            .interval
            .or(config.interval())
            .unwrap_or(DEFAULT_INTERVAL),
        full_interval: args
            .full_interval
            .or(config.full_interval())
            .unwrap_or(DEFAULT_FULL_INTERVAL),
        max_concurrent,
        timeout: args
            .timeout
            .or(config.timeout())
            .unwrap_or(Duration::from_secs(60)),
        shutdown_grace: args
            .shutdown_grace
            .or(config.shutdown_grace())
            .unwrap_or(Duration::from_secs(20)),
        config,
    };
    let listener = match args.metrics {
        Some(addr) => match supervisor::bind_metrics(addr).await {
            Ok(l) => Some(l),
            Err(e) => return fail(exit::USAGE, &e.to_string()),
        },
        None => None,
    };
    let runtime = match new_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let docker = match DockerBackend::connect_endpoint(&endpoint).await {
        Ok(d) => d,
        Err(e) => return fail(exit::UNKNOWN, &e.to_string()),
    };

    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::info!(
            signal,
            "stopping: no new events; finishing in-flight repairs"
        );
        let _ = tx.send(true);
    });
    tracing::info!(
        interval_s = opts.interval.as_secs_f64(),
        full_interval_s = opts.full_interval.as_secs_f64(),
        max_concurrent = opts.max_concurrent,
        labels = opts.config.labels,
        listed = opts.config.sandbox.len(),
        "runner watch starting"
    );
    match supervisor::run(runtime, docker, opts, listener, rx).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ (supervisor::WatchError::Config(_) | supervisor::WatchError::Audit(_))) => {
            fail(exit::USAGE, &e.to_string())
        }
        Err(e) => fail(exit::UNKNOWN, &e.to_string()),
    }
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
