//! The WIT imports, one module per capability, each bound to the single
//! sandbox the instance was created for.
//!
//! Every call passes through [`CapContext::admit`]: the sandbox argument must
//! be the bound target, the capability must be declared by the plugin, and
//! mutating calls are allowed only inside `repair` (so `status` can never
//! mutate, whatever the plugin does). Mutations are recorded for the report
//! and written to the audit log.

mod exec;
mod files;
mod forward;
mod http;
mod log;
mod processes;
mod spawn;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditLog, AuditRecord};
use crate::backend::{Backend, BackendError};
use crate::forward::ForwardRegistry;
use crate::runtime::bindings::CapError;

/// The capabilities a plugin can declare in `describe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    Exec,
    Spawn,
    Files,
    Processes,
    Http,
    Forward,
    Log,
}

impl Capability {
    pub const ALL: [Capability; 7] = [
        Capability::Exec,
        Capability::Spawn,
        Capability::Files,
        Capability::Processes,
        Capability::Http,
        Capability::Forward,
        Capability::Log,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Capability::Exec => "exec",
            Capability::Spawn => "spawn",
            Capability::Files => "files",
            Capability::Processes => "processes",
            Capability::Http => "http",
            Capability::Forward => "forward",
            Capability::Log => "log",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Which export is running; decides what may mutate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Describe,
    Probe,
    Repair,
}

impl CallKind {
    pub fn name(self) -> &'static str {
        match self {
            CallKind::Describe => "describe",
            CallKind::Probe => "probe",
            CallKind::Repair => "repair",
        }
    }
}

/// Whether a capability call changes the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Mutate,
}

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

/// Host-side limits on capability calls.
#[derive(Debug, Clone, Copy)]
pub struct CapLimits {
    pub exec_default_timeout: Duration,
    pub exec_max_timeout: Duration,
    pub output_default: usize,
    pub output_max: usize,
    pub read_default: usize,
    pub read_max: usize,
    pub http_default_timeout: Duration,
    pub http_max_timeout: Duration,
    pub list_default: usize,
}

impl Default for CapLimits {
    fn default() -> Self {
        Self {
            exec_default_timeout: Duration::from_secs(10),
            exec_max_timeout: Duration::from_secs(120),
            output_default: 64 << 10,
            output_max: 1 << 20,
            read_default: 64 << 10,
            read_max: 4 << 20,
            http_default_timeout: Duration::from_secs(5),
            http_max_timeout: Duration::from_secs(60),
            list_default: 1024,
        }
    }
}

/// Everything the capabilities of one call need.
pub struct CapContext {
    pub backend: Option<Arc<dyn Backend>>,
    /// The one sandbox this instance may touch.
    pub sandbox: String,
    pub plugin: String,
    pub granted: HashSet<Capability>,
    pub kind: CallKind,
    /// The link being repaired, for the audit log.
    pub link: Option<String>,
    pub limits: CapLimits,
    pub forwards: Option<Arc<ForwardRegistry>>,
    pub audit: Option<Arc<AuditLog>>,
    pub mutations: Vec<Mutation>,
    /// Calls refused by [`CapContext::admit`] during this call.
    pub denials: Vec<Denial>,
    /// Commands run sealed during this probe (they could read, not write).
    pub sealed_execs: u32,
    /// A launch during this call failed in a way no retry can fix (the
    /// program or the user does not exist in the sandbox): what was missing.
    pub deterministic: Option<String>,
    /// When the plugin call ends (set by the runtime). Host calls are
    /// bounded by it: epochs only count wasm time, and a command still
    /// running in the sandbox when the call is cut off would outlive it.
    pub call_deadline: Option<std::time::Instant>,
}

