//! The pure verdict: which processes are the gateway, who owns the port,
//! and whether the gateway serves.

use super::{GatewaySpec, Observation, Verdict};
use crate::checks::HttpProbe;
use crate::process;
use crate::{Listener, ProcessInfo};

/// Gateway processes in `procs` (live, matched by `is_gateway`), oldest first.
pub fn gateways<'p>(
    procs: &'p [ProcessInfo],
    is_gateway: &dyn Fn(&ProcessInfo) -> bool,
) -> Vec<&'p ProcessInfo> {
    let mut v: Vec<&ProcessInfo> = Vec::new();
    // Insertion by start time (a handful of entries; keeps sort code out).
    for p in procs
        .iter()
        .filter(|p| !process::is_exited(p) && is_gateway(p))
    {
        let at = v
            .iter()
            .position(|q| (q.id.start_time, q.id.pid) > (p.id.start_time, p.id.pid))
            .unwrap_or(v.len());
        v.insert(at, p);
    }
    v
}

/// Who owns a listener, from the gateway's point of view.
#[derive(Debug, Clone, PartialEq)]
pub enum Owner<'p> {
    /// A gateway process (or a child of one).
    Gateway(&'p ProcessInfo),
    Other(String),
    Unknown,
}

pub fn listener_owner<'p>(
    l: &Listener,
    procs: &'p [ProcessInfo],
    is_gateway: &dyn Fn(&ProcessInfo) -> bool,
) -> Owner<'p> {
    let Some(id) = l.owner else {
        return Owner::Unknown;
    };
    let Some(p) = process::by_id(procs, id) else {
        return Owner::Other(format!("pid {} (exited)", id.pid));
    };
    if is_gateway(p) {
        return Owner::Gateway(p);
    }
    // A worker child of the gateway holding the socket still is the gateway.
    let mut cur = p.ppid;
    for _ in 0..64 {
        match process::by_pid(procs, cur) {
            Some(parent) if is_gateway(parent) => return Owner::Gateway(parent),
            Some(parent) if parent.ppid != 0 && parent.ppid != cur => cur = parent.ppid,
            _ => break,
        }
    }
    Owner::Other(process::describe(p))
}

/// Decide. `obs.http` is only consulted when a gateway owns the port.
pub fn assess(spec: &GatewaySpec<'_>, obs: &Observation) -> Verdict {
    let gws = gateways(&obs.procs, spec.is_gateway);
    let owners: Vec<Owner<'_>> = obs
        .listeners
        .iter()
        .map(|l| listener_owner(l, &obs.procs, spec.is_gateway))
        .collect();
    let serving = owners.iter().find_map(|o| match o {
        Owner::Gateway(p) => Some(*p),
        _ => None,
    });
    let foreign = owners.iter().find_map(|o| match o {
        Owner::Other(d) => Some(d.clone()),
        _ => None,
    });
    let unknown_owner = owners.contains(&Owner::Unknown);

    let Some(gw) = serving else {
        if let Some(owner) = foreign {
            return Verdict::Foreign { owner };
        }
        if unknown_owner {
            return Verdict::Undecided {
                why: format!(
                    "port {} is held by a process the host could not identify",
                    spec.port
                ),
            };
        }
        let Some(gw) = gws.last() else {
            return Verdict::NotRunning;
        };
        if process::is_stopped(gw) {
            return Verdict::NotServing {
                pid: gw.id.pid,
                why: format!(
                    "gateway {} is stopped (state {}) and has no listener",
                    process::describe(gw),
                    gw.state
                ),
            };
        }
        return match obs.uptime.map(|u| process::age_secs(gw.id.start_time, u)) {
            Some(age) if age < spec.start_grace_secs => match &obs.wedge_line {
                Some(line) => Verdict::NotServing {
                    pid: gw.id.pid,
                    why: format!(
                        "gateway {} ({age} s old) has no listener on port {} and its log says it gave up: {line}",
                        process::describe(gw),
                        spec.port
                    ),
                },
                None => Verdict::Starting {
                    pid: gw.id.pid,
                    age_secs: age,
                },
            },
            Some(age) => Verdict::NotServing {
                pid: gw.id.pid,
                why: format!(
                    "gateway {} is alive for {age} s but has no listener on port {} (wedged)",
                    process::describe(gw),
                    spec.port
                ),
            },
            None => Verdict::Undecided {
                why: format!(
                    "gateway {} has no listener on port {} and its age is unknown (cannot tell starting from wedged)",
                    process::describe(gw),
                    spec.port
                ),
            },
        };
    };

    if process::is_stopped(gw) {
        return Verdict::NotServing {
            pid: gw.id.pid,
            why: format!(
                "gateway {} is stopped (state {}): it holds the port but cannot answer",
                process::describe(gw),
                gw.state
            ),
        };
    }
    match &obs.http {
        Some(HttpProbe::Accepted(_)) if obs.not_ready => {
            let age = obs
                .uptime
                .map(|u| process::age_secs(gw.id.start_time, u))
                .unwrap_or(0);
            Verdict::Starting {
                pid: gw.id.pid,
                age_secs: age,
            }
        }
        Some(HttpProbe::Accepted(code)) => Verdict::Healthy {
            pid: gw.id.pid,
            start_time: gw.id.start_time,
            code: *code,
        },
        Some(HttpProbe::Rejected(code)) => Verdict::NotServing {
            pid: gw.id.pid,
            why: format!("GET {} answered HTTP {code}", spec.health_path),
        },
        Some(HttpProbe::NoAnswer(e)) if obs.http_timed_out => Verdict::NotServing {
            pid: gw.id.pid,
            why: format!(
                "gateway {} owns port {} but GET {} timed out after {} ms (frozen): {e}",
                process::describe(gw),
                spec.port,
                spec.health_path,
                spec.health_timeout_ms
            ),
        },
        Some(HttpProbe::NoAnswer(e)) => Verdict::Undecided {
            why: format!("GET {} on port {} failed: {e}", spec.health_path, spec.port),
        },
        None => Verdict::Undecided {
            why: "health was not checked".into(),
        },
    }
}
