//! The failure modes runner must repair, reproduced with the REAL Hermes 0.19.0 gateway
//! (image `runner-test/hermes`, tests/images/hermes, docs/images.md): API server on
//! 127.0.0.1:8642, HERMES_HOME /sandbox/.hermes, run as user `gateway`. Without an engine
//! these tests fail (never skip).

use anyhow::{Context, Result};
use runner_e2e::agents::{self, hermes};
use runner_e2e::{Engine, Mode, Sandbox, SandboxSpec, images};
use std::time::Duration;

/// Hermes answers /health ~1.5 s after launch (measured, idle box); generous for a loaded box.
const START: Duration = Duration::from_secs(45);

async fn healthy(mode: Mode) -> Result<Sandbox> {
    let engine = Engine::connect().await?;
    let image = images::ensure("hermes").await?;
    let sb = Sandbox::create(&engine, SandboxSpec::new(image).mode(mode)).await?;
    let took = sb.wait_http_ok(hermes::PORT, "/health", START).await?;
    eprintln!("{}: /health 200 after {took:.1?} ({mode:?})", sb.name());
    Ok(sb)
}

#[tokio::test]
async fn kill_9_leaves_gateway_pid_and_gateway_lock() -> Result<()> {
    let sb = healthy(Mode::Keepalive).await?;
    let (pid, start) = sb.sole_gateway().await?;
    for file in [hermes::PID_FILE, hermes::LOCK_FILE] {
        assert_eq!(
            sb.lock_owner(file).await?,
            Some((pid, start)),
            "{file} names the live gateway"
        );
    }

    let killed = sb.kill_gateway_9().await?;
    assert_eq!(killed, pid);
    assert_eq!(
        sb.proc_start_time(pid).await?,
        None,
        "pid {pid} is dead (and reaped by PID 1)"
    );

    // Nothing cleans up after SIGKILL and, in keepalive mode, nothing relaunches.
    sb.assert_no_gateway_for("hermes gateway", hermes::PORT, Duration::from_secs(3))
        .await?;
    for file in [hermes::PID_FILE, hermes::LOCK_FILE] {
        let meta = sb.file_meta(file).await?;
        assert!(
            meta.as_deref()
                .is_some_and(|m| m.starts_with("regular file 998:998 ")),
            "{file} left behind, owned by the gateway user: {meta:?}"
        );
        assert_eq!(
            sb.lock_owner(file).await?,
            Some((pid, start)),
            "{file} still names the dead {pid}"
        );
    }
    let state = sb
        .read_file(&format!("{}/gateway_state.json", hermes::HOME))
        .await?
        .context("gateway_state.json")?;
    assert!(
        state.contains(r#""gateway_state":"running""#),
        "a killed gateway still looks running:\n{state}"
    );
    Ok(())
}

#[tokio::test]
async fn keepalive_docker_restart_leaves_no_gateway() -> Result<()> {
    let sb = healthy(Mode::Keepalive).await?;
    sb.docker_restart().await?;

    sb.assert_no_gateway_for("hermes gateway", hermes::PORT, Duration::from_secs(3))
        .await?;
    let tmp = sb.tmp_entries().await?;
    assert!(
        tmp.is_empty(),
        "a restarted keepalive sandbox has an empty /tmp, found {tmp:?}"
    );
    // HERMES_HOME lives on the volume: config and state survive the restart.
    assert!(
        sb.read_file(hermes::CONFIG)
            .await?
            .is_some_and(|c| c.contains(hermes::API_KEY))
    );
    assert!(sb.read_file(agents::BOOT_MARKER).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn supervised_mode_brings_the_gateway_back_after_kill_9() -> Result<()> {
    let sb = healthy(Mode::Supervised).await?;
    let old = sb.kill_gateway_9().await?;

    let new = sb.wait_new_gateway_pid(Some(old), START).await?;
    sb.wait_http_ok(hermes::PORT, "/health", START).await?;
    assert_ne!(new, old);
    let (owner, _) = sb
        .lock_owner(hermes::PID_FILE)
        .await?
        .context("pid file of the respawned gateway")?;
    assert_eq!(
        owner, new,
        "the respawned gateway reclaimed the stale pid file"
    );
    let log = sb.gateway_log().await?;
    assert_eq!(log.matches("launching hermes gateway").count(), 2, "{log}");
    Ok(())
}

/// The relay layout of NemoClaw's managed Hermes: the API server on
/// the internal 18642, `socat` on 127.0.0.1:8642 in front of it, both as user `gateway`;
/// supervised PID 1 respawns a killed relay without touching the gateway.
#[tokio::test]
async fn relay_layout_serves_8642_through_socat_and_pid_1_respawns_it() -> Result<()> {
    let engine = Engine::connect().await?;
    let image = images::ensure("hermes").await?;
    let spec = hermes::relay_layout(hermes::spec(image)).mode(Mode::Supervised);
    let sb = Sandbox::create(&engine, spec).await?;
    sb.wait_http_ok(hermes::PORT, "/health", START).await?;
    sb.wait_http_ok(hermes::INTERNAL_PORT, "/health", START)
        .await?;
    let config = sb.read_file(hermes::CONFIG).await?.context("config")?;
    assert!(config.contains("      port: 18642\n"), "{config}");
    let (gateway, gateway_start) = sb.sole_gateway().await?;
    let relays = sb.pids_matching(hermes::RELAY_PATTERN).await?;
    let [relay] = relays[..] else {
        anyhow::bail!("expected one relay, found {relays:?}");
    };
    let cmdline = sb
        .read_file(&format!("/proc/{relay}/cmdline"))
        .await?
        .context("relay cmdline")?;
    assert_eq!(
        cmdline.split('\0').collect::<Vec<_>>()[..3],
        hermes::RELAY_ARGV
    );
    let status = sb
        .read_file(&format!("/proc/{relay}/status"))
        .await?
        .context("relay status")?;
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().skip(1).all(|u| u == "998")),
        "{status}"
    );

    sb.exec(&["kill", "-9", &relay.to_string()], Some("0"))
        .await?
        .check("kill -9 relay")?;
    runner_e2e::wait::poll_until(
        "PID 1 to respawn the relay",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || async {
            let now = sb.pids_matching(hermes::RELAY_PATTERN).await?;
            Ok((now.len() == 1 && now[0] != relay).then_some(()))
        },
    )
    .await?;
    sb.wait_http_ok(hermes::PORT, "/health", START).await?;
    assert_eq!(
        sb.proc_start_time(gateway).await?,
        Some(gateway_start),
        "the gateway was not touched"
    );
    Ok(())
}
