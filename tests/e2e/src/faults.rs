//! Faults and observations on a sandbox, each bounded. These reproduce what happens to
//! real sandboxes: the tests inject them, runner must repair.

use crate::layout;
use crate::netns::{self, HttpReply};
use crate::sandbox::{API_TIMEOUT, Sandbox};
use crate::wait::{bounded, poll_until};
use anyhow::{Context, Result, bail};
use bollard::query_parameters::{RestartContainerOptionsBuilder, StopContainerOptionsBuilder};
use std::time::{Duration, Instant};

/// Grace for PID 1 on stop/restart; the images trap TERM, so this is rarely used up.
const STOP_GRACE_SECS: i32 = 10;
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

/// Scans /proc inside the container. `$0` is a marker so the scanning shell (whose own
/// cmdline contains the pattern as an argument) and its subshells skip themselves;
/// zombies have an empty cmdline and never match.
const PROC_SCAN: &str = r#"for d in /proc/[0-9]*; do
  c=$(tr '\000' ' ' < "$d/cmdline" 2>/dev/null) || continue
  case "$c" in *runner-e2e-pscan*) ;; *"$1"*) echo "${d#/proc/}" ;; esac
done"#;

impl Sandbox {
    /// In-container pids whose cmdline contains the spec's gateway pattern, ascending.
    pub async fn gateway_pids(&self) -> Result<Vec<u32>> {
        let pattern = self.spec().effective_gateway_pattern();
        self.pids_matching(&pattern).await
    }

