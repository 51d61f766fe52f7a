//! The verdicts of the suite as pure functions over what a plugin answered,
//! so each rule is unit-tested without a component.

use std::collections::HashSet;

use crate::capabilities::{CallKind, Denial, Mutation};
use crate::model::{Health, LinkReport, PluginInfo, RepairOutcome};

/// `MAJOR.MINOR.PATCH`, optionally followed by `-pre` or `+build`.
pub fn is_semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
}

/// What a plugin author must fill in beyond the structural contract the
/// host enforces on every load.
pub fn describe_complete(info: &PluginInfo) -> Result<(), String> {
    let mut problems = Vec::new();
    if !is_semver(&info.version) {
        problems.push(format!(
            "version '{}' is not semver (MAJOR.MINOR.PATCH)",
            info.version
        ));
    }
    if info.agent_kinds.iter().all(|k| k.trim().is_empty()) {
        problems.push("no agent kind declared".to_string());
    }
    for link in &info.links {
        if link.summary.trim().is_empty() {
            problems.push(format!("link '{}' has no summary", link.id));
        }
    }
    for setting in &info.settings {
        if setting.description.trim().is_empty() {
            problems.push(format!("setting '{}' has no description", setting.key));
        }
    }
    let mut seen = HashSet::new();
    for cap in &info.capabilities {
        if !seen.insert(cap.as_str()) {
            problems.push(format!("capability '{cap}' declared twice"));
        }
    }
    verdict(problems)
}

/// Two answers to the same question must agree on every link's health.
pub fn same_health(first: &[LinkReport], second: &[LinkReport]) -> Result<(), String> {
    let problems: Vec<String> = first
        .iter()
        .filter_map(|a| {
            let b = second.iter().find(|b| b.id == a.id)?;
            (a.health != b.health).then(|| {
                format!(
                    "link '{}' was {} then {}",
                    a.id,
                    health_name(a.health),
                    health_name(b.health)
                )
            })
        })
        .collect();
    verdict(problems)
}

/// In a sandbox with nothing in it no agent can be working: a plugin that
/// reports every link healthy there is not looking.
pub fn not_all_healthy_when_empty(reports: &[LinkReport]) -> Result<(), String> {
    if !reports.is_empty() && reports.iter().all(|r| r.health == Health::Healthy) {
        Err(
            "every link reported healthy in a sandbox that has no files, processes or listeners"
                .into(),
        )
    } else {
        Ok(())
    }
}

/// When no capability call can succeed, nothing can be proven healthy.
pub fn nothing_healthy_when_blind(reports: &[LinkReport]) -> Result<(), String> {
    let claimed: Vec<String> = reports
        .iter()
        .filter(|r| r.health == Health::Healthy)
        .map(|r| format!("link '{}' reported healthy ({})", r.id, r.summary))
        .collect();
    verdict(claimed)
}

/// Refusals of one kind, across every call of the run.
pub fn denials_of(
    denials: &[(CallKind, Denial)],
    keep: impl Fn(&Denial) -> bool,
) -> Result<(), String> {
    let found: Vec<String> = denials
        .iter()
        .filter(|(_, d)| keep(d))
        .map(|(kind, d)| format!("{d} (in {})", kind.name()))
        .collect();
    verdict(dedup(found))
}

/// One repair's answer, judged. `repaired` is a claim that something was
/// changed, so it needs at least one mutation the host made for it.
pub fn repair_is_honest(
    link: &str,
    outcome: &RepairOutcome,
    mutations: &[Mutation],
) -> Result<(), String> {
    match outcome {
        RepairOutcome::Repaired(text) if mutations.is_empty() => Err(format!(
            "repair of '{link}' answered repaired (\"{text}\") without changing anything"
        )),
        RepairOutcome::Refused(text) | RepairOutcome::Failed(text) if text.trim().is_empty() => {
            Err(format!(
                "repair of '{link}' gave up without saying why (an empty message)"
            ))
        }
        _ => Ok(()),
    }
}

pub fn outcome_name(outcome: &RepairOutcome) -> &'static str {
    match outcome {
        RepairOutcome::Repaired(_) => "repaired",
        RepairOutcome::Refused(_) => "refused",
        RepairOutcome::Failed(_) => "failed",
        RepairOutcome::NotNeeded(_) => "not-needed",
    }
}

pub fn health_name(health: Health) -> &'static str {
    match health {
        Health::Healthy => "healthy",
        Health::Broken => "broken",
        Health::Unknown => "unknown",
    }
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

