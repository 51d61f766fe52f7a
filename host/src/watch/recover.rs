//! The real [`Recover`]: load the sandbox's plugin, run the recovery
//! engine (which locks the sandbox), count what it repaired, and arm the liveness checks
//! from a healthy report's evidence.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;

use crate::audit::AuditLog;
use crate::backend::Backend;
use crate::forward::ForwardRegistry;
use crate::plugins::PluginSource;
use crate::recovery::report::{Action, Mode, Outcome, Report};
use crate::recovery::{Engine, Quiet, RunError, RunRequest};
use crate::runtime::{Plugin, Runtime};

use super::Target;
use super::config::WatchConfig;
use super::liveness::{Armed, Identity};
use super::metrics::Metrics;
use super::pass::{Recover, RecoverCall, Recovered};
use super::policy::RunResult;

/// Distinct plugins loaded at once.
const MAX_PLUGINS: usize = 16;
/// Longest wait for another runner's recover of the same sandbox.
const LOCK_WAIT_MAX: Duration = Duration::from_secs(30);

pub(super) struct EngineRecover {
    pub runtime: Runtime,
    /// A backend that never starts a stopped sandbox.
    pub backend: Arc<dyn Backend>,
    pub forwards: Arc<ForwardRegistry>,
    pub audit: Arc<AuditLog>,
    pub metrics: Arc<Metrics>,
    /// Deadline of one recover.
    pub timeout: Duration,
    plugins: AsyncMutex<HashMap<String, Arc<Plugin>>>,
    /// Per sandbox: the configuration problem last logged at ERROR, so a
    /// bad setting is reported once per change, not on every pass.
    reported: std::sync::Mutex<HashMap<String, String>>,
}

