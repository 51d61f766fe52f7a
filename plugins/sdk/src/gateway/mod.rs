//! The `gateway` link shared by agent plugins: find the gateway process,
//! decide whether it serves (identity + listener ownership + HTTP health),
//! retire an old one by identity, and launch a new one.
//!
//! The decision ([`assess`]) is pure and works on an [`Observation`], so
//! every verdict is unit-tested without a sandbox.

mod assess;
mod observe;
mod repair;
mod report;
mod retire;
mod settings;
#[cfg(test)]
mod tests;

use crate::checks::HttpProbe;
use crate::{Listener, ProcessInfo};

pub use crate::launch::{LaunchError, LaunchSpec, Launched, launch, log_tail};
pub use assess::{Owner, assess, gateways, listener_owner};
pub use observe::{observe, uptime};
pub use repair::{Relaunch, RepairPlan, relaunch, repair};
pub use report::{probe, report};
pub use retire::{StopBudget, retire, wait_gone};
pub use settings::{GatewaySettings, GatewayTraits, KEYS as SETTING_KEYS, rows};

/// What the plugin knows about its gateway.
pub struct GatewaySpec<'a> {
    /// Sandbox port the gateway listens on.
    pub port: u16,
    /// Liveness path, e.g. `/health`.
    pub health_path: &'a str,
    /// HTTP codes that prove liveness (200 and 401 for both agents).
    pub ok_codes: &'a [u16],
    /// Readiness path (OpenClaw `/readyz`): a young gateway that is live but
    /// answers 503 there is still starting, not healthy yet. 404 = no such
    /// endpoint, ignored.
    pub ready_path: Option<&'a str>,
    pub health_timeout_ms: u32,
    /// A gateway younger than this without a listener is still starting.
    pub start_grace_secs: u64,
    /// Recognises a gateway process by its command line.
    pub is_gateway: &'a dyn Fn(&ProcessInfo) -> bool,
    /// The gateway's log, and lines in it that prove a gateway inside its
    /// start grace has already given up serving (wedged).
    pub log_file: Option<&'a str>,
    pub wedge_markers: &'a [&'a str],
}

/// Everything the probe saw.
#[derive(Debug, Clone)]
pub struct Observation {
    pub procs: Vec<ProcessInfo>,
    /// Listeners on the gateway port only.
    pub listeners: Vec<Listener>,
    /// Result of the health request, when one was made.
    pub http: Option<HttpProbe>,
    /// Whether the health request timed out (a frozen gateway accepts TCP
    /// connections but never answers).
    pub http_timed_out: bool,
    /// The readiness path answered 503 (still starting).
    pub not_ready: bool,
    /// Time since boot in clock ticks, when readable.
    pub uptime: Option<u64>,
    /// A wedge marker the log wrote since the newest gateway started.
    pub wedge_line: Option<String>,
    /// With no gateway at all: the end of the gateway log when it was
    /// written within the start grace (a gateway that just exited says why).
    pub exit_log: Option<String>,
    /// With no gateway at all: the last launch's "program not found" line
    /// (see [`crate::launch::NOT_FOUND_MARKER`]).
    pub launch_refusal: Option<String>,
}

/// The verdict on the gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Healthy {
        pid: u32,
        start_time: u64,
        code: u16,
    },
    /// No gateway process and nothing on the port.
    NotRunning,
    /// Something that is not the gateway holds the port.
    Foreign { owner: String },
    /// A gateway process without a listener, younger than the grace period.
    Starting { pid: u32, age_secs: u64 },
    /// A gateway process that does not serve: no listener, stopped, health
    /// timing out or answering with a bad code.
    NotServing { pid: u32, why: String },
    /// Cannot be decided.
    Undecided { why: String },
}

impl Verdict {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Verdict::Healthy { .. })
    }
}
