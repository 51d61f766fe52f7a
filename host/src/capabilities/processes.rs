//! `processes.*`: the sandbox's processes and listeners, and signals that are
//! delivered only to the exact identity (pid + start time) asked for.

use crate::backend::{ProcessId as BProcessId, Signal as BSignal};
use crate::runtime::bindings::runner::plugin::processes::{Host, Listener, ProcessInfo, Signal};
use crate::runtime::bindings::runner::plugin::types::{CapError, ProcessId};
use crate::runtime::state::PluginState;

use super::{Access, Capability, cap_error};

fn to_wit(id: BProcessId) -> ProcessId {
    ProcessId {
        pid: id.pid,
        start_time: id.start_time,
    }
}

impl Host for PluginState {
    async fn all(&mut self, sandbox: String) -> Result<Vec<ProcessInfo>, CapError> {
        let backend = self
            .caps
            .admit(Capability::Processes, &sandbox, Access::Read)
            .map_err(CapError::Denied)?;
        let list = backend.processes(&sandbox).await.map_err(cap_error)?;
        Ok(list
            .into_iter()
            .map(|p| ProcessInfo {
                id: to_wit(p.id),
                ppid: p.ppid,
                uid: p.uid,
                state: p.state,
                comm: p.comm,
                cmdline: p.cmdline,
            })
            .collect())
    }

    async fn listeners(&mut self, sandbox: String) -> Result<Vec<Listener>, CapError> {
        let backend = self
            .caps
            .admit(Capability::Processes, &sandbox, Access::Read)
            .map_err(CapError::Denied)?;
        let list = backend.listeners(&sandbox).await.map_err(cap_error)?;
        Ok(list
            .into_iter()
            .map(|l| Listener {
                address: l.address,
                port: l.port,
                owner: l.owner.map(to_wit),
            })
            .collect())
    }

    async fn send_signal(
        &mut self,
        sandbox: String,
        id: ProcessId,
        sig: Signal,
    ) -> Result<bool, CapError> {
        let backend = self
            .caps
            .admit(Capability::Processes, &sandbox, Access::Mutate)
            .map_err(CapError::Denied)?;
        let signal = match sig {
            Signal::Term => BSignal::Term,
            Signal::Kill => BSignal::Kill,
            Signal::Int => BSignal::Int,
            Signal::Hup => BSignal::Hup,
            Signal::Cont => BSignal::Cont,
        };
        let detail = format!("{signal:?} to pid {} (start {})", id.pid, id.start_time);
        self.caps.begin(Capability::Processes, "signal", &detail);
        let result = backend
            .signal(
                &sandbox,
                BProcessId {
                    pid: id.pid,
                    start_time: id.start_time,
                },
                signal,
            )
            .await;
        let outcome = match &result {
            Ok(true) => "delivered".to_string(),
            Ok(false) => "not sent: identity gone".to_string(),
            Err(e) => format!("error: {e}"),
        };
        let changed = !matches!(result, Ok(false));
        self.caps
            .finish(Capability::Processes, "signal", detail, outcome, changed);
        result.map_err(cap_error)
    }
}
