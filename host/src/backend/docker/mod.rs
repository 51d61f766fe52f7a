//! The Docker backend (bollard).
//!
//! Exec, spawn, inspect and start go through the Engine API. Files,
//! processes, listeners, signals and loopback connects go through the host's
//! `/proc/<State.Pid>` when that is possible (local engine, runner is root,
//! the pid verified to be the container's init); otherwise signals and
//! loopback connects go through an exec in the container and the rest is
//! `Unavailable`.

mod context;
pub mod endpoint;
mod errors;
mod events;
mod exec;
mod fallback;
mod host_form;
mod provision;
mod small_file;
mod spawn;
mod target;
mod tls;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};
use bollard::{API_DEFAULT_VERSION, Docker};
use tokio::time::Instant;

use super::bounded::{INTERNAL_DEADLINE, run_blocking};
use super::procfs::ProcView;
use super::{
    Backend, BackendError, ExecResult, ExecSpec, FileContent, FileStat, Listener, ProcessId,
    ProcessInfo, SandboxInfo, SandboxState, SealedOutput, Signal, SpawnSpec, Stream, WriteSpec,
};
use endpoint::{Endpoint, EnvView};
use target::{Access, Target};

/// Deadline for one engine request that is not an exec.
const ENGINE_CALL: Duration = Duration::from_secs(10);
/// Longest connect (version negotiation + ping) when no deadline is given.
const CONNECT_DEADLINE: Duration = Duration::from_secs(8);
/// How long `start` waits for the container to be reported running.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// bollard's own per-request backstop (seconds); every call is bounded more
/// tightly by the caller.
const CLIENT_TIMEOUT_S: u64 = 120;

/// A Docker engine reached through bollard.
pub struct DockerBackend {
    docker: Docker,
    endpoint: String,
    /// The engine is on this machine: a unix socket, or TCP to loopback.
    local_engine: bool,
    /// Whether `/proc/<init>` may be used at all (see `exec_only`).
    host_proc: bool,
    /// Per container name: the verified init process and how to reach it.
    targets: Mutex<HashMap<String, Target>>,
}

impl std::fmt::Debug for DockerBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerBackend")
            .field("endpoint", &self.endpoint)
            .field("local_engine", &self.local_engine)
            .field("host_proc", &self.host_proc)
            .finish()
    }
}

impl DockerBackend {
    /// Connects to the engine the environment names (see [`endpoint`]),
    /// negotiates the API version and pings it, all within a few seconds.
    pub async fn connect() -> Result<Self, BackendError> {
        Self::connect_within(CONNECT_DEADLINE).await
    }

    /// [`DockerBackend::connect`] that gives up after `limit` (a command's
    /// `--timeout` bounds the connection too). A configuration that names
    /// no usable engine is `Failed`; the CLI resolves first
    /// ([`endpoint::resolve`]) to answer it with exit 2.
    pub async fn connect_within(limit: Duration) -> Result<Self, BackendError> {
        let endpoint = endpoint::resolve(&EnvView::from_process())
            .map_err(|e| BackendError::Failed(e.to_string()))?;
        Self::connect_endpoint_within(&endpoint, limit).await
    }

    /// Connects to `endpoint` (`unix:///path`, `tcp://host:port`, ...) in
    /// plain text, whatever the environment says.
    pub async fn connect_to(endpoint: &str) -> Result<Self, BackendError> {
        let endpoint = Endpoint {
            host: endpoint.to_string(),
            tls: None,
            source: "given".into(),
        };
        Self::connect_endpoint_within(&endpoint, CONNECT_DEADLINE).await
    }

    /// [`DockerBackend::connect_endpoint_within`] with the default deadline.
    pub async fn connect_endpoint(target: &Endpoint) -> Result<Self, BackendError> {
        Self::connect_endpoint_within(target, CONNECT_DEADLINE).await
    }

