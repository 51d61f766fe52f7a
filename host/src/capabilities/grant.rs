//! What one plugin call may do, fixed before the call starts: the sandbox it
//! is bound to, the capabilities it declared in `describe` plus what the
//! operator's policy adds, and which export runs (only `repair` mutates).
//! Every capability call is checked against it; nothing the plugin does
//! during the call can widen it.

use std::collections::HashSet;

use super::record::Denial;
use super::{Access, CallKind, Capability};

/// The immutable permission of one call.
#[derive(Debug, Clone)]
pub struct Grant {
    plugin: String,
    /// The one sandbox this call may touch; empty during `describe`.
    sandbox: String,
    kind: CallKind,
    /// The link being repaired, for the audit log.
    link: Option<String>,
    capabilities: HashSet<Capability>,
}

/// Capabilities the host grants whatever a plugin declares: logging never
/// reaches the sandbox.
const ALWAYS: [Capability; 1] = [Capability::Log];

impl Grant {
    /// `describe` gets nothing but logging: it must not do I/O.
    pub fn describe(plugin: &str) -> Self {
        Self {
            plugin: plugin.to_string(),
            sandbox: String::new(),
            kind: CallKind::Describe,
            link: None,
            capabilities: HashSet::from(ALWAYS),
        }
    }

    /// A probe or repair of `sandbox` with what the plugin `declared`. A
    /// name that is not a capability (or a pattern like `*`) grants nothing.
    pub fn call(plugin: &str, sandbox: &str, kind: CallKind, declared: &[String]) -> Self {
        let mut capabilities: HashSet<Capability> = declared
            .iter()
            .filter_map(|c| Capability::parse(c))
            .collect();
        capabilities.extend(ALWAYS);
        Self {
            plugin: plugin.to_string(),
            sandbox: sandbox.to_string(),
            kind,
            link: None,
            capabilities,
        }
    }

    /// The same grant, naming the link a repair works on.
    pub fn repairing(mut self, link: Option<&str>) -> Self {
        self.link = link.map(str::to_string);
        self
    }

    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    pub fn sandbox(&self) -> &str {
        &self.sandbox
    }

    pub fn kind(&self) -> CallKind {
        self.kind
    }

    pub fn link(&self) -> Option<&str> {
        self.link.as_deref()
    }

    /// May a call of `cap` on `sandbox` with `access` go ahead? The first
    /// rule it breaks, in this order: the bound sandbox, a declared
    /// capability, mutation only inside `repair`.
    pub fn check(&self, cap: Capability, sandbox: &str, access: Access) -> Result<(), Denial> {
        let capability = cap.name();
        if self.sandbox.is_empty() || sandbox != self.sandbox {
            return Err(Denial::OtherSandbox {
                capability,
                sandbox: sandbox.to_string(),
            });
        }
        if !self.capabilities.contains(&cap) {
            return Err(Denial::Undeclared { capability });
        }
        if access == Access::Mutate && self.kind != CallKind::Repair {
            return Err(Denial::MutationOutsideRepair {
                capability,
                during: self.kind,
            });
        }
        Ok(())
    }

