//! Detached launch inside a container.
//!
//! A small `/bin/sh` prologue runs as the exec: it redirects its output to
//! the log, checks the program exists, reports its own `/proc/self/stat`
//! on a private fd and then `exec`s the program — same pid, same start
//! time, so the identity it reported is the program's. The exec'd process
//! is already a session leader (runc calls setsid), so it is detached from
//! everything of ours. This works the same on local and remote engines.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::DockerBackend;
use super::exec::{self, Attached, ExecRequest, StartError};
use crate::backend::bounded::CappedBuf;
use crate::backend::procfs;
use crate::backend::{BackendError, ProcessId, SpawnSpec};

/// How long the prologue may take to report the identity.
const SPAWN_DEADLINE: Duration = Duration::from_secs(10);
const MARKER: &str = "runner-spawn-stat ";

/// `$1` = log file, `$2…` = argv. fd 3/4 keep the attached stdout/stderr
/// for the prologue's own reports and are closed before the final exec.
const PROLOGUE: &str = r#"log=$1; shift
exec 3>&1 4>&2
exec >>"$log" 2>&1 </dev/null
case $1 in
  */*) [ -f "$1" ] && [ -x "$1" ] ;;
  *) command -v "$1" >/dev/null 2>&1 ;;
esac || { printf 'runner-spawn: %s: not found or not executable\n' "$1" >&4; exit 127; }
IFS= read -r stat </proc/self/stat || { printf 'runner-spawn: cannot read /proc/self/stat\n' >&4; exit 125; }
printf 'runner-spawn-stat %s\n' "$stat" >&3
exec 3>&- 4>&-
exec "$@"
"#;

impl DockerBackend {
    pub(super) async fn run_spawn(
        &self,
        sandbox: &str,
        spec: SpawnSpec,
    ) -> Result<ProcessId, BackendError> {
        let program = spec
            .argv
            .first()
            .cloned()
            .ok_or_else(|| BackendError::Failed("empty argv".into()))?;
        if !spec.log_file.starts_with('/') {
            return Err(BackendError::Denied(format!(
                "log file '{}' is not an absolute path",
                spec.log_file
            )));
        }
        let mut argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            PROLOGUE.to_string(),
            "runner-spawn".to_string(),
            spec.log_file.clone(),
        ];
        argv.extend(spec.argv.iter().cloned());
        let request = ExecRequest {
            argv: &argv,
            user: spec.user.as_deref(),
            env: &spec.env,
            workdir: spec.workdir.as_deref(),
            stdin: false,
        };
        let deadline = Instant::now() + SPAWN_DEADLINE;
        let Attached {
            id,
            mut output,
            input,
        } = match self.start_attached(sandbox, &request, deadline).await {
            Ok(a) => a,
            Err(StartError::Backend(e)) => return Err(e),
            Err(StartError::TimedOut(_)) => {
                return Err(BackendError::Timeout(format!(
                    "the engine did not start '{program}' within {SPAWN_DEADLINE:?}"
                )));
            }
        };
        drop(input);

        let mut stdout = CappedBuf::new(64 * 1024);
        let mut stderr = CappedBuf::new(64 * 1024);
        // Read until the identity line or the end of the prologue's output.
        let found = tokio::time::timeout_at(deadline, async {
            loop {
                if let Some(id) = identity(stdout.as_slice()) {
                    return Ok(Some(id));
                }
                match output.next().await {
                    None => return Ok(identity(stdout.as_slice())),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(item)) => exec::route(item, &mut stdout, &mut stderr),
                }
            }
        })
        .await;
        drop(output);
        match found {
            Ok(Ok(Some(id))) => return Ok(id),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                return Err(BackendError::Failed(format!(
                    "spawn output stream broke: {e}"
                )));
            }
            Err(_) => {
                let _ = self.kill_exec(sandbox, &id).await;
                return Err(BackendError::Timeout(format!(
                    "'{program}' did not report its identity within {SPAWN_DEADLINE:?}; killed"
                )));
            }
        }
        let exit = self
            .wait_exit(&id, Instant::now() + Duration::from_secs(2))
            .await?
            .unwrap_or(-1);
        let err_text = String::from_utf8_lossy(stderr.as_slice())
            .trim()
            .to_string();
        if exit == 126
            && let Some(e) =
                exec::classify_start_failure("/bin/sh", spec.user.as_deref(), stdout.as_slice())
        {
            return Err(match e {
                BackendError::NoSuchBinary(t) => {
                    BackendError::NoSuchBinary(format!("spawn needs /bin/sh in the sandbox: {t}"))
                }
                other => other,
            });
        }
        if exit == 127 && err_text.starts_with("runner-spawn:") {
            return Err(BackendError::NoSuchBinary(format!(
                "'{program}' was not found in the sandbox or is not executable"
            )));
        }
        Err(BackendError::Failed(format!(
            "spawn of '{program}' failed (exit {exit}): {}",
            if err_text.is_empty() {
                "no output"
            } else {
                &err_text
            }
        )))
    }
}

/// Parses the prologue's `runner-spawn-stat <stat line>`.
fn identity(stdout: &[u8]) -> Option<ProcessId> {
    let text = std::str::from_utf8(stdout).ok()?;
    // Only whole lines: a line cut mid-number would give a wrong identity.
    let text = &text[..text.rfind('\n')? + 1];
    let line = text.lines().find_map(|l| l.strip_prefix(MARKER))?;
    let pid: u32 = line.split_whitespace().next()?.parse().ok()?;
    let stat = procfs::parse_stat(line)?;
    if stat.session != pid {
        tracing::warn!(
            pid,
            session = stat.session,
            "spawned process is not a session leader"
        );
    }
    Some(ProcessId {
        pid,
        start_time: stat.start_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_line() {
        let out = b"runner-spawn-stat 17 (sh) S 0 17 17 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 4242 1 1 1\n";
        assert_eq!(
            identity(out),
            Some(ProcessId {
                pid: 17,
                start_time: 4242
            })
        );
        assert_eq!(identity(b"noise\n"), None);
        // Incomplete line (still streaming): no identity yet.
        assert_eq!(identity(b"runner-spawn-stat 17 (sh"), None);
    }
}
