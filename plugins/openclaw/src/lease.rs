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

use runner_plugin_sdk::json5::{self, Node, Value};
use runner_plugin_sdk::{FileKind, ProcessInfo, RepairOutcome, Sandbox, log, process};

use crate::config::{Config, join};

/// Observes (read-only) or releases the lease inside the sandbox.
pub const SCRIPT: &str = include_str!("lease.js");

/// OpenClaw's renewal period for the gateway owner lease.
pub const HEARTBEAT_MS: i64 = 30_000;
/// A lease renewed more recently than this may have a live owner.
pub const QUIET_MS: i64 = HEARTBEAT_MS + 15_000;
/// Deadline of one script run (the host kills its process group after it).
const EXEC_TIMEOUT_MS: u32 = 15_000;
const MAX_OUTPUT: u32 = 64 * 1024;

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

fn secs(ms: i64) -> i64 {
    // Rounded up: "in 0 s" would invite a busy re-probe.
    (ms.max(0) + 999) / 1000
}

/// Is `path` the 2026.9 state coordinator (`<state>/tmp/openclaw-<uid>/gateway.state.lock.sqlite`)?
fn is_state_coordinator(path: &str, state_tmp: &str) -> bool {
    path.strip_prefix(state_tmp)
        .and_then(|rest| rest.strip_prefix("/openclaw-"))
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(uid, file)| {
            !uid.is_empty()
                && uid.bytes().all(|b| b.is_ascii_digit())
                && file == "gateway.state.lock.sqlite"
        })
}

/// Decide about the lease. `procs` are this sandbox's processes (pid 1 is
/// its init); `state_tmp` is `<state-dir>/tmp`. Call only when no gateway
/// runs in this sandbox (a running one owns the lease).
pub fn judge(facts: &Facts, procs: &[ProcessInfo], state_tmp: &str) -> Verdict {
    let Some(row) = &facts.row else {
        return Verdict::Clear {
            why: "no gateway owner lease".into(),
        };
    };
    let now = facts.now_ms;
    if let Some(exp) = row.expires_at
        && exp <= now
    {
        return Verdict::Clear {
            why: format!(
                "lease of owner {} expired {} s ago; OpenClaw drops it itself at start",
                row.owner,
                (now - exp) / 1000
            ),
        };
    }
    // Not provably dead: wait for the expiry when there is one.
    let until_expiry = |why: String| match row.expires_at {
        Some(exp) => Verdict::Wait {
            why: format!("{why}; it expires in {} s", secs(exp - now)),
            retry_after_s: secs(exp - now),
        },
        None => Verdict::Held {
            why: format!("{why}; it records no expiry"),
        },
    };
    let Some(owner) = &row.process else {
        return until_expiry(format!(
            "lease of owner {} names no process owner, so it cannot be proven dead",
            row.owner
        ));
    };
    let who = format!(
        "owner pid {} (start time {}) on host {}",
        owner.pid,
        owner
            .started_at
            .map_or_else(|| "not recorded".to_string(), |t| t.to_string()),
        owner.host
    );

    if owner.host == facts.hostname {
        // OpenClaw's own rule (readStateLeaseProcessOwnerStatus).
        return match (process::by_pid(procs, owner.pid), owner.started_at) {
            (None, _) => Verdict::Clear {
                why: format!(
                    "{who}, this host, is gone; OpenClaw reclaims its lease itself at start"
                ),
            },
            (Some(p), Some(t)) if p.id.start_time == t => Verdict::InUse {
                why: format!("{who} is alive in this sandbox ({})", process::display(p)),
            },
            (Some(p), Some(_)) => Verdict::Clear {
                why: format!(
                    "{who}, this host, was reused (now start time {}); OpenClaw reclaims its lease itself at start",
                    p.id.start_time
                ),
            },
            (Some(p), None) => until_expiry(format!(
                "{who}: pid alive ({}) and no start time recorded, so neither OpenClaw nor runner can prove it dead",
                process::display(p)
            )),
        };
    }

    // Another host: a previous container on this volume, or a neighbour.
    if let (Some(t), Some(p)) = (owner.started_at, process::by_pid(procs, owner.pid))
        && p.id.start_time == t
    {
        return Verdict::InUse {
            why: format!("{who} is alive in this sandbox ({})", process::display(p)),
        };
    }
    let held: Vec<&str> = facts
        .coordinators
        .iter()
        .filter(|c| c.held)
        .map(|c| c.path.as_str())
        .collect();
    if !held.is_empty() {
        return Verdict::Live {
            why: format!(
                "lease of {who} is in use: gateway coordinator(s) {} are held, so a live OpenClaw process (in \
                 another container sharing the volume, or here) owns this state dir",
                held.join(", ")
            ),
        };
    }
    if !facts
        .coordinators
        .iter()
        .any(|c| is_state_coordinator(&c.path, state_tmp))
    {
        return until_expiry(format!(
            "lease of {who}: no {state_tmp}/openclaw-<uid>/gateway.state.lock.sqlite to prove no gateway holds \
             this state dir"
        ));
    }
    let last = row.last_renewed();
    let started = match (
        facts.uptime_ticks,
        process::by_pid(procs, 1).map(|p| p.id.start_time),
    ) {
        (Some(up), Some(init)) => {
            // Ticks are hundredths of a second.
            let age_ms = i64::try_from(up.saturating_sub(init)).unwrap_or(i64::MAX / 20) * 10;
            Some(now - age_ms)
        }
        _ => None,
    };
    let Some(started) = started else {
        return until_expiry(format!(
            "lease of {who}: cannot tell when this sandbox started"
        ));
    };
    if last >= started {
        return until_expiry(format!(
            "lease of {who} was renewed {} s ago, after this sandbox started ({} s ago): its owner ran alongside \
             this sandbox, not before it",
            (now - last) / 1000,
            (now - started) / 1000
        ));
    }
    if now - last < QUIET_MS {
        return Verdict::Wait {
            why: format!(
                "lease of {who} was renewed {} s ago; a live owner renews every {} s, so it is judged once it is \
                 {} s old",
                (now - last) / 1000,
                HEARTBEAT_MS / 1000,
                QUIET_MS / 1000
            ),
            retry_after_s: secs(QUIET_MS - (now - last)),
        };
    }
    Verdict::Stale {
        why: format!(
            "lease of {who} (not this sandbox's host {}): not renewed for {} s, last before this sandbox started \
             ({} s ago), owner not alive here, and no gateway coordinator is held ({} checked)",
            facts.hostname,
            (now - last) / 1000,
            (now - started) / 1000,
            facts.coordinators.len()
        ),
    }
}

