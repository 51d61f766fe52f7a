//! The failure modes runner must repair, reproduced with the REAL OpenClaw 2026.9.6 gateway
//! (image `runner-test/openclaw`, tests/images/openclaw, docs/images.md): a NemoClaw-style
//! sandbox on Debian forky + Node 24, emulating the DGX Spark condition of NemoClaw#2701.
//! Each container needs ~1 GB RAM; the harness lets at most two run at once across all
//! test processes. Without an engine these tests fail (never skip).

use anyhow::{Context, Result, ensure};
use runner_e2e::agents::{self, Relaunch, openclaw};
use runner_e2e::layout::{
    self, CIAO_CRASH_TEXT, OPENCLAW_CONFIG, OPENCLAW_PORT, OPENCLAW_STATE_DIR,
};
use runner_e2e::{Engine, Mode, Sandbox, SandboxSpec, images};
use std::time::Duration;

/// First boot of a fresh volume: ~20 s on an idle 2-core box (up to 24 s measured), over 40 s while other builds and gateways compete for the cores.
const FIRST_START: Duration = Duration::from_secs(180);
/// A start on a warm state dir: ~10–13 s idle.
const RESTART: Duration = Duration::from_secs(150);

async fn healthy(mode: Mode) -> Result<Sandbox> {
    let engine = Engine::connect().await?;
    let image = images::ensure("openclaw").await?;
    let sb = Sandbox::create(&engine, SandboxSpec::new(image).mode(mode)).await?;
    let took = sb
        .wait_http_ok(OPENCLAW_PORT, "/health", FIRST_START)
        .await?;
    eprintln!(
        "{}: /health 200 after {took:.1?} (first boot, {mode:?})",
        sb.name()
    );
    Ok(sb)
}

/// Lines where the emulated DGX Spark failure killed a process: the text appears in the
/// uncaught-error report. The ciao guard's notice quotes the same text when it neutralizes
/// the failure; those lines are not crashes.
fn crash_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(CIAO_CRASH_TEXT) && !l.starts_with(openclaw::CIAO_GUARD_NOTICE))
        .count()
}

async fn assert_guards_staged(sb: &Sandbox) -> Result<()> {
    for guard in layout::staged_guard_paths() {
        let meta = sb.file_meta(&guard).await?;
        ensure!(
            meta.as_deref() == Some("regular file 0:0 444"),
            "{guard}: {meta:?}, want root:root 0444"
        );
    }
    let env = sb
        .read_file(layout::PROXY_ENV_FILE)
        .await?
        .context("env file staged")?;
    for guard in layout::staged_guard_paths() {
        ensure!(
            env.contains(&format!("--require {guard}")),
            "env file does not require {guard}:\n{env}"
        );
    }
    Ok(())
}

/// `gateway.<first 8 hex of sha256(config path)>.lock`, hashed inside the container.
async fn config_lock_path(sb: &Sandbox) -> Result<String> {
    let out = sb
        .exec(
            &[
                "sh",
                "-c",
                r#"printf %s "$1" | sha256sum"#,
                "hash",
                OPENCLAW_CONFIG,
            ],
            Some("0"),
        )
        .await?
        .check("sha256 of the config path")?;
    let hash = out.stdout.get(..8).context("sha256sum printed nothing")?;
    Ok(format!("{}/gateway.{hash}.lock", openclaw::LOCK_DIR))
}

#[tokio::test]
async fn keepalive_docker_restart_leaves_no_gateway_and_no_guards() -> Result<()> {
    let sb = healthy(Mode::Keepalive).await?;
    assert_guards_staged(&sb).await?;
    assert!(
        sb.read_file(&layout::gateway_state_lock()).await?.is_some(),
        "a running gateway holds its lock"
    );

    sb.docker_restart().await?;

    // The tmpfs /tmp comes back empty and keepalive's PID 1 stages nothing, launches nothing.
    let tmp = sb.tmp_entries().await?;
    assert!(
        tmp.is_empty(),
        "a restarted keepalive sandbox has an empty /tmp, found {tmp:?}"
    );
    sb.assert_no_gateway_for(openclaw::ANY_PROCESS, OPENCLAW_PORT, Duration::from_secs(3))
        .await?;
    // The volume keeps the config and state; the packaged (trusted) guard sources stay in the image.
    assert!(sb.read_file(OPENCLAW_CONFIG).await?.is_some());
    assert!(sb.read_file(agents::BOOT_MARKER).await?.is_some());
    for g in layout::GUARD_NAMES {
        let src = format!("{}/{g}", layout::PACKAGED_PRELOADS);
        assert_eq!(
            sb.file_meta(&src).await?.as_deref(),
            Some("regular file 0:0 644"),
            "{src}"
        );
    }
    // PID 1 stopped the gateway with SIGTERM before the restart, so OpenClaw removed its JSON
    // locks itself (only kill -9, OOM or `docker kill` leave them; see the kill -9 test).
    assert_eq!(
        sb.read_file(&layout::gateway_state_lock()).await?,
        None,
        "clean stop removes the state lock"
    );
    Ok(())
}