fn verdict(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LinkSpec, SettingSpec};

    fn info() -> PluginInfo {
        PluginInfo {
            name: "demo".into(),
            version: "1.2.3".into(),
            agent_kinds: vec!["demo".into()],
            links: vec![LinkSpec {
                id: "gateway".into(),
                summary: "the gateway answers".into(),
                depends_on: vec![],
            }],
            settings: vec![SettingSpec {
                key: "port".into(),
                default: "1".into(),
                description: "gateway port".into(),
            }],
            capabilities: vec!["files".into()],
        }
    }

    fn report(id: &str, health: Health) -> LinkReport {
        LinkReport {
            id: id.into(),
            health,
            summary: "s".into(),
            evidence: vec![],
            repairable: false,
        }
    }

    fn mutation() -> Mutation {
        Mutation {
            capability: "files",
            action: "write".into(),
            detail: "/tmp/x".into(),
            result: "ok".into(),
        }
    }

    #[test]
    fn semver_needs_three_numbers_without_leading_zeros() {
        for good in ["0.1.0", "1.2.3", "10.20.30", "1.0.0-rc.1", "1.0.0+build.5"] {
            assert!(is_semver(good), "{good}");
        }
        for bad in ["1.0", "1.0.0.0", "v1.0.0", "01.0.0", "1..0", "", "latest"] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn a_complete_description_passes_and_gaps_are_all_named() {
        assert_eq!(describe_complete(&info()), Ok(()));
        let mut bare = info();
        bare.version = "dev".into();
        bare.agent_kinds.clear();
        bare.links[0].summary.clear();
        bare.settings[0].description = " ".into();
        bare.capabilities.push("files".into());
        let problems = describe_complete(&bare).unwrap_err();
        for expected in [
            "version 'dev'",
            "no agent kind",
            "link 'gateway' has no summary",
            "setting 'port' has no description",
            "capability 'files' declared twice",
        ] {
            assert!(problems.contains(expected), "{problems}");
        }
    }

    #[test]
    fn an_empty_sandbox_cannot_be_all_healthy() {
        let all_healthy = [report("a", Health::Healthy), report("b", Health::Healthy)];
        assert!(not_all_healthy_when_empty(&all_healthy).is_err());
        let honest = [report("a", Health::Healthy), report("b", Health::Broken)];
        assert_eq!(not_all_healthy_when_empty(&honest), Ok(()));
    }

    #[test]
    fn a_blind_probe_may_not_claim_health() {
        let blind = [report("a", Health::Unknown), report("b", Health::Broken)];
        assert_eq!(nothing_healthy_when_blind(&blind), Ok(()));
        let lying = [report("a", Health::Unknown), report("b", Health::Healthy)];
        assert!(
            nothing_healthy_when_blind(&lying)
                .unwrap_err()
                .contains("link 'b'")
        );
    }

    #[test]
    fn health_must_not_flap_between_identical_probes() {
        let first = [report("a", Health::Broken), report("b", Health::Healthy)];
        let same = first.clone();
        assert_eq!(same_health(&first, &same), Ok(()));
        let flapped = [report("a", Health::Unknown), report("b", Health::Healthy)];
        assert_eq!(
            same_health(&first, &flapped).unwrap_err(),
            "link 'a' was broken then unknown"
        );
    }

    #[test]
    fn repaired_needs_a_mutation_and_giving_up_needs_a_reason() {
        let claim = RepairOutcome::Repaired("done".into());
        assert!(repair_is_honest("x", &claim, &[]).is_err());
        assert_eq!(repair_is_honest("x", &claim, &[mutation()]), Ok(()));
        assert!(repair_is_honest("x", &RepairOutcome::Refused("".into()), &[]).is_err());
        assert_eq!(
            repair_is_honest("x", &RepairOutcome::Failed("no binary".into()), &[]),
            Ok(())
        );
    }

    #[test]
    fn denials_are_filtered_by_kind_and_reported_once() {
        let undeclared = Denial::Undeclared { capability: "exec" };
        let denials = vec![
            (CallKind::Probe, undeclared.clone()),
            (CallKind::Probe, undeclared.clone()),
            (
                CallKind::Probe,
                Denial::MutationOutsideRepair {
                    capability: "files",
                    during: CallKind::Probe,
                },
            ),
        ];
        let found = denials_of(&denials, |d| matches!(d, Denial::Undeclared { .. })).unwrap_err();
        assert_eq!(found, "exec call without declaring 'exec' (in probe)");
        assert_eq!(
            denials_of(&denials, |d| matches!(d, Denial::OtherSandbox { .. })),
            Ok(())
        );
    }

    #[test]
    fn a_write_a_sealed_probe_exec_attempted_fails_probe_read_only_like_a_refused_call() {
        let denials = vec![(
            CallKind::Probe,
            Denial::WriteRefusedInProbe {
                command: "[\"touch\", \"/sandbox/x\"] as default user".into(),
            },
        )];
        let found = denials_of(&denials, Denial::is_mutation_attempt).unwrap_err();
        assert!(
            found.contains("exec during probe tried to write"),
            "{found}"
        );
        assert!(found.contains("/sandbox/x"), "{found}");
    }
}
