//! The `gateway` link shared by agent plugins: find the gateway process,
//! decide whether it serves (identity + listener ownership + HTTP health),
//! retire an old one by identity, and launch a new one.
//!
//! The decision ([`assess`]) is pure and works on an [`Observation`], so
//! every verdict is unit-tested without a sandbox.

use crate::checks::HttpProbe;
use crate::process;
use crate::{Error, Listener, ProcessId, ProcessInfo, RepairOutcome, Report, Sandbox, Signal};
use std::time::{Duration, Instant};

pub use crate::launch::{LaunchError, LaunchSpec, Launched, launch, log_tail};

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

/// Turn a verdict into the link report.
pub fn report(link: &str, spec: &GatewaySpec<'_>, obs: &Observation, verdict: &Verdict) -> Report {
    let r = match verdict {
        Verdict::Healthy { pid, code, .. } => Report::healthy(
            link,
            format!(
                "gateway pid {pid} listens on port {} and {} answers {code}",
                spec.port, spec.health_path
            ),
        ),
        Verdict::NotRunning => Report::broken(
            link,
            match &obs.exit_log {
                Some(tail) => format!(
                    "no gateway process and nothing listens on port {}; the gateway log was written {tail}",
                    spec.port
                ),
                None => format!(
                    "no gateway process and nothing listens on port {}",
                    spec.port
                ),
            },
        )
        .repairable()
        // The host's verification stops on this after "starting" (a
        // launched gateway exited) instead of polling to its deadline.
        .evidence("gone", "true")
        .evidence_opt("deterministic", obs.launch_refusal.as_deref()),
        Verdict::Foreign { owner } => Report::broken(
            link,
            format!(
                "port {} is held by {owner}, which is not the gateway; refusing to touch it",
                spec.port
            ),
        ),
        Verdict::Starting { pid, age_secs } if obs.not_ready => Report::unknown(
            link,
            format!(
                "gateway pid {pid} started {age_secs} s ago; {} answers but {} says it is not ready yet",
                spec.health_path,
                spec.ready_path.unwrap_or("readiness")
            ),
        )
        .evidence("starting", "true")
        .evidence("retry-after-s", spec.start_grace_secs.saturating_sub(*age_secs).max(1)),
        Verdict::Starting { pid, age_secs } => Report::unknown(
            link,
            format!(
                "gateway pid {pid} started {age_secs} s ago and does not listen on port {} yet",
                spec.port
            ),
        )
        .evidence("starting", "true")
        .evidence(
            "retry-after-s",
            spec.start_grace_secs.saturating_sub(*age_secs).max(1),
        ),
        Verdict::NotServing { why, .. } => Report::broken(link, why.clone()).repairable(),
        Verdict::Undecided { why } => Report::unknown(link, why.clone()),
    };
    evidence(r, spec, obs)
}

fn evidence(mut r: Report, spec: &GatewaySpec<'_>, obs: &Observation) -> Report {
    r = r.evidence("port", spec.port);
    for gw in gateways(&obs.procs, spec.is_gateway) {
        r = r
            .evidence("pid", gw.id.pid)
            .evidence("start-time", gw.id.start_time)
            .evidence("state", &gw.state)
            .evidence("cmdline", process::display(gw));
        if let Some(u) = obs.uptime {
            r = r.evidence("age-s", process::age_secs(gw.id.start_time, u));
        }
    }
    for l in &obs.listeners {
        let owner = match listener_owner(l, &obs.procs, spec.is_gateway) {
            Owner::Gateway(p) => format!("gateway pid {}", p.id.pid),
            Owner::Other(d) => d,
            Owner::Unknown => "unknown".into(),
        };
        r = r.evidence(
            "listener",
            format!("{}:{} owner {owner}", l.address, l.port),
        );
    }
    match &obs.http {
        Some(HttpProbe::Accepted(c)) | Some(HttpProbe::Rejected(c)) => r = r.evidence("http", c),
        Some(HttpProbe::NoAnswer(e)) => {
            r = r
                .evidence(
                    "http",
                    if obs.http_timed_out {
                        "timeout"
                    } else {
                        "error"
                    },
                )
                .evidence("http-error", e)
        }
        None => {}
    }
    r
}

