//! Supervised forwards (issue 5) against the real engine and the fixture
//! image: a forward started by one command outlives it, is adopted rather
//! than duplicated, is reported stale when killed and restarted, follows a
//! recreated container, and never touches what is not its own. Without an
//! engine these tests fail with the fix in the message; they never skip.
//!
//! Every test owns a private state dir; its `Forwards` guard kills (by
//! identity: pid + start time + argv + that state dir) every forward process
//! the test started, also when the test panics.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use runner::backend::Backend;
use runner::backend::docker::DockerBackend;
use runner::forward::{
    ForwardMode, ForwardOptions, ForwardRecord, ForwardRegistry, ForwardSpec, ForwardState,
    RecordMode, RestartPolicy, record,
};
use runner_e2e::netns::{HttpReply, parse_reply};
use runner_e2e::ports::FOREIGN_BODY;
use runner_e2e::wait::poll_until;
use runner_e2e::{Engine, ForeignListener, Mode, Sandbox, SandboxSpec, free_port, images};

const GATEWAY_PORT: u16 = 18789;
const RUNNER: &str = env!("CARGO_BIN_EXE_runner");

// ---- process identity helpers (test side) ----------------------------------

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    // rest[0] is field 3; field 22 is rest[19].
    fields.get(19)?.parse().ok()
}

fn argv(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn is_serve(argv: &[String]) -> bool {
    argv.windows(2)
        .any(|w| w[0] == "forward" && w[1] == "serve")
}

fn alive(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// SIGKILL `pid` only while it is still the process started at `start`:
/// pinned by a pidfd first, so a reused pid is never hit.
fn kill_identity(pid: u32, start: u64) {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return;
    };
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return;
    };
    if alive(pid, start) {
        let _ = rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL);
    }
}

/// Pids of `runner forward serve` processes listening on `port`.
fn serve_pids(port: u16) -> Vec<u32> {
    let port = port.to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let a = argv(*pid);
            is_serve(&a)
                && a.windows(2).any(|w| w[0] == "--host-port" && w[1] == port)
                && start_time(*pid).is_some()
        })
        .collect()
}

async fn wait_gone(pid: u32, start: u64, limit: Duration) {
    poll_until(
        &format!("pid {pid} to exit"),
        limit,
        Duration::from_millis(20),
        || async { Ok((!alive(pid, start)).then_some(())) },
    )
    .await
    .unwrap();
}

// ---- per-test state --------------------------------------------------------

struct Forwards {
    state: PathBuf,
}

impl Forwards {
    fn new(tag: &str) -> Self {
        let state = std::env::temp_dir().join(format!("runner-fwd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).unwrap();
        Self { state }
    }

    fn options(&self, mode: ForwardMode) -> ForwardOptions {
        ForwardOptions {
            mode,
            state_dir: self.state.clone(),
            exe: Some(PathBuf::from(RUNNER)),
            gone_grace: None,
            restart: RestartPolicy::default(),
        }
    }

    fn registry(&self, mode: ForwardMode) -> ForwardRegistry {
        ForwardRegistry::with_options(self.options(mode))
    }

    fn dir(&self) -> PathBuf {
        self.state.join("forwards")
    }

    fn record(&self, port: u16) -> Option<ForwardRecord> {
        record::read(&record::record_path(
            &self.dir(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
        ))
        .unwrap()
    }

    fn runner(&self, args: &[&str]) -> Output {
        Command::new(RUNNER)
            .args(args)
            .env("RUNNER_STATE_DIR", &self.state)
            .env("RUNNER_CACHE_DIR", self.state.join("cache"))
            .output()
            .expect("runner runs")
    }

    /// Forward processes started for this state dir, by identity.
    fn ours(&self) -> Vec<(u32, u64)> {
        let needle = format!("RUNNER_STATE_DIR={}", self.state.display());
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| is_serve(&argv(*pid)))
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
                    .unwrap_or(false)
            })
            .filter_map(|pid| Some((pid, start_time(pid)?)))
            .collect()
    }
}

