//! Each failure mode `runner` must repair, reproduced against the real engine with the
//! fixture image. These tests prove the test world breaks the way real sandboxes do;
//! runner's own scenario tests build on them. Without an engine they fail (never skip).

use anyhow::{Context, Result, ensure};
use runner_e2e::agents::Relaunch;
use runner_e2e::layout::{self, CIAO_CRASH_TEXT, OPENCLAW_CONFIG, OPENCLAW_PORT};
use runner_e2e::wait::{poll_until, poll_value};
use runner_e2e::{Engine, Mode, Sandbox, SandboxSpec, images};
use serde_json::Value;
use std::time::{Duration, Instant};

const READY: Duration = Duration::from_secs(15);
const DASHBOARD_ORIGIN: &str = "http://127.0.0.1:18789";

async fn fixture_spec(mode: Mode) -> Result<SandboxSpec> {
    Ok(SandboxSpec::new(images::ensure("fixture").await?).mode(mode))
}

/// A fixture sandbox whose gateway already answers /health.
async fn healthy(engine: &Engine, spec: SandboxSpec) -> Result<Sandbox> {
    let sb = Sandbox::create(engine, spec).await?;
    sb.wait_http_ok(OPENCLAW_PORT, "/health", READY).await?;
    Ok(sb)
}

/// (pid, startTime) recorded in the gateway's state lock, if it exists and parses.
async fn lock_owner(sb: &Sandbox) -> Result<Option<(u64, u64)>> {
    let Some(text) = sb.read_file(&layout::gateway_state_lock()).await? else {
        return Ok(None);
    };
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("lock is not JSON: {text:?}"))?;
    let pid = v["pid"].as_u64().context("lock without pid")?;
    let start = v["startTime"].as_u64().context("lock without startTime")?;
    Ok(Some((pid, start)))
}

async fn count_in_log(sb: &Sandbox, needle: &str) -> Result<usize> {
    Ok(sb.gateway_log().await?.matches(needle).count())
}

/// The fixture's own view of itself: pid and start time of the serving process.
async fn served_identity(sb: &Sandbox) -> Result<(u64, u64)> {
    let reply = sb.http_get(OPENCLAW_PORT, "/fixture/info", &[]).await?;
    let v: Value = serde_json::from_str(&reply.body)?;
    Ok((
        v["pid"].as_u64().context("no pid")?,
        v["startTime"].as_u64().context("no startTime")?,
    ))
}

async fn origin_status(sb: &Sandbox, origin: &str) -> Result<(u16, String)> {
    let r = sb
        .http_get(OPENCLAW_PORT, "/origin-check", &[("Origin", origin)])
        .await?;
    Ok((r.status, r.body))
}

