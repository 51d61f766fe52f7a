//! `runner conformance PLUGIN`: a language-neutral suite that certifies a
//! plugin component against the contract in `wit/`.
//!
//! Everything goes through the WIT interface, so a plugin written in any
//! language is judged the same way. The plugin runs against synthetic
//! sandboxes held in memory ([`synthetic`]): no engine, no image, no agent,
//! no host ports (the `forward` capability answers `unavailable`). The
//! suite checks what the host cannot enforce on its own — honesty (nothing
//! is healthy in an empty sandbox, nothing is `repaired` without a change),
//! stability, robustness when every capability fails — and counts the calls
//! the host refused (undeclared capability, another sandbox, a mutation
//! outside `repair`), which a runtime makes harmless but a conformant
//! plugin never attempts.

mod checks;
pub mod report;
pub mod synthetic;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use crate::capabilities::{CallKind, CapContext, Denial, Grant, Mutation, Services};
use crate::model::{LinkReport, RepairOutcome, Target};
use crate::plugins::PluginSource;
use crate::recovery::plan::{Step, next_step};
use crate::runtime::errors::{LoadError, PluginFault};
// Per-call budgets: the ones `recover` gives a plugin.
use crate::runtime::{LoadFailure, PROBE_DEADLINE, Plugin, REPAIR_DEADLINE, Runtime};
use crate::settings::{self, SettingsError};

use self::checks::{health_name, outcome_name};
use self::report::{Check, CheckId, ConformanceReport, PluginMeta};
use self::synthetic::{Scenario, SyntheticSandbox};

/// The sandbox name the plugin is bound to.
pub const SANDBOX: &str = "conformance";
/// A link id no plugin declares.
const UNKNOWN_LINK: &str = "conformance-no-such-link";

/// The suite could not run at all: nothing to certify (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error(transparent)]
    Input(LoadError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

/// Run the whole suite. `overrides` are `--set` values on top of the
/// plugin's defaults.
pub async fn run(
    runtime: &Runtime,
    source: &PluginSource,
    overrides: &[(String, String)],
) -> Result<ConformanceReport, SuiteError> {
    let started = Instant::now();
    let mut suite = Suite::default();

    let loaded = Instant::now();
    let plugin = match runtime.load(source).await {
        Ok(plugin) => plugin,
        Err(LoadFailure::Load(
            e @ (LoadError::NotFound(_)
            | LoadError::Unreadable { .. }
            | LoadError::UnknownBuiltin { .. }),
        )) => return Err(SuiteError::Input(e)),
        Err(LoadFailure::Load(e)) => {
            suite.record(CheckId::Loads, loaded, Err(e.to_string()));
            return Ok(suite.finish(PluginMeta::unloaded(source), started));
        }
        Err(LoadFailure::Fault(fault)) => {
            suite.record(
                CheckId::Loads,
                loaded,
                Ok("component compiled and linked".into()),
            );
            suite.record(CheckId::Describe, loaded, Err(fault.to_string()));
            return Ok(suite.finish(PluginMeta::unloaded(source), started));
        }
    };
    suite.record(
        CheckId::Loads,
        loaded,
        Ok(format!(
            "component of runner:plugin@{}, {} bytes",
            plugin.wit_version, plugin.size
        )),
    );
    let resolved = settings::resolve(plugin.name(), &plugin.info.settings, &[overrides])?;
    let target = Target {
        sandbox: SANDBOX.to_string(),
        backend: "conformance".to_string(),
        settings: resolved,
    };

    suite.describe_checks(runtime, &plugin).await;
    let mut run = Run {
        runtime,
        plugin: &plugin,
        target: &target,
        denials: Vec::new(),
    };
    suite.empty_sandbox(&mut run).await;
    suite.unreachable_engine(&mut run).await;

    let denials = std::mem::take(&mut run.denials);
    let all = Instant::now();
    suite.record(
        CheckId::ProbeReadOnly,
        all,
        checks::denials_of(&denials, Denial::is_mutation_attempt)
            .map(|()| "no mutation attempted outside repair".into()),
    );
    suite.record(
        CheckId::CapabilitiesDeclared,
        all,
        checks::denials_of(&denials, |d| matches!(d, Denial::Undeclared { .. }))
            .map(|()| "every call used a declared capability".into()),
    );
    suite.record(
        CheckId::SandboxBound,
        all,
        checks::denials_of(&denials, |d| matches!(d, Denial::OtherSandbox { .. }))
            .map(|()| format!("every call named the bound sandbox '{SANDBOX}'")),
    );
    Ok(suite.finish(PluginMeta::of(&plugin), started))
}

#[derive(Default)]
struct Suite {
    checks: Vec<Check>,
}

/// One plugin bound to one target, and what the host refused so far.
struct Run<'a> {
    runtime: &'a Runtime,
    plugin: &'a Plugin,
    target: &'a Target,
    denials: Vec<(CallKind, Denial)>,
}

