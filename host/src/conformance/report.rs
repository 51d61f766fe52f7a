//! The suite's result: schema `runner.conformance/v1` for `--json`, and the
//! human table.

use std::time::Duration;

use serde::Serialize;

use crate::plugins::PluginSource;
use crate::runtime::Plugin;

pub const SCHEMA: &str = "runner.conformance/v1";

/// Every check, in the order it runs. The ids are part of the JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    Loads,
    Describe,
    DescribeStable,
    DescribeComplete,
    ProbeEmpty,
    ProbeHonest,
    ProbeStable,
    RepairPlan,
    RepairUnknownLink,
    ProbeUnreachable,
    RepairUnreachable,
    ProbeReadOnly,
    CapabilitiesDeclared,
    SandboxBound,
}

impl CheckId {
    pub const ALL: [CheckId; 14] = [
        CheckId::Loads,
        CheckId::Describe,
        CheckId::DescribeStable,
        CheckId::DescribeComplete,
        CheckId::ProbeEmpty,
        CheckId::ProbeHonest,
        CheckId::ProbeStable,
        CheckId::RepairPlan,
        CheckId::RepairUnknownLink,
        CheckId::ProbeUnreachable,
        CheckId::RepairUnreachable,
        CheckId::ProbeReadOnly,
        CheckId::CapabilitiesDeclared,
        CheckId::SandboxBound,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CheckId::Loads => "loads",
            CheckId::Describe => "describe",
            CheckId::DescribeStable => "describe-stable",
            CheckId::DescribeComplete => "describe-complete",
            CheckId::ProbeEmpty => "probe-empty",
            CheckId::ProbeHonest => "probe-honest",
            CheckId::ProbeStable => "probe-stable",
            CheckId::RepairPlan => "repair-plan",
            CheckId::RepairUnknownLink => "repair-unknown-link",
            CheckId::ProbeUnreachable => "probe-unreachable",
            CheckId::RepairUnreachable => "repair-unreachable",
            CheckId::ProbeReadOnly => "probe-read-only",
            CheckId::CapabilitiesDeclared => "capabilities-declared",
            CheckId::SandboxBound => "sandbox-bound",
        }
    }

    /// What the check demands, for humans.
    pub fn rule(self) -> &'static str {
        match self {
            CheckId::Loads => "a component of a supported runner:plugin version",
            CheckId::Describe => "describe answers in time and within the contract",
            CheckId::DescribeStable => "describe answers the same every time",
            CheckId::DescribeComplete => {
                "semver version, agent kinds, documented links and settings"
            }
            CheckId::ProbeEmpty => "probe of an empty sandbox answers every link",
            CheckId::ProbeHonest => "an empty sandbox is not reported all healthy",
            CheckId::ProbeStable => "identical probes agree",
            CheckId::RepairPlan => "repairs along the host's plan answer honestly",
            CheckId::RepairUnknownLink => "an undeclared link is never 'repaired'",
            CheckId::ProbeUnreachable => "with every capability failing, nothing is healthy",
            CheckId::RepairUnreachable => "with every capability failing, nothing is 'repaired'",
            CheckId::ProbeReadOnly => "no mutation attempted outside repair",
            CheckId::CapabilitiesDeclared => "only declared capabilities are called",
            CheckId::SandboxBound => "only the bound sandbox is named",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    /// An earlier check failed so this one could not run.
    NotRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: CheckId,
    pub verdict: Verdict,
    pub detail: String,
    pub ms: u64,
}

