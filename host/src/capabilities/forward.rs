//! `forward.*`: status and ensure of the host-side forward for the bound
//! sandbox.

use std::net::IpAddr;

use crate::forward::{
    ForwardSpec as HostSpec, ForwardState as HostState, ForwardStatus as HostStatus,
};
use crate::runtime::bindings::runner::plugin::forward::{
    ForwardSpec, ForwardState, ForwardStatus, Host,
};
use crate::runtime::bindings::runner::plugin::types::{CapError, Kv};
use crate::runtime::state::PluginState;

use super::{Access, Capability};

fn host_spec(spec: &ForwardSpec) -> Result<HostSpec, CapError> {
    let bind: IpAddr = match &spec.bind {
        None => IpAddr::from([127, 0, 0, 1]),
        Some(text) => text
            .parse()
            .map_err(|_| CapError::Denied(format!("bind address '{text}' is not an IP address")))?,
    };
    if spec.host_port == 0 || spec.sandbox_port == 0 {
        return Err(CapError::Denied("ports must be non-zero".into()));
    }
    Ok(HostSpec {
        host_port: spec.host_port,
        sandbox_port: spec.sandbox_port,
        bind,
    })
}

fn to_wit(status: HostStatus, spec: ForwardSpec) -> ForwardStatus {
    ForwardStatus {
        state: match status.state {
            HostState::Owned => ForwardState::Owned,
            HostState::Absent => ForwardState::Absent,
            HostState::Stale => ForwardState::Stale,
            HostState::Foreign => ForwardState::Foreign,
        },
        spec,
        pid: status.pid,
        evidence: status
            .evidence
            .into_iter()
            .map(|(key, value)| Kv { key, value })
            .collect(),
    }
}

impl Host for PluginState {
    async fn status(
        &mut self,
        sandbox: String,
        spec: ForwardSpec,
    ) -> Result<ForwardStatus, CapError> {
        self.caps
            .admit(Capability::Forward, &sandbox, Access::Read)
            .map_err(CapError::Denied)?;
        let host = host_spec(&spec)?;
        let registry = self
            .caps
            .forwards
            .clone()
            .ok_or_else(|| CapError::Unavailable("no forward registry".into()))?;
        Ok(to_wit(registry.status(&sandbox, &host).await, spec))
    }

    async fn ensure(
        &mut self,
        sandbox: String,
        spec: ForwardSpec,
    ) -> Result<ForwardStatus, CapError> {
        let backend = self
            .caps
            .admit(Capability::Forward, &sandbox, Access::Mutate)
            .map_err(CapError::Denied)?;
        let host = host_spec(&spec)?;
        let registry = self
            .caps
            .forwards
            .clone()
            .ok_or_else(|| CapError::Unavailable("no forward registry".into()))?;
        let before = registry.status(&sandbox, &host).await.state;
        let detail = format!(
            "{}:{} -> sandbox :{}",
            host.bind, host.host_port, host.sandbox_port
        );
        // Only a forward that is not already runner's is about to change.
        let starting = before != HostState::Owned;
        if starting {
            self.caps.begin(Capability::Forward, "ensure", &detail);
        }
        let result = registry.ensure(backend, &sandbox, &host).await;
        match &result {
            Ok(status) if status.state == HostState::Owned && starting => {
                self.caps.record(
                    Capability::Forward,
                    "ensure",
                    detail,
                    format!("running (was {before:?})"),
                );
            }
            Ok(status) if starting => self.caps.finish(
                Capability::Forward,
                "ensure",
                detail,
                format!("not started (now {:?})", status.state),
                false,
            ),
            Err(e) => {
                self.caps
                    .record(Capability::Forward, "ensure", detail, format!("error: {e}"));
            }
            _ => {}
        }
        result
            .map(|s| to_wit(s, spec))
            .map_err(|e| CapError::Failed(e.to_string()))
    }
}
