//! `spawn.detached`: launch a long-running process in the bound sandbox.

use crate::backend::{BackendError, SpawnSpec};
use crate::model::{ExecError, Kv, ProcessId};

use super::{Access, Capability, exec_error, interface_view};

interface_view!(
    /// The `spawn` interface.
    Spawn,
    SpawnView
);

/// A launch as a plugin asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnRequest {
    pub argv: Vec<String>,
    pub user: Option<String>,
    pub env: Vec<Kv>,
    pub workdir: Option<String>,
    pub log_file: String,
}

impl SpawnView<'_> {
    pub async fn detached(
        &mut self,
        sandbox: &str,
        req: SpawnRequest,
    ) -> Result<ProcessId, ExecError> {
        let backend = self
            .cx
            .admit(Capability::Spawn, sandbox, Access::Mutate)
            .map_err(ExecError::Denied)?;
        if req.argv.is_empty() {
            return Err(ExecError::Failed("argv is empty".into()));
        }
        if !req.log_file.starts_with('/') {
            return Err(ExecError::Failed(format!(
                "log file '{}' must be an absolute path",
                req.log_file
            )));
        }
        let detail = format!(
            "{:?} as {} -> {}",
            req.argv,
            req.user.as_deref().unwrap_or("default user"),
            req.log_file
        );
        let spec = SpawnSpec {
            argv: req.argv,
            user: req.user,
            env: req.env.into_iter().map(|kv| (kv.key, kv.value)).collect(),
            workdir: req.workdir,
            log_file: req.log_file,
        };
        self.cx.begin(Capability::Spawn, "detached", &detail);
        let result = backend.spawn_detached(sandbox, spec).await;
        let outcome = match &result {
            Ok(id) => format!("pid {} start {}", id.pid, id.start_time),
            Err(e) => format!("error: {e}"),
        };
        if let Err(e @ (BackendError::NoSuchBinary(_) | BackendError::NoSuchUser(_))) = &result {
            self.cx.note_deterministic(e.to_string());
        }
        self.cx
            .record(Capability::Spawn, "detached", detail, outcome);
        result.map_err(exec_error)
    }
}
