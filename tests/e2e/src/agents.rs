//! The real-agent images `runner-test/openclaw` and `runner-test/hermes` (recipes in
//! tests/images/{openclaw,hermes}, described in docs/images.md): the paths, users, ports
//! and launch command they share with runner's plugins, plus the few probes the real-agent
//! fault tests need on top of the generic ones in `faults`.

use crate::exec::ExecOutcome;
use crate::sandbox::Sandbox;
use crate::wait::poll_until;
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Root-only launcher in both images: the same launch PID 1 does (user `gateway`, own
/// session, clean environment plus the sourced env file, output appended to
/// /tmp/gateway.log). Flags: `--stage-guards`, `--unguarded`. Exit 3 = refused because a
/// guard or the env file is missing or unsafe.
pub const GATEWAY_LAUNCH: &str = "/usr/local/bin/gateway-launch";
/// `"<pid> <starttime>"` of the latest launch (PID 1's or gateway-launch's), root 0600.
pub const GATEWAY_PIDFILE: &str = "/tmp/nemoclaw-gateway.pid";
/// Written on the first boot of a /sandbox volume; keepalive mode launches only on that boot.
pub const BOOT_MARKER: &str = "/sandbox/.sandbox-entry-booted";

pub mod openclaw {
    /// `gateway.auth.token` of the first-boot config.
    pub const TOKEN: &str = "runner-test-openclaw-token-0123456789";
    /// OpenClaw 2026.9 keeps its gateway locks under `<state>/tmp/openclaw-<uid>/`.
    pub const LOCK_DIR: &str = "/sandbox/.openclaw/tmp/openclaw-998";
    /// Matches every process of an OpenClaw gateway: `node /usr/local/bin/openclaw gateway
    /// run …` during the first seconds of a start, `openclaw-gateway` once it retitled
    /// itself, and its node helpers under /opt/openclaw/.
    pub const ANY_PROCESS: &str = "openclaw";
    /// Packaged source (root 0644) of /tmp/nemoclaw-proxy-env.sh, staged like the guards.
    pub const PROXY_ENV_SOURCE: &str = "/usr/local/lib/nemoclaw/nemoclaw-proxy-env.sh";
    /// Prefix of the ciao guard's one-line notice when it neutralizes the emulated failure.
    pub const CIAO_GUARD_NOTICE: &str = "[nemoclaw-ciao-network-guard]";
}

pub mod hermes {
    pub const PORT: u16 = 8642;
    pub const HOME: &str = "/sandbox/.hermes";
    pub const CONFIG: &str = "/sandbox/.hermes/config.yaml";
    /// `platforms.api_server.extra.key` of the first-boot config (Bearer token).
    pub const API_KEY: &str = "runner-test-hermes-api-key-0123456789";
    /// Both hold the same JSON `{pid, kind, argv, start_time}`; `gateway.lock` is flocked.
    pub const PID_FILE: &str = "/sandbox/.hermes/gateway.pid";
    pub const LOCK_FILE: &str = "/sandbox/.hermes/gateway.lock";
}

/// What `gateway-launch` printed: the new gateway's pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub pid: u32,
    pub start_time: u64,
}

impl Launch {
    /// Parses `GATEWAY_PID=…` / `GATEWAY_START=…` from gateway-launch's stdout.
    pub fn parse(out: &ExecOutcome) -> Result<Launch> {
        let field = |key: &str| {
            out.stdout
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .with_context(|| format!("gateway-launch printed no {key}: {out:?}"))
        };
        Ok(Launch {
            pid: field("GATEWAY_PID=")?
                .trim()
                .parse()
                .context("GATEWAY_PID")?,
            start_time: field("GATEWAY_START=")?
                .trim()
                .parse()
                .context("GATEWAY_START")?,
        })
    }
}

/// `(pid, start time)` from a gateway lock or pid file: OpenClaw writes `startTime`, Hermes
/// `start_time`. OpenClaw's whitespace ownership-token trailer is valid JSON whitespace.
pub fn lock_owner(text: &str) -> Result<(u32, u64)> {
    let v: Value =
        serde_json::from_str(text).with_context(|| format!("lock is not JSON: {text:?}"))?;
    let pid = v["pid"].as_u64().context("lock without pid")?;
    let start = v["startTime"]
        .as_u64()
        .or_else(|| v["start_time"].as_u64())
        .context("lock without a start time")?;
    Ok((u32::try_from(pid)?, start))
}

impl Sandbox {
    /// Runs gateway-launch as root with `args`; the caller checks the outcome.
    pub async fn gateway_launch(&self, args: &[&str]) -> Result<ExecOutcome> {
        let mut argv = vec![GATEWAY_LAUNCH];
        argv.extend_from_slice(args);
        self.exec(&argv, Some("0")).await
    }

