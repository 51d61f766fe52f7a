//! The real-agent images `runner-test/openclaw` and `runner-test/hermes` (recipes in
//! tests/images/{openclaw,hermes}, described in docs/images.md): the paths, users, ports
//! and launch command they share with runner's plugins, plus the few probes the real-agent
//! fault tests need on top of the generic ones in `faults`.

use crate::exec::ExecOutcome;
use crate::layout;
use crate::sandbox::Sandbox;
use crate::wait::poll_until;
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::time::{Duration, Instant};

/// `"<pid> <starttime>"` of PID 1's latest launch, root 0600 (as NemoClaw's start script).
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
    use crate::sandbox::SandboxSpec;

    /// The API port the host forward targets, in both layouts.
    pub const PORT: u16 = 8642;
    /// The relay layout's internal API port (NemoClaw's managed Hermes).
    pub const INTERNAL_PORT: u16 = 18642;
    /// Container env that selects the layout: `legacy` (default, API on 8642) or `relay`.
    pub const LAYOUT_ENV: &str = "SANDBOX_LAYOUT";
    /// The in-sandbox relay of the relay layout, run by PID 1 as user `gateway`.
    pub const RELAY_ARGV: [&str; 3] = [
        "socat",
        "TCP-LISTEN:8642,bind=127.0.0.1,reuseaddr,fork",
        "TCP:127.0.0.1:18642",
    ];
    /// Substring of the relay's /proc/PID/cmdline (NULs read as spaces).
    pub const RELAY_PATTERN: &str = "socat TCP-LISTEN:8642";
    pub const RELAY_LOG: &str = "/tmp/hermes-relay.log";
    /// Hermes' own respawn-storm breaker (>5 starts in 120 s → sleep 10–300 s before
    /// binding). The tests turn it off from outside, in the container env, so repeated
    /// restarts are not slowed down; the image works without it.
    pub const MAX_STARTS_ENV: (&str, &str) = ("HERMES_GATEWAY_MAX_STARTS", "0");

    /// A Hermes sandbox spec as the tests use it: the storm breaker off (container env).
    pub fn spec(image: impl Into<String>) -> SandboxSpec {
        SandboxSpec::new(image).env(MAX_STARTS_ENV.0, MAX_STARTS_ENV.1)
    }

    /// The relay layout: API server on 18642 behind `socat` on 8642.
    pub fn relay_layout(spec: SandboxSpec) -> SandboxSpec {
        spec.env(LAYOUT_ENV, "relay")
    }

    pub const HOME: &str = "/sandbox/.hermes";
    pub const CONFIG: &str = "/sandbox/.hermes/config.yaml";
    /// `platforms.api_server.extra.key` of the first-boot config (Bearer token).
    pub const API_KEY: &str = "runner-test-hermes-api-key-0123456789";
    /// Both hold the same JSON `{pid, kind, argv, start_time}`; `gateway.lock` is flocked.
    pub const PID_FILE: &str = "/sandbox/.hermes/gateway.pid";
    pub const LOCK_FILE: &str = "/sandbox/.hermes/gateway.lock";
}

/// A gateway relaunch done from outside the sandbox, the way NemoClaw's recovery does it
/// (NemoClaw's sandbox recovery script): one `docker exec -u USER` that sources the env file (fail closed:
/// refused with exit 3 when it is missing), `cd "$HOME"`, then `setsid ARGV` in the
/// background with output appended to the gateway log. It stages nothing; a test that
/// wants the guards back calls [`Sandbox::stage_packaged_guards`] first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relaunch {
    pub user: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Sourced before the exec; `None` = the naked (unguarded) launch of fault tests.
    pub env_file: Option<String>,
    pub log: String,
}

impl Relaunch {
    /// OpenClaw's: `openclaw gateway run --port 18789` as `gateway`, env file sourced.
    /// Also the fixture's (its /usr/local/bin/openclaw runs the fixture gateway).
    pub fn openclaw() -> Relaunch {
        Relaunch {
            user: "gateway".into(),
            argv: ["openclaw", "gateway", "run", "--port", "18789"]
                .map(String::from)
                .to_vec(),
            env: Vec::new(),
            env_file: Some(layout::PROXY_ENV_FILE.into()),
            log: layout::GATEWAY_LOG.into(),
        }
    }

    /// Hermes': `HERMES_HOME=/sandbox/.hermes hermes gateway run` as `gateway` (no
    /// `--port`, NemoClaw#2894; no env file).
    pub fn hermes() -> Relaunch {
        Relaunch {
            user: "gateway".into(),
            argv: ["hermes", "gateway", "run"].map(String::from).to_vec(),
            env: vec![("HERMES_HOME".into(), hermes::HOME.into())],
            env_file: None,
            log: layout::GATEWAY_LOG.into(),
        }
    }