fn int(node: Option<&Node>) -> Result<Option<i64>, String> {
    match node.map(|n| &n.value) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(raw)) => raw
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("not an integer: {raw}")),
        Some(other) => Err(format!("expected an integer, got {}", other.type_name())),
    }
}

/// `payload_json.owner` as OpenClaw's `parseStateLeaseProcessOwner` reads it.
pub fn parse_owner(payload_json: &str) -> Option<LeaseOwner> {
    let doc = json5::parse(payload_json).ok()?;
    let owner = doc.get("owner")?;
    let pid = owner
        .get("pid")?
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0)?;
    let host = owner.get("host")?.as_str().filter(|h| !h.is_empty())?;
    let started_at = match &owner.get("startedAt")?.value {
        Value::Null => None,
        _ => Some(owner.get("startedAt")?.as_u64()?),
    };
    Some(LeaseOwner {
        pid,
        host: host.to_string(),
        started_at,
    })
}

fn parse_row(text: &str, node: &Node) -> Result<LeaseRow, String> {
    let owner = node
        .get("owner")
        .and_then(Node::as_str)
        .ok_or("row without owner")?
        .to_string();
    let updated_at = int(node.get("updated_at"))?.ok_or("row without updated_at")?;
    let process = node
        .get("payload_json")
        .and_then(Node::as_str)
        .and_then(parse_owner);
    Ok(LeaseRow {
        owner,
        expires_at: int(node.get("expires_at"))?,
        heartbeat_at: int(node.get("heartbeat_at"))?,
        updated_at,
        process,
        raw: text[node.span.clone()].to_string(),
    })
}