/// Asserts that nothing brings a gateway back during `window`. Absence can only be shown
/// over a window; this is the one deliberate fixed wait in the suite.
async fn assert_no_gateway_for(sb: &Sandbox, window: Duration) -> Result<()> {
    let until = Instant::now() + window;
    while Instant::now() < until {
        let pids = sb.gateway_pids().await?;
        ensure!(pids.is_empty(), "a gateway came back: {pids:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    ensure!(
        !sb.tcp_listening(OPENCLAW_PORT).await?,
        "port {OPENCLAW_PORT} is served"
    );
    Ok(())
}

#[tokio::test]
async fn naked_launch_crash_loops_with_ciao_text() -> Result<()> {
    let engine = Engine::connect().await?;
    let sb = healthy(&engine, fixture_spec(Mode::Supervised).await?).await?;
    ensure!(
        count_in_log(&sb, CIAO_CRASH_TEXT).await? == 0,
        "guarded start must not crash"
    );

    // What a container restart plus a naive relaunch does: guards and env file gone.
    sb.delete_env_file().await?;
    sb.delete_guards().await?;
    sb.kill_gateway_9().await?;

    let crashes = poll_value(
        "three unguarded crashes in /tmp/gateway.log",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || count_in_log(&sb, CIAO_CRASH_TEXT),
        |n| *n >= 3,
    )
    .await?;
    assert!(crashes >= 3);
    let log = sb.gateway_log().await?;
    assert!(
        log.contains("respawning (#3)"),
        "PID 1 keeps respawning:\n{log}"
    );
    assert!(log.contains("NODE_OPTIONS does not require /tmp/nemoclaw-ciao-network-guard.js"));
    assert!(
        !sb.tcp_listening(OPENCLAW_PORT).await?,
        "a crash-looping gateway serves nothing"
    );
    for guard in layout::staged_guard_paths() {
        assert_eq!(
            sb.read_file(&guard).await?,
            None,
            "{guard} must stay deleted"
        );
    }
    Ok(())
}

#[tokio::test]
async fn kill9_leaves_lock_behind() -> Result<()> {
    let engine = Engine::connect().await?;
    let sb = healthy(&engine, fixture_spec(Mode::Keepalive).await?).await?;
    let (lock_pid, lock_start) = lock_owner(&sb)
        .await?
        .context("a running gateway holds its lock")?;
    assert_eq!(served_identity(&sb).await?, (lock_pid, lock_start));

    let killed = sb.kill_gateway_9().await?;
    assert_eq!(
        u64::from(killed),
        lock_pid,
        "the lock names the gateway we killed"
    );

    // Nothing cleans up after SIGKILL: same owner, dead pid, and nobody relaunches.
    assert_eq!(lock_owner(&sb).await?, Some((lock_pid, lock_start)));
    let proc_entry = sb.read_file(&format!("/proc/{killed}/cmdline")).await?;
    assert!(
        proc_entry.is_none_or(|c| c.is_empty()),
        "pid {killed} must be dead"
    );
    assert_no_gateway_for(&sb, Duration::from_millis(1500)).await?;

    // The next start reclaims the stale lock silently, as OpenClaw does (docs/openclaw-lease.md).
    sb.relaunch(&Relaunch::openclaw()).await?;
    sb.wait_http_ok(OPENCLAW_PORT, "/health", READY).await?;
    let (new_pid, _) = lock_owner(&sb)
        .await?
        .context("relaunched gateway holds the lock")?;
    assert_ne!(new_pid, lock_pid);
    assert_eq!(served_identity(&sb).await?.0, new_pid);
    assert!(!sb.gateway_log().await?.contains("lock timeout"));
    Ok(())
}

#[tokio::test]
async fn docker_restart_wipes_tmp_guards_and_gateway_in_keepalive() -> Result<()> {
    let engine = Engine::connect().await?;
    let sb = healthy(&engine, fixture_spec(Mode::Keepalive).await?).await?;
    for guard in layout::staged_guard_paths() {
        let mode = sb
            .sh(&format!("stat -c '%U:%G %a' {guard}"))
            .await?
            .check("stat guard")?;
        assert_eq!(
            mode.stdout.trim(),
            "root:root 444",
            "{guard} staged like NemoClaw"
        );
    }
    let env_file = sb
        .read_file(layout::PROXY_ENV_FILE)
        .await?
        .context("env file staged")?;
    assert!(env_file.contains("--require /tmp/nemoclaw-ciao-network-guard.js"));
    let owner_before = lock_owner(&sb).await?.context("lock while running")?;

    sb.docker_restart().await?;

    for guard in layout::staged_guard_paths() {
        assert_eq!(sb.read_file(&guard).await?, None, "tmpfs /tmp lost {guard}");
    }
    assert_eq!(sb.read_file(layout::PROXY_ENV_FILE).await?, None);
    assert_no_gateway_for(&sb, Duration::from_millis(1500)).await?;
    // The volume keeps what the restart did not clean: the lock of the dead gateway,
    // the config, and the packaged (trusted) guard sources in the image.
    assert_eq!(
        lock_owner(&sb).await?,
        Some(owner_before),
        "lock left behind"
    );
    assert!(sb.read_file(OPENCLAW_CONFIG).await?.is_some());
    for g in layout::GUARD_NAMES {
        let src = format!("{}/{g}", layout::PACKAGED_PRELOADS);
        assert!(
            sb.read_file(&src).await?.is_some(),
            "{src} survives in the image"
        );
    }
    let log = sb.gateway_log().await?;
    assert!(log.contains("nothing relaunches the gateway"), "{log}");
    Ok(())
}

#[tokio::test]
async fn supervised_mode_respawns_gateway() -> Result<()> {
    let engine = Engine::connect().await?;
    let sb = healthy(&engine, fixture_spec(Mode::Supervised).await?).await?;
    let old = sb.kill_gateway_9().await?;

    let new = sb
        .wait_new_gateway_pid(Some(old), Duration::from_secs(10))
        .await?;
    let took = sb.wait_http_ok(OPENCLAW_PORT, "/health", READY).await?;
    assert_ne!(new, old);
    let (lock_pid, _) = lock_owner(&sb)
        .await?
        .context("respawned gateway holds the lock")?;
    assert_eq!(
        lock_pid,
        u64::from(new),
        "stale lock of {old} reclaimed by {new}"
    );
    let log = sb.gateway_log().await?;
    assert!(
        log.contains(&format!("pid {old} exited (rc=137); respawning")),
        "{log}"
    );
    eprintln!("respawned {old} -> {new}; healthy {took:?} after the new pid appeared");
    Ok(())
}

#[tokio::test]
async fn stale_garbled_lock_blocks_start() -> Result<()> {
    let engine = Engine::connect().await?;
    // A shorter acquire budget than OpenClaw's 5 s keeps the test fast; the rule is the same.
    let spec = fixture_spec(Mode::Keepalive)
        .await?
        .env("FIXTURE_LOCK_TIMEOUT_MS", "1000");
    let sb = healthy(&engine, spec).await?;
    let lock = layout::gateway_state_lock();

    // A clean stop removes the lock...
    let pid = sb.gateway_pids().await?[0].to_string();
    sb.exec(&["kill", "-TERM", &pid], None)
        .await?
        .check("SIGTERM gateway")?;
    poll_until(
        "gateway to exit on SIGTERM",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async { Ok(sb.gateway_pids().await?.is_empty().then_some(())) },
    )
    .await?;
    assert_eq!(sb.read_file(&lock).await?, None, "SIGTERM removes the lock");

    // ...a writer that died mid-write leaves a fresh, unreadable one, which blocks.
    sb.write_file(&lock, "{\n  \"pid\": ", Some("gateway"))
        .await?;
    sb.relaunch(&Relaunch::openclaw()).await?;
    poll_value(
        "the blocked gateway to give up",
        Duration::from_secs(8),
        Duration::from_millis(100),
        || count_in_log(&sb, "gateway already running; lock timeout"),
        |n| *n >= 1,
    )
    .await?;
    poll_until(
        "blocked gateway to exit",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || async { Ok(sb.gateway_pids().await?.is_empty().then_some(())) },
    )
    .await?;
    assert!(!sb.tcp_listening(OPENCLAW_PORT).await?);
    assert!(
        sb.read_file(&lock).await?.is_some(),
        "the garbled lock is still there"
    );

    // Once it is older than 30 s it counts as stale and the next start reclaims it.
    sb.sh(&format!("touch -d '2020-01-01 00:00:00' {lock}"))
        .await?
        .check("age lock")?;
    sb.relaunch(&Relaunch::openclaw()).await?;
    sb.wait_http_ok(OPENCLAW_PORT, "/health", READY).await?;
    assert!(lock_owner(&sb).await?.is_some(), "reclaimed and rewritten");
    Ok(())
}

#[tokio::test]
async fn stale_lock_mode_blocks_every_respawn_until_the_lock_ages() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = fixture_spec(Mode::Supervised)
        .await?
        .env("FIXTURE_MODE", "stale-lock-blocks")
        .env("FIXTURE_LOCK_TIMEOUT_MS", "500");
    let sb = Sandbox::create(&engine, spec).await?;
    poll_value(
        "two blocked starts",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || count_in_log(&sb, "lock timeout"),
        |n| *n >= 2,
    )
    .await?;
    assert!(sb.gateway_log().await?.contains("planted a garbled lock"));
    assert!(!sb.tcp_listening(OPENCLAW_PORT).await?);

    sb.sh(&format!(
        "touch -d '2020-01-01 00:00:00' {}",
        layout::gateway_state_lock()
    ))
    .await?
    .check("age lock")?;
    sb.wait_http_ok(OPENCLAW_PORT, "/health", READY).await?;
    Ok(())
}