#[tokio::test]
async fn kill_9_leaves_lock_files_naming_the_dead_pid_and_start_time() -> Result<()> {
    let sb = healthy(Mode::Keepalive).await?;
    let (pid, start) = sb.sole_gateway().await?;
    let pidfile = sb
        .read_file(agents::GATEWAY_PIDFILE)
        .await?
        .context("pid file")?;
    assert_eq!(
        pidfile.trim(),
        format!("{pid} {start}"),
        "PID 1 recorded the gateway's identity"
    );

    let killed = sb.kill_gateway_9().await?;
    assert_eq!(killed, pid);
    assert_eq!(
        sb.proc_start_time(pid).await?,
        None,
        "pid {pid} is dead (and reaped by PID 1)"
    );

    let locks = [layout::gateway_state_lock(), config_lock_path(&sb).await?];
    for lock in &locks {
        let meta = sb.file_meta(lock).await?;
        assert_eq!(
            meta.as_deref(),
            Some("regular file 998:998 600"),
            "{lock} left behind"
        );
        let text = sb.read_file(lock).await?.context("lock vanished")?;
        assert_eq!(
            agents::lock_owner(&text)?,
            (pid, start),
            "{lock} names the dead gateway:\n{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text)?;
        assert_eq!(v["configPath"], OPENCLAW_CONFIG);
        assert_eq!(v["stateDir"], OPENCLAW_STATE_DIR);
        assert_eq!(v["port"], u64::from(OPENCLAW_PORT));
    }
    // Keepalive: nobody relaunches, so the stale locks are all that is left.
    sb.assert_no_gateway_for(openclaw::ANY_PROCESS, OPENCLAW_PORT, Duration::from_secs(3))
        .await?;
    for lock in &locks {
        assert_eq!(
            sb.lock_owner(lock).await?,
            Some((pid, start)),
            "{lock} still names {pid}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn naked_launch_crash_loops_with_the_ciao_text() -> Result<()> {
    let sb = healthy(Mode::Keepalive).await?;
    let log = sb.gateway_log().await?;
    assert_eq!(
        crash_lines(&log),
        0,
        "the guarded first boot must not crash:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with(openclaw::CIAO_GUARD_NOTICE)),
        "the ciao guard neutralized the emulated failure in the guarded gateway:\n{log}"
    );
    sb.kill_gateway_9().await?;

    // Every naked start (no guard preloads: the env file not sourced) dies at start with the
    // DGX Spark ciao crash.
    for attempt in 1..=3 {
        let launch = sb.relaunch(&Relaunch::openclaw().unguarded()).await?;
        let lived = sb
            .wait_process_gone(launch.pid, launch.start_time, Duration::from_secs(60))
            .await
            .with_context(|| format!("naked gateway #{attempt} did not die"))?;
        let log = sb.gateway_log().await?;
        assert_eq!(
            crash_lines(&log),
            attempt,
            "crash #{attempt} reports the ciao text:\n{log}"
        );
        assert!(
            !sb.tcp_listening(OPENCLAW_PORT).await?,
            "a naked gateway never serves"
        );
        eprintln!(
            "naked gateway #{attempt} (pid {}) died after {lived:.1?}",
            launch.pid
        );
    }

    // Fail closed: with the env file gone, NemoClaw's relaunch (which sources it) is refused,
    // never naked...
    sb.delete_env_file().await?;
    let refused = sb
        .try_relaunch(&Relaunch::openclaw())
        .await?
        .err()
        .context("a launch without the env file must be refused")?;
    assert_eq!(
        refused.code, 3,
        "launch without the env file must be refused: {refused:?}"
    );
    assert!(refused.stderr.contains("refusing"), "{refused:?}");
    assert!(
        sb.pids_matching(openclaw::ANY_PROCESS).await?.is_empty(),
        "refused means nothing started"
    );

    // ...and re-staging the packaged guards gives a gateway that survives the same platform.
    sb.stage_packaged_guards().await?;
    let launch = sb.relaunch(&Relaunch::openclaw()).await?;
    assert_guards_staged(&sb).await?;
    sb.wait_http_ok(OPENCLAW_PORT, "/health", RESTART).await?;
    assert_eq!(
        sb.proc_start_time(launch.pid).await?,
        Some(launch.start_time),
        "the guarded gateway lives"
    );
    assert_eq!(
        crash_lines(&sb.gateway_log().await?),
        3,
        "no further crash once guarded"
    );
    Ok(())
}

#[tokio::test]
async fn supervised_mode_brings_the_gateway_back_after_kill_9() -> Result<()> {
    let sb = healthy(Mode::Supervised).await?;
    // Staged guards gone too (deleted first: the running gateway has already loaded them). PID 1
    // must re-stage them from the packaged sources before it respawns.
    sb.delete_guards().await?;
    sb.delete_env_file().await?;
    let old = sb.kill_gateway_9().await?;

    let new = sb.wait_new_gateway_pid(Some(old), RESTART).await?;
    let took = sb.wait_http_ok(OPENCLAW_PORT, "/health", RESTART).await?;
    assert_ne!(new, old);
    assert_guards_staged(&sb).await?;
    let (lock_pid, _) = sb
        .lock_owner(&layout::gateway_state_lock())
        .await?
        .context("the respawned gateway holds the state lock")?;
    assert_eq!(
        lock_pid, new,
        "the stale lock of {old} was reclaimed by {new}"
    );
    let log = sb.gateway_log().await?;
    assert_eq!(
        log.matches("launching openclaw gateway (guarded)").count(),
        2,
        "{log}"
    );
    assert_eq!(crash_lines(&log), 0, "{log}");
    eprintln!("respawned {old} -> {new}; /health 200 {took:.1?} after the new process appeared");
    Ok(())
}
