//! The recovery engine: probe → plan → repair one link → re-probe → … →
//! bounded verification → report.
//!
//! The engine owns the built-in `sandbox` link (is the container running?)
//! and drives the plugin for everything after it. It never sleeps for a fixed
//! time: verification polls with backoff until the repaired link is proven
//! healthy or the run's deadline passes.

pub mod backoff;
pub mod lock;
pub mod plan;
pub mod report;
mod sandbox_link;
mod view;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audit::AuditLog;
use crate::backend::{Backend, BackendError, SandboxState};
use crate::capabilities::{CallKind, CapContext, Grant, Mutation, Services};
use crate::forward::ForwardRegistry;
use crate::model::{Health, LinkReport, RepairOutcome, Target};
use crate::runtime::errors::PluginFault;
use crate::runtime::{PROBE_DEADLINE, Plugin, REPAIR_DEADLINE, Runtime};
use crate::settings::{self, SettingsError};

use self::backoff::Backoff;
use self::lock::{LockError, SandboxLock};
use self::plan::Step;
use self::report::{Action, Mode, Outcome, PluginRef, Report, State};
use self::sandbox_link::SandboxCheck;
use self::view::{
    evidence_of, has_evidence, health_of, is_settling, link_entries, mark_skipped, unknown_links,
    unknown_reports,
};

/// Shows what a long run is waiting for (a spinner on a terminal).
pub trait Progress: Send + Sync {
    fn phase(&self, text: &str);
    fn done(&self) {}
}

/// Progress that shows nothing (JSON output, tests).
pub struct Quiet;
impl Progress for Quiet {
    fn phase(&self, _text: &str) {}
}

/// Everything a run needs besides the plugin.
pub struct Engine<'a> {
    pub runtime: &'a Runtime,
    pub backend: Arc<dyn Backend>,
    pub forwards: Arc<ForwardRegistry>,
    pub audit: Option<Arc<AuditLog>>,
    pub progress: &'a dyn Progress,
}

/// A run that could not start: bad configuration, nothing touched (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Another run holds the sandbox, or the lock's path is unusable.
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// What one run is asked to do.
pub struct RunRequest<'a> {
    pub plugin: &'a Plugin,
    pub sandbox: &'a str,
    pub mode: Mode,
    pub cli_settings: &'a [(String, String)],
    pub timeout: Duration,
    /// The longest a recover waits for another run's lock on the sandbox
    /// (at most `timeout`; the wait comes out of it). `runner watch` gives
    /// up sooner than a command does: another pass will come.
    pub lock_wait: Duration,
}

/// The end of a bounded wait: the last probe, and why the sandbox can no
/// longer be worked on when it vanished meanwhile.
struct Waited {
    reports: Vec<LinkReport>,
    gone: Option<String>,
}

/// Per-link bookkeeping while a run progresses.
struct Ledger {
    before: HashMap<String, State>,
    action: HashMap<String, Action>,
    ms: HashMap<String, u64>,
    /// Why a repair found nothing to do (e.g. the sandbox's own supervisor
    /// relaunched the gateway): shown as the link's `not-needed` evidence.
    not_needed: HashMap<String, String>,
}

