//! The WIT imports, one module per interface, each bound to the single
//! sandbox the instance was created for.
//!
//! Like wasmtime's own WASI interfaces, every interface has a marker type
//! (its [`wasmtime::component::HasData`]) and a view over the call's
//! [`CapContext`]; the runtime links a view per interface from any store
//! that is a [`CapsView`], so nothing here names the runtime's store type.
//! Views take and return host-owned types; the runtime's WIT adapter
//! converts to and from each contract version's bindings.
//!
//! Every call passes through the call's [`Grant`]: the sandbox argument must
//! be the bound target, the capability must be declared by the plugin, and
//! mutating calls are allowed only inside `repair` (so `status` can never
//! mutate, whatever the plugin does). Mutations are recorded for the report
//! and written to the audit log.

mod context;
pub mod exec;
pub mod files;
pub mod forward;
mod grant;
pub mod http;
pub mod log;
pub mod processes;
mod record;
pub mod spawn;

use std::time::Duration;

use crate::backend::BackendError;
use crate::model::{CapError, ExecError};

pub use self::context::{CapContext, CapsView, PENDING, Services};
pub use self::grant::Grant;
pub use self::record::{CallRecord, Denial, Mutation};

/// An interface's marker and its view over the call's [`CapContext`].
macro_rules! interface_view {
    ($(#[$doc:meta])* $marker:ident, $view:ident) => {
        $(#[$doc])*
        pub struct $marker;

        impl wasmtime::component::HasData for $marker {
            type Data<'a> = $view<'a>;
        }

        /// The interface's access to the call's [`CapContext`](crate::capabilities::CapContext).
        pub struct $view<'a> {
            cx: &'a mut crate::capabilities::CapContext,
        }

        impl<'a> $view<'a> {
            pub fn new(cx: &'a mut crate::capabilities::CapContext) -> Self {
                Self { cx }
            }
        }
    };
}
pub(crate) use interface_view;

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

/// Map a backend failure onto the common capability error.
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

/// Map a backend failure onto the command error, which keeps "no such
/// binary/user" apart: no retry fixes those.
pub(crate) fn exec_error(e: BackendError) -> ExecError {
    match e {
        BackendError::Denied(m) => ExecError::Denied(m),
        BackendError::Timeout(m) => ExecError::Timeout(m),
        BackendError::Failed(m) => ExecError::Failed(m),
        BackendError::NoSuchBinary(m) => ExecError::NoSuchBinary(m),
        BackendError::NoSuchUser(m) => ExecError::NoSuchUser(m),
        other => ExecError::Unavailable(other.to_string()),
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