    pub async fn pids_matching(&self, pattern: &str) -> Result<Vec<u32>> {
        if pattern.is_empty() {
            bail!("empty process pattern would match everything");
        }
        let out = self
            .exec(
                &["sh", "-c", PROC_SCAN, "runner-e2e-pscan", pattern],
                Some("0"),
            )
            .await?
            .check("process scan")?;
        let mut pids: Vec<u32> = out
            .stdout
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// SIGKILLs the gateway (every matching process) from inside the container and waits
    /// until those pids are gone (and reaped). Returns the lowest killed pid (the gateway; helpers it
    /// spawned do not match the pattern).
    pub async fn kill_gateway_9(&self) -> Result<u32> {
        let pids = self.gateway_pids().await?;
        let Some(&first) = pids.first() else {
            bail!(
                "kill_gateway_9: no process matching {:?} in {}",
                self.spec().effective_gateway_pattern(),
                self.name()
            );
        };
        let mut argv = vec![
            "sh".to_string(),
            "-c".into(),
            r#"kill -9 "$@""#.into(),
            "kill9".into(),
        ];
        argv.extend(pids.iter().map(u32::to_string));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.exec(&argv, Some("0"))
            .await?
            .check("kill -9 gateway")?;
        poll_until(
            &format!("killed gateway pids {pids:?} to disappear"),
            Duration::from_secs(5),
            Duration::from_millis(50),
            || async {
                let now = self.gateway_pids().await?;
                if now.iter().any(|p| pids.contains(p)) {
                    return Ok(None);
                }
                // Gone means reaped too: a zombie has no command line yet
                // still has a /proc entry until PID 1 waits for it.
                for p in &pids {
                    if self.proc_start_time(*p).await?.is_some() {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            },
        )
        .await?;
        Ok(first)
    }

    /// `docker restart`: PID 1 gets SIGTERM, the tmpfs /tmp is wiped, the volume stays.
    pub async fn docker_restart(&self) -> Result<()> {
        self.restart_with_grace(STOP_GRACE_SECS).await?;
        self.wait_running().await
    }

    /// `docker restart -t GRACE`, returning when the engine does (the
    /// container may still be starting): what a watcher's timing tests time.
    pub async fn restart_with_grace(&self, grace_secs: i32) -> Result<()> {
        let opts = RestartContainerOptionsBuilder::default()
            .t(grace_secs)
            .build();
        bounded(
            &format!("restart {}", self.name()),
            Duration::from_secs(grace_secs.max(0) as u64) + API_TIMEOUT,
            self.engine()
                .docker()
                .restart_container(self.name(), Some(opts)),
        )
        .await
        .map(|_| ())
    }

    /// Removes the staged guard preloads from /tmp (the packaged sources stay).
    pub async fn delete_guards(&self) -> Result<()> {
        let paths = layout::staged_guard_paths();
        let mut argv = vec!["rm", "-f"];
        argv.extend(paths.iter().map(String::as_str));
        self.exec(&argv, Some("0"))
            .await?
            .check("delete staged guards")?;
        Ok(())
    }

    /// Removes /tmp/nemoclaw-proxy-env.sh, the file that wires guards into NODE_OPTIONS.
    pub async fn delete_env_file(&self) -> Result<()> {
        self.exec(&["rm", "-f", layout::PROXY_ENV_FILE], Some("0"))
            .await?
            .check("delete proxy env file")?;
        Ok(())
    }

    pub async fn pause(&self) -> Result<()> {
        bounded(
            &format!("pause {}", self.name()),
            API_TIMEOUT,
            self.engine().docker().pause_container(self.name()),
        )
        .await
    }

    pub async fn unpause(&self) -> Result<()> {
        bounded(
            &format!("unpause {}", self.name()),
            API_TIMEOUT,
            self.engine().docker().unpause_container(self.name()),
        )
        .await
    }

    /// `docker stop`: an intentional stop, which runner must never undo.
    pub async fn stop(&self) -> Result<()> {
        let opts = StopContainerOptionsBuilder::default()
            .t(STOP_GRACE_SECS)
            .build();
        bounded(
            &format!("stop {}", self.name()),
            Duration::from_secs(STOP_GRACE_SECS as u64) + API_TIMEOUT,
            self.engine()
                .docker()
                .stop_container(self.name(), Some(opts)),
        )
        .await
    }

    /// `docker start`, then waits until the container runs.
    pub async fn start(&self) -> Result<()> {
        bounded(
            &format!("start {}", self.name()),
            API_TIMEOUT,
            self.engine().docker().start_container(self.name(), None),
        )
        .await?;
        self.wait_running().await
    }

    /// GET http://127.0.0.1:PORT/PATH inside the container's network namespace.
    pub async fn http_get(
        &self,
        port: u16,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<HttpReply> {
        let pid = self.host_pid().await?;
        netns::http_get(pid, port, path, headers, HTTP_TIMEOUT).await
    }

    /// Whether anything accepts TCP connections on the container's 127.0.0.1:PORT.
    pub async fn tcp_listening(&self, port: u16) -> Result<bool> {
        let pid = self.host_pid().await?;
        netns::tcp_listening(pid, port, HTTP_TIMEOUT).await
    }

    /// Polls until GET PATH answers 200; returns how long that took.
    pub async fn wait_http_ok(&self, port: u16, path: &str, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        poll_until(
            &format!(
                "http://127.0.0.1:{port}{path} in {} to answer 200",
                self.name()
            ),
            timeout,
            Duration::from_millis(100),
            || async {
                let reply = self.http_get(port, path, &[]).await?;
                if reply.status == 200 {
                    Ok(Some(()))
                } else {
                    bail!("HTTP {} {}", reply.status, reply.body.trim())
                }
            },
        )
        .await?;
        Ok(started.elapsed())
    }

    /// `None` if the file does not exist.
    pub async fn read_file(&self, path: &str) -> Result<Option<String>> {
        let out = self
            .exec(
                &[
                    "sh",
                    "-c",
                    r#"[ -e "$1" ] || exit 3; cat -- "$1""#,
                    "read",
                    path,
                ],
                Some("0"),
            )
            .await?;
        match out.code {
            0 => Ok(Some(out.stdout)),
            3 => Ok(None),
            _ => out.check(&format!("read {path}")).map(|_| None),
        }
    }

    /// Replaces `path` atomically (temp file in the same directory, then rename) as
    /// `user`, the way an editor or a careful repair writes a config.
    pub async fn write_file(&self, path: &str, content: &str, user: Option<&str>) -> Result<()> {
        let script = r#"tmp="$1.e2e-tmp.$$"; printf '%s' "$CONTENT" > "$tmp" && mv -f "$tmp" "$1""#;
        self.exec_with(
            &["sh", "-c", script, "write", path],
            user,
            &[("CONTENT", content)],
            crate::exec::DEFAULT_EXEC_TIMEOUT,
        )
        .await?
        .check(&format!("write {path}"))
        .map(|_| ())
    }

    /// /tmp/gateway.log, or an empty string if there is none yet.
    pub async fn gateway_log(&self) -> Result<String> {
        Ok(self
            .read_file(layout::GATEWAY_LOG)
            .await?
            .unwrap_or_default())
    }

    /// Waits for a live gateway process other than `old` (e.g. after a respawn).
    pub async fn wait_new_gateway_pid(&self, old: Option<u32>, timeout: Duration) -> Result<u32> {
        poll_until(
            &format!("a gateway process other than {old:?} in {}", self.name()),
            timeout,
            Duration::from_millis(100),
            || async {
                let pids = self.gateway_pids().await?;
                Ok(pids.into_iter().find(|p| Some(*p) != old))
            },
        )
        .await
        .context("gateway did not (re)appear")
    }
}
