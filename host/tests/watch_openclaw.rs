//! Issue 5 acceptance against the REAL OpenClaw 2026.9.6 gateway: a
//! labelled keepalive OpenClaw sandbox is brought back by `runner watch`
//! after `docker restart` — guards re-staged, gateway relaunched, dashboard
//! healthy through the host forward — without any command. The time it
//! takes is printed (`MEASURED`) and recorded in docs/benchmarks.md.
//! Without an engine the test fails (never skips).

#[path = "support/e2e.rs"]
mod e2e;
#[path = "support/watch.rs"]
mod watch;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use runner_e2e::layout::OPENCLAW_PORT;
use runner_e2e::wait::poll_until;
use runner_e2e::{Engine, Mode, Sandbox, SandboxSpec, free_port, images};
use watch::{SCOPE_LABEL, Watch, http, token};

/// First boot of a fresh volume, and a restart: OpenClaw needs 10–20 s to
/// answer /health when idle, much more while other tests load the cores.
const OPENCLAW_START: Duration = Duration::from_secs(180);

/// `Some(())` once /health answers 200 through the host forward.
async fn health_through_forward(port: u16) -> Result<Option<()>> {
    Ok(matches!(http(port, "/health", &[]).await, Ok((200, _))).then_some(()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_restart_of_a_labelled_openclaw_sandbox_heals_through_the_forward_without_a_command()
-> Result<()> {
    let engine = Engine::connect().await?;
    let image = images::ensure("openclaw").await?;
    let scope = token("openclaw-restart");
    let port = free_port()?;
    let spec = SandboxSpec::new(image)
        .mode(Mode::Keepalive)
        .name_prefix("watch-oc")
        .label("runner.plugin", "openclaw")
        .label(SCOPE_LABEL, &scope)
        .label("runner.host-port", port.to_string())
        .label(
            "runner.dashboard-origin",
            format!("http://127.0.0.1:{port}"),
        );
    let sb = Sandbox::create(&engine, spec).await?;
    let first = sb
        .wait_http_ok(OPENCLAW_PORT, "/health", OPENCLAW_START)
        .await?;
    eprintln!("{}: first boot /health 200 after {first:.1?}", sb.name());

    let w = Watch::start("openclaw-restart", &scope, "timeout = 120", "30s").await?;
    // Discovery brings up the forward (and anything else missing).
    poll_until(
        "dashboard through the forward after discovery",
        OPENCLAW_START,
        Duration::from_millis(250),
        || health_through_forward(port),
    )
    .await
    .map_err(|e| e.context(w.log_text()))?;
    let before = w.repairs(sb.name()).await?;

    let t0 = Instant::now();
    sb.restart_with_grace(2).await?;
    let restart_took = t0.elapsed();
    // The restart wipes tmpfs /tmp: no guards, no gateway, until watch acts.
    poll_until(
        "dashboard through the forward after the restart",
        OPENCLAW_START,
        Duration::from_millis(100),
        || health_through_forward(port),
    )
    .await
    .map_err(|e| e.context(w.log_text()))?;
    let healed = t0.elapsed();
    eprintln!(
        "MEASURED openclaw: docker restart returned after {restart_took:.2?}; \
         healthy through the forward {healed:.2?} after the restart call"
    );
    w.wait_log(
        &["recover finished", "trigger=\"start\"", "outcome=recovered"],
        1,
        Duration::from_secs(60),
    )
    .await?;
    e2e::assert_guards_staged(&sb).await?;
    let after = w.repairs(sb.name()).await?;
    ensure!(after > before, "no repair counted: {before} -> {after}");
    // The audit log names the relaunch: guards staged, then the gateway spawned.
    let audit = w.audit(sb.name());
    let actions: Vec<String> = audit
        .iter()
        .filter_map(|r| r["action"].as_str().map(str::to_string))
        .collect();
    ensure!(
        actions.iter().any(|a| a == "spawn.detached"),
        "no gateway launch in the audit log: {actions:?}"
    );
    w.terminate()?;
    sb.remove().await?;
    Ok(())
}

/// The same for the REAL Hermes 0.19.0 gateway in NemoClaw's managed
/// layout (gateway on 18642, socat relay on 8642), default settings only:
/// after `docker restart` watch brings back gateway and relay, healthy
/// through the forward on 8642.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_restart_of_a_labelled_hermes_relay_sandbox_heals_through_the_forward_without_a_command()
-> Result<()> {
    use runner_e2e::agents::hermes;
    let engine = Engine::connect().await?;
    let image = images::ensure("hermes").await?;
    let scope = token("hermes-restart");
    let port = free_port()?;
    let spec = hermes::relay_layout(hermes::spec(image))
        .mode(Mode::Keepalive)
        .name_prefix("watch-hm")
        .label("runner.plugin", "hermes")
        .label(SCOPE_LABEL, &scope)
        .label("runner.host-port", port.to_string());
    let sb = Sandbox::create(&engine, spec).await?;
    sb.wait_http_ok(hermes::PORT, "/health", Duration::from_secs(60))
        .await?;
    let w = Watch::start("hermes-restart", &scope, "timeout = 60", "30s").await?;
    poll_until(
        "Hermes through the forward after discovery",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || health_through_forward(port),
    )
    .await
    .map_err(|e| e.context(w.log_text()))?;

    let t0 = Instant::now();
    sb.restart_with_grace(2).await?;
    poll_until(
        "Hermes through the forward after the restart",
        Duration::from_secs(90),
        Duration::from_millis(100),
        || health_through_forward(port),
    )
    .await
    .map_err(|e| e.context(w.log_text()))?;
    eprintln!(
        "MEASURED hermes (relay layout): healthy through the forward {:.2?} after the restart call",
        t0.elapsed()
    );
    w.wait_log(
        &["recover finished", "trigger=\"start\"", "outcome=recovered"],
        1,
        Duration::from_secs(60),
    )
    .await?;
    let spawned: Vec<String> = w
        .audit(sb.name())
        .iter()
        .filter(|r| r["action"] == "spawn.detached")
        .filter_map(|r| r["link"].as_str().map(str::to_string))
        .collect();
    ensure!(
        spawned.iter().any(|l| l == "gateway") && spawned.iter().any(|l| l == "relay"),
        "gateway and relay relaunched: {spawned:?}"
    );
    w.terminate()?;
    sb.remove().await?;
    Ok(())
}