/// The `gateway` link's probe.
pub fn probe(link: &str, sandbox: &Sandbox, spec: &GatewaySpec<'_>) -> Report {
    match observe(sandbox, spec) {
        Ok(obs) => {
            let v = assess(spec, &obs);
            report(link, spec, &obs, &v)
        }
        Err(e) => Report::unknown(link, e),
    }
}

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
    loop {
        let procs = sandbox
            .processes()
            .map_err(|e| format!("cannot list processes: {e}"))?;
        if !ids.iter().any(|id| process::is_alive(&procs, *id)) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(
            Duration::from_millis(200).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
}

/// What [`repair`] needs besides the spec.
pub struct RepairPlan<'a> {
    pub spec: &'a GatewaySpec<'a>,
    pub launch: LaunchSpec,
    pub stop: StopBudget,
    /// Longest wait after spawning for the gateway to listen (see
    /// [`launch`]); it ends early once the gateway listens or has exited.
    pub settle: Duration,
    /// The sandbox's own supervisor, given a window before any launch.
    pub supervisor: Option<crate::supervisor::SupervisorSpec>,
}

/// The relaunch settings every gateway plugin declares (`launch`,
/// `launch-user`, `launch-env`, `gateway-log`, `stop-timeout-ms`,
/// `launch-settle-ms`), typed.
pub struct Relaunch<'a> {
    /// Empty = the agent's own relaunch (`default`).
    pub launch: &'a [String],
    /// `None` = chosen from the sandbox (`default.users`).
    pub launch_user: Option<&'a str>,
    pub env: &'a [(String, String)],
    pub env_file: Option<&'a str>,
    pub log_file: &'a str,
    pub stop_timeout_ms: u32,
    pub settle_ms: u32,
    pub default: crate::launch::DefaultLaunch<'a>,
    pub supervisor: Option<crate::supervisor::SupervisorSpec>,
}

/// [`repair`] with the launch resolved from the settings and the sandbox.
pub fn relaunch(sandbox: &Sandbox, spec: &GatewaySpec<'_>, r: Relaunch<'_>) -> RepairOutcome {
    let (argv, user, chosen) =
        match crate::launch::resolve(sandbox, r.launch, r.launch_user, r.default) {
            Ok(x) => x,
            Err(e) => return RepairOutcome::Failed(format!("cannot choose the launch: {e}")),
        };
    let plan = RepairPlan {
        spec,
        launch: LaunchSpec {
            argv,
            user: Some(user),
            env: r.env.to_vec(),
            env_file: r.env_file.map(str::to_string),
            log_file: r.log_file.to_string(),
            chosen,
            fix: "set `launch` (label `runner.launch`) to the gateway's command".into(),
        },
        stop: StopBudget {
            term: Duration::from_millis(r.stop_timeout_ms.into()),
            kill: Duration::from_secs(3),
        },
        settle: Duration::from_millis(r.settle_ms.into()),
        supervisor: r.supervisor,
    };
    repair(sandbox, &plan)
}