#[tokio::test]
async fn wedge_mode_keeps_pid_but_drops_listener() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = fixture_spec(Mode::Supervised)
        .await?
        .env("FIXTURE_MODE", "serve-then-wedge")
        .env("FIXTURE_WEDGE_AFTER", "2");
    let sb = healthy(&engine, spec).await?;
    let before = sb.gateway_pids().await?;
    assert_eq!(before.len(), 1);

    poll_until(
        "the listener to close",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async { Ok((!sb.tcp_listening(OPENCLAW_PORT).await?).then_some(())) },
    )
    .await?;
    // Alive but deaf: the supervisor sees a live child and does nothing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sb.gateway_pids().await?, before, "same process, no respawn");
    assert!(!sb.tcp_listening(OPENCLAW_PORT).await?);
    let log = sb.gateway_log().await?;
    assert!(log.contains("Process will stay alive"), "{log}");
    Ok(())
}

#[tokio::test]
async fn origin_check_hot_reloads_config() -> Result<()> {
    let engine = Engine::connect().await?;
    let sb = healthy(&engine, fixture_spec(Mode::Supervised).await?).await?;
    let identity = served_identity(&sb).await?;
    let new_origin = "http://localhost:3000";

    assert_eq!(origin_status(&sb, DASHBOARD_ORIGIN).await?.0, 200);
    assert_eq!(
        origin_status(&sb, new_origin).await?,
        (403, "origin not allowed".to_string())
    );

    let text = sb
        .read_file(OPENCLAW_CONFIG)
        .await?
        .context("default config written")?;
    let mut cfg: Value = serde_json::from_str(&text)?;
    cfg["gateway"]["controlUi"]["allowedOrigins"]
        .as_array_mut()
        .context("allowedOrigins is an array")?
        .push(new_origin.into());
    let edited = Instant::now();
    sb.write_file(
        OPENCLAW_CONFIG,
        &serde_json::to_string_pretty(&cfg)?,
        Some("sandbox"),
    )
    .await?;

    poll_value(
        "the new origin to be accepted",
        Duration::from_secs(3),
        Duration::from_millis(100),
        || async { Ok(origin_status(&sb, new_origin).await?.0) },
        |s| *s == 200,
    )
    .await?;
    let took = edited.elapsed();
    assert_eq!(
        served_identity(&sb).await?,
        identity,
        "hot reload, not a restart"
    );
    assert!(
        sb.gateway_log()
            .await?
            .contains("config hot reload applied")
    );
    eprintln!("origin accepted {took:?} after the config write");
    Ok(())
}

