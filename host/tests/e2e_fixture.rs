//! Issue 4 acceptance, fast half: every scenario the fixture image can
//! express, driven through the real `runner` binary (`status`/`recover
//! --json`) against a real Docker engine. Each test checks the exit code, the
//! `runner.report/v1` report, and the sandbox from outside (docker exec,
//! the container's network namespace, the host port). Without an engine the
//! tests fail (never skip).

#[path = "support/e2e.rs"]
mod e2e;

use std::time::Duration;

use anyhow::{Context, Result};
use bollard::models::ContainerStateStatusEnum;
use e2e::{Runner, Target, fixture_spec, healthy_keepalive};
use runner_e2e::agents::Relaunch;
use runner_e2e::layout::{self, CIAO_CRASH_TEXT, OPENCLAW_CONFIG, OPENCLAW_PORT};
use runner_e2e::ports::FOREIGN_BODY;
use runner_e2e::wait::{poll_until, poll_value};
use runner_e2e::{Engine, ForeignListener, Mode, Sandbox, free_port};
use serde_json::Value;

/// The fixture gateway serves within a second; generous for a loaded box.
const READY: Duration = e2e::FIXTURE_READY;

/// The staged guard chain and the state lock, for snapshots.
fn chain_paths() -> Vec<String> {
    let mut paths = layout::staged_guard_paths();
    paths.push(layout::PROXY_ENV_FILE.to_string());
    paths
}

async fn chain_snapshot(sb: &Sandbox) -> Result<String> {
    let paths = chain_paths();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    e2e::snapshot(sb, &refs).await
}

/// The fixture's own view of the process serving a request.
fn served_identity(body: &str) -> Result<(u32, u64)> {
    let v: Value = serde_json::from_str(body).with_context(|| format!("/fixture/info: {body}"))?;
    Ok((
        u32::try_from(v["pid"].as_u64().context("no pid")?)?,
        v["startTime"].as_u64().context("no startTime")?,
    ))
}

async fn origin_status(sb: &Sandbox, origin: &str) -> Result<u16> {
    Ok(sb
        .http_get(OPENCLAW_PORT, "/origin-check", &[("Origin", origin)])
        .await?
        .status)
}

/// Common outside checks after a recover that relaunched the gateway: a new
/// identity, serving /health, launched with every guard, no naked crash in
/// the log, the state lock naming the new gateway. Returns the new identity.
async fn assert_relaunched(sb: &Sandbox, run: &e2e::Run, old: (u32, u64)) -> Result<(u32, u64)> {
    let new = sb.sole_gateway().await?;
    assert_ne!(new, old, "a new gateway process");
    assert_eq!(
        run.evidence("gateway", "pid"),
        Some(new.0.to_string()),
        "{}",
        run.context()
    );
    assert_eq!(
        sb.proc_start_time(old.0).await?.filter(|s| *s == old.1),
        None,
        "old gateway {old:?} is gone"
    );
    let health = sb.http_get(OPENCLAW_PORT, "/health", &[]).await?;
    assert_eq!(health.status, 200, "{health:?}");
    e2e::assert_launched_guarded(sb, new.0).await?;
    let log = sb.gateway_log().await?;
    assert!(
        !log.contains(CIAO_CRASH_TEXT),
        "a naked gateway crashed:\n{log}"
    );
    let lock = layout::gateway_state_lock();
    assert_eq!(
        sb.lock_owner(&lock).await?,
        Some(new),
        "{lock} must belong to the new gateway"
    );
    Ok(new)
}

#[tokio::test]
async fn healthy_sandbox_twice_status_0_recover_0_and_nothing_changes() -> Result<()> {
    let sb = healthy_keepalive("healthy").await?;
    let port = free_port()?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("healthy");

    // The first recover only has to bring up the forward.
    let first = runner.recover(&t).await;
    first.expect(0, "recovered");
    assert_eq!(
        first.mutation_kinds(),
        ["forward.ensure"],
        "{}",
        first.context()
    );
    let gateway = sb.sole_gateway().await?;
    let mut paths = chain_paths();
    paths.push(OPENCLAW_CONFIG.into());
    paths.push(layout::gateway_state_lock());
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let files = e2e::snapshot(&sb, &refs).await?;

    for round in 1..=2 {
        let audit_before = runner.audit().len();
        let status = runner.status(&t).await;
        e2e::expect_steady_status(&status);
        assert_eq!(
            runner.audit().len(),
            audit_before,
            "status wrote to the audit log"
        );

        let recover = runner.recover(&t).await;
        e2e::expect_steady_recover(&recover);
        let added = e2e::audit_since(&runner, audit_before);
        assert!(
            added.is_empty(),
            "round {round}: audit log changed: {added:?}"
        );
        let body = e2e::assert_forward_after_run(&recover, port, "/fixture/info").await;
        assert_eq!(
            served_identity(&body)?,
            gateway,
            "the forward reaches the same gateway"
        );

        assert_eq!(
            sb.sole_gateway().await?,
            gateway,
            "round {round}: the gateway was touched"
        );
        assert_eq!(
            e2e::snapshot(&sb, &refs).await?,
            files,
            "round {round}: files changed"
        );
        e2e::assert_guards_staged(&sb).await?;
    }
    Ok(())
}

