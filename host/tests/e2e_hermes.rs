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

async fn healthy_keepalive(prefix: &str) -> Result<Sandbox> {
    let engine = Engine::connect().await?;
    let image = images::ensure("hermes").await?;
    let spec = SandboxSpec::new(image)
        .mode(Mode::Keepalive)
        .name_prefix(format!("e2e-{prefix}"));
    let sb = Sandbox::create(&engine, spec).await?;
    sb.wait_http_ok(hermes::PORT, "/health", START).await?;
    Ok(sb)
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
    let spawned = run
        .mutation_index("spawn.detached", "gateway-launch")
        .context("launch")?;
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