    /// Connects to a resolved endpoint (TLS when it carries TLS files),
    /// within `limit` for the TLS handshake, version and ping together.
    pub async fn connect_endpoint_within(
        target: &Endpoint,
        limit: Duration,
    ) -> Result<Self, BackendError> {
        let deadline = Instant::now() + limit;
        let left = || deadline.saturating_duration_since(Instant::now());
        let endpoint = target.host.clone();
        let local_engine = host_form::is_this_machine(&endpoint);
        if let Some(path) = endpoint.strip_prefix("unix://") {
            match std::fs::metadata(path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(errors::unreachable(
                        format!("no engine socket at {path}"),
                        false,
                    ));
                }
                Err(e) => {
                    return Err(errors::unreachable(
                        format!("cannot stat {path}: {e}"),
                        e.kind() == std::io::ErrorKind::PermissionDenied,
                    ));
                }
            }
        }
        let docker = client(target)?;
        let failed = |e: bollard::errors::Error| errors::connect_error(target, &e);
        let version_limit = left().min(Duration::from_secs(5));
        let docker = match tokio::time::timeout(version_limit, docker.negotiate_version()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Err(failed(e)),
            Err(_) => {
                return Err(errors::unreachable(
                    format!(
                        "{endpoint} did not answer /version within {} ms",
                        version_limit.as_millis()
                    ),
                    false,
                ));
            }
        };
        let ping_limit = left().min(Duration::from_secs(3));
        match tokio::time::timeout(ping_limit, docker.ping()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(failed(e)),
            Err(_) => {
                return Err(errors::unreachable(
                    format!(
                        "{endpoint} did not answer /_ping within {} ms",
                        ping_limit.as_millis()
                    ),
                    false,
                ));
            }
        }
        tracing::debug!(
            %endpoint,
            source = %target.source,
            tls = target.tls.is_some(),
            local_engine,
            "connected to container engine"
        );
        Ok(Self {
            docker,
            endpoint,
            local_engine,
            host_proc: true,
            targets: Mutex::new(HashMap::new()),
        })
    }

    /// Never use the host's `/proc` view: behave as with a remote or
    /// rootless engine (signals and loopback connects through an exec, the
    /// other file and process calls `Unavailable`). For operators who do not
    /// want runner entering container namespaces, and for testing that path.
    pub fn exec_only(mut self) -> Self {
        self.host_proc = false;
        self
    }

    /// The underlying client, for callers that need more of the Engine API
    /// (events, for example).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// `unix:///var/run/docker.sock`, `tcp://…`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn inspect_raw(&self, sandbox: &str) -> Result<ContainerInspectResponse, BackendError> {
        match tokio::time::timeout(ENGINE_CALL, self.docker.inspect_container(sandbox, None)).await
        {
            Ok(r) => r.map_err(|e| errors::container_error(e, sandbox)),
            Err(_) => Err(BackendError::Timeout(format!(
                "inspecting '{sandbox}' took longer than {ENGINE_CALL:?}"
            ))),
        }
    }

    /// Runs `f` against the container's `/proc` view, or says why it can't.
    async fn with_view<T, F>(
        &self,
        sandbox: &str,
        what: &'static str,
        f: F,
    ) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&ProcView) -> Result<T, BackendError> + Send + 'static,
    {
        let target = self.target(sandbox).await?;
        match target.access {
            Access::HostProc => {
                run_blocking(what, INTERNAL_DEADLINE, move || f(&target.view()?)).await
            }
            Access::ExecOnly(why) => Err(BackendError::Unavailable(format!(
                "{what} needs the host's /proc view of the container, which is not available: {why}"
            ))),
        }
    }
}

/// The bollard client for `endpoint`. Built per scheme rather than with
/// `connect_with_host`, which would switch to TLS by itself whenever
/// `DOCKER_TLS_VERIFY` is set at all (even empty, even for a context).
fn client(endpoint: &Endpoint) -> Result<Docker, BackendError> {
    let host = endpoint.host.as_str();
    let built = match &endpoint.tls {
        Some(files) => {
            tls::install_provider();
            // bollard strips tcp:// (and https://) only.
            let host = host.replacen("http://", "tcp://", 1);
            Docker::connect_with_ssl(
                &host,
                &files.key,
                &files.cert,
                &files.ca,
                CLIENT_TIMEOUT_S,
                API_DEFAULT_VERSION,
            )
        }
        None if host.starts_with("unix://") => {
            Docker::connect_with_unix(host, CLIENT_TIMEOUT_S, API_DEFAULT_VERSION)
        }
        None => Docker::connect_with_http(host, CLIENT_TIMEOUT_S, API_DEFAULT_VERSION),
    };
    built.map_err(|e| errors::connect_error(endpoint, &e))
}

/// Engine state → backend state.
fn sandbox_info(resp: &ContainerInspectResponse, fallback_name: &str) -> SandboxInfo {
    let state = resp.state.as_ref();
    let status = state.and_then(|s| s.status);
    let sandbox_state = match status {
        Some(ContainerStateStatusEnum::RUNNING) => SandboxState::Running,
        Some(ContainerStateStatusEnum::PAUSED) => SandboxState::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => SandboxState::Restarting,
        Some(ContainerStateStatusEnum::EXITED) => SandboxState::Exited {
            exit_code: state.and_then(|s| s.exit_code).unwrap_or(0),
        },
        Some(other) => SandboxState::Other(other.to_string()),
        None => SandboxState::Other("unknown".into()),
    };
    let mut labels: Vec<(String, String)> = resp
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .map(|l| l.into_iter().collect())
        .unwrap_or_default();
    labels.sort();
    SandboxInfo {
        id: resp.id.clone().unwrap_or_default(),
        name: resp
            .name
            .as_deref()
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| fallback_name.to_string()),
        state: sandbox_state,
        labels,
        started_at: state
            .and_then(|s| s.started_at.clone())
            .filter(|t| !t.starts_with("0001-")),
    }
}

fn state_text(state: &SandboxState) -> String {
    match state {
        SandboxState::Running => "running".into(),
        SandboxState::Paused => "paused".into(),
        SandboxState::Restarting => "restarting".into(),
        SandboxState::Exited { exit_code } => format!("exited with code {exit_code}"),
        SandboxState::Other(s) => s.clone(),
    }
}