/// The `gateway` link's repair, after the plugin's own preconditions (e.g.
/// the guard chain): re-observe; do nothing if healthy; refuse a foreign or
/// unidentified port owner; retire old gateways by identity; refuse if the
/// port is still held; launch; confirm a process is running. The host
/// verifies health afterwards.
pub fn repair(sandbox: &Sandbox, plan: &RepairPlan<'_>) -> RepairOutcome {
    let spec = plan.spec;
    let obs = match observe(sandbox, spec) {
        Ok(o) => o,
        Err(e) => return RepairOutcome::Failed(e),
    };
    let verdict = assess(spec, &obs);
    match &verdict {
        Verdict::Healthy { pid, code, .. } => {
            return RepairOutcome::NotNeeded(format!("gateway pid {pid} already serves ({code})"));
        }
        Verdict::Foreign { owner } => {
            return RepairOutcome::Refused(format!(
                "port {} is held by {owner}, which is not the gateway; refusing to take it over (stop it or \
                 change the port setting)",
                spec.port
            ));
        }
        // The probe saw it broken (e.g. a health request that timed out on
        // a loaded machine) but it is young and starting: never restart a
        // starting gateway; the host's bounded verification waits for it.
        Verdict::Starting { pid, age_secs } => {
            return RepairOutcome::NotNeeded(format!(
                "gateway pid {pid} started {age_secs} s ago and is still starting; waiting for it instead of restarting it"
            ));
        }
        Verdict::Undecided { why } => {
            return RepairOutcome::Refused(format!("{why}; not acting on an undecided gateway"));
        }
        Verdict::NotRunning | Verdict::NotServing { .. } => {}
    }
    // Not running = the observation just made saw no gateway process and
    // nothing on the port: nothing to retire, the port is free.
    let retired = if verdict == Verdict::NotRunning {
        Vec::new()
    } else {
        let retired = match retire(sandbox, spec.is_gateway, plan.stop) {
            Ok(ids) => ids,
            Err(e) => {
                return RepairOutcome::Failed(format!("could not retire the old gateway: {e}"));
            }
        };
        // The port must be free (or about to be: a just-killed gateway's
        // socket disappears with it).
        match port_holder(sandbox, spec, &retired) {
            Ok(None) => {}
            Ok(Some(holder)) => {
                return RepairOutcome::Refused(format!(
                    "port {} is still held by {holder} after retiring the old gateway; refusing to launch",
                    spec.port
                ));
            }
            Err(e) => return RepairOutcome::Failed(e),
        }
        retired
    };
    if let Some(sup) = &plan.supervisor {
        use crate::supervisor::{Wait, wait_for};
        match wait_for(sandbox, sup, spec.is_gateway, &retired) {
            Ok(Wait::Launched {
                supervisor,
                gateway,
                after_ms,
            }) => {
                return RepairOutcome::NotNeeded(format!(
                    "the sandbox's own supervisor ({supervisor}) launched gateway pid {} (start time {}) {after_ms} ms into runner's wait; not launching a second one",
                    gateway.pid, gateway.start_time
                ));
            }
            Ok(Wait::NoSupervisor) | Ok(Wait::Nothing { .. }) => {}
            Err(e) => return RepairOutcome::Failed(format!("cannot list processes: {e}")),
        }
    }
    match launch(
        sandbox,
        &plan.launch,
        spec.port,
        spec.is_gateway,
        &retired,
        plan.settle,
    ) {
        Ok(Launched { id, listening }) => {
            let old = if retired.is_empty() {
                String::new()
            } else {
                let pids: Vec<String> = retired.iter().map(|r| r.pid.to_string()).collect();
                format!(" after retiring pid {}", pids.join(", "))
            };
            let state = if listening {
                format!("; it listens on port {}", spec.port)
            } else {
                format!(
                    "; it does not listen on port {} yet (still starting)",
                    spec.port
                )
            };
            let chosen = if plan.launch.chosen.is_empty() {
                String::new()
            } else {
                format!(" ({})", plan.launch.chosen)
            };
            RepairOutcome::Repaired(format!(
                "launched gateway pid {} (start time {}){old}: {} as {}{chosen}{state}",
                id.pid,
                id.start_time,
                plan.launch.argv.join(" "),
                plan.launch.user.as_deref().unwrap_or("the default user"),
            ))
        }
        Err(LaunchError::Deterministic(why)) => RepairOutcome::Refused(why),
        Err(LaunchError::Failed(why)) => RepairOutcome::Failed(why),
    }
}

