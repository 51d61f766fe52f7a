//! Shared by the `runner watch` tests (`watch_scenarios`, `watch_recovery`)
//! and the `watch_scale` bench: a labelled fixture sandbox in a test's scope,
//! a `runner watch` process with its own state dir, config, log and metrics
//! port, plain HTTP through the host forward, and who listens on a host port.
//!
//! Include with `#[path = "support/watch.rs"] mod watch;`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use runner_e2e::{Engine, Mode, SandboxSpec, free_port, images};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The fixture's genuine layout differences (see e2e.rs FIXTURE_SETTINGS); no launch label.
pub const FIXTURE_LABELS: &[(&str, &str)] = &[
    ("runner.env-file-source", ""),
    ("runner.origin-check", "http:/origin-check"),
];
pub const SCOPE_LABEL: &str = "runner.watch-test";

pub fn token(tag: &str) -> String {
    format!("{tag}-{}", std::process::id())
}

/// A labelled fixture sandbox in scope of the watcher `scope`.
pub fn labelled(image: &str, scope: &str, host_port: u16) -> SandboxSpec {
    let mut spec = SandboxSpec::new(image)
        .mode(Mode::Keepalive)
        .label("runner.plugin", "openclaw")
        .label(SCOPE_LABEL, scope)
        .label("runner.host-port", host_port.to_string())
        .label(
            "runner.dashboard-origin",
            format!("http://127.0.0.1:{host_port}"),
        );
    for (k, v) in FIXTURE_LABELS {
        spec = spec.label(*k, *v);
    }
    spec
}

pub struct Watch {
    pub child: tokio::process::Child,
    pub state: PathBuf,
    pub log: PathBuf,
    pub metrics: u16,
}

impl Watch {
    pub async fn start(
        tag: &str,
        scope: &str,
        extra_config: &str,
        interval: &str,
    ) -> Result<Watch> {
        Self::start_with(tag, scope, extra_config, interval, &[]).await
    }

