//! `exec.run`: a bounded command inside the bound sandbox; sealed (it can
//! read, not change, the sandbox) while the plugin probes.

use crate::backend::{ExecResult, ExecSpec};
use crate::model::{ExecError, Kv};

use super::{Access, CallKind, Capability, clamp_bytes, clamp_ms, exec_error, interface_view};

interface_view!(
    /// The `exec` interface.
    Exec,
    ExecView
);

/// A command as a plugin asks for it; 0 means "the host default".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    pub user: Option<String>,
    pub env: Vec<Kv>,
    pub stdin: Option<Vec<u8>>,
    pub workdir: Option<String>,
    pub timeout_ms: u32,
    pub max_output: u32,
}

impl ExecView<'_> {
    pub async fn run(&mut self, sandbox: &str, req: ExecRequest) -> Result<ExecResult, ExecError> {
        let backend = self
            .cx
            .admit(Capability::Exec, sandbox, Access::Read)
            .map_err(ExecError::Denied)?;
        if req.argv.is_empty() {
            return Err(ExecError::Failed("argv is empty".into()));
        }
        let limits = self.cx.limits;
        let spec = ExecSpec {
            argv: req.argv,
            user: req.user,
            env: req.env.into_iter().map(|kv| (kv.key, kv.value)).collect(),
            stdin: req.stdin,
            workdir: req.workdir,
            timeout: self.cx.within_call(clamp_ms(
                req.timeout_ms,
                limits.exec_default_timeout,
                limits.exec_max_timeout,
            )),
            max_output: clamp_bytes(req.max_output, limits.output_default, limits.output_max),
        };
        let summary = format!(
            "{:?} as {}",
            spec.argv,
            spec.user.as_deref().unwrap_or("default user")
        );
        let kind = self.cx.grant().kind();
        let result = if kind == CallKind::Probe {
            // A probe may read through a command but never change anything.
            let sealed = backend.exec_sealed(sandbox, spec).await;
            if let Ok(s) = &sealed {
                self.cx.count_sealed_exec();
                if s.write_refused {
                    self.cx.refuse_sealed_write(&summary);
                }
            }
            sealed.map(|s| s.output)
        } else {
            self.cx.begin(Capability::Exec, "run", &summary);
            backend.exec(sandbox, spec).await
        };
        // An exec during repair may change anything; audit it as a mutation.
        if kind == CallKind::Repair {
            let outcome = match &result {
                Ok(out) => format!("exit {}", out.exit_code),
                Err(e) => e.to_string(),
            };
            self.cx.record(Capability::Exec, "run", summary, outcome);
        }
        result.map_err(exec_error)
    }
}
