//! Exec through the Engine API: capped, separated output, a hard deadline,
//! and on expiry a kill of the exec's whole process group, verified.
//!
//! The Engine API has no "kill exec" and dropping the attach stream does
//! not stop the process, so the kill goes through the exec's host pid
//! (`inspect_exec`): the exec'd process is a session and group leader
//! (runc calls setsid), so its group is the whole tree it started.

use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::{Stream as FutStream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::target::Access;
use super::{DockerBackend, ENGINE_CALL, errors};
use crate::backend::bounded::{CappedBuf, INTERNAL_DEADLINE, run_blocking};
use crate::backend::procfs;
use crate::backend::{BackendError, ExecResult, ExecSpec};

/// How long a killed exec may take to be reported gone.
const KILL_GRACE: Duration = Duration::from_secs(5);

pub(super) type Output =
    Pin<Box<dyn FutStream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
pub(super) type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// A started, attached exec.
pub(super) struct Attached {
    pub id: String,
    pub output: Output,
    pub input: Input,
}

/// What to start.
pub(super) struct ExecRequest<'a> {
    pub argv: &'a [String],
    pub user: Option<&'a str>,
    pub env: &'a [(String, String)],
    pub workdir: Option<&'a str>,
    pub stdin: bool,
}

impl DockerBackend {
    pub(super) async fn run_exec(
        &self,
        sandbox: &str,
        spec: ExecSpec,
    ) -> Result<ExecResult, BackendError> {
        let deadline = Instant::now() + spec.timeout;
        let program = spec
            .argv
            .first()
            .cloned()
            .ok_or_else(|| BackendError::Failed("empty argv".into()))?;
        let request = ExecRequest {
            argv: &spec.argv,
            user: spec.user.as_deref(),
            env: &spec.env,
            workdir: spec.workdir.as_deref(),
            stdin: spec.stdin.is_some(),
        };
        let Attached {
            id,
            mut output,
            input,
        } = match self.start_attached(sandbox, &request, deadline).await {
            Ok(a) => a,
            Err(StartError::Backend(e)) => return Err(e),
            Err(StartError::TimedOut(Some(id))) => {
                return Err(self
                    .timeout_kill(sandbox, &id, &program, spec.timeout)
                    .await);
            }
            Err(StartError::TimedOut(None)) => {
                return Err(BackendError::Timeout(format!(
                    "the engine did not create the exec of '{program}' within {:?}",
                    spec.timeout
                )));
            }
        };
        feed_stdin(input, spec.stdin);

        let mut stdout = CappedBuf::new(spec.max_output);
        let mut stderr = CappedBuf::new(spec.max_output);
        match tokio::time::timeout_at(deadline, drain(&mut output, &mut stdout, &mut stderr)).await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(BackendError::Failed(format!(
                    "output stream of '{program}' broke: {e}"
                )));
            }
            Err(_) => {
                drop(output);
                return Err(self
                    .timeout_kill(sandbox, &id, &program, spec.timeout)
                    .await);
            }
        }
        drop(output);
        let Some(exit_code) = self.wait_exit(&id, deadline).await? else {
            // Output closed but the process lives on past the deadline.
            return Err(self
                .timeout_kill(sandbox, &id, &program, spec.timeout)
                .await);
        };
        if (exit_code == 126 || exit_code == 127)
            && let Some(e) =
                classify_start_failure(&program, spec.user.as_deref(), stdout.as_slice())
        {
            return Err(e);
        }
        let truncated = stdout.truncated() || stderr.truncated();
        Ok(ExecResult {
            exit_code: i32::try_from(exit_code).unwrap_or(-1),
            stdout: stdout.into_inner(),
            stderr: stderr.into_inner(),
            truncated,
        })
    }

    /// create_exec + start_exec (attached), both within `deadline`.
    pub(super) async fn start_attached(
        &self,
        sandbox: &str,
        req: &ExecRequest<'_>,
        deadline: Instant,
    ) -> Result<Attached, StartError> {
        let env: Vec<String> = req.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let options = CreateExecOptions::<String> {
            cmd: Some(req.argv.to_vec()),
            user: req.user.map(str::to_string),
            env: (!env.is_empty()).then_some(env),
            working_dir: req.workdir.map(str::to_string),
            attach_stdin: Some(req.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        };
        let created = match tokio::time::timeout_at(
            deadline,
            self.docker.create_exec(sandbox, options),
        )
        .await
        {
            Ok(r) => r.map_err(|e| StartError::Backend(errors::container_error(e, sandbox)))?,
            Err(_) => return Err(StartError::TimedOut(None)),
        };
        let start = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: Some(64 * 1024),
        };
        match tokio::time::timeout_at(deadline, self.docker.start_exec(&created.id, Some(start)))
            .await
        {
            Ok(Ok(StartExecResults::Attached { output, input })) => Ok(Attached {
                id: created.id,
                output,
                input,
            }),
            Ok(Ok(StartExecResults::Detached)) => Err(StartError::Backend(BackendError::Failed(
                "the engine detached an attached exec".into(),
            ))),
            Ok(Err(e)) => Err(StartError::Backend(errors::container_error(e, sandbox))),
            Err(_) => Err(StartError::TimedOut(Some(created.id))),
        }
    }

    /// Polls `inspect_exec` until the exec stopped; `None` past `deadline`.
    pub(super) async fn wait_exit(
        &self,
        id: &str,
        deadline: Instant,
    ) -> Result<Option<i64>, BackendError> {
        let mut pause = Duration::from_millis(1);
        loop {
            let inspected =
                match tokio::time::timeout_at(deadline, self.docker.inspect_exec(id)).await {
                    Ok(r) => r.map_err(errors::engine_error)?,
                    Err(_) => return Ok(None),
                };
            if inspected.running == Some(false) {
                return Ok(Some(inspected.exit_code.unwrap_or(-1)));
            }
            if Instant::now() + pause >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    async fn timeout_kill(
        &self,
        sandbox: &str,
        id: &str,
        program: &str,
        limit: Duration,
    ) -> BackendError {
        match self.kill_exec(sandbox, id).await {
            Ok(()) => BackendError::Timeout(format!(
                "'{program}' ran longer than {limit:?}; its process group was killed"
            )),
            Err(e) => BackendError::Timeout(format!(
                "'{program}' ran longer than {limit:?} and could not be killed: {e}"
            )),
        }
    }

    /// Kills the exec's process group (and session) and proves it is gone.
    pub(super) async fn kill_exec(&self, sandbox: &str, id: &str) -> Result<(), BackendError> {
        let inspected = tokio::time::timeout(ENGINE_CALL, self.docker.inspect_exec(id))
            .await
            .map_err(|_| BackendError::Timeout("inspect_exec took too long".into()))?
            .map_err(errors::engine_error)?;
        if inspected.running == Some(false) {
            return Ok(());
        }
        let host_pid = inspected
            .pid
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| BackendError::Failed("the engine reports no pid for the exec".into()))?;
        let target = Box::pin(self.target(sandbox)).await?;
        match &target.access {
            Access::HostProc => {
                let until = Instant::now() + KILL_GRACE;
                loop {
                    let t = target.clone();
                    let left = run_blocking("kill exec", INTERNAL_DEADLINE, move || {
                        t.view()?.kill_session(host_pid)
                    })
                    .await?;
                    if left == 0 {
                        break;
                    }
                    if Instant::now() >= until {
                        return Err(BackendError::Failed(format!(
                            "{left} process(es) of the exec survived SIGKILL"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Access::ExecOnly(why) => {
                let ns_pid = std::fs::read_to_string(format!("/proc/{host_pid}/status"))
                    .ok()
                    .map(|s| procfs::parse_status(&s).nspid)
                    .filter(|ns| ns.len() > 1)
                    .and_then(|ns| ns.last().copied())
                    .ok_or_else(|| {
                        BackendError::Unavailable(format!(
                            "cannot map the exec's host pid {host_pid} into the container ({why})"
                        ))
                    })?;
                let kill = ExecSpec {
                    argv: vec![
                        "kill".into(),
                        "-9".into(),
                        "--".into(),
                        format!("-{ns_pid}"),
                    ],
                    user: Some("0".into()),
                    timeout: Duration::from_secs(5),
                    max_output: 4096,
                    ..ExecSpec::default()
                };
                Box::pin(self.run_exec(sandbox, kill)).await?;
            }
        }
        match self.wait_exit(id, Instant::now() + KILL_GRACE).await? {
            Some(_) => Ok(()),
            None => Err(BackendError::Failed(format!(
                "the engine still reports the exec running {KILL_GRACE:?} after SIGKILL"
            ))),
        }
    }
}

/// Why an attached exec did not start.
pub(super) enum StartError {
    Backend(BackendError),
    /// The deadline passed; with the exec id when it may have started.
    TimedOut(Option<String>),
}

/// Writes stdin (if any) and closes it, on its own task so a command that
/// never reads cannot stall the output drain.
fn feed_stdin(mut input: Input, data: Option<Vec<u8>>) {
    match data {
        Some(data) => {
            tokio::spawn(async move {
                if let Err(e) = input.write_all(&data).await {
                    tracing::debug!(error = %e, "exec stdin write failed");
                }
                let _ = input.shutdown().await;
            });
        }
        None => drop(input),
    }
}

/// Splits the multiplexed stream into capped stdout and stderr.
pub(super) async fn drain(
    output: &mut Output,
    stdout: &mut CappedBuf,
    stderr: &mut CappedBuf,
) -> Result<(), bollard::errors::Error> {
    while let Some(item) = output.next().await {
        route(item?, stdout, stderr);
    }
    Ok(())
}

pub(super) fn route(item: LogOutput, stdout: &mut CappedBuf, stderr: &mut CappedBuf) {
    match item {
        LogOutput::StdOut { message } | LogOutput::Console { message } => stdout.push(&message),
        LogOutput::StdErr { message } => stderr.push(&message),
        LogOutput::StdIn { .. } => {}
    }
}

/// An exec that never started reports exit 126 with the runtime's reason
/// on stdout (no exec_die event); a program's own 126 has no such text.
pub(super) fn classify_start_failure(
    program: &str,
    user: Option<&str>,
    stdout: &[u8],
) -> Option<BackendError> {
    let text = String::from_utf8_lossy(stdout);
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("unable to find user") || lower.starts_with("unable to find group") {
        return Some(BackendError::NoSuchUser(format!(
            "user '{}' does not exist in the sandbox: {text}",
            user.unwrap_or("")
        )));
    }
    if !lower.starts_with("oci runtime exec failed") {
        return None;
    }
    if lower.contains("unable to find user") || lower.contains("unable to find group") {
        return Some(BackendError::NoSuchUser(text.to_string()));
    }
    let exec_step = lower.contains("exec:");
    if exec_step
        && (lower.contains("executable file not found")
            || lower.contains("no such file or directory"))
    {
        return Some(BackendError::NoSuchBinary(format!(
            "'{program}' was not found in the sandbox: {text}"
        )));
    }
    if exec_step && lower.contains("permission denied") {
        return Some(BackendError::NoSuchBinary(format!(
            "'{program}' is not executable in the sandbox: {text}"
        )));
    }
    Some(BackendError::Failed(format!(
        "'{program}' could not start: {text}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_failures() {
        let missing = b"OCI runtime exec failed: exec failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH: unknown\r\n";
        assert!(matches!(
            classify_start_failure("nosuch", None, missing),
            Some(BackendError::NoSuchBinary(_))
        ));
        let user = b"unable to find user nosuchuser: no matching entries in passwd file\r\n";
        assert!(matches!(
            classify_start_failure("true", Some("nosuchuser"), user),
            Some(BackendError::NoSuchUser(_))
        ));
        let noexec = b"OCI runtime exec failed: exec failed: unable to start container process: exec: \"/etc/passwd\": permission denied: unknown";
        assert!(matches!(
            classify_start_failure("/etc/passwd", None, noexec),
            Some(BackendError::NoSuchBinary(_))
        ));
        let cwd = b"OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd (\"/nonexist\") set in config.json failed: no such file or directory: unknown";
        assert!(matches!(
            classify_start_failure("true", None, cwd),
            Some(BackendError::Failed(_))
        ));
        assert_eq!(classify_start_failure("sh", None, b"my own 126\n"), None);
    }
}
