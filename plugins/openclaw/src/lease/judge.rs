//! The pure decision: is the lease held by a live owner, or stale?

use super::{Facts, HEARTBEAT_MS, QUIET_MS, Verdict};
use runner_plugin_sdk::{ProcessInfo, process};

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