impl Engine<'_> {
    /// One run. A recover holds the sandbox's lock throughout, so two
    /// recovers of one sandbox serialize; the wait for it comes out of the
    /// run's timeout. A status or dry run needs no lock.
    pub async fn run(&self, req: RunRequest<'_>) -> Result<Report, RunError> {
        let started = Instant::now();
        let deadline = started + req.timeout;
        let _lock = match req.mode {
            Mode::Recover => {
                let lock = SandboxLock::acquire(
                    self.backend.kind(),
                    req.sandbox,
                    req.lock_wait.min(req.timeout),
                )
                .await?;
                tracing::debug!(
                    sandbox = %req.sandbox,
                    lock_ms = started.elapsed().as_millis() as u64,
                    "sandbox locked"
                );
                Some(lock)
            }
            Mode::Status | Mode::DryRun => None,
        };
        let mut mutations: Vec<Mutation> = Vec::new();
        let mut report = Report {
            schema: report::SCHEMA,
            sandbox: req.sandbox.to_string(),
            backend: self.backend.kind().to_string(),
            plugin: PluginRef {
                name: req.plugin.info.name.clone(),
                version: req.plugin.info.version.clone(),
                sha256: req.plugin.sha256.clone(),
            },
            mode: req.mode,
            outcome: Outcome::Unknown,
            links: Vec::new(),
            mutations: Vec::new(),
            duration_ms: 0,
            failing_layer: None,
            message: None,
            deterministic: None,
            plan: None,
        };

        // 1. The built-in sandbox link.
        self.progress.phase("inspecting sandbox");
        let check = sandbox_link::check(self, &req, deadline, &mut mutations).await;
        let labels = match check {
            SandboxCheck::Ready { entry, labels } => {
                report.links.push(entry);
                labels
            }
            SandboxCheck::Stop {
                entry,
                outcome,
                message,
                plan,
            } => {
                report.failing_layer = (outcome != Outcome::Healthy).then(|| entry.id.clone());
                report.links.push(entry);
                report.outcome = outcome;
                report.message = Some(message);
                report.plan = plan;
                return Ok(self.finish(report, mutations, started));
            }
        };

        // Settings are resolved only now (labels come from the sandbox), but
        // still before anything of the plugin's runs.
        let from_labels = settings::from_labels(&req.plugin.info.settings, &labels);
        let resolved = settings::resolve(
            &req.plugin.info.name,
            &req.plugin.info.settings,
            &[&from_labels, req.cli_settings],
        )?;
        let target = Target {
            sandbox: req.sandbox.to_string(),
            backend: self.backend.kind().to_string(),
            settings: resolved,
        };

        // 2. First probe.
        self.progress.phase("probing");
        let first = match self
            .probe(req.plugin, &target, deadline, &mut mutations)
            .await
        {
            Ok(Ok(reports)) => reports,
            Ok(Err(message)) => {
                report.links.extend(unknown_links(req.plugin, &message));
                report.outcome = Outcome::Unknown;
                report.message = Some(format!("probe could not run: {message}"));
                return Ok(self.finish(report, mutations, started));
            }
            Err(fault) => return Ok(self.fault(report, mutations, started, fault)),
        };
        tracing::debug!(
            sandbox = %req.sandbox,
            at_ms = started.elapsed().as_millis() as u64,
            "first probe done"
        );
        let mut ledger = Ledger {
            before: first
                .iter()
                .map(|r| (r.id.clone(), State::from(r.health)))
                .collect(),
            action: HashMap::new(),
            ms: HashMap::new(),
            not_needed: HashMap::new(),
        };
        let mut current = first;

        match req.mode {
            Mode::Status => {
                let (outcome, layer) = verdict(req.plugin, &current);
                report.outcome = outcome;
                report.failing_layer = layer;
            }
            Mode::DryRun => {
                let (planned, stop) = plan::dry_run_plan(&req.plugin.info.links, &current);
                report.outcome = if planned.is_empty() && stop.is_none() {
                    Outcome::Healthy
                } else {
                    verdict(req.plugin, &current).0
                };
                if let Some(stop) = stop {
                    let (layer, message) = describe_stop(&stop);
                    report.failing_layer = Some(layer);
                    report.message = Some(message);
                }
                report.plan = Some(planned);
            }
            Mode::Recover => {
                match self
                    .recover(
                        &req,
                        &target,
                        deadline,
                        &mut current,
                        &mut ledger,
                        &mut mutations,
                        &mut report,
                    )
                    .await
                {
                    Ok(()) => {}
                    Err(fault) => {
                        report
                            .links
                            .extend(link_entries(req.plugin, &current, &ledger));
                        return Ok(self.fault(report, mutations, started, fault));
                    }
                }
            }
        }
        report
            .links
            .extend(link_entries(req.plugin, &current, &ledger));
        Ok(self.finish(report, mutations, started))
    }

    /// The repair loop. Sets outcome, failing layer and message on `report`.
    #[allow(clippy::too_many_arguments)]
    async fn recover(
        &self,
        req: &RunRequest<'_>,
        target: &Target,
        deadline: Instant,
        current: &mut Vec<LinkReport>,
        ledger: &mut Ledger,
        mutations: &mut Vec<Mutation>,
        report: &mut Report,
    ) -> Result<(), PluginFault> {
        // The run's start, so `at_ms` in the traces lines up with "first probe done".
        let started = deadline - req.timeout;
        let mut attempted = HashSet::new();
        let mut settled = HashSet::new();
        // Each link is repaired at most once and waited for at most once, so
        // the loop is bounded by twice the number of links; the extra pass
        // sees the final state.
        for _ in 0..=2 * req.plugin.info.links.len() {
            let step = plan::next_step(&req.plugin.info.links, current, &attempted);
            // A link that says "unknown, still starting — retry after N s"
            // (a gateway PID 1 just respawned) is waited for, bounded by the
            // deadline, instead of ending the run as unknown.
            if let Step::Unknown { link } = &step
                && is_settling(current, link)
                && settled.insert(link.clone())
            {
                self.progress
                    .phase(&format!("waiting for {link} to settle"));
                let waited = self
                    .wait_until(req.plugin, target, deadline, mutations, |r| {
                        health_of(r, link) != Health::Unknown
                    })
                    .await?;
                *current = waited.reports;
                if let Some(why) = waited.gone {
                    vanished(report, why, mutations.len());
                    return Ok(());
                }
                continue;
            }
            let link = match step {
                Step::Done => {
                    report.outcome = if mutations.is_empty() {
                        Outcome::Healthy
                    } else {
                        Outcome::Recovered
                    };
                    return Ok(());
                }
                Step::Repair(link) => link,
                stop => {
                    let (layer, message) = describe_stop(&stop);
                    report.outcome = if matches!(stop, Step::Unknown { .. }) {
                        Outcome::Unknown
                    } else {
                        Outcome::Broken
                    };
                    report.failing_layer = Some(layer);
                    report.message = Some(message);
                    mark_skipped(req.plugin, current, ledger, report.failing_layer.as_deref());
                    return Ok(());
                }
            };
            if Instant::now() >= deadline {
                report.outcome = Outcome::Broken;
                report.failing_layer = Some(link.clone());
                report.message = Some(format!(
                    "overall deadline of {} s passed before repairing {link}",
                    req.timeout.as_secs()
                ));
                return Ok(());
            }
            attempted.insert(link.clone());
            let link_started = Instant::now();
            self.progress.phase(&format!("repairing {link}"));
            let caps = self.caps(req.plugin, &target.sandbox, CallKind::Repair, Some(&link));
            let budget = remaining(deadline).min(REPAIR_DEADLINE);
            let (outcome, caps) = self
                .runtime
                .repair(req.plugin, target.clone(), &link, caps, budget)
                .await;
            mutations.extend(caps.mutations);
            let outcome = outcome?;
            let spawn_fact = caps.deterministic;
            let stop_with =
                |action: Action, message: String, ledger: &mut Ledger, report: &mut Report| {
                    ledger.action.insert(link.clone(), action);
                    ledger
                        .ms
                        .insert(link.clone(), link_started.elapsed().as_millis() as u64);
                    report.outcome = Outcome::Broken;
                    report.failing_layer = Some(link.clone());
                    report.message = Some(message);
                };
            let failed_with = match &outcome {
                RepairOutcome::Refused(why) => Some((Action::Refused, "refused", why.clone())),
                RepairOutcome::Failed(why) => Some((Action::Failed, "failed", why.clone())),
                RepairOutcome::Repaired(_) | RepairOutcome::NotNeeded(_) => None,
            };
            if let Some((action, verb, why)) = failed_with {
                // One more look, so the report's `after` is what is true now
                // and the plugin can say the failure is deterministic.
                if let Ok(after) = self.probe(req.plugin, target, deadline, mutations).await? {
                    *current = after;
                }
                let cause = spawn_fact.or_else(|| evidence_of(current, &link, DETERMINISTIC));
                let action = if cause.is_some() {
                    Action::Refused
                } else {
                    action
                };
                let verb = if cause.is_some() { "refused" } else { verb };
                stop_with(
                    action,
                    format!("{link}: repair {verb}: {why}"),
                    ledger,
                    report,
                );
                report.deterministic = cause;
                mark_skipped(req.plugin, current, ledger, Some(&link));
                return Ok(());
            }
            tracing::debug!(
                sandbox = %target.sandbox,
                %link,
                repair_ms = link_started.elapsed().as_millis() as u64,
                at_ms = started.elapsed().as_millis() as u64,
                "repair returned"
            );
            // Nothing done by runner: a link that then proves healthy is
            // credited to whoever fixed it, not reported as repaired.
            let not_needed = match &outcome {
                RepairOutcome::NotNeeded(why) => Some(why.clone()),
                _ => None,
            };
            // Prove it: poll until this link is healthy or time runs out.
            self.progress.phase(&format!("verifying {link}"));
            let waited = self
                .verify(req.plugin, target, &link, deadline, mutations)
                .await?;
            *current = waited.reports;
            if let Some(why) = waited.gone {
                ledger.action.insert(link.clone(), Action::Failed);
                vanished(report, why, mutations.len());
                return Ok(());
            }
            let healthy = health_of(current, &link) == Health::Healthy;
            tracing::debug!(
                sandbox = %target.sandbox,
                %link,
                healthy,
                link_ms = link_started.elapsed().as_millis() as u64,
                at_ms = started.elapsed().as_millis() as u64,
                "verification done"
            );
            let action = match (&not_needed, healthy) {
                (Some(why), true) => {
                    ledger.not_needed.insert(link.clone(), why.clone());
                    Action::None
                }
                (_, true) => Action::Repaired,
                (_, false) => Action::Failed,
            };
            ledger.action.insert(link.clone(), action);
            ledger
                .ms
                .insert(link.clone(), link_started.elapsed().as_millis() as u64);
        }
        let (outcome, layer) = verdict(req.plugin, current);
        report.outcome = if outcome == Outcome::Healthy && !mutations.is_empty() {
            Outcome::Recovered
        } else {
            outcome
        };
        report.failing_layer = layer;
        Ok(())
    }

    /// Verification of a repaired link: re-probe at once, then with backoff,
    /// until it is healthy, the deadline passes, or it said "still starting"
    /// and then broke (what the repair started has died: see
    /// [`plan::Verification`]); returns the last probe.
    async fn verify(
        &self,
        plugin: &Plugin,
        target: &Target,
        link: &str,
        deadline: Instant,
        mutations: &mut Vec<Mutation>,
    ) -> Result<Waited, PluginFault> {
        let mut verification = plan::Verification::default();
        self.wait_until(plugin, target, deadline, mutations, |reports| {
            match verification.observe(
                health_of(reports, link),
                is_settling(reports, link),
                has_evidence(reports, link, GONE),
            ) {
                plan::VerifyStep::Proven => true,
                plan::VerifyStep::GaveUp => {
                    tracing::debug!(sandbox = %target.sandbox, %link, "started, then broke: verification ends");
                    true
                }
                plan::VerifyStep::Wait => false,
            }
        })
        .await
    }

    /// Re-probe at once, then with backoff, until `done` accepts the
    /// reports or the deadline passes; returns the last probe.
    async fn wait_until(
        &self,
        plugin: &Plugin,
        target: &Target,
        deadline: Instant,
        mutations: &mut Vec<Mutation>,
        mut done: impl FnMut(&[LinkReport]) -> bool,
    ) -> Result<Waited, PluginFault> {
        let mut backoff = Backoff::verify();
        loop {
            let reports = match self.probe(plugin, target, deadline, mutations).await? {
                Ok(r) => r,
                Err(message) => unknown_reports(plugin, &message),
            };
            if done(&reports) {
                return Ok(Waited {
                    reports,
                    gone: None,
                });
            }
            // Polling a sandbox that is gone would only run out the clock.
            if let Some(why) = self.gone(&target.sandbox, deadline).await {
                return Ok(Waited {
                    reports,
                    gone: Some(why),
                });
            }
            match backoff.next_delay(remaining(deadline)) {
                Some(delay) => tokio::time::sleep(delay).await,
                None => {
                    return Ok(Waited {
                        reports,
                        gone: None,
                    });
                }
            }
        }
    }

    /// Why the sandbox can no longer be worked on (removed, or no longer
    /// running), if so.
    async fn gone(&self, sandbox: &str, deadline: Instant) -> Option<String> {
        let limit = remaining(deadline).min(Duration::from_secs(5));
        match tokio::time::timeout(limit, self.backend.inspect(sandbox)).await {
            Ok(Err(e @ BackendError::SandboxMissing(_))) => Some(e.to_string()),
            Ok(Ok(info)) => match info.state {
                SandboxState::Running | SandboxState::Restarting => None,
                other => Some(format!(
                    "sandbox '{sandbox}' is no longer running ({other:?})"
                )),
            },
            // An engine hiccup is not a verdict on the sandbox.
            Ok(Err(_)) | Err(_) => None,
        }
    }

    async fn probe(
        &self,
        plugin: &Plugin,
        target: &Target,
        deadline: Instant,
        mutations: &mut Vec<Mutation>,
    ) -> Result<Result<Vec<LinkReport>, String>, PluginFault> {
        let caps = self.caps(plugin, &target.sandbox, CallKind::Probe, None);
        let budget = remaining(deadline).clamp(Duration::from_millis(500), PROBE_DEADLINE);
        let (result, caps) = self
            .runtime
            .probe(plugin, target.clone(), caps, budget)
            .await;
        // Probes cannot mutate (the host denies it); keep anything recorded
        // anyway so the report would show a violation.
        mutations.extend(caps.mutations);
        result
    }

    fn caps(
        &self,
        plugin: &Plugin,
        sandbox: &str,
        kind: CallKind,
        link: Option<&str>,
    ) -> CapContext {
        let grant =
            Grant::call(plugin.name(), sandbox, kind, &plugin.info.capabilities).repairing(link);
        CapContext::new(
            grant,
            Services {
                backend: Some(self.backend.clone()),
                forwards: Some(self.forwards.clone()),
                audit: self.audit.clone(),
            },
        )
    }

    fn fault(
        &self,
        mut report: Report,
        mutations: Vec<Mutation>,
        started: Instant,
        fault: PluginFault,
    ) -> Report {
        report.outcome = Outcome::PluginFault;
        report.message = Some(fault.to_string());
        self.finish(report, mutations, started)
    }

    fn finish(&self, mut report: Report, mutations: Vec<Mutation>, started: Instant) -> Report {
        self.progress.done();
        report.mutations = mutations;
        report.duration_ms = started.elapsed().as_millis() as u64;
        report
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Evidence key by which a plugin says "unknown only because it is still
/// starting; ask again in N seconds".
pub const RETRY_AFTER: &str = "retry-after-s";

/// Evidence key by which a broken link says "what was started no longer
/// exists" (a launched gateway exited): after "still starting", verification
/// stops on it instead of polling until the deadline.
pub const GONE: &str = "gone";

/// Evidence key of a link report: "this cannot be repaired until the
/// sandbox or the settings change" (wit/v0.1 `link-report.evidence`).
const DETERMINISTIC: &str = "deterministic";

/// Outcome of a probe without repairs: the first broken link in chain order
/// makes it broken, else the first unknown makes it unknown.
fn verdict(plugin: &Plugin, reports: &[LinkReport]) -> (Outcome, Option<String>) {
    let first = |h: Health| {
        plugin
            .info
            .links
            .iter()
            .find(|l| health_of(reports, &l.id) == h)
            .map(|l| l.id.clone())
    };
    if let Some(link) = first(Health::Broken) {
        (Outcome::Broken, Some(link))
    } else if let Some(link) = first(Health::Unknown) {
        (Outcome::Unknown, Some(link))
    } else {
        (Outcome::Healthy, None)
    }
}

/// The sandbox disappeared (removed, or stopped) while the run waited on
/// it: the run ends at once, unknown (exit 3), and says what it had done.
fn vanished(report: &mut Report, why: String, mutations: usize) {
    report.outcome = Outcome::Unknown;
    report.failing_layer = Some(sandbox_link::LINK.to_string());
    report.message = Some(format!(
        "{why}; the run stopped waiting on it after {mutations} mutation(s) (listed in the report)"
    ));
}

fn describe_stop(step: &Step) -> (String, String) {
    match step {
        Step::Blocked { link, reason } => (link.clone(), format!("{link}: {reason}")),
        Step::Unknown { link } => (
            link.clone(),
            format!("{link}: health unknown; nothing downstream was touched"),
        ),
        Step::Done | Step::Repair(_) => (String::new(), String::new()),
    }
}