#[tokio::test]
async fn recreate_keeps_volume_content() -> Result<()> {
    let engine = Engine::connect().await?;
    let mut sb = healthy(&engine, fixture_spec(Mode::Supervised).await?).await?;
    sb.write_file("/sandbox/marker.txt", "survives", Some("sandbox"))
        .await?;
    let text = sb.read_file(OPENCLAW_CONFIG).await?.context("config")?;
    let edited = text.replace(
        "\"bind\": \"loopback\"",
        "\"bind\": \"loopback\", \"edited\": true",
    );
    assert_ne!(edited, text);
    sb.write_file(OPENCLAW_CONFIG, &edited, Some("sandbox"))
        .await?;
    let (old_id, name, old_lock) = (
        sb.id().to_string(),
        sb.name().to_string(),
        lock_owner(&sb).await?,
    );

    sb.recreate_same_volume().await?;

    assert_ne!(sb.id(), old_id, "a new container");
    assert_eq!(sb.name(), name, "under the same name");
    assert_eq!(
        sb.read_file("/sandbox/marker.txt").await?.as_deref(),
        Some("survives")
    );
    assert_eq!(
        sb.read_file(OPENCLAW_CONFIG).await?,
        Some(edited),
        "config written on first boot only"
    );
    // rm -f SIGKILLed the old gateway; the supervised entrypoint starts a new one, which
    // reclaims the lock the old one left on the volume.
    sb.wait_http_ok(OPENCLAW_PORT, "/health", READY).await?;
    let new_lock = lock_owner(&sb).await?.context("lock")?;
    assert_ne!(Some(new_lock), old_lock, "old lock replaced");
    assert_eq!(served_identity(&sb).await?, new_lock);
    Ok(())
}

