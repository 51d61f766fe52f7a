//! OpenClaw 2026.9's gateway owner lease (docs/openclaw-lease.md): one row
//! `(scope 'gateway-owner', lease_key 'global')` in `state_leases` of
//! `<state>/state/openclaw.sqlite`, TTL 300 s, renewed every 30 s. A starting
//! gateway reclaims it only from a dead owner on the SAME hostname (or once
//! it expired), so after `docker rm -f` + a recreate with a new hostname the
//! relaunch exits with "Another Gateway owner lease is still active" for up
//! to five minutes.
//!
//! Part of the `locks` link (stale ownership records). The facts are read by
//! a small `node:sqlite` script ([`SCRIPT`]) run in the sandbox as the owner
//! of the database; the decision is [`judge`], pure and unit-tested. A row
//! of another host is released only when every one of these holds:
//! - it has not expired (else OpenClaw drops it itself);
//! - its owner pid + start time is not alive in this sandbox;
//! - no gateway coordinator (`gateway*.lock.sqlite`, held with an exclusive
//!   SQLite lock for a gateway's whole life; the state one lives on the
//!   shared volume, so the kernel shows a live owner in ANY container
//!   sharing it, even a frozen one) is held, and the state coordinator exists;
//! - it was last renewed before this sandbox started (the owner belonged to
//!   an earlier incarnation, not to a neighbour running alongside);
//! - it was last renewed more than [`QUIET_MS`] ago (a live owner renews
//!   every 30 s; this also covers a gateway between writing its lease and
//!   taking its coordinator).
//!
//! The release re-checks the row (every column) and the coordinators inside
//! `BEGIN IMMEDIATE` and deletes exactly that row.

mod judge;
mod parse;
mod script;
#[cfg(test)]
mod tests;

pub use judge::judge;
pub use parse::parse_facts;
pub use script::{Observed, observe, release};

/// Observes (read-only) or releases the lease inside the sandbox.
pub const SCRIPT: &str = include_str!("lease.js");

/// OpenClaw's renewal period for the gateway owner lease.
pub const HEARTBEAT_MS: i64 = 30_000;
/// A lease renewed more recently than this may have a live owner.
pub const QUIET_MS: i64 = HEARTBEAT_MS + 15_000;
/// Deadline of one script run (the host kills its process group after it).
pub(super) const EXEC_TIMEOUT_MS: u32 = 15_000;
pub(super) const MAX_OUTPUT: u32 = 64 * 1024;

/// The process that owns a lease, from its `payload_json.owner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOwner {
    pub pid: u32,
    pub host: String,
    /// `/proc/<pid>/stat` field 22 (null when the writer could not read it).
    pub started_at: Option<u64>,
}

/// The gateway owner lease row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The lease owner id (the gateway's `ownerId`, also in its JSON locks).
    pub owner: String,
    pub expires_at: Option<i64>,
    pub heartbeat_at: Option<i64>,
    pub updated_at: i64,
    pub process: Option<LeaseOwner>,
    /// The row as the script printed it, handed back to the release.
    pub raw: String,
}

impl LeaseRow {
    /// The last renewal (heartbeat, else last update), epoch ms.
    pub fn last_renewed(&self) -> i64 {
        self.heartbeat_at.unwrap_or(self.updated_at)
    }
}

/// A gateway coordinator file and whether a process holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    pub path: String,
    pub held: bool,
}

/// What the script saw, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub hostname: String,
    pub now_ms: i64,
    /// `/proc/uptime` in clock ticks at `now_ms`.
    pub uptime_ticks: Option<u64>,
    pub row: Option<LeaseRow>,
    pub coordinators: Vec<Coordinator>,
}

/// The verdict on the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing here blocks a start: no lease, expired, or OpenClaw reclaims
    /// it itself.
    Clear { why: String },
    /// Its owner is alive in this sandbox: in use, never touched.
    InUse { why: String },
    /// A live owner elsewhere holds it: never touched; a start here would fail.
    Live { why: String },
    /// Not provably dead (yet): ask again in `retry_after_s`.
    Wait { why: String, retry_after_s: i64 },
    /// Not provably dead and no expiry to wait for: never touched.
    Held { why: String },
    /// The owner is provably dead: release exactly this row.
    Stale { why: String },
}

impl Verdict {
    pub fn why(&self) -> &str {
        match self {
            Verdict::Clear { why }
            | Verdict::InUse { why }
            | Verdict::Live { why }
            | Verdict::Wait { why, .. }
            | Verdict::Held { why }
            | Verdict::Stale { why } => why,
        }
    }

    /// `clear`, `live`, ... for evidence.
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Clear { .. } => "clear",
            Verdict::InUse { .. } => "in-use",
            Verdict::Live { .. } => "live",
            Verdict::Wait { .. } => "wait",
            Verdict::Held { .. } => "held",
            Verdict::Stale { .. } => "stale",
        }
    }
}
