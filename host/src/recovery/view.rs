//! Reading a probe's link reports: one link's health and evidence, and the
//! report's link entries with what the run did to each.

use std::collections::HashMap;

use crate::model::{Health, Kv, LinkReport};
use crate::runtime::Plugin;

use super::report::{Action, LinkEntry, State, evidence_map};
use super::{Ledger, RETRY_AFTER};

pub(super) fn evidence_of(reports: &[LinkReport], link: &str, key: &str) -> Option<String> {
    reports
        .iter()
        .find(|r| r.id == link)?
        .evidence
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.clone())
}

pub(super) fn has_evidence(reports: &[LinkReport], link: &str, key: &str) -> bool {
    reports
        .iter()
        .find(|r| r.id == link)
        .is_some_and(|r| r.evidence.iter().any(|kv| kv.key == key))
}

pub(super) fn is_settling(reports: &[LinkReport], link: &str) -> bool {
    reports.iter().find(|r| r.id == link).is_some_and(|r| {
        r.health == Health::Unknown && r.evidence.iter().any(|kv| kv.key == RETRY_AFTER)
    })
}

pub(super) fn health_of(reports: &[LinkReport], link: &str) -> Health {
    reports
        .iter()
        .find(|r| r.id == link)
        .map_or(Health::Unknown, |r| r.health)
}

/// Broken links after the failing layer were not attempted.
pub(super) fn mark_skipped(
    plugin: &Plugin,
    reports: &[LinkReport],
    ledger: &mut Ledger,
    failing: Option<&str>,
) {
    let mut after = false;
    for link in &plugin.info.links {
        if Some(link.id.as_str()) == failing {
            after = true;
            continue;
        }
        if after && health_of(reports, &link.id) != Health::Healthy {
            ledger
                .action
                .entry(link.id.clone())
                .or_insert(Action::Skipped);
        }
    }
}

pub(super) fn link_entries(
    plugin: &Plugin,
    reports: &[LinkReport],
    ledger: &Ledger,
) -> Vec<LinkEntry> {
    plugin
        .info
        .links
        .iter()
        .map(|spec| {
            let report = reports.iter().find(|r| r.id == spec.id);
            let after = report.map_or(State::Unknown, |r| State::from(r.health));
            LinkEntry {
                id: spec.id.clone(),
                before: ledger
                    .before
                    .get(&spec.id)
                    .copied()
                    .unwrap_or(State::Unknown),
                action: ledger.action.get(&spec.id).copied().unwrap_or(Action::None),
                after,
                summary: report.map_or_else(|| "not probed".into(), |r| r.summary.clone()),
                evidence: evidence_map(
                    report
                        .map(|r| {
                            r.evidence
                                .iter()
                                .map(|Kv { key, value }| (key.clone(), value.clone()))
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default()
                        .into_iter()
                        .chain(
                            ledger
                                .not_needed
                                .get(&spec.id)
                                .map(|w| ("not-needed".to_string(), w.clone())),
                        )
                        .collect::<Vec<_>>(),
                ),
                ms: ledger.ms.get(&spec.id).copied().unwrap_or(0),
            }
        })
        .collect()
}

pub(super) fn unknown_reports(plugin: &Plugin, message: &str) -> Vec<LinkReport> {
    plugin
        .info
        .links
        .iter()
        .map(|l| LinkReport {
            id: l.id.clone(),
            health: Health::Unknown,
            summary: format!("probe could not run: {message}"),
            evidence: vec![],
            repairable: false,
        })
        .collect()
}

pub(super) fn unknown_links(plugin: &Plugin, message: &str) -> Vec<LinkEntry> {
    let reports = unknown_reports(plugin, message);
    let ledger = Ledger {
        before: HashMap::new(),
        action: HashMap::new(),
        ms: HashMap::new(),
        not_needed: HashMap::new(),
    };
    link_entries(plugin, &reports, &ledger)
}
