//! Shared by the end-to-end scenario tests (`e2e_fixture`, `e2e_openclaw`,
//! `e2e_hermes`): running the real `runner` binary against a sandbox of the
//! `runner_e2e` harness, reading its `runner.report/v1` JSON, and checking the
//! sandbox from outside (docker exec, the container's network namespace, the
//! host port), independently of what runner says about itself.
//!
//! Include with `#[path = "support/e2e.rs"] mod e2e;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use runner_e2e::layout::{self, CIAO_CRASH_TEXT};
use runner_e2e::{Engine, HttpReply, Mode, Sandbox, SandboxSpec, images};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Backstop for one runner invocation (its own `--timeout` is shorter).
const PROCESS_LIMIT: Duration = Duration::from_secs(300);

/// What the fixture image genuinely lays out differently from a NemoClaw OpenClaw
/// sandbox: no packaged env file (PID 1 generates it) and an HTTP origin endpoint
/// instead of the WebSocket handshake. Its gateway is started like OpenClaw's
/// (`openclaw gateway run --port 18789` as `gateway`), so no launch setting.
pub const FIXTURE_SETTINGS: &[(&str, &str)] = &[
    ("env-file-source", ""),
    ("origin-check", "http:/origin-check"),
];

/// The tail of the default OpenClaw relaunch argv (also the fixture's), as the audit
/// detail of `spawn.detached` shows it (after `sh -c … ENV_FILE`).
pub const OPENCLAW_LAUNCH: &str = "openclaw gateway run --port 18789";
/// The default Hermes relaunch (no `--port`, NemoClaw#2894).
pub const HERMES_LAUNCH: &str = "hermes gateway run";
/// The relay layout's relay, as runner's repair launches it.
pub const HERMES_RELAY_LAUNCH: &str =
    "socat TCP-LISTEN:8642,bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:18642";

