//! Issue 4 acceptance against the REAL Hermes gateway (image
//! `runner-test/hermes`: API server on 127.0.0.1:8642, HERMES_HOME
//! /sandbox/.hermes, run as user `gateway`). Each test checks the exit code,
//! the JSON report and the sandbox from outside. Without an engine the tests
//! fail (never skip).

#[path = "support/e2e.rs"]
mod e2e;

use std::time::Duration;

use anyhow::{Context, Result};
use e2e::{Runner, Target};
use runner_e2e::agents::hermes;
use runner_e2e::{Engine, Mode, Sandbox, SandboxSpec, free_port, images};

/// Hermes answers /health ~1.5 s after launch; generous for a loaded box.
const START: Duration = Duration::from_secs(60);

/// A keepalive Hermes sandbox (legacy layout: API on 8642). The container env turns
/// Hermes' own storm breaker off (`HERMES_GATEWAY_MAX_STARTS=0`), from outside.
async fn healthy_keepalive(prefix: &str) -> Result<Sandbox> {
    healthy(keepalive_spec(prefix).await?).await
}

async fn keepalive_spec(prefix: &str) -> Result<SandboxSpec> {
    let image = images::ensure("hermes").await?;
    Ok(hermes::spec(image)
        .mode(Mode::Keepalive)
        .name_prefix(format!("e2e-{prefix}")))
}

async fn healthy(spec: SandboxSpec) -> Result<Sandbox> {
    let engine = Engine::connect().await?;
    let sb = Sandbox::create(&engine, spec).await?;
    sb.wait_http_ok(hermes::PORT, "/health", START).await?;
    Ok(sb)
}

/// The relay layout (NemoClaw's managed Hermes): API on the internal 18642, the
/// in-sandbox `socat` relay on 127.0.0.1:8642.
async fn healthy_relay_keepalive(prefix: &str) -> Result<Sandbox> {
    let sb = healthy(hermes::relay_layout(keepalive_spec(prefix).await?)).await?;
    sb.wait_http_ok(hermes::INTERNAL_PORT, "/health", START)
        .await?;
    Ok(sb)
}

/// The only relay process, with its start time; it runs as the gateway user.
async fn sole_relay(sb: &Sandbox) -> Result<(u32, u64)> {
    let pids = sb.pids_matching(hermes::RELAY_PATTERN).await?;
    let [pid] = pids[..] else {
        anyhow::bail!(
            "expected exactly one relay in {}, found {pids:?}",
            sb.name()
        );
    };
    let start = sb
        .proc_start_time(pid)
        .await?
        .with_context(|| format!("relay pid {pid} vanished"))?;
    let status = sb
        .read_file(&format!("/proc/{pid}/status"))
        .await?
        .context("relay status")?;
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .context("Uid line")?;
    anyhow::ensure!(
        uid.split_whitespace()
            .skip(1)
            .all(|u| u == runner_e2e::layout::GATEWAY_UID.to_string()),
        "the relay runs as the gateway user: {uid}"
    );
    Ok((pid, start))
}

/// After a recover that launched the gateway: a new identity that serves and
/// owns both pid files.
async fn assert_relaunched(sb: &Sandbox, run: &e2e::Run, old: (u32, u64)) -> Result<(u32, u64)> {
    run.expect(0, "recovered");
    run.assert_link("gateway", "broken", "repaired", "healthy");
    run.assert_all_healthy_after();
    let new = sb.sole_gateway().await?;
    assert_ne!(new, old, "a new gateway process");
    assert_eq!(
        run.evidence("gateway", "pid"),
        Some(new.0.to_string()),
        "{}",
        run.context()
    );
    assert_eq!(sb.http_get(hermes::PORT, "/health", &[]).await?.status, 200);
    for file in [hermes::PID_FILE, hermes::LOCK_FILE] {
        assert_eq!(
            sb.lock_owner(file).await?,
            Some(new),
            "{file} names the new gateway"
        );
    }
    Ok(new)
}

