//! The host's own model of what a plugin declares and answers. Recovery,
//! watch, conformance, settings and the CLI speak these types; only the
//! runtime's WIT adapters know the generated bindings and convert at that
//! edge, so a new contract version changes an adapter, not the engine.
//!
//! Field names match the WIT records, so a reader of `wit/` finds them here.

/// A `key = value` pair: settings, evidence, headers, environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Kv {
    pub key: String,
    pub value: String,
}

impl Kv {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// What a probe says about one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    Healthy,
    Broken,
    Unknown,
}

/// A process in a sandbox, named by pid and start time so a recycled pid
/// is never mistaken for it. One type from the backend up.
pub use crate::backend::ProcessId;

/// The sandbox a call is about, with the resolved settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub sandbox: String,
    pub backend: String,
    pub settings: Vec<Kv>,
}

/// One link of the chain a plugin declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    pub id: String,
    pub summary: String,
    pub depends_on: Vec<String>,
}

/// One setting a plugin declares, with its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingSpec {
    pub key: String,
    pub default: String,
    pub description: String,
}

/// What `describe` answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub agent_kinds: Vec<String>,
    pub links: Vec<LinkSpec>,
    pub settings: Vec<SettingSpec>,
    pub capabilities: Vec<String>,
}

/// What a probe says about one link, with the evidence it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReport {
    pub id: String,
    pub health: Health,
    pub summary: String,
    pub evidence: Vec<Kv>,
    pub repairable: bool,
}

/// What `repair` of one link answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairOutcome {
    Repaired(String),
    Refused(String),
    Failed(String),
    NotNeeded(String),
}

/// Why a capability call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    #[error("denied: {0}")]
    Denied(String),
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("failed: {0}")]
    Failed(String),
}

/// Why a command could not be run or launched; the last two say the
/// failure is deterministic (no retry can fix it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("denied: {0}")]
    Denied(String),
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("failed: {0}")]
    Failed(String),
    #[error("no such binary: {0}")]
    NoSuchBinary(String),
    #[error("no such user: {0}")]
    NoSuchUser(String),
}