/// Parse the script's `observe` line.
pub fn parse_facts(stdout: &str) -> Result<Facts, String> {
    let line = stdout
        .lines()
        .rfind(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("no JSON in the script output: {}", stdout.trim()))?;
    let doc = json5::parse(line).map_err(|e| format!("script output: {e}"))?;
    if let Some(e) = doc.get("error").and_then(Node::as_str) {
        return Err(e.to_string());
    }
    let hostname = doc
        .get("hostname")
        .and_then(Node::as_str)
        .filter(|h| !h.is_empty())
        .ok_or("no hostname")?
        .to_string();
    let now_ms = int(doc.get("now_ms"))?.ok_or("no now_ms")?;
    let uptime_ticks = doc
        .get("uptime")
        .and_then(Node::as_str)
        .and_then(|u| process::parse_uptime(u.as_bytes()));
    let row = match doc.get("row") {
        None => None,
        Some(n) if n.value == Value::Null => None,
        Some(n) => Some(parse_row(line, n)?),
    };
    let mut coordinators = Vec::new();
    for c in doc
        .get("coordinators")
        .and_then(Node::as_array)
        .ok_or("no coordinators")?
    {
        let path = c
            .get("path")
            .and_then(Node::as_str)
            .ok_or("coordinator without path")?;
        let held = match c.get("held").map(|h| &h.value) {
            Some(Value::Bool(b)) => *b,
            _ => return Err(format!("coordinator {path}: no held flag")),
        };
        coordinators.push(Coordinator {
            path: path.to_string(),
            held,
        });
    }
    Ok(Facts {
        hostname,
        now_ms,
        uptime_ticks,
        row,
        coordinators,
    })
}

/// `<state-dir>/state/openclaw.sqlite`.
pub fn db_path(cfg: &Config) -> String {
    join(&join(&cfg.state_dir, "state"), "openclaw.sqlite")
}

/// The lease as seen now: `None` when there is no state database (no
/// OpenClaw 2026.9 state, nothing to check and no exec).
pub struct Observed {
    pub facts: Facts,
    pub user: String,
}