#[tokio::test]
async fn kill_9_is_recovered_with_a_new_pid() -> Result<()> {
    let sb = healthy_keepalive("h-kill").await?;
    let port = free_port()?;
    let t = Target::hermes(&sb, port);
    let runner = Runner::new("h-kill");
    let old = sb.sole_gateway().await?;
    sb.kill_gateway_9().await?;
    for file in [hermes::PID_FILE, hermes::LOCK_FILE] {
        assert_eq!(sb.lock_owner(file).await?, Some(old), "{file} left behind");
    }

    let status = runner.status(&t).await;
    status.expect(1, "broken");
    status.expect_failing_layer("locks");
    assert!(runner.audit().is_empty(), "status mutated");

    let run = runner.recover(&t).await;
    run.assert_link("locks", "broken", "repaired", "healthy");
    let spawned = run.launch_index(e2e::HERMES_LAUNCH).context("launch")?;
    for file in [hermes::PID_FILE, hermes::LOCK_FILE] {
        let removed = run
            .mutation_index("files.remove-if", file)
            .with_context(|| format!("{file} removed"))?;
        assert!(removed < spawned, "{file} removed after the launch");
    }
    assert_relaunched(&sb, &run, old).await?;
    assert_eq!(
        sb.proc_start_time(old.0).await?.filter(|s| *s == old.1),
        None
    );
    e2e::assert_forward_after_run(&run, port, "/health").await;
    Ok(())
}

#[tokio::test]
async fn docker_restart_is_recovered() -> Result<()> {
    let sb = healthy_keepalive("h-restart").await?;
    let port = free_port()?;
    let t = Target::hermes(&sb, port);
    let runner = Runner::new("h-restart");
    let old = sb.sole_gateway().await?;

    sb.docker_restart().await?;
    sb.assert_no_gateway_for("hermes gateway", hermes::PORT, Duration::from_secs(1))
        .await?;

    let status = runner.status(&t).await;
    status.expect(1, "broken");
    let run = runner.recover(&t).await;
    assert_relaunched(&sb, &run, old).await?;
    e2e::assert_forward_after_run(&run, port, "/health").await;
    Ok(())
}

#[tokio::test]
async fn stale_gateway_pid_naming_a_dead_pid_is_removed() -> Result<()> {
    let sb = healthy_keepalive("h-stale").await?;
    let port = free_port()?;
    let t = Target::hermes(&sb, port);
    let runner = Runner::new("h-stale");
    let old = sb.sole_gateway().await?;
    sb.kill_gateway_9().await?;
    // A pid file from some earlier gateway: a pid that is not running at all.
    sb.exec(&["rm", "-f", hermes::LOCK_FILE], Some("0"))
        .await?
        .check("rm gateway.lock")?;
    let planted = r#"{"pid": 4190000, "kind": "hermes-gateway", "argv": ["/usr/local/bin/hermes", "gateway", "run"], "start_time": 12345}"#;
    sb.write_file(hermes::PID_FILE, planted, Some("gateway"))
        .await?;
    assert_eq!(sb.proc_start_time(4_190_000).await?, None, "pid is dead");

    let run = runner.recover(&t).await;
    run.assert_link("locks", "broken", "repaired", "healthy");
    let removal = run
        .mutations()
        .into_iter()
        .find(|m| m.kind == "files.remove-if" && m.detail.contains(hermes::PID_FILE))
        .with_context(|| format!("no removal of {}\n{}", hermes::PID_FILE, run.context()))?;
    assert_eq!(removal.result, "removed");
    assert!(
        removal.detail.contains(&format!("{} bytes", planted.len())),
        "removed exactly the planted file: {removal:?}"
    );
    assert_relaunched(&sb, &run, old).await?;
    let now = sb.read_file(hermes::PID_FILE).await?.context("pid file")?;
    assert!(!now.contains("4190000"), "{now}");
    Ok(())
}

#[tokio::test]
async fn live_gateway_is_never_touched() -> Result<()> {
    let sb = healthy_keepalive("h-live").await?;
    let port = free_port()?;
    let t = Target::hermes(&sb, port);
    let runner = Runner::new("h-live");
    let gateway = sb.sole_gateway().await?;
    let files = [hermes::PID_FILE, hermes::LOCK_FILE, hermes::CONFIG];
    let before = e2e::snapshot(&sb, &files).await?;

    // The first recover only brings up the forward.
    let first = runner.recover(&t).await;
    first.expect(0, "recovered");
    assert_eq!(
        first.mutation_kinds(),
        ["forward.ensure"],
        "{}",
        first.context()
    );
    for round in 1..=2 {
        let audit = runner.audit().len();
        e2e::expect_steady_status(&runner.status(&t).await);
        let run = runner.recover(&t).await;
        e2e::expect_steady_recover(&run);
        assert_eq!(
            runner.audit().len(),
            audit,
            "round {round}: audit log changed"
        );
        e2e::assert_forward_after_run(&run, port, "/health").await;
        assert_eq!(
            sb.sole_gateway().await?,
            gateway,
            "round {round}: gateway touched"
        );
        assert_eq!(
            e2e::snapshot(&sb, &files).await?,
            before,
            "round {round}: files changed"
        );
    }
    Ok(())
}

