//! What still works when the host cannot use `/proc/<init>` (remote or
//! rootless engine): identity-checked signals and loopback connects, both
//! through an exec in the container. Both need tools in the image (`/bin/sh`
//! and `kill`; `nc`) and say so when they are missing.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::DockerBackend;
use super::exec::{Attached, ExecRequest, StartError};
use crate::backend::{BackendError, ExecSpec, ProcessId, Signal, Stream};

/// `$1` pid, `$2` expected start time, `$3` signal. Exit 3 = not that
/// process. The check and the kill are two steps here (no pidfd from a
/// shell), so a pid reused in between could in theory be hit; the host
/// `/proc` path has no such window.
const SIGNAL_SCRIPT: &str = r#"IFS= read -r s </proc/"$1"/stat 2>/dev/null || exit 3
rest=${s##*) }
set -- "$1" "$2" "$3" $rest
[ "${23}" = "$2" ] || exit 3
kill -s "$3" "$1" 2>/dev/null || exit 4
"#;

impl DockerBackend {
    pub(super) async fn signal_by_exec(
        &self,
        sandbox: &str,
        id: ProcessId,
        signal: Signal,
    ) -> Result<bool, BackendError> {
        let name = match signal {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
            Signal::Int => "INT",
            Signal::Hup => "HUP",
            Signal::Cont => "CONT",
        };
        let spec = ExecSpec {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                SIGNAL_SCRIPT.into(),
                "runner-signal".into(),
                id.pid.to_string(),
                id.start_time.to_string(),
                name.into(),
            ],
            user: Some("0".into()),
            timeout: Duration::from_secs(5),
            max_output: 4096,
            ..ExecSpec::default()
        };
        let result = self.run_exec(sandbox, spec).await.map_err(|e| match e {
            BackendError::NoSuchBinary(t) => BackendError::Unavailable(format!(
                "signalling by exec needs /bin/sh in the sandbox: {t}"
            )),
            other => other,
        })?;
        match result.exit_code {
            0 => Ok(true),
            3 => Ok(false),
            4 => Ok(false),
            code => Err(BackendError::Failed(format!(
                "signal script exited {code}: {}",
                String::from_utf8_lossy(&result.stderr).trim()
            ))),
        }
    }

    /// A byte stream to `127.0.0.1:port` relayed by `nc` in the container.
    /// A refused connection shows up as an immediately closed stream.
    pub(super) async fn relay_loopback(
        &self,
        sandbox: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Box<dyn Stream>, BackendError> {
        let probe = ExecSpec {
            argv: vec!["/bin/sh".into(), "-c".into(), "command -v nc".into()],
            timeout,
            max_output: 4096,
            ..ExecSpec::default()
        };
        match self.run_exec(sandbox, probe).await {
            Ok(r) if r.exit_code == 0 => {}
            Ok(_) | Err(BackendError::NoSuchBinary(_)) => {
                return Err(BackendError::Unavailable(
                    "the host cannot enter this container's network namespace and the image has \
                     no `nc` to relay through"
                        .into(),
                ));
            }
            Err(e) => return Err(e),
        }
        let argv = vec!["nc".to_string(), "127.0.0.1".to_string(), port.to_string()];
        let request = ExecRequest {
            argv: &argv,
            user: None,
            env: &[],
            workdir: None,
            stdin: true,
        };
        let Attached {
            id: _,
            mut output,
            mut input,
        } = match self
            .start_attached(sandbox, &request, Instant::now() + timeout)
            .await
        {
            Ok(a) => a,
            Err(StartError::Backend(e)) => return Err(e),
            Err(StartError::TimedOut(_)) => {
                return Err(BackendError::Timeout(format!(
                    "starting the relay to port {port} took longer than {timeout:?}"
                )));
            }
        };
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (mut from_client, mut to_client) = tokio::io::split(theirs);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match from_client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if input.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = input.shutdown().await;
        });
        tokio::spawn(async move {
            while let Some(Ok(item)) = output.next().await {
                match item {
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message } => {
                        if to_client.write_all(&message).await.is_err() {
                            break;
                        }
                    }
                    bollard::container::LogOutput::StdErr { message } => {
                        tracing::debug!(port, text = %String::from_utf8_lossy(&message).trim(), "relay stderr");
                    }
                    bollard::container::LogOutput::StdIn { .. } => {}
                }
            }
            let _ = to_client.shutdown().await;
        });
        Ok(Box::new(ours))
    }
}
