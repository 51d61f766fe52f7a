//! The local backend: the "sandbox" is this host (agents installed
//! natively). Exec runs local processes; files, processes and listeners go
//! through our own `/proc` view, so they behave exactly as for a container.

use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::bounded::{
    CappedBuf, INTERNAL_DEADLINE, SharedBuf, collect, drain, run_blocking, spawn_error,
};
use super::procfs::{self, ProcView, ResolvedUser};
use super::{
    Backend, BackendError, ExecResult, ExecSpec, FileContent, FileStat, Listener, ProcessId,
    ProcessInfo, SandboxInfo, SandboxState, SealedOutput, Signal, SpawnSpec, Stream, WriteSpec,
};

/// How long output pipes may stay open after the command exited (a
/// backgrounded child can hold them); past that, what was read is kept.
const PIPE_GRACE: Duration = Duration::from_millis(500);
/// How long to wait for a killed process group to disappear.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// This host as a sandbox named `name` (the `--sandbox` value).
#[derive(Debug, Clone)]
pub struct LocalBackend {
    name: String,
}

impl LocalBackend {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, sandbox: &str) -> Result<(), BackendError> {
        if sandbox == self.name {
            Ok(())
        } else {
            Err(BackendError::SandboxMissing(sandbox.to_string()))
        }
    }

    async fn view_op<T, F>(&self, sandbox: &str, what: &str, f: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&ProcView) -> Result<T, BackendError> + Send + 'static,
    {
        self.check(sandbox)?;
        run_blocking(what, INTERNAL_DEADLINE, move || f(&ProcView::for_self()?)).await
    }
}

