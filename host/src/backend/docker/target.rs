//! Which container process the host's `/proc` view is anchored to, and
//! whether that view may be used at all.

use std::time::{Duration, Instant};

use super::{DockerBackend, sandbox_info, state_text};
use crate::backend::procfs::{self, ProcView};
use crate::backend::{BackendError, ExecSpec, SandboxState};

/// How the host reaches into a container for files, processes and sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Access {
    /// Through `/proc/<init>` on this host (local engine, root, verified).
    HostProc,
    /// Only through the Engine API; the text says why.
    ExecOnly(String),
}

/// A running container as last verified.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub id: String,
    /// `State.Pid`: the container's init as a host pid.
    pub host_pid: u32,
    /// Field 22 of `/proc/<host_pid>/stat` when it was verified (0 when
    /// not visible), so a reused pid is never mistaken for the init.
    pub host_start: u64,
    pub access: Access,
    /// The `/proc` view built when the target was verified (its namespaces
    /// and id maps cannot change while the init lives).
    pub view: Option<ProcView>,
    /// When the engine last confirmed this container (inspect).
    pub inspected: Instant,
}

/// How long a verified target is reused without asking the engine again, as
/// long as its init is still the same process (pid + start time). One probe
/// makes dozens of capability calls; each used to cost an inspect.
const REUSE_WITHOUT_INSPECT: Duration = Duration::from_secs(2);

impl Target {
    /// The `/proc` view, refusing if the init pid now names another process.
    pub(super) fn view(&self) -> Result<ProcView, BackendError> {
        match procfs::start_time(self.host_pid) {
            Some(t) if t == self.host_start => match &self.view {
                Some(v) => Ok(v.clone()),
                None => ProcView::new(self.host_pid),
            },
            _ => Err(BackendError::Unavailable(format!(
                "the container's init process (host pid {}) is gone; the sandbox stopped or restarted",
                self.host_pid
            ))),
        }
    }
}

/// The container id appears in the init's cgroup path under both cgroup v1
/// (`/docker/<id>`) and v2 with systemd (`docker-<id>.scope`).
fn cgroup_names(pid: u32, id: &str) -> bool {
    !id.is_empty()
        && std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map(|c| c.contains(id))
            .unwrap_or(false)
}

impl DockerBackend {
    /// Inspects `sandbox` (it must be running or paused) and returns its
    /// verified target. Re-verifies whenever the container id or its init
    /// pid changed (recreate, restart). Within [`REUSE_WITHOUT_INSPECT`] of
    /// the last inspect, a target whose init is still the same process is
    /// reused without one (an inspect is an engine round trip of 1–3 ms on a
    /// new connection, and a probe makes dozens of calls).
    pub(super) async fn target(&self, sandbox: &str) -> Result<Target, BackendError> {
        if let Some(t) = self.recent_target(sandbox) {
            return Ok(t);
        }
        let resp = self.inspect_raw(sandbox).await?;
        let info = sandbox_info(&resp, sandbox);
        if !matches!(info.state, SandboxState::Running | SandboxState::Paused) {
            return Err(BackendError::NotRunning {
                name: sandbox.to_string(),
                state: state_text(&info.state),
            });
        }
        let pid = resp
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| BackendError::NotRunning {
                name: sandbox.to_string(),
                state: "running without an init pid".into(),
            })?;
        let cached = self
            .targets
            .lock()
            .map_err(|_| BackendError::Failed("target cache poisoned".into()))?
            .get(sandbox)
            .cloned();
        if let Some(mut t) = cached
            && t.id == info.id
            && t.host_pid == pid
            && (t.access != Access::HostProc || procfs::start_time(pid) == Some(t.host_start))
        {
            t.inspected = Instant::now();
            if let Ok(mut targets) = self.targets.lock() {
                targets.insert(sandbox.to_string(), t.clone());
            }
            return Ok(t);
        }
        let target = self.verify(sandbox, &info.id, pid).await;
        tracing::debug!(%sandbox, id = %target.id, pid, access = ?target.access, "sandbox target verified");
        self.targets
            .lock()
            .map_err(|_| BackendError::Failed("target cache poisoned".into()))?
            .insert(sandbox.to_string(), target.clone());
        Ok(target)
    }

    /// A target verified less than [`REUSE_WITHOUT_INSPECT`] ago whose init
    /// (read from the host's `/proc`) is still the same process: the same
    /// container instance is still there, so no inspect is needed. Only for
    /// host `/proc` access (exec-only targets have no such proof).
    fn recent_target(&self, sandbox: &str) -> Option<Target> {
        let t = self.targets.lock().ok()?.get(sandbox).cloned()?;
        (t.access == Access::HostProc
            && t.inspected.elapsed() < REUSE_WITHOUT_INSPECT
            && procfs::start_time(t.host_pid) == Some(t.host_start))
        .then_some(t)
    }

    async fn verify(&self, sandbox: &str, id: &str, pid: u32) -> Target {
        let host_start = procfs::start_time(pid);
        let access = if !self.host_proc {
            Access::ExecOnly("host /proc access is turned off for this backend".into())
        } else if !self.local_engine {
            Access::ExecOnly(format!(
                "the engine at {} is not on this host",
                self.endpoint
            ))
        } else if rustix::process::geteuid().as_raw() != 0 {
            Access::ExecOnly("runner is not root, so it cannot enter another process's root".into())
        } else if host_start.is_none() {
            Access::ExecOnly(format!(
                "host pid {pid} is not visible here: the engine runs in another pid namespace"
            ))
        } else if cgroup_names(pid, id) || self.exec_confirms_init(sandbox, pid).await {
            Access::HostProc
        } else {
            Access::ExecOnly(format!(
                "host pid {pid} could not be proven to be the container's init"
            ))
        };
        let view = (access == Access::HostProc)
            .then(|| ProcView::new(pid).ok())
            .flatten();
        Target {
            id: id.to_string(),
            host_pid: pid,
            host_start: host_start.unwrap_or(0),
            access,
            view,
            inspected: Instant::now(),
        }
    }

    /// Without a cgroup path to match (private cgroup namespace), the init
    /// is confirmed by comparing its start time from both sides.
    async fn exec_confirms_init(&self, sandbox: &str, pid: u32) -> bool {
        let spec = ExecSpec {
            argv: vec!["cat".into(), "/proc/1/stat".into()],
            user: Some("0".into()),
            timeout: Duration::from_secs(5),
            max_output: 4096,
            ..ExecSpec::default()
        };
        let inside = match Box::pin(self.run_exec(sandbox, spec)).await {
            Ok(r) if r.exit_code == 0 => procfs::parse_stat(&String::from_utf8_lossy(&r.stdout)),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(%sandbox, error = %e, "cannot confirm the init pid by exec");
                None
            }
        };
        let outside = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|l| procfs::parse_stat(&l));
        matches!((inside, outside), (Some(a), Some(b)) if a.start_time == b.start_time)
    }
}
