//! `exec.run`: a bounded command inside the bound sandbox; sealed (it can
//! read, not change, the sandbox) while the plugin probes.

use crate::backend::{BackendError, ExecSpec};
use crate::runtime::bindings::runner::plugin::exec::{ExecError, ExecOutput, ExecRequest, Host};
use crate::runtime::state::PluginState;

use super::{Access, CallKind, Capability, clamp_bytes, clamp_ms};

impl Host for PluginState {
    async fn run(&mut self, sandbox: String, req: ExecRequest) -> Result<ExecOutput, ExecError> {
        let backend = self
            .caps
            .admit(Capability::Exec, &sandbox, Access::Read)
            .map_err(ExecError::Denied)?;
        let caps = &self.caps;
        if req.argv.is_empty() {
            return Err(ExecError::Failed("argv is empty".into()));
        }
        let spec = ExecSpec {
            argv: req.argv,
            user: req.user,
            env: req.env.into_iter().map(|kv| (kv.key, kv.value)).collect(),
            stdin: req.stdin,
            workdir: req.workdir,
            timeout: caps.within_call(clamp_ms(
                req.timeout_ms,
                caps.limits.exec_default_timeout,
                caps.limits.exec_max_timeout,
            )),
            max_output: clamp_bytes(
                req.max_output,
                caps.limits.output_default,
                caps.limits.output_max,
            ),
        };
        let summary = format!(
            "{:?} as {}",
            spec.argv,
            spec.user.as_deref().unwrap_or("default user")
        );
        let result = if self.caps.kind == CallKind::Probe {
            // A probe may read through a command but never change anything.
            let sealed = backend.exec_sealed(&sandbox, spec).await;
            if let Ok(s) = &sealed {
                self.caps.sealed_execs += 1;
                if s.write_refused {
                    self.caps.refuse_sealed_write(&summary);
                }
            }
            sealed.map(|s| s.output)
        } else {
            self.caps.begin(Capability::Exec, "run", &summary);
            backend.exec(&sandbox, spec).await
        };
        // An exec during repair may change anything; audit it as a mutation.
        if self.caps.kind == CallKind::Repair {
            let outcome = match &result {
                Ok(out) => format!("exit {}", out.exit_code),
                Err(e) => e.to_string(),
            };
            self.caps.record(Capability::Exec, "run", summary, outcome);
        }
        result
            .map(|out| ExecOutput {
                exit_code: out.exit_code,
                stdout: out.stdout,
                stderr: out.stderr,
                truncated: out.truncated,
            })
            .map_err(exec_error)
    }
}

pub(crate) fn exec_error(e: BackendError) -> ExecError {
    match e {
        BackendError::Denied(m) => ExecError::Denied(m),
        BackendError::Timeout(m) => ExecError::Timeout(m),
        BackendError::Failed(m) => ExecError::Failed(m),
        BackendError::NoSuchBinary(m) => ExecError::NoSuchBinary(m),
        BackendError::NoSuchUser(m) => ExecError::NoSuchUser(m),
        other => ExecError::Unavailable(other.to_string()),
    }
}