/// Issue 9, relay layout: kill -9 of the relay alone is repaired by relaunching the
/// relay only; the healthy gateway keeps its identity.
#[tokio::test]
async fn relay_killed_alone_is_repaired_without_touching_the_gateway() -> Result<()> {
    let sb = healthy_relay_keepalive("h-relay-kill").await?;
    let port = free_port()?;
    let t = Target::hermes(&sb, port);
    let runner = Runner::new("h-relay-kill");
    let gateway = sb.sole_gateway().await?;
    let (relay, _) = sole_relay(&sb).await?;

    // Healthy sandbox: the first recover only brings up the host forward.
    let first = runner.recover(&t).await;
    first.expect(0, "recovered");
    first.assert_link("relay", "healthy", "none", "healthy");
    assert_eq!(
        first.mutation_kinds(),
        ["forward.ensure"],
        "{}",
        first.context()
    );

    sb.exec(&["kill", "-9", &relay.to_string()], Some("0"))
        .await?
        .check("kill -9 the relay")?;
    sb.assert_no_gateway_for(hermes::RELAY_PATTERN, hermes::PORT, Duration::from_secs(1))
        .await?;

    let status = runner.status(&t).await;
    status.expect(1, "broken");
    status.expect_failing_layer("relay");
    status.assert_link("gateway", "healthy", "none", "healthy");

    let run = runner.recover(&t).await;
    run.expect(0, "recovered");
    run.assert_link("gateway", "healthy", "none", "healthy");
    run.assert_link("relay", "broken", "repaired", "healthy");
    run.assert_all_healthy_after();
    run.launch_index(e2e::HERMES_RELAY_LAUNCH)
        .with_context(|| format!("the relay was launched\n{}", run.context()))?;
    assert_eq!(
        run.launch_index(e2e::HERMES_LAUNCH),
        None,
        "no gateway launch\n{}",
        run.context()
    );
    assert_eq!(sb.sole_gateway().await?, gateway, "gateway untouched");
    let (new_relay, _) = sole_relay(&sb).await?;
    assert_ne!(new_relay, relay);
    assert_eq!(sb.http_get(hermes::PORT, "/health", &[]).await?.status, 200);
    e2e::assert_forward_after_run(&run, port, "/health").await;

    let again = runner.recover(&t).await;
    e2e::expect_steady_recover(&again);
    Ok(())
}

/// Issue 9, relay layout: after `docker restart` of a keepalive sandbox nothing runs;
/// recover brings back the gateway on 18642 and the relay on 8642, healthy through the
/// host forward (which targets 8642 in both layouts).
#[tokio::test]
async fn relay_layout_after_docker_restart_brings_back_gateway_and_relay() -> Result<()> {
    let sb = healthy_relay_keepalive("h-relay-restart").await?;
    let port = free_port()?;
    let t = Target::hermes(&sb, port);
    let runner = Runner::new("h-relay-restart");
    let old = sb.sole_gateway().await?;

    sb.docker_restart().await?;
    sb.assert_no_gateway_for(
        "hermes gateway",
        hermes::INTERNAL_PORT,
        Duration::from_secs(1),
    )
    .await?;
    sb.assert_no_gateway_for(hermes::RELAY_PATTERN, hermes::PORT, Duration::from_secs(1))
        .await?;

    let status = runner.status(&t).await;
    status.expect(1, "broken");
    let run = runner.recover(&t).await;
    run.expect(0, "recovered");
    run.assert_link("gateway", "broken", "repaired", "healthy");
    run.assert_link("relay", "broken", "repaired", "healthy");
    run.assert_all_healthy_after();
    let gateway = run
        .launch_index(e2e::HERMES_LAUNCH)
        .context("gateway launch")?;
    let relay = run
        .launch_index(e2e::HERMES_RELAY_LAUNCH)
        .context("relay launch")?;
    assert!(gateway < relay, "gateway before relay\n{}", run.context());
    let new = sb.sole_gateway().await?;
    assert_ne!(new, old, "a new gateway process");
    sole_relay(&sb).await?;
    assert_eq!(
        sb.http_get(hermes::INTERNAL_PORT, "/health", &[])
            .await?
            .status,
        200
    );
    assert_eq!(sb.http_get(hermes::PORT, "/health", &[]).await?.status, 200);
    e2e::assert_forward_after_run(&run, port, "/health").await;

    let again = runner.recover(&t).await;
    e2e::expect_steady_recover(&again);
    Ok(())
}