/// Who still listens on the port, ignoring processes in `retired`.
fn port_holder(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::tests::{listener, proc_};

    fn is_gw(p: &ProcessInfo) -> bool {
        process::program_is(p, &["openclaw-gateway"])
            || process::invocation(p, &["openclaw"], &["gateway", "run"]).is_some()
    }

    fn spec() -> GatewaySpec<'static> {
        GatewaySpec {
            port: 18789,
            health_path: "/health",
            ok_codes: &[200, 401],
            ready_path: Some("/readyz"),
            health_timeout_ms: 3000,
            start_grace_secs: 30,
            is_gateway: &is_gw,
            log_file: Some("/tmp/gateway.log"),
            wedge_markers: &["Process will stay alive"],
        }
    }

    fn obs(
        procs: Vec<ProcessInfo>,
        listeners: Vec<Listener>,
        http: Option<HttpProbe>,
    ) -> Observation {
        Observation {
            procs,
            listeners,
            http,
            http_timed_out: false,
            not_ready: false,
            uptime: Some(100_000),
            wedge_line: None,
            exit_log: None,
            launch_refusal: None,
        }
    }

    fn gateway_proc() -> ProcessInfo {
        // Started at 500 s after boot: 500 s old at uptime 1000.
        proc_(40, 50_000, 1, "S", &["openclaw-gateway"])
    }

    #[test]
    fn gateway_with_listener_and_health_200_is_healthy() {
        let o = obs(
            vec![gateway_proc()],
            vec![listener(40, 50_000)],
            Some(HttpProbe::Accepted(200)),
        );
        assert_eq!(
            assess(&spec(), &o),
            Verdict::Healthy {
                pid: 40,
                start_time: 50_000,
                code: 200
            }
        );
        let r = report("gateway", &spec(), &o, &assess(&spec(), &o)).build();
        assert!(
            r.evidence
                .iter()
                .any(|kv| kv.key == "http" && kv.value == "200")
        );
        assert!(
            r.evidence
                .iter()
                .any(|kv| kv.key == "start-time" && kv.value == "50000")
        );
    }

    #[test]
    fn young_live_gateway_that_is_not_ready_is_starting() {
        let young = proc_(40, 99_000, 1, "S", &["openclaw-gateway"]);
        let mut o = obs(
            vec![young],
            vec![listener(40, 99_000)],
            Some(HttpProbe::Accepted(200)),
        );
        o.not_ready = true;
        let v = assess(&spec(), &o);
        assert!(
            matches!(
                v,
                Verdict::Starting {
                    pid: 40,
                    age_secs: 10
                }
            ),
            "{v:?}"
        );
        let r = report("gateway", &spec(), &o, &v).build();
        assert_eq!(r.health, crate::Health::Unknown);
        assert!(r.summary.contains("/readyz"), "{}", r.summary);
    }

    #[test]
    fn health_401_counts_as_alive() {
        let o = obs(
            vec![gateway_proc()],
            vec![listener(40, 50_000)],
            Some(HttpProbe::Accepted(401)),
        );
        assert!(assess(&spec(), &o).is_healthy());
    }

    #[test]
    fn nothing_running_is_broken_and_repairable() {
        let o = obs(vec![proc_(1, 1, 0, "S", &["sandbox-entry"])], vec![], None);
        assert_eq!(assess(&spec(), &o), Verdict::NotRunning);
        let r = report("gateway", &spec(), &o, &Verdict::NotRunning).build();
        assert!(r.repairable);
    }

    #[test]
    fn alive_without_listener_past_grace_is_wedged() {
        let o = obs(vec![gateway_proc()], vec![], None);
        match assess(&spec(), &o) {
            Verdict::NotServing { pid: 40, why } => assert!(why.contains("wedged"), "{why}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn young_gateway_without_listener_is_starting_not_broken() {
        let young = proc_(
            40,
            99_000,
            1,
            "S",
            &[
                "node",
                "/usr/lib/node_modules/openclaw/openclaw.mjs",
                "gateway",
                "run",
            ],
        );
        let o = obs(vec![young], vec![], None);
        assert!(matches!(
            assess(&spec(), &o),
            Verdict::Starting { pid: 40, .. }
        ));
        let r = report("gateway", &spec(), &o, &assess(&spec(), &o)).build();
        assert_eq!(r.health, crate::Health::Unknown);
    }

    #[test]
    fn young_gateway_whose_log_says_it_gave_up_is_wedged() {
        let young = proc_(40, 99_000, 1, "S", &["openclaw-gateway"]);
        let mut o = obs(vec![young], vec![], None);
        o.wedge_line = Some(
            "2026-09-20T10:00:05Z [gateway] gateway startup failed: x. Process will stay alive"
                .into(),
        );
        assert!(
            matches!(assess(&spec(), &o), Verdict::NotServing { why, .. } if why.contains("gave up"))
        );
    }

    #[test]
    fn unknown_age_without_listener_is_undecided() {
        let mut o = obs(vec![gateway_proc()], vec![], None);
        o.uptime = None;
        assert!(matches!(assess(&spec(), &o), Verdict::Undecided { .. }));
    }

    #[test]
    fn http_5xx_is_broken() {
        let o = obs(
            vec![gateway_proc()],
            vec![listener(40, 50_000)],
            Some(HttpProbe::Rejected(500)),
        );
        assert!(
            matches!(assess(&spec(), &o), Verdict::NotServing { why, .. } if why.contains("500"))
        );
    }

    #[test]
    fn frozen_gateway_that_times_out_is_broken_with_evidence() {
        let mut o = obs(
            vec![gateway_proc()],
            vec![listener(40, 50_000)],
            Some(HttpProbe::NoAnswer("timed out".into())),
        );
        o.http_timed_out = true;
        let v = assess(&spec(), &o);
        assert!(
            matches!(&v, Verdict::NotServing { why, .. } if why.contains("frozen")),
            "{v:?}"
        );
        let r = report("gateway", &spec(), &o, &v).build();
        assert!(r.repairable);
        assert!(
            r.evidence
                .iter()
                .any(|kv| kv.key == "http" && kv.value == "timeout")
        );
    }

    #[test]
    fn sigstopped_gateway_is_broken_even_before_http() {
        let stopped = proc_(40, 50_000, 1, "T", &["openclaw-gateway"]);
        let o = obs(vec![stopped], vec![listener(40, 50_000)], None);
        assert!(
            matches!(assess(&spec(), &o), Verdict::NotServing { why, .. } if why.contains("stopped"))
        );
    }

    #[test]
    fn other_http_errors_are_undecided() {
        let o = obs(
            vec![gateway_proc()],
            vec![listener(40, 50_000)],
            Some(HttpProbe::NoAnswer("unavailable".into())),
        );
        assert!(matches!(assess(&spec(), &o), Verdict::Undecided { .. }));
    }

    #[test]
    fn foreign_listener_is_named_and_not_repairable() {
        let o = obs(
            vec![proc_(
                77,
                5,
                1,
                "S",
                &["python3", "-m", "http.server", "18789"],
            )],
            vec![listener(77, 5)],
            None,
        );
        let v = assess(&spec(), &o);
        assert!(
            matches!(&v, Verdict::Foreign { owner } if owner.contains("pid 77") && owner.contains("http.server"))
        );
        let r = report("gateway", &spec(), &o, &v).build();
        assert!(!r.repairable);
        assert_eq!(r.health, crate::Health::Broken);
    }

    #[test]
    fn listener_held_by_gateway_child_counts_as_gateway() {
        let child = proc_(41, 50_100, 40, "S", &["node", "/x/spawn-broker/worker.js"]);
        let o = obs(
            vec![gateway_proc(), child],
            vec![listener(41, 50_100)],
            Some(HttpProbe::Accepted(200)),
        );
        assert!(matches!(
            assess(&spec(), &o),
            Verdict::Healthy { pid: 40, .. }
        ));
    }

    #[test]
    fn listener_with_unknown_owner_is_undecided() {
        let l = Listener {
            address: "127.0.0.1".into(),
            port: 18789,
            owner: None,
        };
        let o = obs(vec![gateway_proc()], vec![l], None);
        assert!(matches!(assess(&spec(), &o), Verdict::Undecided { .. }));
    }

    #[test]
    fn listener_owned_by_reused_pid_is_not_the_gateway() {
        // The listener's identity is pid 40 with another start time: not our gateway.
        let o = obs(vec![gateway_proc()], vec![listener(40, 1)], None);
        assert!(matches!(assess(&spec(), &o), Verdict::Foreign { .. }));
    }

    #[test]
    fn gateway_that_just_exited_shows_its_log_in_the_summary() {
        let mut o = obs(vec![proc_(1, 1, 0, "S", &["sandbox-entry"])], vec![], None);
        o.exit_log = Some(
            "2 s ago; last lines of /tmp/gateway.log: Another gateway owner lease is still active"
                .into(),
        );
        let r = report("gateway", &spec(), &o, &assess(&spec(), &o)).build();
        assert_eq!(r.health, crate::Health::Broken);
        assert!(r.repairable);
        assert!(r.summary.contains("lease is still active"), "{}", r.summary);
        assert!(
            r.evidence
                .iter()
                .any(|kv| kv.key == "gone" && kv.value == "true")
        );
    }
}
