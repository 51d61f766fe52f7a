//! The sandbox's own supervisor: a PID 1 that (re)launches the gateway
//! itself (NemoClaw's `nemoclaw-start`). Runner must never start a second
//! gateway beside the one such an init is about to launch, so before a
//! launch it gives the supervisor a bounded window — and credits it when
//! its gateway appears.

use crate::poll::Backoff;
use crate::process::{self, args, basename};
use crate::{Error, ProcessId, ProcessInfo, Sandbox};
use std::time::{Duration, Instant};

/// What counts as the sandbox's supervisor and how long it may take.
#[derive(Debug, Clone)]
pub struct SupervisorSpec {
    /// PID-1 program names (argv0 or the script an interpreter runs, or the
    /// kernel comm) that relaunch the gateway on their own.
    pub names: Vec<String>,
    /// Longest wait for the supervisor's gateway to appear.
    pub grace: Duration,
}

/// PID 1, when it is one of `names`.
pub fn supervisor<'p>(procs: &'p [ProcessInfo], names: &[String]) -> Option<&'p ProcessInfo> {
    let init = process::by_pid(procs, 1)?;
    let words = args(init);
    // argv0, or the script of `/bin/bash /usr/local/bin/nemoclaw-start`.
    let named = |w: &str| names.iter().any(|n| n == basename(w));
    let is = names.contains(&init.comm)
        || words.first().is_some_and(|w| named(w))
        || (words.len() > 1 && words[0].ends_with("sh") && named(words[1]));
    is.then_some(init)
}

/// What the window ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// No supervisor: launch at once.
    NoSupervisor,
    /// The supervisor launched this gateway during the window.
    Launched {
        supervisor: String,
        gateway: ProcessId,
        after_ms: u64,
    },
    /// The window passed (or the supervisor went away) with no gateway.
    Nothing { supervisor: String },
}

/// The first gateway process not in `retired`, in one process table.
fn fresh_gateway(
    procs: &[ProcessInfo],
    is_gateway: &dyn Fn(&ProcessInfo) -> bool,
    retired: &[ProcessId],
) -> Option<ProcessId> {
    procs
        .iter()
        .filter(|p| !process::is_exited(p) && p.id.pid != 1 && is_gateway(p))
        .map(|p| p.id)
        .find(|id| !retired.contains(id))
}

/// Polls (100 ms) for up to `spec.grace` while PID 1 is a supervisor and no
/// fresh gateway exists. The last look happens right before returning, so
/// a caller that launches on `Nothing` does so after a check, not a sleep.
pub fn wait_for(
    sandbox: &Sandbox,
    spec: &SupervisorSpec,
    is_gateway: &dyn Fn(&ProcessInfo) -> bool,
    retired: &[ProcessId],
) -> Result<Wait, Error> {
    let started = Instant::now();
    let procs = sandbox.processes()?;
    let Some(init) = supervisor(&procs, &spec.names) else {
        return Ok(Wait::NoSupervisor);
    };
    let name = process::display(init);
    let init_id = init.id;
    let mut procs = procs;
    let mut pauses = Backoff::fixed(Duration::from_millis(100));
    loop {
        if let Some(gateway) = fresh_gateway(&procs, is_gateway, retired) {
            return Ok(Wait::Launched {
                supervisor: name,
                gateway,
                after_ms: started.elapsed().as_millis() as u64,
            });
        }
        let same_init = process::by_pid(&procs, 1).is_some_and(|p| p.id == init_id);
        if !same_init || !pauses.pause_until(started + spec.grace) {
            return Ok(Wait::Nothing { supervisor: name });
        }
        procs = sandbox.processes()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::tests::proc_;

    fn names() -> Vec<String> {
        vec!["nemoclaw-start".into()]
    }

    #[test]
    fn nemoclaw_start_as_pid_1_is_a_supervisor_and_sleep_infinity_is_not() {
        let script = [proc_(
            1,
            10,
            0,
            "S",
            &["/bin/bash", "/usr/local/bin/nemoclaw-start"],
        )];
        assert!(supervisor(&script, &names()).is_some());
        let direct = [proc_(
            1,
            10,
            0,
            "S",
            &["/usr/local/bin/nemoclaw-start", "--x"],
        )];
        assert!(supervisor(&direct, &names()).is_some());
        let keepalive = [proc_(1, 10, 0, "S", &["sleep", "infinity"])];
        assert!(supervisor(&keepalive, &names()).is_none());
        let other_script = [proc_(
            1,
            10,
            0,
            "S",
            &["/bin/sh", "/usr/local/bin/sandbox-entry"],
        )];
        assert!(supervisor(&other_script, &names()).is_none());
        // Not PID 1: a nemoclaw-start elsewhere supervises nothing here.
        let not_init = [proc_(7, 10, 1, "S", &["/usr/local/bin/nemoclaw-start"])];
        assert!(supervisor(&not_init, &names()).is_none());
    }

    #[test]
    fn a_gateway_the_old_identity_of_which_was_retired_is_not_fresh() {
        let gw = |pid, start| proc_(pid, start, 1, "S", &["openclaw", "gateway", "run"]);
        let is_gw = |p: &ProcessInfo| process::invocation(p, &["openclaw"], &["gateway"]).is_some();
        let old = ProcessId {
            pid: 40,
            start_time: 5,
        };
        assert_eq!(fresh_gateway(&[gw(40, 5)], &is_gw, &[old]), None);
        assert_eq!(
            fresh_gateway(&[gw(40, 5), gw(41, 9)], &is_gw, &[old]),
            Some(ProcessId {
                pid: 41,
                start_time: 9
            })
        );
        let zombie = proc_(42, 9, 1, "Z", &["openclaw", "gateway", "run"]);
        assert_eq!(fresh_gateway(&[zombie], &is_gw, &[]), None);
    }
}