#[async_trait::async_trait]
impl Backend for DockerBackend {
    fn kind(&self) -> &'static str {
        "docker"
    }

    async fn inspect(&self, sandbox: &str) -> Result<SandboxInfo, BackendError> {
        Ok(sandbox_info(&self.inspect_raw(sandbox).await?, sandbox))
    }

    async fn start(&self, sandbox: &str) -> Result<(), BackendError> {
        let deadline = Instant::now() + START_DEADLINE;
        match tokio::time::timeout_at(deadline, self.docker.start_container(sandbox, None)).await {
            Ok(Ok(())) => {}
            // 304: already started.
            Ok(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            })) => {}
            Ok(Err(e)) => return Err(errors::container_error(e, sandbox)),
            Err(_) => {
                return Err(BackendError::Timeout(format!(
                    "starting '{sandbox}' took longer than {START_DEADLINE:?}"
                )));
            }
        }
        let mut pause = Duration::from_millis(10);
        loop {
            let info = self.inspect(sandbox).await?;
            match info.state {
                SandboxState::Running => return Ok(()),
                SandboxState::Exited { exit_code } => {
                    return Err(BackendError::Failed(format!(
                        "'{sandbox}' exited with code {exit_code} right after start"
                    )));
                }
                _ => {}
            }
            if Instant::now() + pause >= deadline {
                return Err(BackendError::Timeout(format!(
                    "'{sandbox}' was not running {START_DEADLINE:?} after start ({})",
                    state_text(&info.state)
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    async fn exec(&self, sandbox: &str, spec: ExecSpec) -> Result<ExecResult, BackendError> {
        self.run_exec(sandbox, spec).await
    }

    async fn exec_sealed(
        &self,
        sandbox: &str,
        spec: ExecSpec,
    ) -> Result<SealedOutput, BackendError> {
        let target = self.target(sandbox).await?;
        match &target.access {
            Access::HostProc => target.view()?.exec_sealed(target.host_start, spec).await,
            Access::ExecOnly(why) => Err(BackendError::Denied(format!(
                "exec during probe runs sealed through the host's /proc view of the container, which is not available ({why}); a probe may not exec here"
            ))),
        }
    }
    async fn spawn_detached(
        &self,
        sandbox: &str,
        spec: SpawnSpec,
    ) -> Result<ProcessId, BackendError> {
        self.run_spawn(sandbox, spec).await
    }

    async fn stat(&self, sandbox: &str, path: &str) -> Result<Option<FileStat>, BackendError> {
        let path = path.to_string();
        self.with_view(sandbox, "stat", move |v| v.stat(&path))
            .await
    }

    async fn read_file(
        &self,
        sandbox: &str,
        path: &str,
        max: usize,
    ) -> Result<FileContent, BackendError> {
        let path = path.to_string();
        self.with_view(sandbox, "read file", move |v| v.read_file(&path, max))
            .await
    }

    async fn write_file(&self, sandbox: &str, spec: WriteSpec) -> Result<(), BackendError> {
        self.with_view(sandbox, "write file", move |v| v.write_file(&spec))
            .await
    }

    async fn remove_file_if(
        &self,
        sandbox: &str,
        path: &str,
        if_content: Option<Vec<u8>>,
    ) -> Result<bool, BackendError> {
        let path = path.to_string();
        self.with_view(sandbox, "remove file", move |v| {
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
        self.with_view(sandbox, "list dir", move |v| v.list_dir(&path, max))
            .await
    }

    async fn processes(&self, sandbox: &str) -> Result<Vec<ProcessInfo>, BackendError> {
        self.with_view(sandbox, "list processes", |v| v.processes())
            .await
    }

    async fn listeners(&self, sandbox: &str) -> Result<Vec<Listener>, BackendError> {
        self.with_view(sandbox, "list listeners", |v| v.listeners())
            .await
    }

    async fn signal(
        &self,
        sandbox: &str,
        id: ProcessId,
        signal: Signal,
    ) -> Result<bool, BackendError> {
        let target = self.target(sandbox).await?;
        match target.access {
            Access::HostProc => {
                run_blocking("signal", INTERNAL_DEADLINE, move || {
                    target.view()?.signal(id, signal)
                })
                .await
            }
            Access::ExecOnly(_) => self.signal_by_exec(sandbox, id, signal).await,
        }
    }

    async fn connect_loopback(
        &self,
        sandbox: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Box<dyn Stream>, BackendError> {
        let target = self.target(sandbox).await?;
        match target.access {
            Access::HostProc => {
                let view = run_blocking("netns", INTERNAL_DEADLINE, move || target.view()).await?;
                Ok(Box::new(view.connect_loopback(port, timeout).await?))
            }
            Access::ExecOnly(why) => {
                tracing::debug!(%sandbox, %why, "relaying loopback connect through an exec");
                self.relay_loopback(sandbox, port, timeout).await
            }
        }
    }
}
