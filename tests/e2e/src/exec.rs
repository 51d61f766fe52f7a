//! `docker exec` with a deadline. The Engine API cannot kill an exec, and dropping the
//! output stream leaves the process running (measured on Docker 20.10), so on timeout the exec's
//! process group is killed through its host pid.

use crate::sandbox::Sandbox;
use crate::sys;
use anyhow::{Context, Result, bail};
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;
use std::time::Duration;

pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutcome {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// The outcome if it exited 0, else an error carrying both streams.
    pub fn check(self, what: &str) -> Result<ExecOutcome> {
        if self.success() {
            return Ok(self);
        }
        bail!(
            "{what}: exit {}\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

impl Sandbox {
    /// Runs `argv` (no shell involved) as `user` (default: the image's, root here) with
    /// the default 30 s deadline.
    pub async fn exec(&self, argv: &[&str], user: Option<&str>) -> Result<ExecOutcome> {
        self.exec_with(argv, user, &[], DEFAULT_EXEC_TIMEOUT).await
    }

    /// `sh -c SCRIPT` as root: for test set-up and assertions, never for the product.
    pub async fn sh(&self, script: &str) -> Result<ExecOutcome> {
        self.exec(&["sh", "-c", script], None).await
    }

    pub async fn exec_with(
        &self,
        argv: &[&str],
        user: Option<&str>,
        env: &[(&str, &str)],
        limit: Duration,
    ) -> Result<ExecOutcome> {
        if argv.is_empty() {
            bail!("exec needs at least a program");
        }
        let docker = self.engine().docker();
        let what = format!("exec {:?} in {}", argv, self.name());
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let opts = CreateExecOptions {
            cmd: Some(argv.iter().map(|s| s.to_string()).collect()),
            user: user.map(str::to_string),
            env: (!env.is_empty()).then_some(env),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = tokio::time::timeout(limit, docker.create_exec(self.name(), opts))
            .await
            .with_context(|| format!("{what}: create timed out"))?
            .with_context(|| format!("{what}: create"))?;
        let exec_id = created.id;

        let run = async {
            let start = StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: None,
            };
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            match docker.start_exec(&exec_id, Some(start)).await? {
                StartExecResults::Attached { mut output, .. } => {
                    while let Some(chunk) = output.next().await {
                        match chunk? {
                            bollard::container::LogOutput::StdErr { message } => {
                                stderr.extend_from_slice(&message)
                            }
                            other => stdout.extend_from_slice(&other.into_bytes()),
                        }
                    }
                }
                StartExecResults::Detached => bail!("exec started detached"),
            }
            // The exit code can lag the end of the stream by a moment.
            for _ in 0..50 {
                let info = docker.inspect_exec(&exec_id).await?;
                if info.running != Some(true) {
                    return Ok(ExecOutcome {
                        code: info.exit_code.unwrap_or(-1),
                        stdout: String::from_utf8_lossy(&stdout).into_owned(),
                        stderr: String::from_utf8_lossy(&stderr).into_owned(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            bail!("output ended but the exec still runs")
        };

        match tokio::time::timeout(limit, run).await {
            Ok(result) => result.with_context(|| what.clone()),
            Err(_) => {
                let killed = self.kill_exec(&exec_id).await;
                bail!("{what}: timed out after {limit:?}; {killed}")
            }
        }
    }

    async fn kill_exec(&self, exec_id: &str) -> String {
        let info = tokio::time::timeout(
            Duration::from_secs(5),
            self.engine().docker().inspect_exec(exec_id),
        )
        .await;
        match info {
            Ok(Ok(info)) => match info.pid {
                Some(pid) if pid > 1 => match sys::kill_process_group(pid as u32) {
                    Ok(()) => format!("killed its process group (host pid {pid})"),
                    Err(e) => format!("could not kill host pid {pid}: {e}"),
                },
                _ => "it had no pid to kill".to_string(),
            },
            Ok(Err(e)) => format!("inspect_exec failed: {e}"),
            Err(_) => "inspect_exec timed out".to_string(),
        }
    }
}

/// The bare Engine API minimum for an exit code — create_exec, attached
/// start_exec, drain, inspect_exec — of `true` in `container`: the yardstick
/// the benches compare runner's own calls against.
pub async fn bare_true_exec(docker: &bollard::Docker, container: &str) -> Result<Duration> {
    let started = std::time::Instant::now();
    let created = docker
        .create_exec(
            container,
            CreateExecOptions::<String> {
                cmd: Some(vec!["true".into()]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await?;
    match docker
        .start_exec(&created.id, Some(StartExecOptions::default()))
        .await?
    {
        StartExecResults::Attached { mut output, .. } => while output.next().await.is_some() {},
        StartExecResults::Detached => bail!("bare exec started detached"),
    }
    let inspected = docker.inspect_exec(&created.id).await?;
    let took = started.elapsed();
    if inspected.running == Some(true) || inspected.exit_code != Some(0) {
        bail!("bare exec did not finish cleanly: {inspected:?}");
    }
    Ok(took)
}