#[async_trait::async_trait]
impl Backend for LocalBackend {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn inspect(&self, sandbox: &str) -> Result<SandboxInfo, BackendError> {
        self.check(sandbox)?;
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let started_at = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<i64>().ok())
                .map(|secs| crate::time::rfc3339(secs, None))
        });
        Ok(SandboxInfo {
            // The boot id changes when "the sandbox" (the host) restarts.
            id: format!("local:{boot_id}"),
            name: self.name.clone(),
            state: SandboxState::Running,
            labels: Vec::new(),
            started_at,
        })
    }

    async fn start(&self, sandbox: &str) -> Result<(), BackendError> {
        self.check(sandbox)
    }

    async fn exec(&self, sandbox: &str, spec: ExecSpec) -> Result<ExecResult, BackendError> {
        self.check(sandbox)?;
        let deadline = Instant::now() + spec.timeout;
        let mut cmd = self
            .command(
                &spec.argv,
                spec.user.as_deref(),
                &spec.env,
                spec.workdir.as_deref(),
            )
            .await?;
        cmd.stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a timeout kills the whole tree in one go.
        .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| spawn_error(&spec.argv[0], "this host's", &e))?;
        let leader = child.id().unwrap_or(0);

        if let (Some(data), Some(mut stdin)) = (spec.stdin, child.stdin.take()) {
            // A command that never reads stdin must not block us: the writer
            // is its own task and the pipe closes when it finishes.
            tokio::spawn(async move {
                let _ = stdin.write_all(&data).await;
                let _ = stdin.shutdown().await;
            });
        }
        let out_buf: SharedBuf = Arc::new(Mutex::new(CappedBuf::new(spec.max_output)));
        let err_buf: SharedBuf = Arc::new(Mutex::new(CappedBuf::new(spec.max_output)));
        let out = tokio::spawn(drain(child.stdout.take(), out_buf.clone()));
        let err = tokio::spawn(drain(child.stderr.take(), err_buf.clone()));

        let status = match tokio::time::timeout_at(deadline, child.wait()).await {
            Ok(status) => status.map_err(|e| BackendError::Failed(format!("wait: {e}")))?,
            Err(_) => {
                out.abort();
                err.abort();
                kill_tree(leader).await?;
                let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
                return Err(BackendError::Timeout(format!(
                    "'{}' ran longer than {:?}; its process group was killed",
                    spec.argv[0], spec.timeout
                )));
            }
        };
        let grace = deadline.min(Instant::now() + PIPE_GRACE);
        let stdout = collect(out, out_buf, grace).await;
        let stderr = collect(err, err_buf, grace).await;
        let truncated = stdout.truncated() || stderr.truncated();
        Ok(ExecResult {
            exit_code: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            stdout: stdout.into_inner(),
            stderr: stderr.into_inner(),
            truncated,
        })
    }

    async fn exec_sealed(
        &self,
        sandbox: &str,
        spec: ExecSpec,
    ) -> Result<SealedOutput, BackendError> {
        self.check(sandbox)?;
        // The "sandbox" is this host, seen through our own process.
        let me = std::process::id();
        let start = procfs::start_time(me).ok_or_else(|| {
            BackendError::Unavailable("cannot read our own /proc/self/stat".into())
        })?;
        let view = run_blocking("open /proc view", INTERNAL_DEADLINE, ProcView::for_self).await?;
        view.exec_sealed(start, spec).await
    }

    async fn spawn_detached(
        &self,
        sandbox: &str,
        spec: SpawnSpec,
    ) -> Result<ProcessId, BackendError> {
        self.check(sandbox)?;
        procfs::split_parent(&spec.log_file)?;
        let user = match &spec.user {
            Some(u) => Some(resolve_local_user(u).await?),
            None => None,
        };
        let log_path = spec.log_file.clone();
        let owner = user.as_ref().map(|u| (u.uid, u.gid));
        let log = run_blocking("open log file", INTERNAL_DEADLINE, move || {
            open_log(&log_path, owner)
        })
        .await?;
        let log_err = log
            .try_clone()
            .map_err(|e| BackendError::Failed(format!("dup log fd: {e}")))?;
        let mut cmd = self
            .command(
                &spec.argv,
                spec.user.as_deref(),
                &spec.env,
                spec.workdir.as_deref(),
            )
            .await?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        // SAFETY: setsid is async-signal-safe and touches no shared state.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| spawn_error(&spec.argv[0], "this host's", &e))?;
        let pid = child
            .id()
            .ok_or_else(|| BackendError::Failed("spawned process has no pid".into()))?;
        // Our child cannot be reaped (and its pid reused) before we drop the
        // handle, so this read names exactly the process we started.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| procfs::parse_stat(&s))
            .ok_or_else(|| BackendError::Failed(format!("cannot read /proc/{pid}/stat")))?;
        // Dropping the handle detaches it; tokio reaps it when it exits.
        drop(child);
        Ok(ProcessId {
            pid,
            start_time: stat.start_time,
        })
    }

    async fn stat(&self, sandbox: &str, path: &str) -> Result<Option<FileStat>, BackendError> {
        let path = path.to_string();
        self.view_op(sandbox, "stat", move |v| v.stat(&path)).await
    }

    async fn read_file(
        &self,
        sandbox: &str,
        path: &str,
        max: usize,
    ) -> Result<FileContent, BackendError> {
        let path = path.to_string();
        self.view_op(sandbox, "read file", move |v| v.read_file(&path, max))
            .await
    }

    async fn write_file(&self, sandbox: &str, spec: WriteSpec) -> Result<(), BackendError> {
        self.view_op(sandbox, "write file", move |v| v.write_file(&spec))
            .await
    }

    async fn remove_file_if(
        &self,
        sandbox: &str,
        path: &str,
        if_content: Option<Vec<u8>>,
    ) -> Result<bool, BackendError> {
        let path = path.to_string();
        self.view_op(sandbox, "remove file", move |v| {
            v.remove_file_if(&path, if_content.as_deref())
        })
        .await
    }

    async fn list_dir(
        &self,
        sandbox: &str,
        path: &str,
        max: usize,
    ) -> Result<Option<Vec<String>>, BackendError> {
        let path = path.to_string();
        self.view_op(sandbox, "list dir", move |v| v.list_dir(&path, max))
            .await
    }

    async fn processes(&self, sandbox: &str) -> Result<Vec<ProcessInfo>, BackendError> {
        self.view_op(sandbox, "list processes", |v| v.processes())
            .await
    }

    async fn listeners(&self, sandbox: &str) -> Result<Vec<Listener>, BackendError> {
        self.view_op(sandbox, "list listeners", |v| v.listeners())
            .await
    }

    async fn signal(
        &self,
        sandbox: &str,
        id: ProcessId,
        signal: Signal,
    ) -> Result<bool, BackendError> {
        self.view_op(sandbox, "signal", move |v| v.signal(id, signal))
            .await
    }

    async fn connect_loopback(
        &self,
        sandbox: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Box<dyn Stream>, BackendError> {
        self.check(sandbox)?;
        let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                // Small request/response exchanges (forwards, probes) must
                // not wait for Nagle.
                let _ = s.set_nodelay(true);
                Ok(Box::new(s))
            }
            Ok(Err(e)) => Err(procfs::connect_error(port, timeout, &e)),
            Err(_) => Err(BackendError::Timeout(format!(
                "connect to 127.0.0.1:{port} took longer than {timeout:?}"
            ))),
        }
    }
}

