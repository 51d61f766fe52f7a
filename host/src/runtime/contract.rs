//! Checks on what a plugin returns. A plugin that breaks the contract is a
//! plugin fault (exit 4), never silently accepted.

use std::collections::{HashMap, HashSet};

use crate::capabilities::Capability;
use crate::model::{LinkReport, PluginInfo};

/// The host's own first link; plugins may depend on it but not declare it.
pub const SANDBOX_LINK: &str = "sandbox";

/// Validate `describe`'s answer.
pub fn check_info(info: &PluginInfo) -> Result<(), String> {
    let valid_name = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !valid_name(&info.name) {
        return Err(format!("plugin name '{}' must match [a-z0-9-]+", info.name));
    }
    if info.links.is_empty() {
        return Err("describe declares no links".into());
    }
    let mut ids = HashSet::new();
    for link in &info.links {
        if !valid_name(&link.id) {
            return Err(format!("link id '{}' must match [a-z0-9-]+", link.id));
        }
        if link.id == SANDBOX_LINK {
            return Err("link id 'sandbox' is reserved for the host".into());
        }
        if !ids.insert(link.id.as_str()) {
            return Err(format!("link '{}' is declared twice", link.id));
        }
    }
    // Dependencies must point backwards (declared earlier) so the declared
    // order is a valid repair order and cycles are impossible.
    let mut seen: HashSet<&str> = HashSet::from([SANDBOX_LINK]);
    for link in &info.links {
        for dep in &link.depends_on {
            if !seen.contains(dep.as_str()) {
                return Err(format!(
                    "link '{}' depends on '{dep}', which is not declared before it",
                    link.id
                ));
            }
        }
        seen.insert(&link.id);
    }
    let mut keys = HashSet::new();
    for s in &info.settings {
        if s.key.is_empty() || !keys.insert(s.key.as_str()) {
            return Err(format!("setting '{}' is empty or declared twice", s.key));
        }
    }
    for cap in &info.capabilities {
        if Capability::parse(cap).is_none() {
            return Err(format!(
                "unknown capability '{cap}' (known: {})",
                Capability::ALL
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

/// Validate `probe`'s answer: exactly one report per declared link.
pub fn check_reports(info: &PluginInfo, reports: &[LinkReport]) -> Result<(), String> {
    let declared: HashSet<&str> = info.links.iter().map(|l| l.id.as_str()).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in reports {
        if !declared.contains(r.id.as_str()) {
            return Err(format!(
                "probe reported link '{}', which describe never declared",
                r.id
            ));
        }
        *counts.entry(r.id.as_str()).or_default() += 1;
    }
    for link in &info.links {
        match counts.get(link.id.as_str()) {
            None => return Err(format!("probe did not report link '{}'", link.id)),
            Some(n) if *n > 1 => {
                return Err(format!("probe reported link '{}' {n} times", link.id));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Health, LinkSpec};

    fn info(links: &[(&str, &[&str])]) -> PluginInfo {
        PluginInfo {
            name: "demo".into(),
            version: "1.0.0".into(),
            agent_kinds: vec![],
            links: links
                .iter()
                .map(|(id, deps)| LinkSpec {
                    id: id.to_string(),
                    summary: String::new(),
                    depends_on: deps.iter().map(|d| d.to_string()).collect(),
                })
                .collect(),
            settings: vec![],
            capabilities: vec!["exec".into()],
        }
    }

    fn report(id: &str) -> LinkReport {
        LinkReport {
            id: id.into(),
            health: Health::Healthy,
            summary: String::new(),
            evidence: vec![],
            repairable: false,
        }
    }

    #[test]
    fn dependencies_must_point_to_earlier_links() {
        assert!(check_info(&info(&[("a", &["sandbox"]), ("b", &["a"])])).is_ok());
        let err = check_info(&info(&[("a", &["b"]), ("b", &[])])).unwrap_err();
        assert!(err.contains("not declared before"), "{err}");
    }

    #[test]
    fn reserved_duplicate_and_malformed_ids_are_refused() {
        assert!(check_info(&info(&[("sandbox", &[])])).is_err());
        assert!(check_info(&info(&[("a", &[]), ("a", &[])])).is_err());
        assert!(check_info(&info(&[("Gate Way", &[])])).is_err());
        assert!(check_info(&info(&[])).is_err());
    }

    #[test]
    fn unknown_capability_is_refused() {
        let mut i = info(&[("a", &[])]);
        i.capabilities.push("teleport".into());
        assert!(check_info(&i).unwrap_err().contains("teleport"));
    }

    #[test]
    fn probe_must_report_each_declared_link_once() {
        let i = info(&[("a", &[]), ("b", &["a"])]);
        assert!(check_reports(&i, &[report("a"), report("b")]).is_ok());
        assert!(
            check_reports(&i, &[report("a")])
                .unwrap_err()
                .contains("did not report link 'b'")
        );
        assert!(check_reports(&i, &[report("a"), report("b"), report("b")]).is_err());
        assert!(
            check_reports(&i, &[report("a"), report("b"), report("gamma")])
                .unwrap_err()
                .contains("never declared")
        );
    }
}