impl CapContext {
    /// `wanted`, shortened so the call's work ends before the call does
    /// (a little earlier, so the backend's own kill-on-timeout wins).
    pub fn within_call(&self, wanted: Duration) -> Duration {
        const MARGIN: Duration = Duration::from_millis(100);
        match self.call_deadline {
            Some(end) => wanted.min(
                end.saturating_duration_since(std::time::Instant::now())
                    .saturating_sub(MARGIN),
            ),
            None => wanted,
        }
    }
}

impl CapContext {
    /// `describe` gets nothing but logging: it must not do I/O.
    pub fn for_describe(plugin: &str) -> Self {
        Self {
            backend: None,
            sandbox: String::new(),
            plugin: plugin.to_string(),
            granted: HashSet::from([Capability::Log]),
            kind: CallKind::Describe,
            link: None,
            limits: CapLimits::default(),
            forwards: None,
            audit: None,
            mutations: Vec::new(),
            denials: Vec::new(),
            sealed_execs: 0,
            deterministic: None,
            call_deadline: None,
        }
    }

    /// Capabilities for a probe or repair of `sandbox`. Without a forward
    /// registry the `forward` capability answers `unavailable`.
    #[allow(clippy::too_many_arguments)]
    pub fn for_call(
        backend: Arc<dyn Backend>,
        sandbox: &str,
        plugin: &str,
        declared: &[String],
        kind: CallKind,
        link: Option<&str>,
        forwards: Option<Arc<ForwardRegistry>>,
        audit: Option<Arc<AuditLog>>,
    ) -> Self {
        let mut granted: HashSet<Capability> = declared
            .iter()
            .filter_map(|c| Capability::parse(c))
            .collect();
        granted.insert(Capability::Log);
        Self {
            backend: Some(backend),
            sandbox: sandbox.to_string(),
            plugin: plugin.to_string(),
            granted,
            kind,
            link: link.map(str::to_string),
            limits: CapLimits::default(),
            forwards,
            audit,
            mutations: Vec::new(),
            denials: Vec::new(),
            sealed_execs: 0,
            deterministic: None,
            call_deadline: None,
        }
    }

    /// May this call go ahead? Returns the backend to use. A refusal is
    /// remembered in [`CapContext::denials`] and logged.
    pub fn admit(
        &mut self,
        cap: Capability,
        sandbox: &str,
        access: Access,
    ) -> Result<Arc<dyn Backend>, String> {
        let capability = cap.name();
        let denial = if sandbox != self.sandbox || self.sandbox.is_empty() {
            Some(Denial::OtherSandbox {
                capability,
                sandbox: sandbox.to_string(),
            })
        } else if !self.granted.contains(&cap) {
            Some(Denial::Undeclared { capability })
        } else if access == Access::Mutate && self.kind != CallKind::Repair {
            Some(Denial::MutationOutsideRepair {
                capability,
                during: self.kind,
            })
        } else {
            None
        };
        if let Some(denial) = denial {
            let message = match &denial {
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
            };
            tracing::warn!(plugin = %self.plugin, sandbox = %self.sandbox, "capability denied: {message}");
            self.denials.push(denial);
            return Err(message);
        }
        self.backend
            .clone()
            .ok_or_else(|| format!("no backend is bound during {}", self.kind.name()))
    }

    /// A sealed command reported a refused write: the probe tried to
    /// change the sandbox. Remembered like a refused call, never audited
    /// (nothing changed).
    pub fn refuse_sealed_write(&mut self, command: &str) {
        tracing::warn!(plugin = %self.plugin, sandbox = %self.sandbox, "probe exec tried to write and the read-only view refused it: {command}");
        self.denials.push(Denial::WriteRefusedInProbe {
            command: command.to_string(),
        });
    }

    /// Audits a change about to be made, before the backend call: a runner
    /// killed during the call (kill -9, OOM) still leaves a trace of what
    /// it may have changed. The line's result is [`PENDING`]; the line with
    /// the outcome follows unless runner died in between.
    pub fn begin(&self, cap: Capability, action: &str, detail: &str) {
        self.audit_line(cap, action, detail, PENDING);
    }