impl LocalBackend {
    /// A command with argv, env, workdir and (when asked) a user switch.
    async fn command(
        &self,
        argv: &[String],
        user: Option<&str>,
        env: &[(String, String)],
        workdir: Option<&str>,
    ) -> Result<tokio::process::Command, BackendError> {
        let Some(program) = argv.first() else {
            return Err(BackendError::Failed("empty argv".into()));
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&argv[1..]).kill_on_drop(false);
        if let Some(dir) = workdir {
            // Checked up front: a missing cwd would otherwise surface as the
            // same ENOENT as a missing binary.
            if !std::path::Path::new(dir).is_dir() {
                return Err(BackendError::Failed(format!(
                    "workdir {dir} is not a directory"
                )));
            }
            cmd.current_dir(dir);
        }
        if let Some(spec) = user {
            let u = resolve_local_user(spec).await?;
            let euid = rustix::process::geteuid().as_raw();
            if euid != 0 && u.uid != euid {
                return Err(BackendError::Denied(format!(
                    "running as user '{spec}' needs root; runner runs as uid {euid}"
                )));
            }
            if euid == 0 {
                cmd.uid(u.uid).gid(u.gid);
            }
            if let Some(home) = &u.home {
                cmd.env("HOME", home);
            }
            if let Some(name) = &u.name {
                cmd.env("USER", name).env("LOGNAME", name);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        Ok(cmd)
    }
}

async fn resolve_local_user(spec: &str) -> Result<ResolvedUser, BackendError> {
    let spec = spec.to_string();
    run_blocking("resolve user", INTERNAL_DEADLINE, move || {
        ProcView::for_self()?.resolve_user(&spec)
    })
    .await
}

/// Opens (creating) the log file for appending, never through a symlink.
fn open_log(path: &str, owner: Option<(u32, u32)>) -> Result<std::fs::File, BackendError> {
    let existed = std::fs::symlink_metadata(path).is_ok();
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => {
                BackendError::Denied(format!("log file {path} is a symlink"))
            }
            _ => BackendError::Failed(format!("open log file {path}: {e}")),
        })?;
    if let (false, Some((uid, gid))) = (existed, owner) {
        // The log belongs to the user the process runs as, as it would had
        // that user's shell created it.
        rustix::fs::fchown(
            &file,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(|e| BackendError::Failed(format!("chown log file {path}: {e}")))?;
    }
    Ok(file)
}

/// SIGKILL to the process group led by `leader`, then proof that no member
/// is left (session members too, in case one changed its group).
async fn kill_tree(leader: u32) -> Result<(), BackendError> {
    if leader == 0 {
        return Ok(());
    }
    let until = Instant::now() + KILL_GRACE;
    loop {
        let left = run_blocking("kill process group", INTERNAL_DEADLINE, move || {
            ProcView::for_self()?.kill_session(leader)
        })
        .await?;
        if left == 0 {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(BackendError::Failed(format!(
                "{left} process(es) of group {leader} survived SIGKILL"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