#[tokio::test]
async fn kill_9_in_keepalive_is_recovered_with_a_new_pid() -> Result<()> {
    let sb = healthy_keepalive("kill9").await?;
    let port = free_port()?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("kill9");
    let old = sb.sole_gateway().await?;
    let lock = layout::gateway_state_lock();
    assert_eq!(sb.lock_owner(&lock).await?, Some(old));
    let guards = chain_snapshot(&sb).await?;

    sb.kill_gateway_9().await?;
    assert_eq!(
        sb.lock_owner(&lock).await?,
        Some(old),
        "kill -9 leaves the lock of the dead gateway"
    );

    let status = runner.status(&t).await;
    status.expect(1, "broken");
    status.expect_failing_layer("locks");
    status.assert_link("locks", "broken", "none", "broken");
    status.assert_link("gateway", "broken", "none", "broken");
    assert!(runner.audit().is_empty(), "status mutated");

    let run = runner.recover(&t).await;
    run.expect(0, "recovered");
    run.assert_link("guards", "healthy", "none", "healthy");
    run.assert_link("locks", "broken", "repaired", "healthy");
    run.assert_link("gateway", "broken", "repaired", "healthy");
    run.assert_all_healthy_after();
    let removed = run
        .mutation_index("files.remove-if", &lock)
        .context("stale lock removal")?;
    let spawned = run.launch_index(e2e::OPENCLAW_LAUNCH).context("launch")?;
    assert!(
        removed < spawned,
        "lock removed before the launch\n{}",
        run.context()
    );
    assert!(
        !run.mutation_kinds().iter().any(|k| k == "files.write"),
        "guards were intact: nothing to write\n{}",
        run.context()
    );

    assert_relaunched(&sb, &run, old).await?;
    assert_eq!(
        chain_snapshot(&sb).await?,
        guards,
        "the guard chain was left as it was"
    );
    e2e::assert_guards_staged(&sb).await?;
    e2e::assert_forward_after_run(&run, port, "/health").await;
    let audit: Vec<String> = runner
        .audit()
        .iter()
        .map(|r| r["action"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        audit,
        run.mutation_kinds(),
        "the audit log has every mutation, in order"
    );
    Ok(())
}

#[tokio::test]
async fn docker_restart_restages_guards_before_the_launch() -> Result<()> {
    let sb = healthy_keepalive("restart").await?;
    let port = free_port()?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("restart");
    let old = sb.sole_gateway().await?;

    sb.docker_restart().await?;
    let tmp = sb.tmp_entries().await?;
    for g in layout::GUARD_NAMES {
        assert!(!tmp.iter().any(|e| e == g), "tmpfs wiped: {tmp:?}");
    }
    assert!(
        sb.gateway_pids().await?.is_empty(),
        "keepalive relaunches nothing"
    );

    let status = runner.status(&t).await;
    status.expect(1, "broken");
    status.expect_failing_layer("guards");

    let run = runner.recover(&t).await;
    run.expect(0, "recovered");
    for link in ["guards", "gateway", "forward"] {
        run.assert_link(link, "broken", "repaired", "healthy");
    }
    run.assert_all_healthy_after();
    // Every staged file is written before the one launch.
    let spawned = run.launch_index(e2e::OPENCLAW_LAUNCH).context("launch")?;
    assert_eq!(
        run.mutation_kinds()
            .iter()
            .filter(|k| *k == "spawn.detached")
            .count(),
        1,
        "{}",
        run.context()
    );
    for path in chain_paths() {
        let written = run
            .mutation_index("files.write", &path)
            .with_context(|| format!("{path} written"))?;
        assert!(
            written < spawned,
            "{path} staged after the launch\n{}",
            run.context()
        );
    }
    let audit: Vec<String> = runner
        .audit()
        .iter()
        .map(|r| r["action"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        audit,
        run.mutation_kinds(),
        "the audit log has every mutation, in order"
    );

    // Each change was announced before it was made, its outcome right after.
    let raw = runner.audit_raw();
    assert_eq!(raw.len(), 2 * audit.len(), "{raw:?}");
    for pair in raw.chunks(2) {
        assert_eq!(pair[0]["result"], "pending", "{pair:?}");
        assert_ne!(pair[1]["result"], "pending", "{pair:?}");
        for key in ["action", "detail", "link", "sandbox"] {
            assert_eq!(pair[0][key], pair[1][key], "{key}: {pair:?}");
        }
    }

    e2e::assert_guards_staged(&sb).await?;
    // PID 1 did not launch anything: the pid space restarted, so compare the
    // start time rather than the pid.
    assert_relaunched(&sb, &run, old).await?;
    e2e::assert_forward_after_run(&run, port, "/health").await;
    Ok(())
}

#[tokio::test]
async fn env_file_deleted_and_gateway_killed_never_launches_naked() -> Result<()> {
    let sb = healthy_keepalive("envfile").await?;
    let port = free_port()?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("envfile");
    let old = sb.sole_gateway().await?;

    sb.delete_env_file().await?;
    sb.kill_gateway_9().await?;

    let status = runner.status(&t).await;
    status.expect(1, "broken");
    status.expect_failing_layer("guards");

    let run = runner.recover(&t).await;
    run.expect(0, "recovered");
    run.assert_link("guards", "broken", "repaired", "healthy");
    run.assert_link("gateway", "broken", "repaired", "healthy");
    let env_written = run
        .mutation_index("files.write", layout::PROXY_ENV_FILE)
        .context("env file restored")?;
    let spawned = run.launch_index(e2e::OPENCLAW_LAUNCH).context("launch")?;
    assert!(
        env_written < spawned,
        "env file restored before the launch\n{}",
        run.context()
    );
    // The launch sources the env file (and fails if it cannot).
    let launch = &run.mutations()[spawned];
    assert!(
        launch.detail.contains(layout::PROXY_ENV_FILE),
        "launch without the env file: {launch:?}"
    );

    e2e::assert_guards_staged(&sb).await?;
    assert_relaunched(&sb, &run, old).await?;
    e2e::assert_forward_after_run(&run, port, "/health").await;
    Ok(())
}

#[tokio::test]
async fn group_writable_guard_source_is_refused_and_nothing_launches() -> Result<()> {
    let sb = healthy_keepalive("gwsource").await?;
    let port = free_port()?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("gwsource");
    let source = format!("{}/{}", layout::PACKAGED_PRELOADS, layout::GUARD_NAMES[1]);
    sb.exec(&["chmod", "g+w", &source], Some("0"))
        .await?
        .check("chmod g+w")?;
    sb.delete_guards().await?;
    sb.kill_gateway_9().await?;

    let run = runner.recover(&t).await;
    run.expect(1, "broken");
    run.expect_failing_layer("guards");
    run.assert_link("guards", "broken", "refused", "broken");
    run.assert_link("gateway", "broken", "skipped", "broken");
    assert!(
        run.message().contains("group-writable") && run.message().contains(&source),
        "{}",
        run.context()
    );
    assert!(
        run.mutations().is_empty(),
        "nothing may change\n{}",
        run.context()
    );
    assert!(runner.audit().is_empty());

    // From outside: no gateway comes up, nothing staged, the source untouched.
    sb.assert_no_gateway_for("openclaw gateway", OPENCLAW_PORT, Duration::from_secs(2))
        .await?;
    for staged in layout::staged_guard_paths() {
        assert_eq!(
            sb.file_meta(&staged).await?,
            None,
            "{staged} was staged from an untrusted source"
        );
    }
    assert_eq!(
        sb.file_meta(&source).await?.as_deref(),
        Some("regular file 0:0 664")
    );
    assert!(
        !sb.gateway_log().await?.contains(CIAO_CRASH_TEXT),
        "a naked gateway ran"
    );
    assert!(e2e::host_port_free(port), "no forward for a broken sandbox");
    Ok(())
}

#[tokio::test]
async fn recreate_on_the_same_volume_retargets_the_forward() -> Result<()> {
    let mut sb = healthy_keepalive("recreate").await?;
    let port = free_port()?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("recreate");
    runner.recover(&t).await.expect(0, "recovered");
    let old = sb.sole_gateway().await?;
    let old_id = sb.id().to_string();

    sb.recreate_same_volume().await?;
    assert_ne!(sb.id(), old_id);
    // Keepalive on a booted volume: no gateway in the new container.
    assert!(sb.gateway_pids().await?.is_empty());

    let run = runner.recover(&t).await;
    run.expect(0, "recovered");
    run.assert_all_healthy_after();
    assert_eq!(
        run.evidence("sandbox", "container").as_deref(),
        sb.id().get(..12),
        "{}",
        run.context()
    );
    run.assert_link("gateway", "broken", "repaired", "healthy");
    assert_eq!(
        run.transition("dashboard").2,
        "healthy",
        "served end to end through the forward\n{}",
        run.context()
    );
    let new = assert_relaunched(&sb, &run, old).await?;
    let body = e2e::assert_forward_after_run(&run, port, "/fixture/info").await;
    assert_eq!(
        served_identity(&body)?,
        new,
        "the forward reaches the new container's gateway"
    );
    Ok(())
}

#[tokio::test]
async fn missing_dashboard_origin_is_patched_and_hot_reloaded() -> Result<()> {
    let sb = healthy_keepalive("cors").await?;
    let port = free_port()?;
    let origin = format!("http://127.0.0.1:{port}");
    let t = Target::fixture(&sb, port).set("dashboard-origin", &origin);
    let runner = Runner::new("cors");
    let gateway = sb.sole_gateway().await?;
    let before = sb.read_file(OPENCLAW_CONFIG).await?.context("config")?;
    let meta = sb.file_meta(OPENCLAW_CONFIG).await?;
    assert_eq!(
        origin_status(&sb, &origin).await?,
        403,
        "the origin starts out rejected"
    );

    let status = runner.status(&t).await;
    status.expect(1, "broken");
    status.expect_failing_layer("cors");

    let run = runner.recover(&t).await;
    run.expect(0, "recovered");
    run.assert_link("cors", "broken", "repaired", "healthy");
    run.assert_link("gateway", "healthy", "none", "healthy");
    run.assert_all_healthy_after();
    assert!(
        !run.mutation_kinds()
            .iter()
            .any(|k| k.starts_with("spawn.") || k.starts_with("processes.")),
        "a hot reload needs no restart\n{}",
        run.context()
    );

    let after = sb.read_file(OPENCLAW_CONFIG).await?.context("config")?;
    e2e::assert_only_origin_inserted(&before, &after, &origin)?;
    assert_eq!(
        sb.file_meta(OPENCLAW_CONFIG).await?,
        meta,
        "owner and mode kept"
    );
    let backups = e2e::backups_of(&sb, OPENCLAW_CONFIG).await?;
    assert_eq!(backups.len(), 1, "one backup: {backups:?}");
    assert_eq!(
        sb.read_file(&backups[0]).await?.as_deref(),
        Some(before.as_str()),
        "backup is the original"
    );
    assert_eq!(
        sb.file_meta(&backups[0]).await?,
        meta,
        "backup keeps owner and mode"
    );
    assert!(
        run.mutation_index("files.write", &backups[0]).is_some(),
        "{}",
        run.context()
    );

    assert_eq!(
        sb.sole_gateway().await?,
        gateway,
        "hot reload: same gateway process"
    );
    poll_value(
        "the gateway to accept the dashboard origin",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || origin_status(&sb, &origin),
        |s| *s == 200,
    )
    .await?;
    assert!(
        sb.gateway_log()
            .await?
            .contains("config hot reload applied")
    );
    e2e::assert_forward_after_run(&run, port, "/health").await;

    // Nothing left to do for cors.
    let again = runner.recover(&t).await;
    e2e::expect_steady_recover(&again);
    assert_eq!(
        sb.read_file(OPENCLAW_CONFIG).await?.as_deref(),
        Some(after.as_str())
    );
    assert_eq!(e2e::backups_of(&sb, OPENCLAW_CONFIG).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn wedged_gateway_is_detected_and_replaced() -> Result<()> {
    let sb = healthy_keepalive("wedge").await?;
    let port = free_port()?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("wedge");

    // Replace the gateway by one that serves for a second, then stays alive
    // without a listener (OpenClaw's "Process will stay alive").
    sb.kill_gateway_9().await?;
    sb.relaunch(&Relaunch::openclaw().args(&["--mode", "serve-then-wedge", "--wedge-after", "1"]))
        .await
        .context("launch a wedging gateway")?;
    poll_until(
        "the gateway to wedge",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || async {
            let wedged = sb.gateway_log().await?.contains("Process will stay alive")
                && !sb.tcp_listening(OPENCLAW_PORT).await?;
            Ok(wedged.then_some(()))
        },
    )
    .await?;
    let wedged = sb.sole_gateway().await?;

    let status = runner.status(&t).await;
    status.expect(1, "broken");
    status.expect_failing_layer("gateway");
    status.assert_link("gateway", "broken", "none", "broken");
    assert_eq!(
        sb.sole_gateway().await?,
        wedged,
        "status touched the gateway"
    );

    let run = runner.recover(&t).await;
    run.expect(0, "recovered");
    run.assert_link("gateway", "broken", "repaired", "healthy");
    run.assert_all_healthy_after();
    let new = assert_relaunched(&sb, &run, wedged).await?;
    let info = sb.http_get(OPENCLAW_PORT, "/fixture/info", &[]).await?;
    assert_eq!(served_identity(&info.body)?, new);
    assert!(
        !info.body.contains("serve-then-wedge"),
        "the replacement runs the image's normal mode: {}",
        info.body
    );
    e2e::assert_forward_after_run(&run, port, "/health").await;
    Ok(())
}

#[tokio::test]
async fn foreign_listener_on_the_host_port_is_never_touched() -> Result<()> {
    let sb = healthy_keepalive("foreign").await?;
    let port = free_port()?;
    let foreign = ForeignListener::occupy(port)?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("foreign");
    let gateway = sb.sole_gateway().await?;

    let run = runner.recover(&t).await;
    run.expect(1, "broken");
    run.expect_failing_layer("forward");
    let (before, action, after) = run.transition("forward");
    assert_eq!(
        (before.as_str(), after.as_str()),
        ("broken", "broken"),
        "{}",
        run.context()
    );
    assert_ne!(action, "repaired");
    assert_eq!(
        run.evidence("forward", "state").as_deref(),
        Some("foreign"),
        "{}",
        run.context()
    );
    assert!(run.mutations().is_empty(), "{}", run.context());

    // Still the foreign listener, still answering; the gateway untouched.
    let reply = e2e::host_get(port, "/health", &[]).await?;
    assert_eq!((reply.status, reply.body.as_str()), (200, FOREIGN_BODY));
    assert_eq!(sb.sole_gateway().await?, gateway);
    drop(foreign);
    Ok(())
}

#[tokio::test]
async fn foreign_listener_owner_is_named() -> Result<()> {
    let sb = healthy_keepalive("foreign-owner").await?;
    let port = free_port()?;
    let _foreign = ForeignListener::occupy(port)?;
    let runner = Runner::new("foreign-owner");

    let run = runner.recover(&Target::fixture(&sb, port)).await;
    run.expect(1, "broken");
    // The listener lives in this test process: the report must say so.
    let owner = format!("pid {}", std::process::id());
    assert!(
        run.summary("forward").contains(&owner) && run.message().contains(&owner),
        "the foreign owner ({owner}) is not named\n{}",
        run.context()
    );
    Ok(())
}

#[tokio::test]
async fn stopped_container_is_started_by_recover() -> Result<()> {
    let sb = healthy_keepalive("stopped").await?;
    let port = free_port()?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("stopped");
    sb.stop().await?;

    let status = runner.status(&t).await;
    status.expect(1, "broken");
    status.expect_failing_layer("sandbox");
    assert!(status.message().contains("recover"), "{}", status.context());
    assert_eq!(
        sb.status().await?,
        ContainerStateStatusEnum::EXITED,
        "status never starts a sandbox"
    );

    let run = runner.recover(&t).await;
    run.expect(0, "recovered");
    run.assert_link("sandbox", "broken", "repaired", "healthy");
    run.assert_link("gateway", "broken", "repaired", "healthy");
    run.assert_all_healthy_after();
    assert_eq!(
        run.mutation_kinds().first().map(String::as_str),
        Some("sandbox.start"),
        "{}",
        run.context()
    );
    assert_eq!(runner.audit()[0]["action"], "sandbox.start");

    assert_eq!(sb.status().await?, ContainerStateStatusEnum::RUNNING);
    e2e::assert_guards_staged(&sb).await?;
    let (pid, _) = sb.sole_gateway().await?;
    e2e::assert_launched_guarded(&sb, pid).await?;
    assert_eq!(
        sb.http_get(OPENCLAW_PORT, "/health", &[]).await?.status,
        200
    );
    e2e::assert_forward_after_run(&run, port, "/health").await;
    Ok(())
}

#[tokio::test]
async fn paused_container_is_reported_and_left_paused() -> Result<()> {
    let sb = healthy_keepalive("paused").await?;
    let port = free_port()?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("paused");
    let gateway = sb.sole_gateway().await?;
    sb.pause().await?;

    let run = runner.recover(&t).await;
    run.expect(1, "broken");
    run.expect_failing_layer("sandbox");
    run.assert_link("sandbox", "broken", "none", "broken");
    assert!(run.message().contains("unpause"), "{}", run.context());
    assert!(
        run.mutations().is_empty() && runner.audit().is_empty(),
        "{}",
        run.context()
    );
    assert_eq!(
        sb.status().await?,
        ContainerStateStatusEnum::PAUSED,
        "runner unpaused it"
    );
    assert!(e2e::host_port_free(port));

    sb.unpause().await?;
    assert_eq!(
        sb.sole_gateway().await?,
        gateway,
        "the gateway was not touched"
    );
    Ok(())
}

#[tokio::test]
async fn status_calls_a_gateway_answering_500_broken() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = fixture_spec(Mode::Keepalive, "http500")
        .await?
        .env("FIXTURE_HEALTH_STATUS", "500");
    let sb = Sandbox::create(&engine, spec).await?;
    poll_until(
        "/health to answer 500",
        READY,
        Duration::from_millis(100),
        || async {
            Ok((sb.http_get(OPENCLAW_PORT, "/health", &[]).await?.status == 500).then_some(()))
        },
    )
    .await?;
    let gateway = sb.sole_gateway().await?;
    let runner = Runner::new("http500");

    let run = runner.status(&Target::fixture(&sb, free_port()?)).await;
    run.expect(1, "broken");
    run.expect_failing_layer("gateway");
    run.assert_link("gateway", "broken", "none", "broken");
    assert_eq!(
        run.evidence("gateway", "http").as_deref(),
        Some("500"),
        "{}",
        run.context()
    );
    assert!(run.summary("gateway").contains("500"), "{}", run.context());
    assert!(run.mutations().is_empty() && runner.audit().is_empty());
    assert_eq!(sb.sole_gateway().await?, gateway);
    Ok(())
}

/// The engine answers nothing: exit 3 with the cause, nothing touched.
fn unreachable_engine_args(json: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "status",
        "--plugin",
        "openclaw",
        "--sandbox",
        "rt-e2e-nowhere",
        "--timeout",
        "10s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if json {
        args.push("--json".into());
    }
    args
}

const NO_ENGINE: (&str, &str) = ("DOCKER_HOST", "unix:///nonexistent.sock");

#[tokio::test]
async fn status_with_an_unreachable_engine_is_unknown_exit_3() -> Result<()> {
    let runner = Runner::new("noengine");
    let run = runner
        .run(&unreachable_engine_args(false), &[NO_ENGINE])
        .await;
    assert_eq!(run.code, Some(3), "{}", run.context());
    // Human output: the cause (and its fix) is named, wherever it is printed.
    assert!(
        format!("{}{}", run.stdout, run.stderr).contains("/nonexistent.sock"),
        "the cause is named\n{}",
        run.context()
    );
    assert!(runner.audit().is_empty());
    Ok(())
}

#[tokio::test]
async fn status_json_with_an_unreachable_engine_is_one_unknown_report() -> Result<()> {
    let runner = Runner::new("noengine-json");
    let run = runner
        .run(&unreachable_engine_args(true), &[NO_ENGINE])
        .await;
    run.expect(3, "unknown");
    assert_eq!(run.transition("sandbox").2, "unknown", "{}", run.context());
    assert!(
        run.message().contains("/nonexistent.sock"),
        "{}",
        run.context()
    );
    Ok(())
}

/// The outside checks themselves (support/e2e.rs) recognize what they claim to.
#[test]
fn support_recognizes_an_origin_insertion_and_exact_require_tokens() {
    let before = "{\n  // c\n  \"a\": [\"x\"],\n}\n";
    let after = "{\n  // c\n  \"a\": [\"x\", \"o\"],\n}\n";
    assert!(e2e::assert_only_origin_inserted(before, after, "o").is_ok());
    let changed = "{\n  // c\n  \"a\": [\"y\", \"o\"],\n}\n";
    assert!(e2e::assert_only_origin_inserted(before, changed, "o").is_err());
    let lost_comment = "{\n  \"a\": [\"x\", \"o\"],\n}\n";
    assert!(e2e::assert_only_origin_inserted(before, lost_comment, "o").is_err());

    assert!(e2e::requires(
        "export NODE_OPTIONS='--require /tmp/a.js'",
        "/tmp/a.js"
    ));
    assert!(e2e::requires("--require=/tmp/a.js", "/tmp/a.js"));
    assert!(!e2e::requires("--require /tmp/a.js.bak", "/tmp/a.js"));
}

#[tokio::test]
async fn gateway_that_exits_at_launch_fails_fast_with_its_log_tail() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = fixture_spec(Mode::Keepalive, "exits")
        .await?
        .env("FIXTURE_MODE", "always-crash");
    let sb = Sandbox::create(&engine, spec).await?;
    let port = free_port()?;
    // A deadline far beyond the crash: failing fast must not need it.
    let t = Target::fixture(&sb, port).timeout("120s");
    let runner = Runner::new("exits");

    let run = runner.recover(&t).await;
    run.expect(1, "broken");
    run.expect_failing_layer("gateway");
    // The gateway's own last words reach the report.
    let text = format!("{} {}", run.summary("gateway"), run.message());
    assert!(
        text.contains("always-crash mode"),
        "no log tail in the report: {}",
        run.context()
    );
    let took_ms = run.report()["duration_ms"]
        .as_u64()
        .context("duration_ms")?;
    assert!(
        took_ms < 60_000,
        "waited {took_ms} ms for a gateway that had exited (deadline 120 s): {}",
        run.context()
    );
    // Nothing left running: the crashed gateway is not respawned behind our back.
    assert_eq!(sb.gateway_pids().await?.len(), 0);
    Ok(())
}

/// Issue 9: a launch whose program does not exist is a deterministic failure, not a
/// crash loop: refused, exit 1, and the report says what was not found and which
/// setting fixes it.
#[tokio::test]
async fn missing_gateway_binary_is_refused_naming_the_program_and_setting() -> Result<()> {
    let sb = healthy_keepalive("nobin").await?;
    let port = free_port()?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("nobin");
    sb.docker_restart().await?;
    sb.assert_no_gateway_for("openclaw gateway", OPENCLAW_PORT, Duration::from_secs(1))
        .await?;
    sb.exec(&["rm", "-f", "/usr/local/bin/openclaw"], Some("0"))
        .await?
        .check("delete the gateway program")?;

    let run = runner.recover(&t).await;
    run.expect(1, "broken");
    run.expect_failing_layer("gateway");
    let (_, action, after) = run.transition("gateway");
    assert_eq!(
        (action.as_str(), after.as_str()),
        ("refused", "broken"),
        "{}",
        run.context()
    );
    let text = format!("{} {}", run.summary("gateway"), run.message());
    assert!(
        text.contains("openclaw") && text.contains("launch"),
        "the report names the missing program and the `launch` setting: {}",
        run.context()
    );
    assert!(
        !text.contains("ExecError::"),
        "no Rust Debug formatting in user-facing text: {}",
        run.context()
    );
    assert_eq!(sb.gateway_pids().await?.len(), 0, "nothing runs");
    Ok(())
}

/// Issue 9: a failed earlier attempt (or anything else) left a root-owned
/// /tmp/gateway.log: the launch as user `gateway` must still work, the log then
/// belongs to the gateway user and keeps what it had.
#[tokio::test]
async fn root_owned_gateway_log_left_behind_does_not_block_the_launch() -> Result<()> {
    let sb = healthy_keepalive("rootlog").await?;
    let port = free_port()?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("rootlog");
    sb.docker_restart().await?;
    let old_text = "left behind by a root launch attempt\n";
    sb.exec(
        &[
            "sh",
            "-c",
            r#"rm -f "$1" && printf '%s' "$2" >"$1" && chown 0:0 "$1" && chmod 0644 "$1""#,
            "plant",
            layout::GATEWAY_LOG,
            old_text,
        ],
        Some("0"),
    )
    .await?
    .check("plant a root-owned gateway log")?;
    assert_eq!(
        sb.file_meta(layout::GATEWAY_LOG).await?.as_deref(),
        Some("regular file 0:0 644")
    );

    let run = runner.recover(&t).await;
    run.expect(0, "recovered");
    run.assert_link("gateway", "broken", "repaired", "healthy");
    run.assert_all_healthy_after();
    sb.wait_http_ok(OPENCLAW_PORT, "/health", READY).await?;
    let meta = sb
        .file_meta(layout::GATEWAY_LOG)
        .await?
        .context("gateway log")?;
    assert!(
        meta == format!("regular file {0}:{0} 600", layout::GATEWAY_UID)
            || meta == format!("regular file {0}:{0} 644", layout::GATEWAY_UID),
        "log owned by the launch user, mode 600 or 644: {meta}"
    );
    let log = sb.gateway_log().await?;
    assert!(
        log.starts_with(old_text),
        "the old content is kept at the start: {log:?}"
    );
    e2e::assert_forward_after_run(&run, port, "/health").await;
    Ok(())
}

#[tokio::test]
async fn recovers_by_name_and_by_id_at_once_launch_one_gateway() -> Result<()> {
    let sb = healthy_keepalive("alias").await?;
    let port = free_port()?;
    let runner = Runner::new("alias");
    sb.restart_with_grace(1).await?;
    // The same sandbox named every way (name, full id, short id, name again).
    let aliases = e2e::every_alias(&sb, port);
    for run in e2e::recover_all_at_once(&runner, &aliases).await {
        run.expect_ok();
    }
    let audit = runner.audit();
    assert_eq!(
        e2e::gateway_launches(&audit),
        1,
        "one gateway launch: {audit:?}"
    );
    assert!(
        audit.iter().all(|r| r["sandbox"] == sb.name()),
        "every audit line names the sandbox by its name"
    );
    let pids = sb.gateway_pids().await?;
    assert_eq!(pids.len(), 1, "exactly one gateway runs: {pids:?}");
    // By id alone, later: the forward the name-keyed run started is runner's own.
    let again = runner.recover(&aliases[1]).await;
    again.expect(0, "healthy");
    assert_eq!(
        again.report()["mutations"],
        serde_json::json!([]),
        "{}",
        again.context()
    );
    Ok(())
}

/// A sandbox removed while recover waits on its gateway: the run ends at
/// once, unknown (exit 3), naming what happened and listing what it had
/// already mutated — it does not poll a vanished sandbox until the deadline.
#[tokio::test]
async fn sandbox_removed_mid_run_ends_it_at_once_with_its_mutations() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = fixture_spec(Mode::Keepalive, "vanish")
        .await?
        .env("FIXTURE_MODE", "slow-start")
        .env("FIXTURE_SLOW_START", "120");
    let sb = Sandbox::create(&engine, spec).await?;
    // The first boot's gateway (slow, not listening yet) goes; recover's
    // own launch is slow too, so the run waits on it.
    poll_gateway_then_kill(&sb).await?;
    let runner = Runner::new("vanish");
    let t = Target::fixture(&sb, free_port()?).timeout("90s");
    let (run, removed) = tokio::join!(runner.recover(&t), async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        sb.remove().await
    });
    removed?;
    assert_eq!(run.code, Some(3), "{}", run.context());
    let report = run.report();
    assert_eq!(report["outcome"], "unknown");
    let message = report["message"].as_str().unwrap_or("");
    assert!(
        message.contains("not found") || message.contains("no longer running"),
        "{message}"
    );
    let mutations = report["mutations"].as_array().map_or(0, Vec::len);
    assert!(mutations > 0, "the launch is listed\n{}", run.context());
    assert!(
        message.contains(&format!("{mutations} mutation(s)")),
        "{message}"
    );
    // Ended soon after the removal, far from its 90 s deadline.
    assert!(run.elapsed < Duration::from_secs(20), "{:?}", run.elapsed);
    Ok(())
}

async fn poll_gateway_then_kill(sb: &Sandbox) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sb.gateway_pids().await?.is_empty() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no first-boot gateway"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sb.kill_gateway_9().await?;
    Ok(())
}