    /// Remember a mutation and append it to the audit log.
    pub fn record(
        &mut self,
        cap: Capability,
        action: impl Into<String>,
        detail: impl Into<String>,
        result: impl Into<String>,
    ) {
        self.finish(cap, action, detail, result, true);
    }

    /// The outcome of a call announced with [`CapContext::begin`]: always
    /// audited (so every `pending` line has its outcome), kept for the
    /// report as a mutation only when it `changed` the sandbox.
    pub fn finish(
        &mut self,
        cap: Capability,
        action: impl Into<String>,
        detail: impl Into<String>,
        result: impl Into<String>,
        changed: bool,
    ) {
        let mutation = Mutation {
            capability: cap.name(),
            action: action.into(),
            detail: detail.into(),
            result: result.into(),
        };
        tracing::info!(
            plugin = %self.plugin,
            sandbox = %self.sandbox,
            link = self.link.as_deref().unwrap_or("-"),
            capability = mutation.capability,
            action = %mutation.action,
            result = %mutation.result,
            changed,
            "mutation: {}",
            mutation.detail
        );
        self.audit_line(cap, &mutation.action, &mutation.detail, &mutation.result);
        if changed {
            self.mutations.push(mutation);
        }
    }

    fn audit_line(&self, cap: Capability, action: &str, detail: &str, result: &str) {
        if let Some(audit) = &self.audit {
            audit.append(&AuditRecord {
                sandbox: &self.sandbox,
                plugin: &self.plugin,
                link: self.link.as_deref().unwrap_or("-"),
                action: &format!("{}.{action}", cap.name()),
                detail,
                result,
            });
        }
    }
}

/// The audit result of a change announced before it is made.
pub const PENDING: &str = "pending";

// The shared types interface has no functions, only the trait to satisfy.
impl crate::runtime::bindings::runner::plugin::types::Host for crate::runtime::state::PluginState {}

/// Map a backend failure onto the common WIT error.
pub(crate) fn cap_error(e: BackendError) -> CapError {
    match e {
        BackendError::Denied(m) => CapError::Denied(m),
        BackendError::Timeout(m) => CapError::Timeout(m),
        BackendError::Failed(m) => CapError::Failed(m),
        other @ (BackendError::Unavailable(_)
        | BackendError::SandboxMissing(_)
        | BackendError::NotRunning { .. }
        | BackendError::EngineUnreachable { .. }) => CapError::Unavailable(other.to_string()),
        other @ (BackendError::NoSuchBinary(_) | BackendError::NoSuchUser(_)) => {
            CapError::Failed(other.to_string())
        }
    }
}

/// Clamp a plugin-requested duration: 0 means the default, and nothing
/// exceeds the host maximum.
pub(crate) fn clamp_ms(requested_ms: u32, default: Duration, max: Duration) -> Duration {
    if requested_ms == 0 {
        default
    } else {
        Duration::from_millis(requested_ms.into()).min(max)
    }
}

/// Clamp a plugin-requested byte count the same way.
pub(crate) fn clamp_bytes(requested: u32, default: usize, max: usize) -> usize {
    if requested == 0 {
        default
    } else {
        (requested as usize).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_default_and_requests_are_capped() {
        let d = Duration::from_secs(10);
        let m = Duration::from_secs(120);
        assert_eq!(clamp_ms(0, d, m), d);
        assert_eq!(clamp_ms(500, d, m), Duration::from_millis(500));
        assert_eq!(clamp_ms(u32::MAX, d, m), m);
        assert_eq!(clamp_bytes(0, 64, 1024), 64);
        assert_eq!(clamp_bytes(5000, 64, 1024), 1024);
    }

    #[test]
    fn capability_names_round_trip() {
        for cap in Capability::ALL {
            assert_eq!(Capability::parse(cap.name()), Some(cap));
        }
        assert_eq!(Capability::parse("network"), None);
    }
}