impl EngineRecover {
    pub fn new(
        runtime: Runtime,
        backend: Arc<dyn Backend>,
        forwards: Arc<ForwardRegistry>,
        audit: Arc<AuditLog>,
        metrics: Arc<Metrics>,
        timeout: Duration,
    ) -> Self {
        Self {
            runtime,
            backend,
            forwards,
            audit,
            metrics,
            timeout,
            plugins: AsyncMutex::new(HashMap::new()),
            reported: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Log a configuration problem of `sandbox` at ERROR the first time it
    /// is seen (or when it changes), at DEBUG after that.
    fn config_problem(&self, sandbox: &str, problem: String) {
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if reported.get(sandbox) == Some(&problem) {
            tracing::debug!(sandbox, "still: {problem}");
            return;
        }
        tracing::error!(
            sandbox,
            "{problem}; runner watch leaves this sandbox alone until its settings change"
        );
        reported.insert(sandbox.to_string(), problem);
    }

    fn config_ok(&self, sandbox: &str) {
        self.reported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sandbox);
    }

    /// Every `[[sandbox]]` of the config: its plugin loads and its settings
    /// are ones the plugin declares. All problems at once.
    pub async fn validate(&self, config: &WatchConfig) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for entry in &config.sandbox {
            match self.plugin(&entry.plugin).await {
                Err(e) => problems.push(format!(
                    "[[sandbox]] {}: plugin {}: {e}",
                    entry.name, entry.plugin
                )),
                Ok(p) => {
                    let set: Vec<(String, String)> = entry
                        .settings
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    if let Err(e) =
                        crate::settings::resolve(&p.info.name, &p.info.settings, &[&set])
                    {
                        problems.push(format!("[[sandbox]] {}: {e}", entry.name));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    async fn plugin(&self, name: &str) -> Result<Arc<Plugin>, String> {
        let mut plugins = self.plugins.lock().await;
        if let Some(p) = plugins.get(name) {
            return Ok(p.clone());
        }
        if plugins.len() >= MAX_PLUGINS {
            return Err(format!("more than {MAX_PLUGINS} distinct plugins"));
        }
        let source = PluginSource::parse(name).map_err(|e| e.to_string())?;
        let plugin = Arc::new(
            self.runtime
                .load(&source)
                .await
                .map_err(|e| e.to_string())?,
        );
        plugins.insert(name.to_string(), plugin.clone());
        Ok(plugin)
    }

    /// Repairs and failures per link, and the probe's duration.
    fn count_links(&self, name: &str, report: &Report) {
        self.metrics
            .probe(Duration::from_millis(report.duration_ms));
        for link in &report.links {
            let result = match link.action {
                Action::Repaired => "repaired",
                Action::Failed => "failed",
                Action::Refused => "refused",
                Action::None | Action::Skipped => continue,
            };
            self.metrics.repair(name, &link.id, result);
        }
    }

    /// What the liveness checks will look at until the next full pass (none:
    /// full passes every interval instead). Armed once here: the listen
    /// probe's socket is made in the sandbox's namespace now (a short
    /// thread) and reused by every tick until the identity is dropped.
    fn arm(&self, name: &str, report: &Report, init: Option<(u32, u64)>) -> Option<Armed> {
        init.and_then(|(pid, start)| Identity::from_report(report, pid, start))
            .map(|id| Armed::arm(id, name))
            .and_then(|mut id| match id.check(name, &self.forwards) {
                Ok(()) => Some(id),
                Err(why) => {
                    tracing::debug!(sandbox = name, reason = %why, "the evidence's identity does not check out");
                    None
                }
            })
    }
}

/// A report as the crash-loop policy counts it.
fn run_result(report: &Report) -> RunResult {
    let healthy = matches!(report.outcome, Outcome::Healthy | Outcome::Recovered);
    if report.deterministic.is_some() {
        RunResult::Deterministic
    } else if !report.mutations.is_empty() {
        RunResult::Repaired {
            healthy_after: healthy,
        }
    } else if healthy {
        RunResult::Healthy
    } else {
        RunResult::Inconclusive
    }
}

#[async_trait::async_trait]
impl Recover for EngineRecover {
    async fn recover(&self, target: &Target, call: RecoverCall<'_>) -> Option<Recovered> {
        let name = target.name.as_str();
        let reason = call.trigger.reason;
        let slot = if call.trigger.queued.is_some() {
            "urgent"
        } else {
            "routine"
        };
        let plugin = match self.plugin(&target.plugin).await {
            Ok(p) => p,
            Err(e) => {
                self.config_problem(name, format!("cannot load plugin {}: {e}", target.plugin));
                return None;
            }
        };
        call.engaged.store(true, Ordering::Relaxed);
        tracing::info!(sandbox = name, trigger = reason, slot, "recover started");
        let engine = Engine {
            runtime: &self.runtime,
            backend: self.backend.clone(),
            forwards: self.forwards.clone(),
            audit: Some(self.audit.clone()),
            progress: &Quiet,
        };
        let report = match engine
            .run(RunRequest {
                plugin: &plugin,
                sandbox: name,
                mode: Mode::Recover,
                cli_settings: &target.settings,
                timeout: self.timeout,
                lock_wait: LOCK_WAIT_MAX,
            })
            .await
        {
            Ok(r) => {
                self.config_ok(name);
                r
            }
            Err(RunError::Lock(e)) => {
                tracing::warn!(sandbox = name, "cannot lock the sandbox for a recover: {e}");
                return None;
            }
            Err(e) => {
                self.config_problem(name, format!("configuration error: {e}"));
                return None;
            }
        };
        self.count_links(name, &report);
        let result = run_result(&report);
        let identity = self.arm(name, &report, call.init);
        self.metrics.decision(match result {
            RunResult::Healthy => "probe-healthy",
            RunResult::Repaired { .. } => "repair",
            RunResult::Inconclusive => "inconclusive",
            RunResult::Deterministic => "refused-until-change",
        });
        let outcome = format!("{:?}", report.outcome).to_lowercase();
        tracing::info!(
            sandbox = name,
            trigger = reason,
            decision = "recover",
            outcome = %outcome,
            mutations = report.mutations.len(),
            failing_layer = report.failing_layer.as_deref(),
            ms = report.duration_ms,
            queued_ms = call.trigger.queued.map(|q| q.as_millis() as u64),
            inspect_ms = call.waited.inspect_ms,
            slot,
            slot_wait_ms = call.waited.slot_ms,
            liveness = if identity.is_some() { "armed" } else { "unarmed" },
            message = report.message.as_deref(),
            "recover finished"
        );
        Some(Recovered {
            result,
            healthy: matches!(report.outcome, Outcome::Healthy | Outcome::Recovered),
            identity,
            failing_layer: report.failing_layer,
            deterministic: report.deterministic,
            message: report.message,
        })
    }
}
