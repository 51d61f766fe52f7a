//! Discovery and events: which sandboxes an engine has, what state each is
//! in, and what happens to them. `runner watch` is written against
//! [`Discovery`] only, so its decisions can be driven by an engine in
//! memory as well as by Docker.

use std::collections::HashMap;
use std::time::SystemTime;

use futures_util::stream::BoxStream;

use super::{BackendError, SandboxInfo};

/// A sandbox as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSandbox {
    pub name: String,
    pub labels: HashMap<String, String>,
}

/// [`SandboxInfo`] plus what a supervisor needs to check the sandbox
/// between passes.
#[derive(Debug, Clone)]
pub struct SandboxDetail {
    pub info: SandboxInfo,
    pub image: Option<String>,
    /// The sandbox's init as a host pid, while it runs (0 and unknown are
    /// `None`).
    pub init_pid: Option<u32>,
}

/// What happened to a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAction {
    Start,
    Die,
    /// A signal was sent (it may or may not stop the sandbox).
    Kill,
    /// A stop was requested.
    Stop,
    Destroy,
    Oom,
    /// The engine restarted it (after the `die` and `start` it also reports).
    Restart,
    /// A health check changed its verdict.
    Health {
        healthy: bool,
    },
    Other(String),
}

impl EventAction {
    /// The name an operator knows it by, for logs.
    pub fn as_str(&self) -> &str {
        match self {
            EventAction::Start => "start",
            EventAction::Die => "die",
            EventAction::Kill => "kill",
            EventAction::Stop => "stop",
            EventAction::Destroy => "destroy",
            EventAction::Oom => "oom",
            EventAction::Restart => "restart",
            EventAction::Health { healthy: true } => "health_status: healthy",
            EventAction::Health { healthy: false } => "health_status: unhealthy",
            EventAction::Other(a) => a,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEvent {
    /// When the engine says it happened; events are ordered and replayed by
    /// this time. `None` when the engine did not say.
    pub at: Option<SystemTime>,
    pub sandbox: String,
    pub action: EventAction,
    /// The sandbox's labels together with what the engine attaches to the
    /// event (Docker: `name`, `image`, `exitCode`, `signal`).
    pub attributes: HashMap<String, String>,
}

/// A subscription: it ends (`None`) or fails when the connection to the
/// engine does; the subscriber subscribes again from the last time it saw.
pub type EventStream = BoxStream<'static, Result<EngineEvent, BackendError>>;

/// Listing, inspecting and following the sandboxes of one engine. Every
/// call is bounded like [`super::Backend`]'s.
#[async_trait::async_trait]
pub trait Discovery: Send + Sync {
    /// Every sandbox in any state; with `label`, only those carrying that
    /// label key.
    async fn list(&self, label: Option<&str>) -> Result<Vec<ListedSandbox>, BackendError>;
    /// `SandboxMissing` when it does not exist.
    async fn inspect_detail(&self, sandbox: &str) -> Result<SandboxDetail, BackendError>;
    /// Lifecycle events of all sandboxes from `since` on (inclusive: a
    /// subscriber that resubscribes from its last event sees it again).
    fn events_since(&self, since: SystemTime) -> EventStream;
    /// Answers once the engine does (before a resubscription).
    async fn ping(&self) -> Result<(), BackendError>;
}
