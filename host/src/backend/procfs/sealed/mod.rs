//! The sealed exec: how `exec` runs while a plugin probes, so that `status`
//! cannot change a sandbox whatever the plugin asks to run.
//!
//! The command sees the sandbox's own filesystem, read-only, as the user it
//! asked for (never root: root becomes `nobody`), in fresh pid, network and
//! IPC namespaces with no privilege left and no way to regain it. It can
//! read files, not write them; it cannot see, signal or trace the sandbox's
//! processes; it reaches no network. [`child`] has the namespace steps,
//! [`plan`] the pure choices of user and environment.
//!
//! A process the host cannot seal (runner not root, no `/proc` view of the
//! sandbox) is refused rather than run unsealed.

mod child;
mod plan;

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::fs::{self as rfs, Mode, OFlags};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::ProcView;
use crate::backend::bounded::{
    CappedBuf, INTERNAL_DEADLINE, collect, drain, run_blocking, spawn_error,
};
use crate::backend::{BackendError, ExecResult, ExecSpec, SealedOutput};
use child::ChildPlan;

/// How long output pipes may stay open after the command exited. The whole
/// pid namespace dies with its first process, so nothing can hold them long.
const PIPE_GRACE: Duration = Duration::from_millis(500);
const KILL_GRACE: Duration = Duration::from_secs(5);
const ENVIRON_CAP: usize = 256 * 1024;

/// The words every common tool prints for EROFS ("touch: ... Read-only file
/// system", node's "EROFS: read-only file system").
const READ_ONLY_MARKER: &str = "read-only file system";

/// Runs `spec` sealed inside the sandbox whose init is `view`'s; `init_start`
/// is the init's start time as verified by the caller, re-checked once the
/// namespaces are open so a reused pid is never entered.
pub(crate) async fn run(
    view: ProcView,
    init_start: u64,
    spec: ExecSpec,
) -> Result<SealedOutput, BackendError> {
    if !rustix::process::geteuid().is_root() {
        return Err(BackendError::Denied(
            "exec during probe runs sealed (read-only, unprivileged, own namespaces), which needs runner to run as root"
                .into(),
        ));
    }
    let Some(program) = spec.argv.first().cloned() else {
        return Err(BackendError::Failed("empty argv".into()));
    };
    let deadline = Instant::now() + spec.timeout;
    let user = spec.user.clone().unwrap_or_else(|| "0".into());
    let workdir = spec.workdir.clone().unwrap_or_else(|| "/".into());
    let requested = spec.env.clone();
    let prepared = run_blocking("prepare sealed exec", INTERNAL_DEADLINE, move || {
        prepare(&view, init_start, &user, &workdir, &requested)
    })
    .await?;
    if prepared.demoted {
        tracing::debug!(%program, "sealed exec asked for root; runs as nobody");
    }

    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .envs(prepared.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let plan = Arc::new(prepared.plan);
    let hook = plan.clone();
    // SAFETY: `enter` makes only async-signal-safe system calls on data
    // allocated before the fork (see child.rs).
    unsafe {
        cmd.pre_exec(move || hook.enter());
    }
    let spawned = cmd.spawn();
    // The namespace descriptors were only needed by the fork.
    drop(prepared.fds);
    let mut child = spawned.map_err(|e| spawn_error(&program, "the sandbox's", &e))?;
    let outer = child.id().unwrap_or(0);

    if let (Some(data), Some(mut stdin)) = (spec.stdin, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = stdin.write_all(&data).await;
            let _ = stdin.shutdown().await;
        });
    }
    let out_buf = Arc::new(Mutex::new(CappedBuf::new(spec.max_output)));
    let err_buf = Arc::new(Mutex::new(CappedBuf::new(spec.max_output)));
    let out = tokio::spawn(drain(child.stdout.take(), out_buf.clone()));
    let err = tokio::spawn(drain(child.stderr.take(), err_buf.clone()));

    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(status) => status.map_err(|e| BackendError::Failed(format!("wait: {e}")))?,
        Err(_) => {
            out.abort();
            err.abort();
            kill(outer, &mut child).await;
            return Err(BackendError::Timeout(format!(
                "'{program}' ran longer than {:?}; it was killed with its namespace",
                spec.timeout
            )));
        }
    };
    let grace = deadline.min(Instant::now() + PIPE_GRACE);
    let stdout = collect(out, out_buf, grace).await;
    let stderr = collect(err, err_buf, grace).await;
    let truncated = stdout.truncated() || stderr.truncated();
    let exit_code = std::os::unix::process::ExitStatusExt::signal(&status)
        .map(|s| 128 + s)
        .or(status.code())
        .unwrap_or(-1);
    let stderr = stderr.into_inner();
    let write_refused = exit_code != 0
        && String::from_utf8_lossy(&stderr)
            .to_lowercase()
            .contains(READ_ONLY_MARKER);
    Ok(SealedOutput {
        output: ExecResult {
            exit_code,
            stdout: stdout.into_inner(),
            stderr,
            truncated,
        },
        write_refused,
    })
}

