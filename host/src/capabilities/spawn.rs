//! `spawn.detached`: launch a long-running process in the bound sandbox.

use crate::backend::SpawnSpec;
use crate::runtime::bindings::runner::plugin::exec::ExecError;
use crate::runtime::bindings::runner::plugin::spawn::{Host, SpawnRequest};
use crate::runtime::bindings::runner::plugin::types::ProcessId;
use crate::runtime::state::PluginState;

use super::exec::exec_error;
use super::{Access, Capability};

impl Host for PluginState {
    async fn detached(
        &mut self,
        sandbox: String,
        req: SpawnRequest,
    ) -> Result<ProcessId, ExecError> {
        let backend = self
            .caps
            .admit(Capability::Spawn, &sandbox, Access::Mutate)
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
        self.caps.begin(Capability::Spawn, "detached", &detail);
        let result = backend.spawn_detached(&sandbox, spec).await;
        let outcome = match &result {
            Ok(id) => format!("pid {} start {}", id.pid, id.start_time),
            Err(e) => format!("error: {e}"),
        };
        if let Err(
            e @ (crate::backend::BackendError::NoSuchBinary(_)
            | crate::backend::BackendError::NoSuchUser(_)),
        ) = &result
        {
            self.caps.deterministic = Some(e.to_string());
        }
        self.caps
            .record(Capability::Spawn, "detached", detail, outcome);
        result
            .map(|id| ProcessId {
                pid: id.pid,
                start_time: id.start_time,
            })
            .map_err(exec_error)
    }
}
