//! What one plugin call did through its capabilities: the changes it made,
//! the calls the host refused, and facts the engine decides on afterwards.

use super::CallKind;

/// One change made to a sandbox, for the report and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mutation {
    pub capability: &'static str,
    pub action: String,
    pub detail: String,
    pub result: String,
}

/// A capability call the host refused before it reached the backend. Kept
/// per call so `runner conformance` can hold a plugin to the contract even
/// though the host already made the call harmless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The call named a sandbox other than the bound one.
    OtherSandbox {
        capability: &'static str,
        sandbox: String,
    },
    /// The plugin did not declare the capability in `describe`.
    Undeclared { capability: &'static str },
    /// A mutating call outside `repair`.
    MutationOutsideRepair {
        capability: &'static str,
        during: CallKind,
    },
    /// A command run sealed during probe tried to write; the read-only view
    /// refused it (the kernel did, not the host, so it is seen afterwards).
    WriteRefusedInProbe { command: String },
}

impl Denial {
    /// An attempt to change the sandbox outside repair, by any route.
    pub fn is_mutation_attempt(&self) -> bool {
        matches!(
            self,
            Denial::MutationOutsideRepair { .. } | Denial::WriteRefusedInProbe { .. }
        )
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::OtherSandbox {
                capability,
                sandbox,
            } => write!(f, "{capability} call aimed at another sandbox '{sandbox}'"),
            Denial::Undeclared { capability } => {
                write!(f, "{capability} call without declaring '{capability}'")
            }
            Denial::MutationOutsideRepair { capability, during } => {
                write!(f, "mutating {capability} call during {}", during.name())
            }
            Denial::WriteRefusedInProbe { command } => {
                write!(f, "exec during probe tried to write: {command}")
            }
        }
    }
}

/// The per-call record, handed back to the caller when the call ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallRecord {
    pub mutations: Vec<Mutation>,
    /// Calls the grant refused during this call.
    pub denials: Vec<Denial>,
    /// Commands run sealed during this probe (they could read, not write).
    pub sealed_execs: u32,
    /// A launch during this call failed in a way no retry can fix (the
    /// program or the user does not exist in the sandbox): what was missing.
    pub deterministic: Option<String>,
}
