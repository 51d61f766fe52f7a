//! Retiring old gateway processes by identity, and checking who still holds
//! the port afterwards.

use super::{GatewaySpec, gateways};
use crate::poll::Backoff;
use crate::process;
use crate::{ProcessId, ProcessInfo, Sandbox, Signal};
use std::time::{Duration, Instant};

/// How long to wait for retired processes.
#[derive(Debug, Clone, Copy)]
pub struct StopBudget {
    pub term: Duration,
    pub kill: Duration,
}

/// Stop every live gateway process by identity: SIGTERM (plus SIGCONT for a
/// stopped one, whose TERM would stay pending), a bounded wait, then SIGKILL
/// and another bounded wait. Only processes that `is_gateway` accepts are
/// ever signalled, and never PID 1 (that would stop the sandbox itself).
/// Returns the identities that were stopped.
pub fn retire(
    sandbox: &Sandbox,
    is_gateway: &dyn Fn(&ProcessInfo) -> bool,
    budget: StopBudget,
) -> Result<Vec<ProcessId>, String> {
    let procs = sandbox
        .processes()
        .map_err(|e| format!("cannot list processes: {e}"))?;
    let targets: Vec<ProcessInfo> = gateways(&procs, is_gateway).into_iter().cloned().collect();
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(p1) = targets.iter().find(|p| p.id.pid == 1) {
        return Err(format!(
            "the gateway is the sandbox's PID 1 ({}); stopping it would stop the sandbox — restart the sandbox instead",
            process::display(p1)
        ));
    }
    let ids: Vec<ProcessId> = targets.iter().map(|p| p.id).collect();
    for p in &targets {
        signal(sandbox, p.id, Signal::Term)?;
        if process::is_stopped(p) {
            signal(sandbox, p.id, Signal::Cont)?;
        }
    }
    if wait_gone(sandbox, &ids, budget.term)? {
        return Ok(ids);
    }
    let procs = sandbox
        .processes()
        .map_err(|e| format!("cannot list processes: {e}"))?;
    for id in ids.iter().filter(|id| process::is_alive(&procs, **id)) {
        signal(sandbox, *id, Signal::Kill)?;
    }
    if wait_gone(sandbox, &ids, budget.kill)? {
        return Ok(ids);
    }
    let procs = sandbox
        .processes()
        .map_err(|e| format!("cannot list processes: {e}"))?;
    let left: Vec<String> = ids
        .iter()
        .filter_map(|id| process::by_id(&procs, *id))
        .map(process::describe)
        .collect();
    Err(format!(
        "gateway process(es) still alive after SIGTERM and SIGKILL: {}",
        left.join(", ")
    ))
}

fn signal(sandbox: &Sandbox, id: ProcessId, sig: Signal) -> Result<bool, String> {
    sandbox
        .signal(id, sig)
        .map_err(|e| format!("signalling pid {} failed: {e}", id.pid))
}

/// Poll until none of `ids` is alive; `Ok(false)` when `within` passes.
pub fn wait_gone(sandbox: &Sandbox, ids: &[ProcessId], within: Duration) -> Result<bool, String> {
    let deadline = Instant::now() + within;
    let mut pauses = Backoff::fixed(Duration::from_millis(200));
    loop {
        let procs = sandbox
            .processes()
            .map_err(|e| format!("cannot list processes: {e}"))?;
        if !ids.iter().any(|id| process::is_alive(&procs, *id)) {
            return Ok(true);
        }
        if !pauses.pause_until(deadline) {
            return Ok(false);
        }
    }
}

/// Who still listens on the port, ignoring processes in `retired`.
pub(super) fn port_holder(
    sandbox: &Sandbox,
    spec: &GatewaySpec<'_>,
    retired: &[ProcessId],
) -> Result<Option<String>, String> {
    let procs = sandbox
        .processes()
        .map_err(|e| format!("cannot list processes: {e}"))?;
    let listeners = sandbox
        .listeners()
        .map_err(|e| format!("cannot list listeners: {e}"))?;
    for l in listeners.iter().filter(|l| l.port == spec.port) {
        match l.owner {
            Some(id) if retired.contains(&id) => continue,
            Some(id) => match process::by_id(&procs, id) {
                Some(p) => return Ok(Some(process::describe(p))),
                None => continue,
            },
            None => return Ok(Some("an unidentified process".into())),
        }
    }
    Ok(None)
}
