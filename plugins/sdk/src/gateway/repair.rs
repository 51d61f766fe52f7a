//! The `gateway` link's repair: re-observe, retire, give the sandbox's own
//! supervisor its window, launch.

use super::retire::port_holder;
use super::{
    GatewaySpec, LaunchError, LaunchSpec, Launched, StopBudget, Verdict, assess, launch, observe,
    retire,
};
use crate::{RepairOutcome, Sandbox};
use std::time::Duration;

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