impl Drop for Forwards {
    fn drop(&mut self) {
        for (pid, start) in self.ours() {
            kill_identity(pid, start);
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

async fn fixture(prefix: &str) -> Sandbox {
    let engine = Engine::connect()
        .await
        .expect("a Docker engine is required for these tests");
    let image = images::ensure("fixture").await.expect("fixture image");
    let sb = Sandbox::create(
        &engine,
        SandboxSpec::new(image)
            .mode(Mode::Supervised)
            .name_prefix(prefix),
    )
    .await
    .expect("create sandbox");
    sb.wait_http_ok(GATEWAY_PORT, "/health", Duration::from_secs(30))
        .await
        .expect("fixture gateway up");
    sb
}

async fn docker() -> Arc<dyn Backend> {
    Arc::new(
        DockerBackend::connect()
            .await
            .expect("DockerBackend::connect"),
    )
}

/// GET through the host port (what a browser on the host does).
async fn get(port: u16, path: &str) -> anyhow::Result<HttpReply> {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    tokio::task::spawn_blocking(move || {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        parse_reply(&raw)
    })
    .await?
}

async fn health_through(port: u16) -> u16 {
    get(port, "/health").await.map(|r| r.status).unwrap_or(0)
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn link<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["links"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["id"] == id))
        .unwrap_or_else(|| panic!("no link {id} in {report}"))
}

// ---- scenarios -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn forward_outlives_the_command_that_started_it() {
    let sb = fixture("fwd-outlives").await;
    let fw = Forwards::new("outlives");
    let port = free_port().unwrap();
    let origin = format!("dashboard-origin=http://127.0.0.1:{port}");
    let host_port = format!("host-port={port}");
    let run = |mode: &str| {
        let args = [
            mode,
            "--plugin",
            "openclaw",
            "--sandbox",
            sb.name(),
            "--set",
            &host_port,
            "--set",
            &origin,
            "--set",
            "origin-check=http:/origin-check",
            "--json",
            "--timeout",
            "60s",
        ];
        fw.runner(&args)
    };

    let first = run("recover");
    let report = json(&first);
    assert_eq!(first.status.code(), Some(0), "{report:#}");
    assert_eq!(link(&report, "forward")["action"], "repaired", "{report:#}");
    // `runner recover` has exited; its forward still serves.
    let rec = fw.record(port).expect("a forward record");
    assert_eq!(rec.mode, RecordMode::Detached);
    assert!(
        alive(rec.pid, rec.start_time),
        "forward pid {} died with the command",
        rec.pid
    );
    assert_eq!(health_through(port).await, 200);

    // The next commands find it owned: status is healthy and a second
    // recover makes no mutation at all (issue 4 acceptance).
    let status = run("status");
    let report = json(&status);
    assert_eq!(status.status.code(), Some(0), "{report:#}");
    assert_eq!(link(&report, "forward")["after"], "healthy", "{report:#}");
    let again = run("recover");
    let report = json(&again);
    assert_eq!(again.status.code(), Some(0), "{report:#}");
    assert_eq!(
        report["mutations"].as_array().map(Vec::len),
        Some(0),
        "{report:#}"
    );
    assert_eq!(
        fw.record(port).map(|r| r.pid),
        Some(rec.pid),
        "the forward was replaced"
    );
    assert_eq!(serve_pids(port), vec![rec.pid]);
}

#[tokio::test(flavor = "multi_thread")]
async fn second_ensure_adopts_instead_of_duplicating() {
    let sb = fixture("fwd-adopt").await;
    let fw = Forwards::new("adopt");
    let spec = ForwardSpec::loopback(free_port().unwrap(), GATEWAY_PORT);
    let backend = docker().await;

    let first = fw
        .registry(ForwardMode::Detached)
        .ensure(backend.clone(), sb.name(), &spec)
        .await
        .unwrap();
    assert_eq!(first.state, ForwardState::Owned, "{first:?}");
    let pid = first.pid.unwrap();
    assert_ne!(
        pid,
        std::process::id(),
        "detached mode must not serve in-process"
    );

    // Another one-shot command: same forward, nothing started.
    let again = fw.registry(ForwardMode::Detached);
    let second = again
        .ensure(backend.clone(), sb.name(), &spec)
        .await
        .unwrap();
    assert_eq!(
        (second.state, second.pid),
        (ForwardState::Owned, Some(pid)),
        "{second:?}"
    );
    assert_eq!(
        again.forwards_to(sb.name(), spec.host_port),
        Some(spec.connect_addr())
    );
    assert_eq!(again.forwards_to("another-sandbox", spec.host_port), None);

    // A supervisor (in-process mode) adopts the live detached forward.
    let watch = fw.registry(ForwardMode::InProcess);
    let adopted = watch.ensure(backend, sb.name(), &spec).await.unwrap();
    assert_eq!(
        (adopted.state, adopted.pid),
        (ForwardState::Owned, Some(pid)),
        "{adopted:?}"
    );
    assert_eq!(
        watch.forwards_to(sb.name(), spec.host_port),
        Some(spec.connect_addr())
    );
    assert_eq!(
        serve_pids(spec.host_port),
        vec![pid],
        "exactly one forward process"
    );
    assert_eq!(health_through(spec.host_port).await, 200);
    // Dropping the supervisor leaves the adopted forward alone.
    drop(watch);
    assert_eq!(health_through(spec.host_port).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_forward_is_reported_stale_then_restarted() {
    let sb = fixture("fwd-killed").await;
    let fw = Forwards::new("killed");
    let spec = ForwardSpec::loopback(free_port().unwrap(), GATEWAY_PORT);
    let backend = docker().await;
    let registry = fw.registry(ForwardMode::Detached);

    let first = registry
        .ensure(backend.clone(), sb.name(), &spec)
        .await
        .unwrap();
    let old = fw.record(spec.host_port).expect("record");
    assert_eq!(first.pid, Some(old.pid));
    kill_identity(old.pid, old.start_time);
    wait_gone(old.pid, old.start_time, Duration::from_secs(5)).await;

    let stale = registry.status(sb.name(), &spec).await;
    assert_eq!(
        (stale.state, stale.pid),
        (ForwardState::Stale, Some(old.pid)),
        "{stale:?}"
    );
    let why = stale.evidence("process").unwrap_or_default();
    assert!(
        why.contains(&old.pid.to_string()) && (why.contains("gone") || why.contains("exited")),
        "{stale:?}"
    );

    let restarted = registry.ensure(backend, sb.name(), &spec).await.unwrap();
    assert_eq!(restarted.state, ForwardState::Owned, "{restarted:?}");
    let new_pid = restarted.pid.unwrap();
    assert_ne!(new_pid, old.pid);
    assert_eq!(fw.record(spec.host_port).map(|r| r.pid), Some(new_pid));
    assert_eq!(health_through(spec.host_port).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_listener_is_never_touched() {
    let sb = fixture("fwd-foreign").await;
    let fw = Forwards::new("foreign");
    let port = free_port().unwrap();
    let foreign = ForeignListener::occupy(port).unwrap();
    let spec = ForwardSpec::loopback(port, GATEWAY_PORT);
    let backend = docker().await;

    // A leftover record of a dead forward on the same port must not make the
    // foreign listener look like ours.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    std::fs::create_dir_all(fw.dir()).unwrap();
    let leftover = ForwardRecord {
        schema: record::RECORD_SCHEMA.into(),
        mode: RecordMode::Detached,
        pid: dead_pid,
        start_time: 1,
        backend: "docker".into(),
        sandbox: sb.name().into(),
        sandbox_port: GATEWAY_PORT,
        bind: spec.bind,
        host_port: port,
        started_at: String::new(),
        updated_at: String::new(),
        connections: 0,
        bytes: 0,
        errors: 0,
        last_error: None,
    };
    record::write_atomic(&record::record_path(&fw.dir(), spec.bind, port), &leftover).unwrap();

    for mode in [ForwardMode::Detached, ForwardMode::InProcess] {
        let registry = fw.registry(mode);
        let status = registry.status(sb.name(), &spec).await;
        assert_eq!(status.state, ForwardState::Foreign, "{status:?}");
        // The owner is named: the listener is a thread of this test process.
        assert_eq!(status.pid, Some(std::process::id()), "{status:?}");
        assert_eq!(
            status.evidence("owner-pid"),
            Some(std::process::id().to_string().as_str())
        );
        let exe = std::env::current_exe().unwrap();
        let exe_name = exe.file_name().unwrap().to_string_lossy();
        assert!(
            status
                .evidence("owner-cmdline")
                .unwrap()
                .contains(exe_name.as_ref()),
            "{status:?}"
        );

        let ensured = registry
            .ensure(backend.clone(), sb.name(), &spec)
            .await
            .unwrap();
        assert_eq!(
            ensured.state,
            ForwardState::Foreign,
            "{mode:?}: {ensured:?}"
        );
        assert_eq!(
            serve_pids(port),
            Vec::<u32>::new(),
            "{mode:?}: a forward was started anyway"
        );
        let reply = get(port, "/").await.unwrap();
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, FOREIGN_BODY),
            "{mode:?}"
        );
        assert_eq!(registry.forwards_to(sb.name(), port), None);
    }

    // `forward stop` only drops the dead record; the listener keeps serving.
    let out = fw.runner(&["forward", "stop", "--port", &port.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("already gone"), "{stdout}");
    assert!(fw.record(port).is_none());
    assert_eq!(get(port, "/").await.unwrap().body, FOREIGN_BODY);
    drop(foreign);
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_follows_a_recreated_container() {
    let mut sb = fixture("fwd-recreate").await;
    let fw = Forwards::new("recreate");
    let spec = ForwardSpec::loopback(free_port().unwrap(), GATEWAY_PORT);
    let registry = fw.registry(ForwardMode::Detached);
    let owned = registry
        .ensure(docker().await, sb.name(), &spec)
        .await
        .unwrap();
    let pid = owned.pid.unwrap();
    let info = |reply: HttpReply| -> anyhow::Result<serde_json::Value> {
        anyhow::ensure!(reply.status == 200, "HTTP {}", reply.status);
        Ok(serde_json::from_str(&reply.body)?)
    };
    let before = info(get(spec.host_port, "/fixture/info").await.unwrap()).unwrap();
    let old_id = sb.id().to_string();

    sb.recreate_same_volume().await.unwrap();
    assert_ne!(sb.id(), old_id);
    sb.wait_http_ok(GATEWAY_PORT, "/health", Duration::from_secs(30))
        .await
        .unwrap();

    // Same forward process, new container behind it.
    let after = poll_until(
        "the forward to reach the recreated gateway",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || async {
            let v = info(get(spec.host_port, "/fixture/info").await?)?;
            Ok((v["startTime"] != before["startTime"]).then_some(v))
        },
    )
    .await
    .unwrap();
    assert_ne!(after["startTime"], before["startTime"]);
    let status = registry.status(sb.name(), &spec).await;
    assert_eq!(
        (status.state, status.pid),
        (ForwardState::Owned, Some(pid)),
        "{status:?}"
    );
    assert_eq!(
        serve_pids(spec.host_port),
        vec![pid],
        "the forward was restarted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_stop_signals_only_the_recorded_identity() {
    let sb = fixture("fwd-stop").await;
    let fw = Forwards::new("stop");
    let spec = ForwardSpec::loopback(free_port().unwrap(), GATEWAY_PORT);
    let owned = fw
        .registry(ForwardMode::Detached)
        .ensure(docker().await, sb.name(), &spec)
        .await
        .unwrap();
    let real = fw.record(spec.host_port).unwrap();
    assert_eq!(owned.pid, Some(real.pid));

    // A bystander, and records that name it (or the real forward) wrongly.
    let mut bystander = Command::new("sleep").arg("300").spawn().unwrap();
    let by_pid = bystander.id();
    let by_start = start_time(by_pid).unwrap();
    let forge = |port: u16, pid: u32, start: u64| {
        let r = ForwardRecord {
            pid,
            start_time: start,
            host_port: port,
            ..real.clone()
        };
        record::write_atomic(&record::record_path(&fw.dir(), spec.bind, port), &r).unwrap();
        port
    };
    let names_bystander = forge(free_port().unwrap(), by_pid, by_start);
    let reused = forge(free_port().unwrap(), by_pid, by_start + 1);
    let other_port = forge(free_port().unwrap(), real.pid, real.start_time);

    let stop = |port: u16| {
        let out = fw.runner(&["forward", "stop", "--port", &port.to_string(), "--json"]);
        let v = json(&out);
        v.as_array()
            .and_then(|a| a.first())
            .cloned()
            .unwrap_or_else(|| panic!("{v}"))
    };
    let o = stop(names_bystander);
    assert_eq!(o["result"], "not-a-forward", "{o}");
    assert!(o["detail"].as_str().unwrap().contains("sleep 300"), "{o}");
    let o = stop(reused);
    assert_eq!(o["result"], "already-gone", "{o}");
    let o = stop(other_port);
    assert_eq!(o["result"], "not-a-forward", "{o}");
    assert!(alive(by_pid, by_start), "the bystander was signalled");
    assert!(
        alive(real.pid, real.start_time),
        "the real forward was signalled through a record of another port"
    );
    for port in [names_bystander, reused, other_port] {
        assert!(fw.record(port).is_none(), "record of {port} left behind");
    }

    // The real one stops, by identity, and frees its port and record.
    let o = stop(spec.host_port);
    assert_eq!(o["result"], "terminated", "{o}");
    assert_eq!(o["pid"], real.pid);
    wait_gone(real.pid, real.start_time, Duration::from_secs(5)).await;
    assert!(fw.record(spec.host_port).is_none());
    assert!(
        TcpStream::connect(spec.connect_addr()).is_err(),
        "port still answers"
    );
    assert!(alive(by_pid, by_start));
    let _ = bystander.kill();
    let _ = bystander.wait();

    let out = fw.runner(&["forward", "stop", "--all"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "No matching forwards."
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_list_shows_bytes_and_state() {
    let sb = fixture("fwd-list").await;
    let fw = Forwards::new("list");
    assert_eq!(
        String::from_utf8_lossy(&fw.runner(&["forward", "list"]).stdout).trim(),
        "No forwards."
    );
    let spec = ForwardSpec::loopback(free_port().unwrap(), GATEWAY_PORT);
    let owned = fw
        .registry(ForwardMode::Detached)
        .ensure(docker().await, sb.name(), &spec)
        .await
        .unwrap();
    let pid = owned.pid.unwrap();
    for _ in 0..3 {
        assert_eq!(health_through(spec.host_port).await, 200);
    }

    // Counters reach the record within its refresh period (~2 s).
    let row = poll_until(
        "the record to show traffic",
        Duration::from_secs(8),
        Duration::from_millis(200),
        || async {
            let v = json(&fw.runner(&["forward", "list", "--json"]));
            let row = v.as_array().and_then(|a| a.first()).cloned();
            Ok(row.filter(|r| {
                r["bytes"].as_u64().unwrap_or(0) > 0 && r["connections"].as_u64() >= Some(3)
            }))
        },
    )
    .await
    .unwrap();
    assert_eq!(row["state"], "owned", "{row}");
    assert_eq!(row["pid"], pid);
    assert_eq!(row["sandbox"], sb.name());
    assert_eq!(row["host_port"], spec.host_port);
    assert_eq!(row["sandbox_port"], GATEWAY_PORT);
    // Probes by status/list do not count as connections.
    assert_eq!(row["connections"], 3, "{row}");

    let human = String::from_utf8_lossy(&fw.runner(&["forward", "list"]).stdout).into_owned();
    let lines: Vec<&str> = human.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "SANDBOX",
            "BIND",
            "PORT",
            "TARGET",
            "PID",
            "STATE",
            "CONNS",
            "BYTES",
            "LAST-ERROR"
        ],
        "{human}"
    );
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &cols[..7],
        [
            sb.name(),
            "127.0.0.1",
            &spec.host_port.to_string(),
            ":18789",
            &pid.to_string(),
            "owned",
            "3"
        ],
        "{human}"
    );

    // Killed: the row stays, as stale, until stopped.
    let rec = fw.record(spec.host_port).unwrap();
    kill_identity(rec.pid, rec.start_time);
    wait_gone(rec.pid, rec.start_time, Duration::from_secs(5)).await;
    let v = json(&fw.runner(&["forward", "list", "--json"]));
    assert_eq!(v[0]["state"], "stale", "{v}");
    let out = fw.runner(&["forward", "stop", "--sandbox", sb.name()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already gone"));
    assert_eq!(
        String::from_utf8_lossy(&fw.runner(&["forward", "list"]).stdout).trim(),
        "No forwards."
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_exits_when_its_sandbox_is_gone_for_good() {
    let sb = fixture("fwd-gone").await;
    let fw = Forwards::new("gone");
    let spec = ForwardSpec::loopback(free_port().unwrap(), GATEWAY_PORT);
    let registry = ForwardRegistry::with_options(ForwardOptions {
        gone_grace: Some(Duration::from_secs(1)),
        ..fw.options(ForwardMode::Detached)
    });
    registry
        .ensure(docker().await, sb.name(), &spec)
        .await
        .unwrap();
    let rec = fw.record(spec.host_port).unwrap();
    sb.remove().await.unwrap();
    // Checked every 2 s, plus the 1 s grace.
    wait_gone(rec.pid, rec.start_time, Duration::from_secs(10)).await;
    assert!(
        fw.record(spec.host_port).is_none(),
        "the exiting forward withdraws its record"
    );
    let log =
        std::fs::read_to_string(record::log_path(&fw.dir(), spec.bind, spec.host_port)).unwrap();
    assert!(log.contains("has been gone"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn supervisor_restarts_a_dead_adopted_forward_in_process() {
    let sb = fixture("fwd-watch").await;
    let fw = Forwards::new("watch");
    let spec = ForwardSpec::loopback(free_port().unwrap(), GATEWAY_PORT);
    let backend = docker().await;
    fw.registry(ForwardMode::Detached)
        .ensure(backend.clone(), sb.name(), &spec)
        .await
        .unwrap();
    let detached = fw.record(spec.host_port).unwrap();

    let watch = fw.registry(ForwardMode::InProcess);
    let adopted = watch
        .ensure(backend.clone(), sb.name(), &spec)
        .await
        .unwrap();
    assert_eq!(adopted.pid, Some(detached.pid));
    kill_identity(detached.pid, detached.start_time);
    wait_gone(detached.pid, detached.start_time, Duration::from_secs(5)).await;

    // First restart is immediate, and in-process this time.
    let restarted = watch.ensure(backend, sb.name(), &spec).await.unwrap();
    assert_eq!(
        (restarted.state, restarted.pid),
        (ForwardState::Owned, Some(std::process::id())),
        "{restarted:?}"
    );
    assert_eq!(health_through(spec.host_port).await, 200);
    let rec = fw
        .record(spec.host_port)
        .expect("in-process forwards publish a record too");
    assert_eq!(
        (rec.mode, rec.pid),
        (RecordMode::InProcess, std::process::id())
    );

    // Other commands see it as owned (verified by the socket it holds) and
    // never signal the supervisor.
    let v = json(&fw.runner(&["forward", "list", "--json"]));
    assert_eq!(
        (v[0]["state"].as_str(), v[0]["mode"].as_str()),
        (Some("owned"), Some("in-process")),
        "{v}"
    );
    let out = fw.runner(&["forward", "stop", "--port", &spec.host_port.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("left"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(health_through(spec.host_port).await, 200);

    // In-process forwards end with their supervisor, record included.
    drop(watch);
    assert!(fw.record(spec.host_port).is_none());
    poll_until(
        "the port to close",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async {
            Ok(TcpStream::connect(spec.connect_addr())
                .is_err()
                .then_some(()))
        },
    )
    .await
    .unwrap();
}

#[test]
fn forward_serve_refuses_a_taken_port_without_writing_a_record() {
    let fw = Forwards::new("taken");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = fw.runner(&[
        "forward",
        "serve",
        "--backend",
        "local",
        "--sandbox",
        "localhost",
        "--host-port",
        &port,
        "--sandbox-port",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on 127.0.0.1"));
    assert!(
        !Path::new(&fw.dir())
            .join(format!("127.0.0.1-{port}.json"))
            .exists()
    );
}