type ProbeAnswer = Result<Result<Vec<LinkReport>, String>, PluginFault>;

impl Run<'_> {
    fn caps(
        &self,
        backend: &Arc<SyntheticSandbox>,
        kind: CallKind,
        link: Option<&str>,
    ) -> CapContext {
        let grant = Grant::call(
            self.plugin.name(),
            SANDBOX,
            kind,
            &self.plugin.info.capabilities,
        )
        .repairing(link);
        // No forward registry: the suite never opens host ports.
        CapContext::new(
            grant,
            Services {
                backend: Some(backend.clone()),
                forwards: None,
                audit: None,
            },
        )
    }

    async fn probe(&mut self, backend: &Arc<SyntheticSandbox>) -> ProbeAnswer {
        let caps = self.caps(backend, CallKind::Probe, None);
        let (answer, record) = self
            .runtime
            .probe(self.plugin, self.target.clone(), caps, PROBE_DEADLINE)
            .await;
        self.note(CallKind::Probe, record.denials);
        answer
    }

    async fn repair(
        &mut self,
        backend: &Arc<SyntheticSandbox>,
        link: &str,
    ) -> Result<(RepairOutcome, Vec<Mutation>), PluginFault> {
        let caps = self.caps(backend, CallKind::Repair, Some(link));
        let (answer, record) = self
            .runtime
            .repair(
                self.plugin,
                self.target.clone(),
                link,
                caps,
                REPAIR_DEADLINE,
            )
            .await;
        let mutations = record.mutations;
        self.note(CallKind::Repair, record.denials);
        answer.map(|outcome| (outcome, mutations))
    }

    fn note(&mut self, kind: CallKind, denials: Vec<Denial>) {
        self.denials.extend(denials.into_iter().map(|d| (kind, d)));
    }

    /// Repair what the host's own planner would repair, one link at a time
    /// with a probe after each, exactly as `recover` does. Returns one line
    /// per repair, or the first contract breach.
    async fn follow_plan(
        &mut self,
        backend: &Arc<SyntheticSandbox>,
        mut reports: Vec<LinkReport>,
        judge: impl Fn(&str, &RepairOutcome, &[Mutation]) -> Result<(), String>,
    ) -> Result<Vec<String>, String> {
        let links = &self.plugin.info.links;
        let mut attempted = HashSet::new();
        let mut lines = Vec::new();
        // Each link is repaired at most once, so this ends.
        for _ in 0..=links.len() {
            let link = match next_step(links, &reports, &attempted) {
                Step::Repair(link) => link,
                Step::Done => break,
                Step::Blocked { link, reason } => {
                    lines.push(format!("plan stops at '{link}': {reason}"));
                    break;
                }
                Step::Unknown { link } => {
                    lines.push(format!("plan stops at '{link}': unknown"));
                    break;
                }
            };
            attempted.insert(link.clone());
            let (outcome, mutations) = self
                .repair(backend, &link)
                .await
                .map_err(|f| f.to_string())?;
            judge(&link, &outcome, &mutations)?;
            lines.push(format!(
                "'{link}' {} after {} mutation(s)",
                outcome_name(&outcome),
                mutations.len()
            ));
            reports = match self.probe(backend).await {
                Ok(Ok(reports)) => reports,
                Ok(Err(message)) => {
                    return Err(format!("probe after repairing '{link}' gave up: {message}"));
                }
                Err(fault) => return Err(format!("probe after repairing '{link}': {fault}")),
            };
        }
        Ok(lines)
    }
}

impl Suite {
    fn record(&mut self, id: CheckId, since: Instant, result: Result<String, String>) {
        self.checks.push(Check::new(id, since.elapsed(), result));
    }

    fn finish(self, plugin: PluginMeta, started: Instant) -> ConformanceReport {
        ConformanceReport::new(plugin, self.checks, started.elapsed())
    }