    /// Without sourcing the env file: the legacy naked launch (fault tests only).
    pub fn unguarded(mut self) -> Relaunch {
        self.env_file = None;
        self
    }

    /// Appends gateway arguments (e.g. the fixture's `--mode normal`).
    pub fn args(mut self, extra: &[&str]) -> Relaunch {
        self.argv.extend(extra.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Relaunch {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// Runs in the sandbox as the launch user: `$1` env file ("" = none), `$2` log, rest argv.
const RELAUNCH_SCRIPT: &str = r#"f=$1; log=$2; shift 2
if [ -n "$f" ]; then
  [ -r "$f" ] || { echo "relaunch: $f is missing; refusing an unguarded launch" >&2; exit 3; }
  set -e; . "$f"; set +e
fi
cd "$HOME" || exit 1
setsid "$@" </dev/null >>"$log" 2>&1 &
echo "$!""#;

/// A gateway the harness launched: its pid and start time (0 if it was already gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub pid: u32,
    pub start_time: u64,
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
    /// Starts a gateway from outside as `how` says; the exec's outcome (exit 3 = refused,
    /// the env file is missing) is returned when it did not launch.
    pub async fn try_relaunch(
        &self,
        how: &Relaunch,
    ) -> Result<std::result::Result<Launch, ExecOutcome>> {
        let mut argv: Vec<&str> = vec![
            "/bin/sh",
            "-c",
            RELAUNCH_SCRIPT,
            "relaunch",
            how.env_file.as_deref().unwrap_or(""),
            &how.log,
        ];
        argv.extend(how.argv.iter().map(String::as_str));
        let env: Vec<(&str, &str)> = how
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let out = self
            .exec_with(&argv, Some(&how.user), &env, Duration::from_secs(30))
            .await?;
        if !out.success() {
            return Ok(Err(out));
        }
        let pid: u32 = out
            .stdout
            .trim()
            .parse()
            .with_context(|| format!("relaunch printed no pid: {out:?}"))?;
        let start_time = self.proc_start_time(pid).await?.unwrap_or(0);
        Ok(Ok(Launch { pid, start_time }))
    }

    /// [`Sandbox::try_relaunch`] that must launch.
    pub async fn relaunch(&self, how: &Relaunch) -> Result<Launch> {
        match self.try_relaunch(how).await? {
            Ok(l) => Ok(l),
            Err(out) => bail!("relaunch {:?} in {} failed: {out:?}", how.argv, self.name()),
        }
    }

    /// Re-stages the packaged guards and env file of the OpenClaw image into /tmp the way
    /// NemoClaw does (temp file, chown root:root, chmod 0444, rename), as root from outside.
    pub async fn stage_packaged_guards(&self) -> Result<()> {
        let mut pairs: Vec<(String, String)> = layout::GUARD_NAMES
            .iter()
            .map(|g| {
                (
                    format!("{}/{g}", layout::PACKAGED_PRELOADS),
                    format!("/tmp/{g}"),
                )
            })
            .collect();
        pairs.push((
            openclaw::PROXY_ENV_SOURCE.into(),
            layout::PROXY_ENV_FILE.into(),
        ));
        let mut argv = vec![
            "sh".to_string(),
            "-c".into(),
            r#"set -e
while [ $# -gt 0 ]; do
  t=$(mktemp /tmp/.stage.XXXXXX); cat -- "$1" >"$t"; chown 0:0 "$t"; chmod 0444 "$t"; mv -f -- "$t" "$2"
  shift 2
done"#
                .into(),
            "stage".into(),
        ];
        for (src, dst) in pairs {
            argv.push(src);
            argv.push(dst);
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.exec(&argv, Some("0"))
            .await?
            .check("stage the packaged guards")?;
        Ok(())
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
    fn relaunches_are_nemoclaws() {
        let o = Relaunch::openclaw();
        assert_eq!(o.argv.join(" "), "openclaw gateway run --port 18789");
        assert_eq!(o.user, "gateway");
        assert_eq!(o.env_file.as_deref(), Some(layout::PROXY_ENV_FILE));
        assert_eq!(o.clone().unguarded().env_file, None);
        assert_eq!(
            o.args(&["--mode", "normal"])
                .argv
                .last()
                .map(String::as_str),
            Some("normal")
        );
        let h = Relaunch::hermes();
        assert_eq!(h.argv.join(" "), "hermes gateway run");
        assert_eq!(h.env, vec![("HERMES_HOME".into(), hermes::HOME.into())]);
        assert_eq!(h.env_file, None);
        assert_eq!(
            hermes::RELAY_ARGV.join(" ").as_str().get(..21),
            Some(hermes::RELAY_PATTERN)
        );
    }
}