    pub async fn start_with(
        tag: &str,
        scope: &str,
        extra_config: &str,
        interval: &str,
        env: &[(&str, &str)],
    ) -> Result<Watch> {
        let state = std::env::temp_dir().join(format!("runner-watch-{}", token(tag)));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state)?;
        let config = state.join("watch.toml");
        std::fs::write(
            &config,
            format!(
                "require-label = \"{SCOPE_LABEL}={scope}\"\n{}{extra_config}\n",
                // Fixture recovers take well under a second; a test with a
                // slower agent sets its own.
                if extra_config
                    .lines()
                    .any(|l| l.trim_start().starts_with("timeout"))
                {
                    ""
                } else {
                    "timeout = 20\n"
                }
            ),
        )?;
        let log = state.join("watch.log");
        let metrics = free_port()?;
        let cache = cache_dir();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["watch", "--config"])
            .arg(&config)
            .args(["--metrics", &format!("127.0.0.1:{metrics}")])
            .args(["--interval", interval, "--shutdown-grace", "15s"])
            .env("RUNNER_STATE_DIR", &state)
            .env("RUNNER_CACHE_DIR", cache)
            .env("RUNNER_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("spawn runner watch")?;
        let w = Watch {
            child,
            state,
            log,
            metrics,
        };
        // Ready once the metrics endpoint answers (served after subscribing).
        let deadline = Instant::now() + Duration::from_secs(60);
        while w.scrape().await.is_err() {
            if Instant::now() > deadline {
                bail!("runner watch not ready in 60 s; log:\n{}", w.log_text());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(w)
    }

    /// Waits until the log has `count` lines containing every needle.
    pub async fn wait_log(&self, needles: &[&str], count: usize, limit: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let n = self
                .log_text()
                .lines()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .count();
            if n >= count {
                return Ok(());
            }
            if started.elapsed() > limit {
                bail!(
                    "no {count} log lines with {needles:?} in {limit:?}:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn scrape(&self) -> Result<String> {
        let reply = http(self.metrics, "/metrics", &[]).await?;
        if reply.0 != 200 {
            bail!("metrics answered {}", reply.0);
        }
        Ok(reply.1)
    }

    /// runner_repairs_total summed over links and results for `sandbox`.
    pub async fn repairs(&self, sandbox: &str) -> Result<u64> {
        let text = self.scrape().await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(&format!("runner_repairs_total{{sandbox=\"{sandbox}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum())
    }

    /// Audit records (mutations) for `sandbox`.
    pub fn audit(&self, sandbox: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.state.join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["sandbox"] == sandbox)
            // Outcomes only: each change is also announced (`pending`)
            // before it is made.
            .filter(|r| r["result"] != "pending")
            .collect()
    }

    /// Times (seconds of the log's clock) of recovers that mutated something.
    pub fn repair_times(&self, sandbox: &str) -> Vec<f64> {
        self.log_text()
            .lines()
            .filter(|l| l.contains("recover finished"))
            .filter(|l| {
                l.contains(&format!("sandbox=\"{sandbox}\""))
                    || l.contains(&format!("sandbox={sandbox} "))
            })
            .filter(|l| !l.contains("mutations=0"))
            .filter_map(log_seconds)
            .collect()
    }

    pub fn terminate(&self) -> Result<()> {
        let pid = self.child.id().context("watch already reaped")?;
        let rc = unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        if rc != 0 {
            bail!("kill -TERM {pid} failed");
        }
        Ok(())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// `2026-11-23T14:10:00.123456Z  INFO ...` → seconds since midnight.
pub fn log_seconds(line: &str) -> Option<f64> {
    let ts = line.split_whitespace().next()?;
    let time = ts.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// A plain HTTP/1.0 GET on 127.0.0.1:port → (status, body).
pub async fn http(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String)> {
    let fut = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        let mut req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.take(1 << 20).read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .context("no status")?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .to_string();
        anyhow::Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(3), fut)
        .await
        .context("http timeout")?
}

/// The dashboard end to end through the host forward: /health 200 and the
/// dashboard origin accepted.
pub async fn dashboard_ok(port: u16) -> bool {
    let origin = format!("http://127.0.0.1:{port}");
    matches!(http(port, "/health", &[]).await, Ok((200, _)))
        && matches!(
            http(port, "/origin-check", &[("Origin", &origin)]).await,
            Ok((200, _))
        )
}

pub async fn wait_dashboard(port: u16, limit: Duration, w: &Watch) -> Result<Duration> {
    let started = Instant::now();
    while !dashboard_ok(port).await {
        if started.elapsed() > limit {
            bail!(
                "dashboard on {port} not healthy within {limit:?}; watch log:\n{}",
                w.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(started.elapsed())
}

pub async fn setup() -> Result<(Engine, String)> {
    let engine = Engine::connect().await?;
    let image = images::ensure("fixture").await?;
    Ok((engine, image))
}

pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("runner-e2e-cache")
}

pub fn runner_cli(state: &std::path::Path, args: &[&str]) -> Result<std::process::Output> {
    Ok(std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(args)
        .env("RUNNER_STATE_DIR", state)
        .env("RUNNER_CACHE_DIR", cache_dir())
        .env_remove("RUNNER_LOG")
        .stdin(Stdio::null())
        .output()?)
}

/// A one-shot `runner recover --plugin openclaw --json` with its own state
/// dir, which must exit 0; returns the report.
pub fn recover_json(state: &std::path::Path, sandbox: &str) -> Result<serde_json::Value> {
    let out = runner_cli(
        state,
        &[
            "recover",
            "--plugin",
            "openclaw",
            "--sandbox",
            sandbox,
            "--json",
        ],
    )?;
    if out.status.code() != Some(0) {
        bail!(
            "recover exited {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

impl Watch {
    /// The watch process's pid (None once reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL, then reap: no shutdown path runs.
    pub async fn kill_9(&mut self) -> Result<()> {
        self.child.start_kill().context("kill -9 runner watch")?;
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .context("runner watch not reaped 10 s after SIGKILL")??;
        Ok(())
    }
}

/// Pids of the processes listening on TCP `port` of the host (any address),
/// one entry per listening socket (from `ss -Hltnp`; a socket whose owner
/// `/proc` does not show appears as pid 0).
pub fn listeners(port: u16) -> Result<Vec<u32>> {
    let out = std::process::Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{port}")])
        .stdin(Stdio::null())
        .output()
        .context("run ss")?;
    if !out.status.success() {
        bail!("ss failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split("pid=")
                .nth(1)
                .and_then(|p| p.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(0)
        })
        .collect())
}

/// The executable of `pid` is this build's `runner` binary.
pub fn is_runner(pid: u32) -> bool {
    let me = std::fs::canonicalize(env!("CARGO_BIN_EXE_runner")).ok();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    exe.is_some() && exe == me
}

/// The pid of a live detached forward, from a `runner recover --json` report.
pub fn forward_pid(report: &serde_json::Value) -> Option<u32> {
    report["links"]
        .as_array()?
        .iter()
        .find(|l| l["id"] == "forward")?["evidence"]["pid"]
        .as_str()?
        .parse()
        .ok()
}

/// Exactly one socket listens on host `port`, its process is this build's
/// runner binary, and `owner` when given. Returns that pid.
pub fn one_runner_listener(port: u16, owner: Option<u32>) -> Result<u32> {
    let pids = listeners(port)?;
    if pids.len() != 1 {
        bail!("want exactly one listener on {port}, got pids {pids:?}");
    }
    let pid = pids[0];
    if !is_runner(pid) {
        bail!("the listener on {port} is pid {pid}, not runner");
    }
    if let Some(o) = owner
        && o != pid
    {
        bail!("the listener on {port} is pid {pid}, want {o}");
    }
    Ok(pid)
}

/// A state dir shared by one-shot `runner recover`s and watchers (pass it as
/// `RUNNER_STATE_DIR` to [`Watch::start_with`]); stops the detached forwards
/// recorded there and removes it on drop.
pub struct StateDir(pub PathBuf);

impl StateDir {
    pub fn new(tag: &str) -> Result<StateDir> {
        let dir = std::env::temp_dir().join(format!("runner-watch-rec-state-{}", token(tag)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(StateDir(dir))
    }

    pub fn as_str(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        // Detached forwards recorded here: the product's own (identity-checked) stop.
        let _ = runner_cli(&self.0, &["forward", "stop", "--all"]);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
