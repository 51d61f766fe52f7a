//! The context every capability of one call works in: the immutable
//! [`Grant`], the [`CallRecord`] it fills, and the host services it reaches
//! the sandbox through. The runtime's store owns one; each interface sees
//! it through its own view, so no capability names the store's type.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audit::{AuditLog, AuditRecord};
use crate::backend::Backend;
use crate::forward::ForwardRegistry;

use super::grant::Grant;
use super::record::{CallRecord, Denial, Mutation};
use super::{Access, CapLimits, Capability};

/// The audit result of a change announced before it is made.
pub const PENDING: &str = "pending";

/// What the host lends a call to reach the sandbox with.
#[derive(Clone, Default)]
pub struct Services {
    pub backend: Option<Arc<dyn Backend>>,
    /// Without a registry the `forward` capability answers `unavailable`.
    pub forwards: Option<Arc<ForwardRegistry>>,
    /// Where mutations are audited; `None` audits nothing (status, tests).
    pub audit: Option<Arc<AuditLog>>,
}

/// Everything the capabilities of one call need.
pub struct CapContext {
    grant: Grant,
    services: Services,
    pub(crate) limits: CapLimits,
    /// When the plugin call ends. Host calls are bounded by it: epochs only
    /// count wasm time, and a command still running in the sandbox when the
    /// call is cut off would outlive it.
    deadline: Option<Instant>,
    record: CallRecord,
}

/// A store that holds a [`CapContext`]; the runtime's store implements it,
/// and every interface's view is made from it.
pub trait CapsView: Send {
    fn caps(&mut self) -> &mut CapContext;
}

impl CapContext {
    pub fn new(grant: Grant, services: Services) -> Self {
        Self {
            grant,
            services,
            limits: CapLimits::default(),
            deadline: None,
            record: CallRecord::default(),
        }
    }

    /// `describe` gets nothing but logging: it must not do I/O.
    pub fn for_describe(plugin: &str) -> Self {
        Self::new(Grant::describe(plugin), Services::default())
    }

    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// Bound the call's host work by the moment the plugin call ends.
    pub fn set_deadline(&mut self, end: Instant) {
        self.deadline = Some(end);
    }

    /// The record of what the call did, when it is over.
    pub fn into_record(self) -> CallRecord {
        self.record
    }

    pub(crate) fn forwards(&self) -> Option<Arc<ForwardRegistry>> {
        self.services.forwards.clone()
    }

    /// `wanted`, shortened so the call's work ends before the call does
    /// (a little earlier, so the backend's own kill-on-timeout wins).
    pub(crate) fn within_call(&self, wanted: Duration) -> Duration {
        const MARGIN: Duration = Duration::from_millis(100);
        match self.deadline {
            Some(end) => wanted.min(
                end.saturating_duration_since(Instant::now())
                    .saturating_sub(MARGIN),
            ),
            None => wanted,
        }
    }

    /// May this call go ahead? Returns the backend to use. A refusal is
    /// remembered in the record and logged.
    pub(crate) fn admit(
        &mut self,
        cap: Capability,
        sandbox: &str,
        access: Access,
    ) -> Result<Arc<dyn Backend>, String> {
        if let Err(denial) = self.grant.check(cap, sandbox, access) {
            let message = self.grant.explain(&denial);
            tracing::warn!(plugin = %self.grant.plugin(), sandbox = %self.grant.sandbox(), "capability denied: {message}");
            self.record.denials.push(denial);
            return Err(message);
        }
        self.services
            .backend
            .clone()
            .ok_or_else(|| format!("no backend is bound during {}", self.grant.kind().name()))
    }

    /// A sealed command ran during this probe.
    pub(crate) fn count_sealed_exec(&mut self) {
        self.record.sealed_execs += 1;
    }

    /// A launch failed in a way no retry can fix.
    pub(crate) fn note_deterministic(&mut self, what: String) {
        self.record.deterministic = Some(what);
    }

    /// A sealed command reported a refused write: the probe tried to
    /// change the sandbox. Remembered like a refused call, never audited
    /// (nothing changed).
    pub(crate) fn refuse_sealed_write(&mut self, command: &str) {
        tracing::warn!(plugin = %self.grant.plugin(), sandbox = %self.grant.sandbox(), "probe exec tried to write and the read-only view refused it: {command}");
        self.record.denials.push(Denial::WriteRefusedInProbe {
            command: command.to_string(),
        });
    }

    /// Audits a change about to be made, before the backend call: a runner
    /// killed during the call (kill -9, OOM) still leaves a trace of what
    /// it may have changed. The line's result is [`PENDING`]; the line with
    /// the outcome follows unless runner died in between.
    pub(crate) fn begin(&self, cap: Capability, action: &str, detail: &str) {
        self.audit_line(cap, action, detail, PENDING);
    }

    /// Remember a mutation and append it to the audit log.
    pub(crate) fn record(
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
    pub(crate) fn finish(
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
            plugin = %self.grant.plugin(),
            sandbox = %self.grant.sandbox(),
            link = self.grant.link().unwrap_or("-"),
            capability = mutation.capability,
            action = %mutation.action,
            result = %mutation.result,
            changed,
            "mutation: {}",
            mutation.detail
        );
        self.audit_line(cap, &mutation.action, &mutation.detail, &mutation.result);
        if changed {
            self.record.mutations.push(mutation);
        }
    }

    fn audit_line(&self, cap: Capability, action: &str, detail: &str, result: &str) {
        if let Some(audit) = &self.services.audit {
            audit.append(&AuditRecord {
                sandbox: self.grant.sandbox(),
                plugin: self.grant.plugin(),
                link: self.grant.link().unwrap_or("-"),
                action: &format!("{}.{action}", cap.name()),
                detail,
                result,
            });
        }
    }
}