    /// Field 22 of /proc/PID/stat inside the container, `None` once the pid is gone.
    pub async fn proc_start_time(&self, pid: u32) -> Result<Option<u64>> {
        let Some(stat) = self.read_file(&format!("/proc/{pid}/stat")).await? else {
            return Ok(None);
        };
        // comm (field 2) may contain spaces: count from after the last ')'.
        let rest = stat
            .rsplit_once(") ")
            .map(|(_, r)| r)
            .context("malformed stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
            return Ok(None);
        }
        Ok(Some(fields.get(19).context("stat too short")?.parse()?))
    }

    /// Waits until the process (pid, start time) no longer exists.
    pub async fn wait_process_gone(
        &self,
        pid: u32,
        start_time: u64,
        timeout: Duration,
    ) -> Result<Duration> {
        let started = Instant::now();
        poll_until(
            &format!(
                "process {pid} (start time {start_time}) in {} to exit",
                self.name()
            ),
            timeout,
            Duration::from_millis(100),
            || async { Ok((self.proc_start_time(pid).await? != Some(start_time)).then_some(())) },
        )
        .await?;
        Ok(started.elapsed())
    }

    /// `"<type> <uid>:<gid> <octal mode>"` of `path` without following a symlink, e.g.
    /// `"regular file 0:0 444"`; `None` if it does not exist.
    pub async fn file_meta(&self, path: &str) -> Result<Option<String>> {
        let out = self
            .exec(
                &[
                    "sh",
                    "-c",
                    r#"[ -e "$1" ] || [ -L "$1" ] || exit 3; stat -c '%F %u:%g %a' -- "$1""#,
                    "meta",
                    path,
                ],
                Some("0"),
            )
            .await?;
        match out.code {
            0 => Ok(Some(out.stdout.trim().to_string())),
            3 => Ok(None),
            _ => out.check(&format!("stat {path}")).map(|_| None),
        }
    }

    /// Names in /tmp (including dot files).
    pub async fn tmp_entries(&self) -> Result<Vec<String>> {
        let out = self
            .exec(&["ls", "-A", "/tmp"], Some("0"))
            .await?
            .check("ls /tmp")?;
        Ok(out.stdout.lines().map(str::to_string).collect())
    }

    /// Asserts that, for the whole `window`, no process whose cmdline contains `needle`
    /// exists and nothing listens on `port`. Absence can only be shown over a window.
    pub async fn assert_no_gateway_for(
        &self,
        needle: &str,
        port: u16,
        window: Duration,
    ) -> Result<()> {
        let until = Instant::now() + window;
        loop {
            let pids = self.pids_matching(needle).await?;
            ensure!(
                pids.is_empty(),
                "a gateway process ({needle:?}) exists in {}: {pids:?}",
                self.name()
            );
            ensure!(
                !self.tcp_listening(port).await?,
                "port {port} is served in {}",
                self.name()
            );
            if Instant::now() >= until {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The owner recorded in a lock or pid file, `None` if the file does not exist.
    pub async fn lock_owner(&self, path: &str) -> Result<Option<(u32, u64)>> {
        match self.read_file(path).await? {
            Some(text) => lock_owner(&text)
                .map(Some)
                .with_context(|| format!("parse {path}")),
            None => Ok(None),
        }
    }

    /// The only live gateway process (by the spec's pattern), with its start time.
    pub async fn sole_gateway(&self) -> Result<(u32, u64)> {
        let pids = self.gateway_pids().await?;
        let [pid] = pids[..] else {
            bail!(
                "expected exactly one gateway process in {}, found {pids:?}",
                self.name()
            );
        };
        let start = self
            .proc_start_time(pid)
            .await?
            .with_context(|| format!("gateway pid {pid} vanished"))?;
        Ok((pid, start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_lock_flavours() {
        let openclaw =
            "{\n  \"pid\": 66,\n  \"startTime\": 159056,\n  \"port\": 18789\n}\n\t\t \t\n";
        assert_eq!(lock_owner(openclaw).unwrap(), (66, 159056));
        let hermes = r#"{"pid": 29, "kind": "hermes-gateway", "argv": ["/usr/local/bin/hermes", "gateway", "run"], "start_time": 205448}"#;
        assert_eq!(lock_owner(hermes).unwrap(), (29, 205448));
        assert!(lock_owner("{\"pid\": 1}").is_err());
        assert!(lock_owner("{\n  \"pid\": ").is_err());
    }

    #[test]
    fn parses_gateway_launch_output() {
        let out = ExecOutcome {
            code: 0,
            stdout: "GATEWAY_PID=674\nGATEWAY_START=165069\n".into(),
            stderr: String::new(),
        };
        assert_eq!(
            Launch::parse(&out).unwrap(),
            Launch {
                pid: 674,
                start_time: 165069
            }
        );
        let refused = ExecOutcome {
            code: 3,
            stdout: String::new(),
            stderr: "refusing".into(),
        };
        assert!(Launch::parse(&refused).is_err());
    }
}
