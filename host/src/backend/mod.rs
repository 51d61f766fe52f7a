//! Backends: where a sandbox lives and how the host reaches into it.
//!
//! Every capability a plugin gets is implemented on top of [`Backend`]. The
//! runtime never talks to Docker or to the local machine directly, so a new
//! backend (Kubernetes, a VM) only has to implement this trait, and
//! [`events::Discovery`] to be supervised by `runner watch`.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

mod bounded;
pub mod docker;
pub mod events;
pub mod local;
pub(crate) mod procfs;
pub mod provision;

/// A command to run inside a sandbox and wait for.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    /// `name`, `uid`, `name:group` or `uid:gid`; `None` = the sandbox default.
    pub user: Option<String>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<Vec<u8>>,
    pub workdir: Option<String>,
    /// Hard deadline; on expiry the process group is killed.
    pub timeout: Duration,
    /// Cap per output stream, in bytes.
    pub max_output: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// True when either stream was cut at `max_output`.
    pub truncated: bool,
}

/// What a sealed exec ran to, and what the host noticed about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedOutput {
    pub output: ExecResult,
    /// The command failed reporting a write the read-only view refused.
    pub write_refused: bool,
}

/// A long-running process to launch detached.
#[derive(Debug, Clone, Default)]
pub struct SpawnSpec {
    pub argv: Vec<String>,
    pub user: Option<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    /// Absolute path inside the sandbox; stdout and stderr are appended.
    pub log_file: String,
}

/// pid + start time (field 22 of `/proc/<pid>/stat`), both as seen inside
/// the sandbox's pid namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessId {
    pub pid: u32,
    pub start_time: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    pub kind: FileKind,
    /// `st_mode & 0o7777`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    pub data: Vec<u8>,
    pub truncated: bool,
}

/// Atomic replace of a file (temp file in the same dir + rename).
#[derive(Debug, Clone)]
pub struct WriteSpec {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub id: ProcessId,
    pub ppid: u32,
    pub uid: u32,
    pub state: String,
    pub comm: String,
    pub cmdline: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub address: String,
    pub port: u16,
    pub owner: Option<ProcessId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
    Int,
    Hup,
    Cont,
}

/// Lifecycle state of a sandbox as the backend reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxState {
    Running,
    Paused,
    Restarting,
    /// Stopped; `exit_code` of the last run.
    Exited {
        exit_code: i64,
    },
    /// Created but never started, being removed, dead, ...
    Other(String),
}

#[derive(Debug, Clone)]
pub struct SandboxInfo {
    /// Stable id (container id); changes when the sandbox is recreated.
    pub id: String,
    pub name: String,
    pub state: SandboxState,
    pub labels: Vec<(String, String)>,
    /// RFC 3339 start time of the current (or last) run.
    pub started_at: Option<String>,
}

/// Typed backend failure. Messages name the cause and, where there is one,
/// the fix.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BackendError {
    #[error("denied: {0}")]
    Denied(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
    #[error("no such binary: {0}")]
    NoSuchBinary(String),
    #[error("no such user: {0}")]
    NoSuchUser(String),
    /// The sandbox does not exist (exit 3 at the CLI).
    #[error("sandbox '{0}' not found; check the name with `docker ps -a`")]
    SandboxMissing(String),
    /// The sandbox exists but is not running, so it cannot be reached.
    #[error("sandbox '{name}' is not running ({state})")]
    NotRunning { name: String, state: String },
    /// The engine cannot be reached at all (exit 3 at the CLI).
    #[error("container engine unreachable: {cause}; fix: {fix}")]
    EngineUnreachable { cause: String, fix: String },
}

/// A byte stream to a port inside a sandbox. `Any` lets the forward relay
/// recognise a plain `tokio::net::TcpStream` (netns connect, local backend)
/// and move its bytes with splice(2) instead of copying them.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + std::any::Any {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Everything the host can do to a sandbox. All methods are bounded: an
/// implementation never waits longer than the deadline it was given or, for
/// calls without one, than its own short internal deadline.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// `docker` or `local`.
    fn kind(&self) -> &'static str;

    /// State of the sandbox; `SandboxMissing` when it does not exist.
    async fn inspect(&self, sandbox: &str) -> Result<SandboxInfo, BackendError>;
    /// Start a stopped sandbox and wait until the engine reports it running.
    async fn start(&self, sandbox: &str) -> Result<(), BackendError>;

    async fn exec(&self, sandbox: &str, spec: ExecSpec) -> Result<ExecResult, BackendError>;
    /// A command that can read the sandbox but cannot change it (`exec`
    /// during probe): its files read-only, as a non-root user, unable to
    /// see or signal its processes or reach its network. A backend that
    /// cannot guarantee all of that refuses with `Denied`; it never falls
    /// back to a plain exec.
    async fn exec_sealed(
        &self,
        sandbox: &str,
        spec: ExecSpec,
    ) -> Result<SealedOutput, BackendError>;
    async fn spawn_detached(
        &self,
        sandbox: &str,
        spec: SpawnSpec,
    ) -> Result<ProcessId, BackendError>;

    /// `lstat` inside the sandbox root; `None` when absent.
    async fn stat(&self, sandbox: &str, path: &str) -> Result<Option<FileStat>, BackendError>;
    /// Reads at most `max` bytes; a symlink as last component is `Denied`.
    async fn read_file(
        &self,
        sandbox: &str,
        path: &str,
        max: usize,
    ) -> Result<FileContent, BackendError>;
    /// Atomic replace; any symlink on the path is `Denied`.
    async fn write_file(&self, sandbox: &str, spec: WriteSpec) -> Result<(), BackendError>;
    /// Compare-and-delete of a regular file; see the WIT `files.remove-if`.
    async fn remove_file_if(
        &self,
        sandbox: &str,
        path: &str,
        if_content: Option<Vec<u8>>,
    ) -> Result<bool, BackendError>;
    async fn list_dir(
        &self,
        sandbox: &str,
        path: &str,
        max: usize,
    ) -> Result<Option<Vec<String>>, BackendError>;

    async fn processes(&self, sandbox: &str) -> Result<Vec<ProcessInfo>, BackendError>;
    async fn listeners(&self, sandbox: &str) -> Result<Vec<Listener>, BackendError>;
    /// Signal `id` only if its start time still matches; `Ok(false)` if gone.
    async fn signal(
        &self,
        sandbox: &str,
        id: ProcessId,
        signal: Signal,
    ) -> Result<bool, BackendError>;

    /// A TCP connection to `127.0.0.1:port` inside the sandbox's network
    /// namespace (netns connect on a local engine as root, else an exec relay).
    async fn connect_loopback(
        &self,
        sandbox: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Box<dyn Stream>, BackendError>;
}
