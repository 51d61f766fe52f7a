//! A backend that refuses to start a stopped sandbox: `runner watch` never
//! restarts a container, whatever races with its own inspect (a sandbox
//! stopped on purpose between the decision and the recover stays stopped).

use std::sync::Arc;
use std::time::Duration;

use crate::backend::{
    Backend, BackendError, ExecResult, ExecSpec, FileContent, FileStat, Listener, ProcessId,
    ProcessInfo, SandboxInfo, SealedOutput, Signal, SpawnSpec, Stream, WriteSpec,
};

pub struct NoStart(pub Arc<dyn Backend>);

#[async_trait::async_trait]
impl Backend for NoStart {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    async fn inspect(&self, sandbox: &str) -> Result<SandboxInfo, BackendError> {
        self.0.inspect(sandbox).await
    }
    async fn start(&self, sandbox: &str) -> Result<(), BackendError> {
        Err(BackendError::Denied(format!(
            "runner watch never starts a stopped sandbox ({sandbox} may have been stopped on purpose); start it with `docker start {sandbox}`"
        )))
    }
    async fn exec(&self, sandbox: &str, spec: ExecSpec) -> Result<ExecResult, BackendError> {
        self.0.exec(sandbox, spec).await
    }
    async fn exec_sealed(
        &self,
        sandbox: &str,
        spec: ExecSpec,
    ) -> Result<SealedOutput, BackendError> {
        self.0.exec_sealed(sandbox, spec).await
    }
    async fn spawn_detached(
        &self,
        sandbox: &str,
        spec: SpawnSpec,
    ) -> Result<ProcessId, BackendError> {
        self.0.spawn_detached(sandbox, spec).await
    }
    async fn stat(&self, sandbox: &str, path: &str) -> Result<Option<FileStat>, BackendError> {
        self.0.stat(sandbox, path).await
    }
    async fn read_file(
        &self,
        sandbox: &str,
        path: &str,
        max: usize,
    ) -> Result<FileContent, BackendError> {
        self.0.read_file(sandbox, path, max).await
    }
    async fn write_file(&self, sandbox: &str, spec: WriteSpec) -> Result<(), BackendError> {
        self.0.write_file(sandbox, spec).await
    }
    async fn remove_file_if(
        &self,
        sandbox: &str,
        path: &str,
        if_content: Option<Vec<u8>>,
    ) -> Result<bool, BackendError> {
        self.0.remove_file_if(sandbox, path, if_content).await
    }
    async fn list_dir(
        &self,
        sandbox: &str,
        path: &str,
        max: usize,
    ) -> Result<Option<Vec<String>>, BackendError> {
        self.0.list_dir(sandbox, path, max).await
    }
    async fn processes(&self, sandbox: &str) -> Result<Vec<ProcessInfo>, BackendError> {
        self.0.processes(sandbox).await
    }
    async fn listeners(&self, sandbox: &str) -> Result<Vec<Listener>, BackendError> {
        self.0.listeners(sandbox).await
    }
    async fn signal(
        &self,
        sandbox: &str,
        id: ProcessId,
        signal: Signal,
    ) -> Result<bool, BackendError> {
        self.0.signal(sandbox, id, signal).await
    }
    async fn connect_loopback(
        &self,
        sandbox: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Box<dyn Stream>, BackendError> {
        self.0.connect_loopback(sandbox, port, timeout).await
    }
}