    /// `load` already called `describe` once and checked the contract; call
    /// it again on its own (timed) and compare.
    async fn describe_checks(&mut self, runtime: &Runtime, plugin: &Plugin) {
        let t = Instant::now();
        let info = &plugin.info;
        match runtime.describe(plugin).await {
            Err(fault) => self.record(CheckId::Describe, t, Err(fault.to_string())),
            Ok(again) => {
                self.record(
                    CheckId::Describe,
                    t,
                    Ok(format!(
                        "{} {}: {} links, {} settings, capabilities [{}]",
                        info.name,
                        info.version,
                        info.links.len(),
                        info.settings.len(),
                        info.capabilities.join(", ")
                    )),
                );
                let stable = if format!("{again:?}") == format!("{info:?}") {
                    Ok("two calls, identical answers".into())
                } else {
                    Err("a second describe answered differently from the first".into())
                };
                self.record(CheckId::DescribeStable, t, stable);
            }
        }
        let t = Instant::now();
        self.record(
            CheckId::DescribeComplete,
            t,
            checks::describe_complete(&plugin.info)
                .map(|()| "semver version, agent kinds, every link and setting documented".into()),
        );
    }

    async fn empty_sandbox(&mut self, run: &mut Run<'_>) {
        let backend = Arc::new(SyntheticSandbox::new(SANDBOX, Scenario::Empty));
        let t = Instant::now();
        let first = match run.probe(&backend).await {
            Ok(Ok(reports)) => {
                self.record(CheckId::ProbeEmpty, t, Ok(health_line(&reports)));
                reports
            }
            Ok(Err(message)) => {
                let text = format!("probe gave up on a reachable sandbox: {message}");
                self.record(CheckId::ProbeEmpty, t, Err(text));
                return;
            }
            Err(fault) => {
                self.record(CheckId::ProbeEmpty, t, Err(fault.to_string()));
                return;
            }
        };
        let t = Instant::now();
        self.record(
            CheckId::ProbeHonest,
            t,
            checks::not_all_healthy_when_empty(&first)
                .map(|()| "reports what it cannot see as broken or unknown".into()),
        );

        let t = Instant::now();
        let stable = match run.probe(&backend).await {
            Ok(Ok(second)) => checks::same_health(&first, &second)
                .map(|()| "a second probe agrees on every link".into()),
            Ok(Err(message)) => Err(format!("second probe gave up: {message}")),
            Err(fault) => Err(format!("second probe: {fault}")),
        };
        self.record(CheckId::ProbeStable, t, stable);

        let t = Instant::now();
        let planned = run
            .follow_plan(&backend, first, checks::repair_is_honest)
            .await
            .map(|lines| summarize_plan(&lines));
        self.record(CheckId::RepairPlan, t, planned);

        let t = Instant::now();
        let unknown = match run.repair(&backend, UNKNOWN_LINK).await {
            Err(fault) => Err(fault.to_string()),
            Ok((RepairOutcome::Repaired(text), _)) => Err(format!(
                "answered repaired (\"{text}\") for a link it never declared"
            )),
            Ok((_, mutations)) if !mutations.is_empty() => Err(format!(
                "changed the sandbox ({} mutation(s)) for a link it never declared",
                mutations.len()
            )),
            Ok((outcome, _)) => Ok(format!(
                "'{UNKNOWN_LINK}' answered {}",
                outcome_name(&outcome)
            )),
        };
        self.record(CheckId::RepairUnknownLink, t, unknown);
    }

    async fn unreachable_engine(&mut self, run: &mut Run<'_>) {
        let backend = Arc::new(SyntheticSandbox::new(SANDBOX, Scenario::Unreachable));
        let t = Instant::now();
        let reports = match run.probe(&backend).await {
            Ok(Ok(reports)) => reports,
            Ok(Err(message)) => {
                self.record(
                    CheckId::ProbeUnreachable,
                    t,
                    Ok(format!("probe gave up as a whole: {message}")),
                );
                return;
            }
            Err(fault) => {
                self.record(CheckId::ProbeUnreachable, t, Err(fault.to_string()));
                return;
            }
        };
        self.record(
            CheckId::ProbeUnreachable,
            t,
            checks::nothing_healthy_when_blind(&reports).map(|()| health_line(&reports)),
        );
        let t = Instant::now();
        // Every capability call fails here, so no repair can have worked.
        let planned = run
            .follow_plan(&backend, reports, |link, outcome, mutations| {
                if let RepairOutcome::Repaired(text) = outcome {
                    return Err(format!(
                        "repair of '{link}' answered repaired (\"{text}\") although every capability call failed"
                    ));
                }
                checks::repair_is_honest(link, outcome, mutations)
            })
            .await
            .map(|lines| summarize_plan(&lines));
        self.record(CheckId::RepairUnreachable, t, planned);
    }
}

fn health_line(reports: &[LinkReport]) -> String {
    reports
        .iter()
        .map(|r| format!("{} {}", r.id, health_name(r.health)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn summarize_plan(lines: &[String]) -> String {
    if lines.is_empty() {
        "nothing to repair".to_string()
    } else {
        lines.join("; ")
    }
}