    /// What a plugin author reads when `denial` happened.
    pub fn explain(&self, denial: &Denial) -> String {
        match denial {
            Denial::OtherSandbox { sandbox, .. } => format!(
                "plugin {} is bound to sandbox '{}' and may not reach '{sandbox}'",
                self.plugin, self.sandbox
            ),
            Denial::Undeclared { capability } => format!(
                "plugin {} did not declare the '{capability}' capability in describe",
                self.plugin
            ),
            Denial::MutationOutsideRepair { capability, during } => format!(
                "{capability} may not mutate the sandbox during {}; only repair may",
                during.name()
            ),
            Denial::WriteRefusedInProbe { .. } => denial.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// One row: what was declared, the call kind, and the call tried.
    struct Row {
        scenario: &'static str,
        declared: &'static [&'static str],
        kind: CallKind,
        cap: Capability,
        sandbox: &'static str,
        access: Access,
        expect: Result<(), Denial>,
    }

    const BOUND: &str = "sb-1";

    #[test]
    fn every_call_is_checked_against_the_grant() {
        let rows = [
            Row {
                scenario: "no grant: an undeclared capability is denied",
                declared: &[],
                kind: CallKind::Probe,
                cap: Capability::Exec,
                sandbox: BOUND,
                access: Access::Read,
                expect: Err(Denial::Undeclared { capability: "exec" }),
            },
            Row {
                scenario: "no grant: logging is always allowed",
                declared: &[],
                kind: CallKind::Probe,
                cap: Capability::Log,
                sandbox: BOUND,
                access: Access::Read,
                expect: Ok(()),
            },
            Row {
                scenario: "exact: a declared capability reads during probe",
                declared: &["exec", "files"],
                kind: CallKind::Probe,
                cap: Capability::Files,
                sandbox: BOUND,
                access: Access::Read,
                expect: Ok(()),
            },
            Row {
                scenario: "exact: declaring one capability does not grant another",
                declared: &["exec"],
                kind: CallKind::Repair,
                cap: Capability::Spawn,
                sandbox: BOUND,
                access: Access::Mutate,
                expect: Err(Denial::Undeclared {
                    capability: "spawn",
                }),
            },
            Row {
                scenario: "wildcard: a pattern is not a capability and grants nothing",
                declared: &["*"],
                kind: CallKind::Repair,
                cap: Capability::Exec,
                sandbox: BOUND,
                access: Access::Read,
                expect: Err(Denial::Undeclared { capability: "exec" }),
            },
            Row {
                scenario: "wildcard: a prefix pattern grants nothing either",
                declared: &["file*"],
                kind: CallKind::Probe,
                cap: Capability::Files,
                sandbox: BOUND,
                access: Access::Read,
                expect: Err(Denial::Undeclared {
                    capability: "files",
                }),
            },
            Row {
                scenario: "mutation outside repair is denied even when declared",
                declared: &["files"],
                kind: CallKind::Probe,
                cap: Capability::Files,
                sandbox: BOUND,
                access: Access::Mutate,
                expect: Err(Denial::MutationOutsideRepair {
                    capability: "files",
                    during: CallKind::Probe,
                }),
            },
            Row {
                scenario: "mutation inside repair of a declared capability is allowed",
                declared: &["files"],
                kind: CallKind::Repair,
                cap: Capability::Files,
                sandbox: BOUND,
                access: Access::Mutate,
                expect: Ok(()),
            },
            Row {
                scenario: "another sandbox is denied before anything else",
                declared: &[],
                kind: CallKind::Probe,
                cap: Capability::Exec,
                sandbox: "sb-2",
                access: Access::Mutate,
                expect: Err(Denial::OtherSandbox {
                    capability: "exec",
                    sandbox: "sb-2".into(),
                }),
            },
        ];
        for row in rows {
            let grant = Grant::call("p", BOUND, row.kind, &declared(row.declared));
            assert_eq!(
                grant.check(row.cap, row.sandbox, row.access),
                row.expect,
                "{}",
                row.scenario
            );
        }
    }

    #[test]
    fn describe_is_bound_to_no_sandbox_so_every_sandbox_call_is_denied() {
        let grant = Grant::describe("p");
        for sandbox in ["", "sb-1"] {
            assert!(matches!(
                grant.check(Capability::Log, sandbox, Access::Read),
                Err(Denial::OtherSandbox { .. })
            ));
        }
    }

    #[test]
    fn a_denial_is_explained_with_the_plugin_and_the_bound_sandbox() {
        let grant = Grant::call("openclaw", BOUND, CallKind::Probe, &[]);
        let denial = grant
            .check(Capability::Exec, "elsewhere", Access::Read)
            .unwrap_err();
        assert_eq!(
            grant.explain(&denial),
            "plugin openclaw is bound to sandbox 'sb-1' and may not reach 'elsewhere'"
        );
    }
}