struct Prepared {
    plan: ChildPlan,
    /// Owns the descriptors `plan` refers to by number.
    fds: [OwnedFd; 2],
    env: Vec<(String, String)>,
    demoted: bool,
}

fn prepare(
    view: &ProcView,
    init_start: u64,
    user: &str,
    workdir: &str,
    requested: &[(String, String)],
) -> Result<Prepared, BackendError> {
    let resolved = view.resolve_user(user)?;
    let group = view
        .read_file("/etc/group", 4 * 1024 * 1024)
        .map(|c| String::from_utf8_lossy(&c.data).into_owned())
        .unwrap_or_default();
    let creds = plan::credentials(&resolved, &group, &view.uid_map, &view.gid_map)
        .map_err(BackendError::NoSuchUser)?;
    match view.stat(workdir)? {
        Some(st) if st.kind == crate::backend::FileKind::Directory => {}
        _ => {
            return Err(BackendError::Failed(format!(
                "workdir {workdir} is not a directory in the sandbox"
            )));
        }
    }
    let environ = super::read_capped(&format!("/proc/{}/environ", view.init), ENVIRON_CAP)
        .map_err(|e| {
            BackendError::Unavailable(format!("cannot read the sandbox's environment: {e}"))
        })?;
    let env = plan::environment(&environ, &creds, requested);
    let open_ns = |ns: &str| {
        let path = format!("/proc/{}/ns/{ns}", view.init);
        rfs::open(
            path.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| BackendError::Unavailable(format!("cannot open {path}: {e}")))
    };
    let fds = [open_ns("mnt")?, open_ns("uts")?];
    // The descriptors name the namespaces of whatever process had the pid
    // when they were opened: only if it is still the verified init are they
    // the sandbox's.
    if super::start_time(view.init) != Some(init_start) {
        return Err(BackendError::Unavailable(format!(
            "the sandbox's init process (host pid {}) is gone; the sandbox stopped or restarted",
            view.init
        )));
    }
    let plan = ChildPlan::new(
        fds[0].as_raw_fd(),
        fds[1].as_raw_fd(),
        creds.uid,
        creds.gid,
        creds.groups.clone(),
        workdir,
    )
    .map_err(|e| BackendError::Failed(format!("sealed exec: {e}")))?;
    Ok(Prepared {
        plan,
        fds,
        env,
        demoted: creds.demoted,
    })
}

/// Kills the sealed process: first the namespace's first process (its
/// death ends every process in the namespace), then the outer waiter.
async fn kill(outer: u32, child: &mut tokio::process::Child) {
    let inner = std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
        // Opened while the outer process, its only parent, is unreaped:
        // the pid cannot name anything else yet.
        .and_then(|pid| {
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
        });
    let _ = child.start_kill();
    if let Some(fd) = inner {
        let _ = rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL);
    }
    let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
}