/// An audit detail's words without the quoting of an argv list (`["a", "b,c"]` → `a b,c`).
pub fn detail_words(detail: &str) -> String {
    // Only the list punctuation goes: commas inside an argument (socat's
    // `TCP-LISTEN:8642,bind=…`) stay.
    detail
        .replace("\", \"", " ")
        .replace(['"', '[', ']', '`'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The fixture gateway serves within a second; generous for a loaded box.
pub const FIXTURE_READY: Duration = Duration::from_secs(20);

/// A fixture sandbox spec whose container name carries `prefix`.
pub async fn fixture_spec(mode: Mode, prefix: &str) -> Result<SandboxSpec> {
    Ok(SandboxSpec::new(images::ensure("fixture").await?)
        .mode(mode)
        .name_prefix(format!("e2e-{prefix}")))
}

/// A keepalive fixture sandbox (PID 1 launches the gateway on the first boot
/// only, as NemoClaw#2042) whose gateway answers /health.
pub async fn healthy_keepalive(prefix: &str) -> Result<Sandbox> {
    let engine = Engine::connect().await?;
    let sb = Sandbox::create(&engine, fixture_spec(Mode::Keepalive, prefix).await?).await?;
    sb.wait_http_ok(layout::OPENCLAW_PORT, "/health", FIXTURE_READY)
        .await?;
    Ok(sb)
}

/// The path of a test plugin component built by build.rs (e.g. `testkit`).
pub fn test_plugin(name: &str) -> String {
    PathBuf::from(env!("RUNNER_WASM_PLUGIN_DIR"))
        .join(format!("{name}.wasm"))
        .display()
        .to_string()
}

/// What one `runner status|recover` is pointed at.
#[derive(Debug, Clone)]
pub struct Target {
    pub plugin: &'static str,
    pub sandbox: String,
    pub settings: Vec<(String, String)>,
    pub timeout: String,
    pub host_port: u16,
}

impl Target {
    fn new(plugin: &'static str, sb: &Sandbox, host_port: u16) -> Target {
        Target {
            plugin,
            sandbox: sb.name().to_string(),
            settings: vec![("host-port".into(), host_port.to_string())],
            timeout: "60s".into(),
            host_port,
        }
    }

    /// The openclaw plugin on a fixture sandbox.
    pub fn fixture(sb: &Sandbox, host_port: u16) -> Target {
        let mut t = Target::new("openclaw", sb, host_port);
        for (k, v) in FIXTURE_SETTINGS {
            t = t.set(k, v);
        }
        t
    }

    /// The openclaw plugin with its defaults (the runner-test/openclaw layout).
    /// A real gateway start takes 10–40 s on the 2-core box, more under load.
    pub fn openclaw(sb: &Sandbox, host_port: u16) -> Target {
        Target::new("openclaw", sb, host_port).timeout("240s")
    }

    pub fn hermes(sb: &Sandbox, host_port: u16) -> Target {
        Target::new("hermes", sb, host_port).timeout("90s")
    }

    pub fn set(mut self, key: &str, value: &str) -> Target {
        self.settings.retain(|(k, _)| k != key);
        self.settings.push((key.into(), value.into()));
        self
    }

    pub fn timeout(mut self, t: &str) -> Target {
        self.timeout = t.into();
        self
    }

    /// `COMMAND --plugin … --sandbox … --json --timeout … --set …`.
    pub fn args(&self, command: &str) -> Vec<String> {
        let mut args = vec![
            command.to_string(),
            "--plugin".into(),
            self.plugin.into(),
            "--sandbox".into(),
            self.sandbox.clone(),
            "--json".into(),
            "--timeout".into(),
            self.timeout.clone(),
        ];
        for (k, v) in &self.settings {
            args.push("--set".into());
            args.push(format!("{k}={v}"));
        }
        args
    }
}

/// One test's runner: its own state dir (audit log, locks), a compile cache
/// shared by the e2e tests of this build (atomic writes; speed only).
pub struct Runner {
    state: PathBuf,
    cache: PathBuf,
    /// Forward processes that runs reported, other than the run itself:
    /// ended on drop (only if they are still this runner binary).
    forward_pids: Mutex<Vec<u32>>,
}

impl Runner {
    pub fn new(tag: &str) -> Runner {
        let state = std::env::temp_dir().join(format!("runner-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).expect("create state dir");
        let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("runner-e2e-cache");
        Runner {
            state,
            cache,
            forward_pids: Mutex::new(Vec::new()),
        }
    }

    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    pub async fn status(&self, t: &Target) -> Run {
        self.run(&t.args("status"), &[]).await
    }

    pub async fn recover(&self, t: &Target) -> Run {
        self.run(&t.args("recover"), &[]).await
    }

    /// `runner ARGS` with this runner's state and cache dirs, output piped,
    /// killed when dropped.
    fn command(&self, args: &[String], env: &[(&str, &str)]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner"));
        cmd.args(args)
            .env("RUNNER_STATE_DIR", &self.state)
            .env("RUNNER_CACHE_DIR", &self.cache)
            .env_remove("RUNNER_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `runner ARGS` started and left running (e.g. to be killed mid-run).
    pub fn spawn(&self, args: &[String]) -> tokio::process::Child {
        self.command(args, &[])
            .spawn()
            .expect("spawn the runner binary")
    }

    /// `runner ARGS` with extra environment; never panics on the outcome.
    pub async fn run(&self, args: &[String], env: &[(&str, &str)]) -> Run {
        let started = Instant::now();
        let child = self
            .command(args, env)
            .spawn()
            .expect("spawn the runner binary");
        let pid = child.id();
        let out = match tokio::time::timeout(PROCESS_LIMIT, child.wait_with_output()).await {
            Ok(out) => out.expect("wait for runner"),
            Err(_) => panic!("runner {args:?} ran longer than {PROCESS_LIMIT:?}"),
        };
        let run = Run {
            args: args.to_vec(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        };
        let forward_pid = run.json().and_then(|r| {
            link_of(&r, "forward")
                .and_then(|l| evidence_of(l, "pid"))
                .and_then(|p| p.parse::<u32>().ok())
        });
        if let Some(fpid) = forward_pid
            && Some(fpid) != pid
        {
            self.forward_pids.lock().unwrap().push(fpid);
        }
        eprintln!(
            "runner {} -> exit {:?} in {:.0?}",
            args.iter().take(5).cloned().collect::<Vec<_>>().join(" "),
            run.code,
            run.elapsed
        );
        run
    }

    pub fn audit_path(&self) -> PathBuf {
        self.state.join("audit.jsonl")
    }

    /// The audit log's outcome records (empty when there is none): each
    /// change's `started` line, written before the change, is left out (see
    /// [`Runner::audit_raw`]).
    pub fn audit(&self) -> Vec<Value> {
        self.audit_raw()
            .into_iter()
            .filter(|r| r["result"] != "pending")
            .collect()
    }

    /// Every line of the audit log, `pending` announcements included.
    pub fn audit_raw(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.state.join("audit.jsonl")) {
            Ok(text) => text
                .lines()
                .map(|l| {
                    serde_json::from_str(l)
                        .unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}"))
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Forwards this test's runs started: the product's own stop (identity-checked).
        let _ = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["forward", "stop", "--all"])
            .env("RUNNER_STATE_DIR", &self.state)
            .env("RUNNER_CACHE_DIR", &self.cache)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let me = std::fs::canonicalize(env!("CARGO_BIN_EXE_runner")).ok();
        for pid in self.forward_pids.lock().unwrap().drain(..) {
            // Only a process that is still this very binary (a pid may be reused).
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            if exe.is_some() && exe == me {
                let _ = std::process::Command::new("kill")
                    .arg(pid.to_string())
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn link_of<'a>(report: &'a Value, id: &str) -> Option<&'a Value> {
    report["links"].as_array()?.iter().find(|l| l["id"] == id)
}

fn evidence_of<'a>(link: &'a Value, key: &str) -> Option<&'a str> {
    link["evidence"][key].as_str()
}

/// One finished runner invocation.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Exit 0 with the sandbox healthy at the end, whether this run repaired
    /// it (`recovered`) or found it so (`healthy`, e.g. a concurrent run did).
    pub fn expect_ok(&self) {
        let outcome = self.report()["outcome"].as_str().unwrap_or("").to_string();
        assert!(
            self.code == Some(0) && (outcome == "recovered" || outcome == "healthy"),
            "want exit 0, recovered or healthy\n{}",
            self.context()
        );
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.stdout).ok()
    }

    /// Everything about the run, for assertion messages.
    pub fn context(&self) -> String {
        format!(
            "runner {}\nexit {:?} after {:.1?}\nstdout:\n{}\nstderr:\n{}",
            self.args.join(" "),
            self.code,
            self.elapsed,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }

    /// The report (stdout is exactly one JSON object).
    pub fn report(&self) -> Value {
        let v: Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e})\n{}", self.context()));
        assert_eq!(v["schema"], "runner.report/v1", "{}", self.context());
        v
    }

    pub fn outcome(&self) -> String {
        self.report()["outcome"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Exit code and outcome, with the whole run in the message.
    pub fn expect(&self, code: i32, outcome: &str) -> &Run {
        let report = self.report();
        assert_eq!(
            (self.code, report["outcome"].as_str()),
            (Some(code), Some(outcome)),
            "exit code / outcome\n{}",
            self.context()
        );
        let expected_exit = match outcome {
            "healthy" | "recovered" => 0,
            "broken" => 1,
            "unknown" => 3,
            "plugin-fault" => 4,
            other => panic!("unknown outcome {other}"),
        };
        assert_eq!(
            code, expected_exit,
            "exit code must follow the outcome (docs/cli.md)"
        );
        self.check_shape();
        self
    }

    /// Every link entry carries the v1 fields.
    fn check_shape(&self) {
        let report = self.report();
        let links = report["links"]
            .as_array()
            .unwrap_or_else(|| panic!("no links\n{}", self.context()));
        for l in links {
            for key in [
                "id", "before", "action", "after", "summary", "evidence", "ms",
            ] {
                assert!(
                    l.get(key).is_some(),
                    "link without {key}: {l}\n{}",
                    self.context()
                );
            }
        }
        assert!(report["mutations"].is_array(), "{}", self.context());
        assert!(report["duration_ms"].is_u64(), "{}", self.context());
    }

    pub fn failing_layer(&self) -> Option<String> {
        self.report()["failing_layer"].as_str().map(str::to_string)
    }

    /// The report names `layer` as the failing one.
    pub fn expect_failing_layer(&self, layer: &str) -> &Run {
        assert_eq!(
            self.failing_layer().as_deref(),
            Some(layer),
            "failing layer\n{}",
            self.context()
        );
        self
    }

    pub fn message(&self) -> String {
        self.report()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn link(&self, id: &str) -> Value {
        link_of(&self.report(), id)
            .cloned()
            .unwrap_or_else(|| panic!("no link {id}\n{}", self.context()))
    }

    pub fn link_ids(&self) -> Vec<String> {
        self.report()["links"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .map(|l| l["id"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `(before, action, after)` of a link.
    pub fn transition(&self, id: &str) -> (String, String, String) {
        let l = self.link(id);
        let s = |k: &str| l[k].as_str().unwrap_or_default().to_string();
        (s("before"), s("action"), s("after"))
    }

    pub fn assert_link(&self, id: &str, before: &str, action: &str, after: &str) {
        assert_eq!(
            self.transition(id),
            (before.to_string(), action.to_string(), after.to_string()),
            "link {id}: (before, action, after)\n{}",
            self.context()
        );
    }

    pub fn summary(&self, id: &str) -> String {
        self.link(id)["summary"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn evidence(&self, link: &str, key: &str) -> Option<String> {
        evidence_of(&self.link(link), key).map(str::to_string)
    }

    /// `capability.action` of every mutation, in order.
    pub fn mutation_kinds(&self) -> Vec<String> {
        self.mutations().into_iter().map(|m| m.kind).collect()
    }

    pub fn mutations(&self) -> Vec<Mutation> {
        self.report()["mutations"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .map(|m| Mutation {
                        kind: format!(
                            "{}.{}",
                            m["capability"].as_str().unwrap_or_default(),
                            m["action"].as_str().unwrap_or_default()
                        ),
                        detail: m["detail"].as_str().unwrap_or_default().to_string(),
                        result: m["result"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Index of the first mutation of `kind` whose detail contains `needle`.
    /// Index of the `spawn.detached` mutation whose argv contains `words` in order
    /// (e.g. [`OPENCLAW_LAUNCH`]), however the detail quotes the argv.
    pub fn launch_index(&self, words: &str) -> Option<usize> {
        self.mutations()
            .iter()
            .position(|m| m.kind == "spawn.detached" && detail_words(&m.detail).contains(words))
    }

    pub fn mutation_index(&self, kind: &str, needle: &str) -> Option<usize> {
        self.mutations()
            .iter()
            .position(|m| m.kind == kind && m.detail.contains(needle))
    }

    /// Links whose `after` is not healthy.
    pub fn unhealthy_after(&self) -> Vec<String> {
        self.report()["links"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .filter(|l| l["after"] != "healthy")
                    .map(|l| l["id"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn assert_all_healthy_after(&self) {
        assert!(
            self.unhealthy_after().is_empty(),
            "links not healthy at the end: {:?}\n{}",
            self.unhealthy_after(),
            self.context()
        );
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    /// `capability.action`, e.g. `files.write`, `spawn.detached`.
    pub kind: String,
    pub detail: String,
    pub result: String,
}

/// A `status` of a sandbox whose gateway, guards, locks and config are fine
/// and that a previous `recover` forwarded (the detached forward outlived it).
pub fn expect_steady_status(run: &Run) {
    run.expect(0, "healthy");
    assert_eq!(run.failing_layer(), None, "{}", run.context());
    run.assert_all_healthy_after();
    assert!(
        run.mutations().is_empty(),
        "status never mutates\n{}",
        run.context()
    );
}

/// A `recover` of a sandbox that is already healthy (forward included):
/// zero mutations, every link `none`.
pub fn expect_steady_recover(run: &Run) {
    run.expect(0, "healthy");
    run.assert_all_healthy_after();
    assert!(
        run.mutations().is_empty(),
        "a recover of a healthy sandbox must make zero mutations\n{}",
        run.context()
    );
    for id in run.link_ids() {
        assert_eq!(
            run.transition(&id).1,
            "none",
            "link {id}\n{}",
            run.context()
        );
    }
}

/// Audit records added since `before` (a previous `Runner::audit()`).
pub fn audit_since(runner: &Runner, before: usize) -> Vec<Value> {
    runner.audit().into_iter().skip(before).collect()
}

/// After a successful recover, from the host's side: the forward is runner's
/// and still serves once `runner` has exited (a detached `runner forward
/// serve`): GET `path` through 127.0.0.1:`host_port` answers 200.
/// Returns the body.
pub async fn assert_forward_after_run(run: &Run, host_port: u16, path: &str) -> String {
    assert_eq!(run.transition("forward").2, "healthy", "{}", run.context());
    assert_eq!(
        run.evidence("forward", "state").as_deref(),
        Some("owned"),
        "{}",
        run.context()
    );
    let reply = host_get(host_port, path, &[]).await.unwrap_or_else(|e| {
        panic!(
            "GET 127.0.0.1:{host_port}{path} through the forward after runner exited: {e:#}\n{}",
            run.context()
        )
    });
    assert_eq!(reply.status, 200, "through the forward: {reply:?}");
    reply.body
}

/// GET http://127.0.0.1:PORT/PATH from the host (HTTP/1.1, Connection: close).
pub async fn host_get(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<HttpReply> {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: runner-e2e\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let talk = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .context("connect")?;
        s.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        runner_e2e::netns::parse_reply(&raw)
    };
    tokio::time::timeout(Duration::from_secs(5), talk)
        .await
        .with_context(|| format!("127.0.0.1:{port} did not answer within 5 s"))?
}

/// Nothing listens on 127.0.0.1:PORT (we could bind it).
pub fn host_port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Lines where the emulated DGX Spark failure killed a process. The ciao
/// guard's notice quotes the same text when it neutralizes the failure; those
/// lines are the guard working, not a crash.
pub fn crash_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(CIAO_CRASH_TEXT) && !l.starts_with("[nemoclaw-ciao-network-guard]"))
        .map(str::to_string)
        .collect()
}

/// Every guard is staged root:root 0444, byte-identical to its packaged
/// source, and the env file is root:root 0444 and requires each of them.
pub async fn assert_guards_staged(sb: &Sandbox) -> Result<()> {
    for (name, staged) in layout::GUARD_NAMES.iter().zip(layout::staged_guard_paths()) {
        let meta = sb.file_meta(&staged).await?;
        ensure!(
            meta.as_deref() == Some("regular file 0:0 444"),
            "{staged}: {meta:?}, want root:root 0444"
        );
        let source = format!("{}/{name}", layout::PACKAGED_PRELOADS);
        let same = sb.exec(&["cmp", "-s", &source, &staged], Some("0")).await?;
        ensure!(
            same.success(),
            "{staged} differs from its packaged source {source}"
        );
    }
    let meta = sb.file_meta(layout::PROXY_ENV_FILE).await?;
    ensure!(
        meta.as_deref() == Some("regular file 0:0 444"),
        "{}: {meta:?}",
        layout::PROXY_ENV_FILE
    );
    let env = sb
        .read_file(layout::PROXY_ENV_FILE)
        .await?
        .context("env file")?;
    for staged in layout::staged_guard_paths() {
        ensure!(
            requires(&env, &staged),
            "env file does not require {staged}:\n{env}"
        );
    }
    Ok(())
}

/// An exact `--require PATH` / `--require=PATH` token.
pub fn requires(text: &str, path: &str) -> bool {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .collect();
    words.iter().enumerate().any(|(i, w)| {
        ((*w == "--require" || *w == "-r") && words.get(i + 1) == Some(&path))
            || w.strip_prefix("--require=") == Some(path)
    })
}

/// The gateway process `pid` was launched with every guard in its
/// NODE_OPTIONS (read from /proc/PID/environ): the launch was not naked.
pub async fn assert_launched_guarded(sb: &Sandbox, pid: u32) -> Result<()> {
    // Root in the container lacks CAP_SYS_PTRACE: read it as the owner.
    let meta = sb
        .file_meta(&format!("/proc/{pid}"))
        .await?
        .with_context(|| format!("gateway pid {pid} is gone"))?;
    let uid = meta
        .split_whitespace()
        .nth(1)
        .and_then(|o| o.split(':').next())
        .context("owner of /proc/PID")?
        .to_string();
    let out = sb
        .exec(
            &[
                "sh",
                "-c",
                r#"tr '\000' '\n' < "/proc/$1/environ""#,
                "environ",
                &pid.to_string(),
            ],
            Some(&uid),
        )
        .await?
        .check("read the gateway's environ")?;
    let node_options = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("NODE_OPTIONS="))
        .with_context(|| format!("gateway pid {pid} has no NODE_OPTIONS: a naked launch"))?;
    for staged in layout::staged_guard_paths() {
        ensure!(
            requires(node_options, &staged),
            "gateway pid {pid}: NODE_OPTIONS={node_options:?} lacks {staged}"
        );
    }
    Ok(())
}

/// `name inode size mtime mode uid:gid` of each path (`-` when missing):
/// equal snapshots mean nothing rewrote, replaced or re-owned the files.
pub async fn snapshot(sb: &Sandbox, paths: &[&str]) -> Result<String> {
    let mut argv = vec![
        "sh",
        "-c",
        r#"for f in "$@"; do if [ -e "$f" ]; then stat -c '%n %i %s %Y %a %u:%g' -- "$f"; else echo "$f -"; fi; done"#,
        "snapshot",
    ];
    argv.extend_from_slice(paths);
    Ok(sb.exec(&argv, Some("0")).await?.check("snapshot")?.stdout)
}

/// `<config>.runner-bak.*` files next to `config`.
pub async fn backups_of(sb: &Sandbox, config: &str) -> Result<Vec<String>> {
    let out = sb
        .exec(
            &[
                "sh",
                "-c",
                r#"for f in "$1".runner-bak.*; do [ -e "$f" ] && echo "$f"; done; true"#,
                "ls",
                config,
            ],
            Some("0"),
        )
        .await?
        .check("list backups")?;
    Ok(out.stdout.lines().map(str::to_string).collect())
}

/// `after` is `before` with exactly one more `"origin"` array element: strip
/// the common prefix and suffix; what is left of `before` must be nothing and
/// what is left of `after` only the quoted origin, a comma and whitespace.
pub fn assert_only_origin_inserted(before: &str, after: &str, origin: &str) -> Result<()> {
    let (b, a) = (before.as_bytes(), after.as_bytes());
    let prefix = b.iter().zip(a).take_while(|(x, y)| x == y).count();
    let max_suffix = b.len().min(a.len()) - prefix;
    let suffix = b
        .iter()
        .rev()
        .zip(a.iter().rev())
        .take(max_suffix)
        .take_while(|(x, y)| x == y)
        .count();
    let removed = &before[prefix..before.len() - suffix];
    let inserted = &after[prefix..after.len() - suffix];
    ensure!(
        removed.is_empty(),
        "the patch removed or changed {removed:?} (inserted {inserted:?})"
    );
    let quoted = format!("\"{origin}\"");
    let Some(rest) = inserted.split_once(&quoted).map(|(x, y)| format!("{x}{y}")) else {
        bail!("the inserted text {inserted:?} does not contain {quoted}");
    };
    ensure!(
        rest.chars().all(|c| c == ',' || c.is_whitespace()),
        "besides {quoted} the patch inserted {rest:?}"
    );
    Ok(())
}

/// Seconds since the Unix epoch at which a process with start time `ticks`
/// (field 22 of /proc/PID/stat, clock ticks since boot; containers share the
/// host's clock) started.
pub fn start_time_to_unix(ticks: u64) -> f64 {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|u| u.parse().ok()))
        .unwrap_or(0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    now - uptime + ticks as f64 / hz
}

/// OpenClaw 2026.9's gateway owner lease (`state_leases`, scope
/// `gateway-owner`, key `global`, in `<state>/state/openclaw.sqlite`; see
/// docs/openclaw-lease.md), read from outside runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerLease {
    /// The lease owner id (the gateway's `ownerId`).
    pub owner: String,
    pub pid: u32,
    pub host: String,
    /// `/proc/<pid>/stat` field 22 recorded by the gateway.
    pub started_at: Option<u64>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub heartbeat_at: Option<i64>,
}

impl OwnerLease {
    /// The same lease (ignoring its renewals, which a live owner makes every 30 s).
    pub fn same_grant(&self, other: &OwnerLease) -> bool {
        (
            &self.owner,
            self.pid,
            &self.host,
            self.started_at,
            self.created_at,
        ) == (
            &other.owner,
            other.pid,
            &other.host,
            other.started_at,
            other.created_at,
        )
    }
}

/// Reads the row read-only with Node's built-in `node:sqlite` (the gateway's
/// own runtime) as the state dir's owner.
const READ_OWNER_LEASE: &str = r#"
const { DatabaseSync } = require('node:sqlite');
const db = new DatabaseSync(process.argv[1], { readOnly: true, timeout: 5000 });
const t = db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table' AND name = 'state_leases'").get();
const row = t.n ? db.prepare("SELECT owner, expires_at, heartbeat_at, payload_json, created_at FROM state_leases WHERE scope = 'gateway-owner' AND lease_key = 'global'").get() : undefined;
console.log(JSON.stringify(row ?? null));
"#;

/// The gateway owner lease of the sandbox's OpenClaw state dir, `None` when
/// there is none.
pub async fn openclaw_owner_lease(sb: &Sandbox) -> Result<Option<OwnerLease>> {
    let db = format!("{}/state/openclaw.sqlite", layout::OPENCLAW_STATE_DIR);
    let out = sb
        .exec(
            &["node", "--no-warnings", "-e", READ_OWNER_LEASE, &db],
            Some(&layout::GATEWAY_UID.to_string()),
        )
        .await?
        .check("read the gateway owner lease")?;
    let line = out
        .stdout
        .lines()
        .last()
        .context("lease reader printed nothing")?;
    let row: Value = serde_json::from_str(line).with_context(|| format!("lease row: {line}"))?;
    if row.is_null() {
        return Ok(None);
    }
    let payload: Value = serde_json::from_str(row["payload_json"].as_str().unwrap_or("null"))
        .with_context(|| format!("payload_json of {row}"))?;
    let owner = &payload["owner"];
    Ok(Some(OwnerLease {
        owner: row["owner"].as_str().context("owner")?.to_string(),
        pid: owner["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .with_context(|| format!("owner pid in {payload}"))?,
        host: owner["host"].as_str().context("owner host")?.to_string(),
        started_at: owner["startedAt"].as_u64(),
        created_at: row["created_at"].as_i64().context("created_at")?,
        expires_at: row["expires_at"].as_i64(),
        heartbeat_at: row["heartbeat_at"].as_i64(),
    }))
}

/// The sandbox's hostname (its UTS namespace).
pub async fn hostname(sb: &Sandbox) -> Result<String> {
    Ok(sb
        .read_file("/proc/sys/kernel/hostname")
        .await?
        .context("no /proc/sys/kernel/hostname")?
        .trim()
        .to_string())
}

/// Gateway launches (`spawn.detached` on the `gateway` link) among audit records.
pub fn gateway_launches(records: &[Value]) -> usize {
    records
        .iter()
        .filter(|r| r["action"] == "spawn.detached" && r["link"] == "gateway")
        .count()
}

/// The same fixture sandbox named every way runner accepts it: name, full id,
/// short id, and the name again (two runs by the very same alias).
pub fn every_alias(sb: &Sandbox, host_port: u16) -> Vec<Target> {
    [
        sb.name().to_string(),
        sb.id().to_string(),
        sb.id()[..12].to_string(),
        sb.name().to_string(),
    ]
    .into_iter()
    .map(|alias| {
        let mut t = Target::fixture(sb, host_port);
        t.sandbox = alias;
        t
    })
    .collect()
}

/// `runner recover` of every target at once; the runs in the targets' order.
pub async fn recover_all_at_once(runner: &Runner, targets: &[Target]) -> Vec<Run> {
    futures_util::future::join_all(targets.iter().map(|t| runner.recover(t))).await
}

/// The audit log at `path` is whole JSON lines: every line parses and the file
/// ends with a newline (a torn last line would not). Returns the records.
pub fn audit_whole_lines(path: &Path) -> Result<Vec<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    ensure!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends in a torn line: {:?}",
        path.display(),
        text.lines().last()
    );
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {} is not JSON: {l}", path.display(), i + 1))
        })
        .collect()
}

/// No lock under `state/locks` is held: each can be taken at once (a
/// process that died holding one released it; a live one would block).
pub fn locks_free(state: &Path) -> Result<usize> {
    let dir = state.join("locks");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("list {}", dir.display())),
    };
    let mut n = 0;
    for entry in entries {
        let path = entry?.path();
        let file =
            std::fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a valid, owned descriptor; closing it releases the lock.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        ensure!(
            rc == 0,
            "{} is still locked: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        n += 1;
    }
    Ok(n)
}
