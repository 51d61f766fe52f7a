//! `forward.*`: status and ensure of the host-side forward for the bound
//! sandbox.

use std::net::IpAddr;

use crate::forward::{ForwardSpec, ForwardState, ForwardStatus};
use crate::model::CapError;

use super::{Access, Capability, interface_view};

interface_view!(
    /// The `forward` interface.
    Forward,
    ForwardView
);

/// A forward as a plugin asks for it: the bind address is text until the
/// host has parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAsk {
    pub host_port: u16,
    pub sandbox_port: u16,
    pub bind: Option<String>,
}

fn host_spec(ask: &ForwardAsk) -> Result<ForwardSpec, CapError> {
    let bind: IpAddr = match &ask.bind {
        None => IpAddr::from([127, 0, 0, 1]),
        Some(text) => text
            .parse()
            .map_err(|_| CapError::Denied(format!("bind address '{text}' is not an IP address")))?,
    };
    if ask.host_port == 0 || ask.sandbox_port == 0 {
        return Err(CapError::Denied("ports must be non-zero".into()));
    }
    Ok(ForwardSpec {
        host_port: ask.host_port,
        sandbox_port: ask.sandbox_port,
        bind,
    })
}

impl ForwardView<'_> {
    pub async fn status(
        &mut self,
        sandbox: &str,
        ask: &ForwardAsk,
    ) -> Result<ForwardStatus, CapError> {
        self.cx
            .admit(Capability::Forward, sandbox, Access::Read)
            .map_err(CapError::Denied)?;
        let host = host_spec(ask)?;
        let registry = self
            .cx
            .forwards()
            .ok_or_else(|| CapError::Unavailable("no forward registry".into()))?;
        Ok(registry.status(sandbox, &host).await)
    }

    pub async fn ensure(
        &mut self,
        sandbox: &str,
        ask: &ForwardAsk,
    ) -> Result<ForwardStatus, CapError> {
        let backend = self
            .cx
            .admit(Capability::Forward, sandbox, Access::Mutate)
            .map_err(CapError::Denied)?;
        let host = host_spec(ask)?;
        let registry = self
            .cx
            .forwards()
            .ok_or_else(|| CapError::Unavailable("no forward registry".into()))?;
        let before = registry.status(sandbox, &host).await.state;
        let detail = format!(
            "{}:{} -> sandbox :{}",
            host.bind, host.host_port, host.sandbox_port
        );
        // Only a forward that is not already runner's is about to change.
        let starting = before != ForwardState::Owned;
        if starting {
            self.cx.begin(Capability::Forward, "ensure", &detail);
        }
        let result = registry.ensure(backend, sandbox, &host).await;
        match &result {
            Ok(status) if status.state == ForwardState::Owned && starting => {
                self.cx.record(
                    Capability::Forward,
                    "ensure",
                    detail,
                    format!("running (was {before:?})"),
                );
            }
            Ok(status) if starting => self.cx.finish(
                Capability::Forward,
                "ensure",
                detail,
                format!("not started (now {:?})", status.state),
                false,
            ),
            Err(e) => {
                self.cx
                    .record(Capability::Forward, "ensure", detail, format!("error: {e}"));
            }
            _ => {}
        }
        result.map_err(|e| CapError::Failed(e.to_string()))
    }
}