impl Check {
    pub fn new(id: CheckId, took: Duration, result: Result<String, String>) -> Self {
        let (verdict, detail) = match result {
            Ok(detail) => (Verdict::Pass, detail),
            Err(detail) => (Verdict::Fail, detail),
        };
        Self {
            id,
            verdict,
            detail,
            ms: took.as_millis() as u64,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PluginMeta {
    pub source: String,
    pub name: Option<String>,
    pub version: Option<String>,
    pub wit: Option<String>,
    pub sha256: Option<String>,
}

impl PluginMeta {
    pub fn of(plugin: &Plugin) -> Self {
        Self {
            source: plugin.source.display_name(),
            name: Some(plugin.info.name.clone()),
            version: Some(plugin.info.version.clone()),
            wit: Some(plugin.wit_version.to_string()),
            sha256: Some(plugin.sha256.clone()),
        }
    }

    pub fn unloaded(source: &PluginSource) -> Self {
        Self {
            source: source.display_name(),
            name: None,
            version: None,
            wit: None,
            sha256: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConformanceReport {
    pub schema: &'static str,
    pub plugin: PluginMeta,
    /// True when every check passed.
    pub conformant: bool,
    pub checks: Vec<Check>,
    pub duration_ms: u64,
}

impl ConformanceReport {
    /// Checks that never ran are listed as `not-run`, so every report names
    /// all of them and a reader sees where the suite stopped.
    pub fn new(plugin: PluginMeta, mut checks: Vec<Check>, took: Duration) -> Self {
        for id in CheckId::ALL {
            if !checks.iter().any(|c| c.id == id) {
                checks.push(Check {
                    id,
                    verdict: Verdict::NotRun,
                    detail: "not run: an earlier check failed".into(),
                    ms: 0,
                });
            }
        }
        checks.sort_by_key(|c| CheckId::ALL.iter().position(|id| *id == c.id));
        let conformant = checks.iter().all(|c| c.verdict == Verdict::Pass);
        Self {
            schema: SCHEMA,
            plugin,
            conformant,
            checks,
            duration_ms: took.as_millis() as u64,
        }
    }

    pub fn failed(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .count()
    }

    /// The human table: one line per check, then the verdict.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let name = match (&self.plugin.name, &self.plugin.version) {
            (Some(n), Some(v)) => format!("{n} {v} ({})", self.plugin.source),
            _ => self.plugin.source.clone(),
        };
        out.push_str(&format!("conformance of {name}\n"));
        for c in &self.checks {
            let mark = match c.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "FAIL",
                Verdict::NotRun => "----",
            };
            out.push_str(&format!(
                "  {mark}  {:<22} {:>6} ms  {}\n",
                c.id.name(),
                c.ms,
                c.id.rule()
            ));
            if c.verdict == Verdict::Fail {
                out.push_str(&format!("        {}\n", first_line(&c.detail)));
            }
        }
        if self.conformant {
            out.push_str(&format!(
                "conformant: all {} checks passed in {} ms\n",
                self.checks.len(),
                self.duration_ms
            ));
        } else {
            let not_run = self
                .checks
                .iter()
                .filter(|c| c.verdict == Verdict::NotRun)
                .count();
            out.push_str(&format!(
                "NOT conformant: {} failed, {not_run} not run, of {} checks\n",
                self.failed(),
                self.checks.len()
            ));
        }
        out
    }
}

/// A failure's first line, cut to a terminal's width or so: a trap's wasm
/// backtrace stays in `--json`.
fn first_line(text: &str) -> String {
    const MAX: usize = 300;
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> PluginMeta {
        PluginMeta {
            source: "x.wasm".into(),
            name: Some("x".into()),
            version: Some("1.0.0".into()),
            wit: Some("0.1.0".into()),
            sha256: None,
        }
    }

    #[test]
    fn check_ids_serialize_as_their_names() {
        for id in CheckId::ALL {
            assert_eq!(
                serde_json::to_value(id).unwrap(),
                serde_json::Value::String(id.name().into())
            );
        }
    }

    #[test]
    fn missing_checks_are_listed_as_not_run_and_spoil_the_verdict() {
        let checks = vec![
            Check::new(CheckId::Describe, Duration::ZERO, Err("trap".into())),
            Check::new(CheckId::Loads, Duration::ZERO, Ok("ok".into())),
        ];
        let report = ConformanceReport::new(meta(), checks, Duration::from_millis(5));
        assert!(!report.conformant);
        assert_eq!(report.checks.len(), CheckId::ALL.len());
        assert_eq!(report.checks[0].id, CheckId::Loads);
        assert_eq!(report.checks[1].verdict, Verdict::Fail);
        assert!(
            report.checks[2..]
                .iter()
                .all(|c| c.verdict == Verdict::NotRun)
        );
        let text = report.render();
        assert!(text.contains("FAIL  describe"), "{text}");
        assert!(
            text.contains("NOT conformant: 1 failed, 12 not run, of 14 checks"),
            "{text}"
        );
        assert!(text.contains("        trap\n"), "{text}");
    }

    #[test]
    fn all_passing_is_conformant() {
        let checks = CheckId::ALL
            .iter()
            .map(|id| Check::new(*id, Duration::ZERO, Ok("fine".into())))
            .collect();
        let report = ConformanceReport::new(meta(), checks, Duration::ZERO);
        assert!(report.conformant);
        assert!(report.render().contains("conformant: all 14 checks passed"));
    }
}
