//! `processes.*`: the sandbox's processes and listeners, and signals that are
//! delivered only to the exact identity (pid + start time) asked for.

use crate::backend::{Listener, ProcessInfo, Signal};
use crate::model::{CapError, ProcessId};

use super::{Access, Capability, cap_error, interface_view};

interface_view!(
    /// The `processes` interface.
    Processes,
    ProcessesView
);

impl ProcessesView<'_> {
    pub async fn all(&mut self, sandbox: &str) -> Result<Vec<ProcessInfo>, CapError> {
        let backend = self
            .cx
            .admit(Capability::Processes, sandbox, Access::Read)
            .map_err(CapError::Denied)?;
        backend.processes(sandbox).await.map_err(cap_error)
    }

    pub async fn listeners(&mut self, sandbox: &str) -> Result<Vec<Listener>, CapError> {
        let backend = self
            .cx
            .admit(Capability::Processes, sandbox, Access::Read)
            .map_err(CapError::Denied)?;
        backend.listeners(sandbox).await.map_err(cap_error)
    }

    pub async fn send_signal(
        &mut self,
        sandbox: &str,
        id: ProcessId,
        signal: Signal,
    ) -> Result<bool, CapError> {
        let backend = self
            .cx
            .admit(Capability::Processes, sandbox, Access::Mutate)
            .map_err(CapError::Denied)?;
        let detail = format!("{signal:?} to pid {} (start {})", id.pid, id.start_time);
        self.cx.begin(Capability::Processes, "signal", &detail);
        let result = backend.signal(sandbox, id, signal).await;
        let outcome = match &result {
            Ok(true) => "delivered".to_string(),
            Ok(false) => "not sent: identity gone".to_string(),
            Err(e) => format!("error: {e}"),
        };
        let changed = !matches!(result, Ok(false));
        self.cx
            .finish(Capability::Processes, "signal", detail, outcome, changed);
        result.map_err(cap_error)
    }
}
