//! Gathering an [`Observation`] from the sandbox (read-only).

use super::{GatewaySpec, Observation, Owner, gateways, listener_owner, log_tail};
use crate::checks::HttpProbe;
use crate::process;
use crate::{Error, Listener, ProcessInfo, Sandbox};

/// Gather an observation. `Err` when the process table or listeners cannot
/// be read.
pub fn observe(sandbox: &Sandbox, spec: &GatewaySpec<'_>) -> Result<Observation, String> {
    let procs = sandbox
        .processes()
        .map_err(|e| format!("cannot list processes: {e}"))?;
    let listeners: Vec<Listener> = sandbox
        .listeners()
        .map_err(|e| format!("cannot list listeners: {e}"))?
        .into_iter()
        .filter(|l| l.port == spec.port)
        .collect();
    let owner = listeners
        .iter()
        .find_map(|l| match listener_owner(l, &procs, spec.is_gateway) {
            Owner::Gateway(p) => Some(p),
            _ => None,
        });
    let gateway_listens = owner.is_some();
    // A stopped (SIGSTOP) gateway cannot answer: no need to wait out the timeout.
    let stopped = owner.is_some_and(process::is_stopped);
    let (http, http_timed_out) = if gateway_listens && !stopped {
        match sandbox.http_get(spec.port, spec.health_path, spec.health_timeout_ms) {
            Ok(r) if spec.ok_codes.contains(&r.status) => {
                (Some(HttpProbe::Accepted(r.status)), false)
            }
            Ok(r) => (Some(HttpProbe::Rejected(r.status)), false),
            Err(e) => {
                let timed_out = matches!(e, Error::Timeout(_));
                (Some(HttpProbe::NoAnswer(e.to_string())), timed_out)
            }
        }
    } else {
        (None, false)
    };
    let uptime = uptime(sandbox);
    // Readiness only matters while the gateway is young: an old gateway
    // that is draining or reloading a plugin is still the live gateway.
    let young = gateways(&procs, spec.is_gateway)
        .last()
        .zip(uptime)
        .is_some_and(|(gw, u)| process::age_secs(gw.id.start_time, u) < spec.start_grace_secs);
    let not_ready = match (spec.ready_path, &http) {
        (Some(path), Some(HttpProbe::Accepted(_))) if young => {
            matches!(sandbox.http_get(spec.port, path, spec.health_timeout_ms), Ok(r) if r.status == 503)
        }
        _ => false,
    };
    let wedge_line = if gateway_listens {
        None
    } else {
        wedge_line(sandbox, spec, &procs, uptime)
    };
    let nothing_runs = listeners.is_empty() && gateways(&procs, spec.is_gateway).is_empty();
    let exit_log = if nothing_runs {
        recent_log_tail(sandbox, spec)
    } else {
        None
    };
    // The last launch found no program to run: a fact no retry changes.
    let launch_refusal = match (nothing_runs, spec.log_file, &exit_log) {
        (true, Some(log), Some(_)) => crate::launch::not_found_line(sandbox, log),
        _ => None,
    };
    Ok(Observation {
        procs,
        listeners,
        http,
        http_timed_out,
        not_ready,
        uptime,
        wedge_line,
        exit_log,
        launch_refusal,
    })
}

/// The end of the gateway log if it was written within the start grace.
fn recent_log_tail(sandbox: &Sandbox, spec: &GatewaySpec<'_>) -> Option<String> {
    let log = spec.log_file?;
    let stat = sandbox.stat(log).ok()??;
    let age = crate::locks::now_secs() - stat.mtime;
    if age > spec.start_grace_secs as i64 {
        return None;
    }
    let tail = log_tail(sandbox, log);
    (!tail.is_empty()).then(|| format!("{} s ago{tail}", age.max(0)))
}

/// For a young gateway without a listener: the last wedge marker its log
/// wrote since that gateway started (2 s of slack for clock granularity).
fn wedge_line(
    sandbox: &Sandbox,
    spec: &GatewaySpec<'_>,
    procs: &[ProcessInfo],
    uptime: Option<u64>,
) -> Option<String> {
    let log = spec.log_file.filter(|_| !spec.wedge_markers.is_empty())?;
    let gw = gateways(procs, spec.is_gateway).last().copied()?;
    let age = process::age_secs(gw.id.start_time, uptime?);
    if age >= spec.start_grace_secs {
        return None;
    }
    let content = sandbox
        .read_head(log, 1024 * 1024)
        .ok()
        .filter(|c| !c.truncated)?;
    let text = String::from_utf8_lossy(&content.data);
    let since = crate::locks::now_secs() - age as i64 - 2;
    crate::logscan::last_marker_since(&text, spec.wedge_markers, since)
        .map(|l| l.chars().filter(|c| !c.is_control()).take(200).collect())
}

/// Seconds since boot, from the sandbox's `/proc/uptime`.
pub fn uptime(sandbox: &Sandbox) -> Option<u64> {
    sandbox
        .read("/proc/uptime", 256)
        .ok()
        .and_then(|d| process::parse_uptime(&d))
}