#[tokio::test]
async fn slow_start_runs_before_it_listens() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = fixture_spec(Mode::Supervised)
        .await?
        .env("FIXTURE_MODE", "slow-start")
        .env("FIXTURE_SLOW_START", "3");
    let created = Instant::now();
    let sb = Sandbox::create(&engine, spec).await?;
    sb.wait_new_gateway_pid(None, Duration::from_secs(5))
        .await?;
    assert!(
        !sb.tcp_listening(OPENCLAW_PORT).await?,
        "alive but not yet listening"
    );
    sb.wait_http_ok(OPENCLAW_PORT, "/health", READY).await?;
    assert!(
        created.elapsed() >= Duration::from_secs(3),
        "{:?}",
        created.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn always_crash_mode_crash_loops_and_leaves_locks() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = fixture_spec(Mode::Supervised)
        .await?
        .env("FIXTURE_MODE", "always-crash");
    let sb = Sandbox::create(&engine, spec).await?;
    let owners = std::sync::Mutex::new(Vec::new());
    poll_until(
        "three different crashed lock owners",
        Duration::from_secs(15),
        Duration::from_millis(150),
        || async {
            let mut seen = owners.lock().unwrap().clone();
            if let Some((pid, _)) = lock_owner(&sb).await?
                && !seen.contains(&pid)
            {
                seen.push(pid);
                *owners.lock().unwrap() = seen.clone();
            }
            Ok((seen.len() >= 3).then_some(()))
        },
    )
    .await?;
    let log = sb.gateway_log().await?;
    assert!(
        log.matches("exited (rc=1); respawning").count() >= 2,
        "{log}"
    );
    assert!(!log.contains("lock timeout"), "dead owners never block");
    Ok(())
}

#[tokio::test]
async fn health_status_is_configurable() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = fixture_spec(Mode::Supervised)
        .await?
        .env("FIXTURE_HEALTH_STATUS", "401");
    let sb = Sandbox::create(&engine, spec).await?;
    let reply = poll_until(
        "/health to answer",
        READY,
        Duration::from_millis(100),
        || async { Ok(sb.http_get(OPENCLAW_PORT, "/health", &[]).await.ok()) },
    )
    .await?;
    // 401 counts as alive in NemoClaw's probe (device auth), so runner must accept it too.
    assert_eq!(reply.status, 401);
    Ok(())
}

#[tokio::test]
async fn harness_removes_sandbox_after_panic() -> Result<()> {
    let spec = fixture_spec(Mode::Supervised).await?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Its own thread and runtime: the panic unwinds through a live Sandbox exactly as in
    // a failing test, and this test survives to check the aftermath.
    let worker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let engine = Engine::connect().await.unwrap();
            let sb = Sandbox::create(&engine, spec).await.unwrap();
            tx.send((sb.name().to_string(), sb.volume().to_string()))
                .unwrap();
            panic!("deliberate panic while {} is alive", sb.name());
        })
    });
    let joined = tokio::task::spawn_blocking(move || worker.join()).await?;
    assert!(joined.is_err(), "the worker must have panicked");
    let (name, volume) = rx.recv_timeout(Duration::from_secs(1))?;

    let engine = Engine::connect().await?;
    let container = engine.docker().inspect_container(&name, None).await;
    assert!(
        matches!(
            container,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })
        ),
        "container {name} still exists: {container:?}"
    );
    let vol = engine.docker().inspect_volume(&volume).await;
    assert!(
        matches!(
            vol,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })
        ),
        "volume {volume} still exists: {vol:?}"
    );
    Ok(())
}