fn run_script(
    sandbox: &Sandbox,
    cfg: &Config,
    user: &str,
    mode: &str,
    expect: Option<&str>,
) -> Result<String, String> {
    let db = db_path(cfg);
    let mut cmd = sandbox
        .command(["node", "--no-warnings", "-", mode, db.as_str()])
        .user(user)
        .env("RUNNER_LEASE_DIRS", &cfg.lock_parents().join(":"))
        .stdin(SCRIPT.as_bytes())
        .timeout_ms(EXEC_TIMEOUT_MS)
        .max_output(MAX_OUTPUT);
    if let Some(row) = expect {
        cmd = cmd.env("RUNNER_LEASE_EXPECT", row);
    }
    let out = cmd
        .run()
        .map_err(|e| format!("node {mode} of {db}: {}: {e}", e.kind()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.exit_code != 0 && !stdout.contains("\"error\"") {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        return Err(format!(
            "node {mode} of {db} exited {}: {tail}",
            out.exit_code
        ));
    }
    Ok(stdout)
}

/// Read the lease facts (read-only). `Ok(None)`: no state database.
pub fn observe(sandbox: &Sandbox, cfg: &Config) -> Result<Option<Observed>, String> {
    let db = db_path(cfg);
    let st = match sandbox.stat(&db) {
        Ok(Some(st)) => st,
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("cannot stat {db}: {e:?}")),
    };
    if st.kind != FileKind::Regular {
        return Err(format!(
            "{db} is a {:?}, not a regular file; not reading it",
            st.kind
        ));
    }
    // As the database's owner, so nothing the script touches changes owner.
    let user = format!("{}:{}", st.uid, st.gid);
    let stdout = run_script(sandbox, cfg, &user, "observe", None)?;
    let facts = parse_facts(&stdout).map_err(|e| format!("lease facts of {db}: {e}"))?;
    Ok(Some(Observed { facts, user }))
}

/// Release the row judged stale in `seen`, compare-and-delete inside the
/// database's write lock.
pub fn release(sandbox: &Sandbox, cfg: &Config, seen: &Observed, why: &str) -> RepairOutcome {
    let Some(row) = &seen.facts.row else {
        return RepairOutcome::NotNeeded("no gateway owner lease".into());
    };
    let db = db_path(cfg);
    log::info(&format!(
        "releasing gateway owner lease {} in {db} (compare-and-delete as {}): {why}",
        row.owner, seen.user
    ));
    let stdout = match run_script(sandbox, cfg, &seen.user, "reclaim", Some(&row.raw)) {
        Ok(s) => s,
        Err(e) => {
            return RepairOutcome::Failed(format!("releasing the stale owner lease failed: {e}"));
        }
    };
    let line = stdout.lines().rfind(|l| l.starts_with('{')).unwrap_or("");
    let doc = match json5::parse(line) {
        Ok(d) => d,
        Err(e) => {
            return RepairOutcome::Failed(format!(
                "releasing the stale owner lease: unreadable answer ({e}): {}",
                stdout.trim()
            ));
        }
    };
    let result = doc.get("result").and_then(Node::as_str).unwrap_or("");
    match result {
        "deleted" => RepairOutcome::Repaired(format!(
            "released the gateway owner lease {} in {db}: {why}",
            row.owner
        )),
        "absent" => RepairOutcome::NotNeeded(format!(
            "the gateway owner lease {} was already gone from {db}",
            row.owner
        )),
        "changed" => RepairOutcome::Failed(format!(
            "the gateway owner lease in {db} changed before its release (renewed or replaced); nothing removed \
             (re-probe)"
        )),
        "held" => RepairOutcome::Refused(format!(
            "a gateway coordinator became held while releasing the owner lease {}: a live gateway owns {}; \
             nothing removed",
            row.owner, cfg.state_dir
        )),
        _ => RepairOutcome::Failed(format!(
            "releasing the stale owner lease: {}",
            doc.get("error")
                .and_then(Node::as_str)
                .unwrap_or(stdout.trim())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runner_plugin_sdk::ProcessId;

    const STATE_TMP: &str = "/sandbox/.openclaw/tmp";
    const NOW: i64 = 1_795_448_960_000;
    /// This sandbox: pid 1 started 20 s ago (uptime 1000 s).
    const UPTIME: u64 = 100_000;
    const INIT_START: u64 = 98_000;

    fn p(pid: u32, start: u64, cmd: &str) -> ProcessInfo {
        ProcessInfo {
            id: ProcessId {
                pid,
                start_time: start,
            },
            ppid: 1,
            uid: 998,
            state: "S".into(),
            comm: cmd.chars().take(15).collect(),
            cmdline: vec![cmd.into()],
        }
    }

    fn procs() -> Vec<ProcessInfo> {
        vec![p(1, INIT_START, "sandbox-entry"), p(18, 98_010, "sleep")]
    }

    fn coord(name: &str, held: bool) -> Coordinator {
        Coordinator {
            path: format!("{STATE_TMP}/openclaw-998/{name}"),
            held,
        }
    }

    /// A lease of pid 60 on host `old`, last renewed `age_ms` ago.
    fn facts(host: &str, age_ms: i64) -> Facts {
        Facts {
            hostname: "new".into(),
            now_ms: NOW,
            uptime_ticks: Some(UPTIME),
            row: Some(LeaseRow {
                owner: "7bcf742a".into(),
                expires_at: Some(NOW - age_ms + 300_000),
                heartbeat_at: Some(NOW - age_ms),
                updated_at: NOW - age_ms,
                process: Some(LeaseOwner {
                    pid: 60,
                    host: host.into(),
                    started_at: Some(1_064_365),
                }),
                raw: "{}".into(),
            }),
            coordinators: vec![
                coord("gateway.e6802e23.lock.sqlite", false),
                coord("gateway.state.lock.sqlite", false),
            ],
        }
    }

    fn judge_(f: &Facts, procs: &[ProcessInfo]) -> Verdict {
        judge(f, procs, STATE_TMP)
    }

    #[test]
    fn dead_owner_of_an_earlier_container_is_stale() {
        // Last renewed 50 s ago, this sandbox started 20 s ago.
        let v = judge_(&facts("old", 50_000), &procs());
        assert!(matches!(v, Verdict::Stale { .. }), "{v:?}");
        assert!(v.why().contains("not renewed for 50 s"), "{v:?}");
        assert!(v.why().contains("host old"), "{v:?}");
    }

    #[test]
    fn recently_renewed_foreign_lease_waits_out_one_heartbeat() {
        let v = judge_(&facts("old", 25_000), &procs());
        assert_eq!(
            v,
            Verdict::Wait {
                why: v.why().to_string(),
                retry_after_s: 20
            }
        );
    }

    #[test]
    fn held_coordinator_means_a_live_owner_somewhere() {
        let mut f = facts("old", 50_000);
        f.coordinators[1].held = true;
        let v = judge_(&f, &procs());
        assert!(matches!(v, Verdict::Live { .. }), "{v:?}");
        assert!(v.why().contains("gateway.state.lock.sqlite"), "{v:?}");
        // A held coordinator outside the state dir (this sandbox's lifecycle one) counts too.
        let mut f = facts("old", 50_000);
        f.coordinators.push(Coordinator {
            path: "/tmp/openclaw-state-locks-998/gateway-lifecycle.27da31a3.lock.sqlite".into(),
            held: true,
        });
        assert!(matches!(judge_(&f, &procs()), Verdict::Live { .. }));
    }

    #[test]
    fn lease_renewed_after_this_sandbox_started_belongs_to_a_neighbour() {
        // Renewed 50 s ago, but this sandbox started 60 s ago.
        let v = judge_(&facts("old", 50_000), &[p(1, 94_000, "init")]);
        assert!(matches!(v, Verdict::Wait { .. }), "{v:?}");
        assert!(v.why().contains("ran alongside"), "{v:?}");
        assert!(v.why().contains("expires in 250 s"), "{v:?}");
    }

    #[test]
    fn without_the_state_coordinator_nothing_is_proven() {
        let mut f = facts("old", 50_000);
        f.coordinators
            .retain(|c| !c.path.ends_with("gateway.state.lock.sqlite"));
        let v = judge_(&f, &procs());
        assert!(matches!(v, Verdict::Wait { .. }), "{v:?}");
        // A coordinator of that name elsewhere does not count.
        f.coordinators.push(Coordinator {
            path: "/tmp/openclaw-998/gateway.state.lock.sqlite".into(),
            held: false,
        });
        assert!(matches!(judge_(&f, &procs()), Verdict::Wait { .. }));
    }

    #[test]
    fn unknown_sandbox_start_is_not_proof() {
        let mut f = facts("old", 50_000);
        f.uptime_ticks = None;
        assert!(matches!(judge_(&f, &procs()), Verdict::Wait { .. }));
        let f = facts("old", 50_000);
        assert!(matches!(
            judge_(&f, &[p(18, 98_010, "sleep")]),
            Verdict::Wait { .. }
        ));
    }

    #[test]
    fn foreign_owner_whose_identity_lives_here_is_live() {
        let v = judge_(
            &facts("old", 50_000),
            &[
                p(1, INIT_START, "init"),
                p(60, 1_064_365, "openclaw-gateway"),
            ],
        );
        assert!(matches!(v, Verdict::InUse { .. }), "{v:?}");
        // Same pid, other start time: not the owner.
        let v = judge_(
            &facts("old", 50_000),
            &[p(1, INIT_START, "init"), p(60, 5, "bash")],
        );
        assert!(matches!(v, Verdict::Stale { .. }), "{v:?}");
    }

    #[test]
    fn expired_lease_is_left_to_openclaw() {
        let mut f = facts("old", 10_000);
        f.row.as_mut().unwrap().expires_at = Some(NOW);
        assert!(matches!(judge_(&f, &procs()), Verdict::Clear { .. }));
    }

    #[test]
    fn same_host_follows_openclaws_own_rule() {
        // Gone: OpenClaw reclaims it itself.
        let v = judge_(&facts("new", 5_000), &procs());
        assert!(matches!(v, Verdict::Clear { .. }), "{v:?}");
        // Alive with its start time: in use here.
        let live = [
            p(1, INIT_START, "init"),
            p(60, 1_064_365, "openclaw-gateway"),
        ];
        assert!(matches!(
            judge_(&facts("new", 5_000), &live),
            Verdict::InUse { .. }
        ));
        // Reused pid: OpenClaw reclaims it.
        let reused = [p(1, INIT_START, "init"), p(60, 7, "sleep")];
        assert!(matches!(
            judge_(&facts("new", 5_000), &reused),
            Verdict::Clear { .. }
        ));
        // Alive and no start time recorded: nobody can prove it dead.
        let mut f = facts("new", 5_000);
        f.row.as_mut().unwrap().process.as_mut().unwrap().started_at = None;
        assert!(matches!(judge_(&f, &reused), Verdict::Wait { .. }));
    }

    #[test]
    fn lease_without_owner_identity_or_expiry_is_never_stale() {
        let mut f = facts("old", 50_000);
        f.row.as_mut().unwrap().process = None;
        assert!(matches!(judge_(&f, &procs()), Verdict::Wait { .. }));
        f.row.as_mut().unwrap().expires_at = None;
        assert!(matches!(judge_(&f, &procs()), Verdict::Held { .. }));
    }

    #[test]
    fn no_row_is_clear() {
        let mut f = facts("old", 0);
        f.row = None;
        assert!(matches!(judge_(&f, &procs()), Verdict::Clear { .. }));
    }

    /// Verbatim output of the script in a recreated runner-test/openclaw sandbox.
    const OBSERVED: &str = r#"{"hostname":"76fe8ded137c","now_ms":1795448932905,"uptime":"10808.72","db":true,"table":true,"row":{"owner":"7bcf742a-9627-4eb9-9704-12aa65bd6ea5","expires_at":1795449201586,"heartbeat_at":1795448901586,"payload_json":"{\"owner\":{\"pid\":60,\"host\":\"a80487a186e4\",\"startedAt\":1064365},\"port\":18789,\"mode\":\"foreground\",\"supervisor\":null}","created_at":1795448781157,"updated_at":1795448901586},"coordinators":[{"path":"/sandbox/.openclaw/tmp/openclaw-998/gateway.e6802e23.lock.sqlite","held":false},{"path":"/sandbox/.openclaw/tmp/openclaw-998/gateway.state.lock.sqlite","held":false},{"path":"/tmp/openclaw-state-locks-998/gateway-lifecycle.27da31a3.lock.sqlite","held":false}]}"#;

    #[test]
    fn script_output_parses() {
        let f = parse_facts(&format!("noise\n{OBSERVED}\n")).unwrap();
        assert_eq!(f.hostname, "76fe8ded137c");
        assert_eq!(f.uptime_ticks, Some(1_080_872));
        let row = f.row.as_ref().unwrap();
        assert_eq!(row.owner, "7bcf742a-9627-4eb9-9704-12aa65bd6ea5");
        assert_eq!(row.expires_at, Some(1_795_449_201_586));
        assert_eq!(row.last_renewed(), 1_795_448_901_586);
        assert_eq!(
            row.process,
            Some(LeaseOwner {
                pid: 60,
                host: "a80487a186e4".into(),
                started_at: Some(1_064_365)
            })
        );
        // The row goes back to the release exactly as printed.
        assert!(row.raw.starts_with("{\"owner\":\"7bcf742a"));
        assert!(row.raw.ends_with("\"updated_at\":1795448901586}"));
        assert_eq!(f.coordinators.len(), 3);
        assert!(f.coordinators.iter().all(|c| !c.held));
    }

    #[test]
    fn script_errors_and_empty_leases_parse() {
        assert_eq!(
            parse_facts(r#"{"error":"database is locked"}"#),
            Err("database is locked".into())
        );
        let f = parse_facts(
            r#"{"hostname":"h","now_ms":5,"uptime":"1.00","db":false,"table":false,"row":null,"coordinators":[]}"#,
        )
        .unwrap();
        assert_eq!(f.row, None);
        assert!(parse_facts("").is_err());
    }

    #[test]
    fn payload_owner_follows_openclaws_parser() {
        assert_eq!(
            parse_owner(r#"{"owner":{"pid":7,"host":"h","startedAt":null}}"#),
            Some(LeaseOwner {
                pid: 7,
                host: "h".into(),
                started_at: None
            })
        );
        assert_eq!(
            parse_owner(r#"{"owner":{"pid":0,"host":"h","startedAt":1}}"#),
            None
        );
        assert_eq!(
            parse_owner(r#"{"owner":{"pid":7,"host":"","startedAt":1}}"#),
            None
        );
        assert_eq!(parse_owner(r#"{"owner":{"pid":7,"host":"h"}}"#), None);
        assert_eq!(parse_owner("not json"), None);
    }
}
