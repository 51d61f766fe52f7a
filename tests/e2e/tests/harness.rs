//! The harness's own guarantees: it fails loudly without an engine, it bounds execs and
//! kills what overran, and its helpers do what the scenario tests rely on.

use anyhow::{Context, Result};
use runner_e2e::layout::OPENCLAW_PORT;
use runner_e2e::{
    Engine, ForeignListener, Mode, Sandbox, SandboxSpec, free_port, images, sweep_leftovers,
};
use std::time::{Duration, Instant};

#[tokio::test]
async fn missing_engine_fails_with_the_fix_in_the_message() {
    let err = Engine::connect_to("unix:///nonexistent/runner-e2e/docker.sock")
        .await
        .expect_err("a missing socket must be an error, not a skip");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("no Docker engine reachable at unix:///nonexistent"),
        "{msg}"
    );
    assert!(msg.contains("tests/engine.sh ensure"), "{msg}");
}

#[tokio::test]
async fn exec_timeout_kills_the_overrunning_process() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = SandboxSpec::new(images::ensure("fixture").await?).mode(Mode::Keepalive);
    let sb = Sandbox::create(&engine, spec).await?;

    let started = Instant::now();
    let err = sb
        .exec_with(&["sleep", "4242"], None, &[], Duration::from_secs(1))
        .await
        .expect_err("must time out");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
    let msg = format!("{err:#}");
    assert!(
        msg.contains("timed out") && msg.contains("killed its process group"),
        "{msg}"
    );
    let left = sb.pids_matching("sleep 4242").await?;
    assert!(left.is_empty(), "overrunning exec still alive: {left:?}");
    Ok(())
}

#[tokio::test]
async fn exec_reports_exit_codes_streams_and_users() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = SandboxSpec::new(images::ensure("fixture").await?).mode(Mode::Keepalive);
    let sb = Sandbox::create(&engine, spec).await?;
    let out = sb.sh("echo out; echo err >&2; exit 3").await?;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    assert!(out.check("exit 3").is_err());
    let id = sb.exec(&["id", "-u"], Some("sandbox")).await?.check("id")?;
    assert_eq!(id.stdout.trim(), "1000");
    let env = sb
        .exec_with(
            &["sh", "-c", "echo $X"],
            None,
            &[("X", "y z")],
            Duration::from_secs(5),
        )
        .await?;
    assert_eq!(env.stdout, "y z\n");
    Ok(())
}

#[tokio::test]
async fn sandbox_layout_matches_the_spec() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = SandboxSpec::new(images::ensure("fixture").await?)
        .mode(Mode::Keepalive)
        .label("runner.plugin", "openclaw")
        .env("FIXTURE_MODE", "normal");
    let sb = Sandbox::create(&engine, spec).await?;
    assert!(sb.name().starts_with("rt-fixture-"), "{}", sb.name());
    let info = sb.inspect().await?;
    let labels = info.config.and_then(|c| c.labels).context("labels")?;
    assert_eq!(labels.get("runner.e2e").map(String::as_str), Some("1"));
    assert_eq!(
        labels.get("runner.plugin").map(String::as_str),
        Some("openclaw")
    );
    let host = info.host_config.context("host config")?;
    assert_eq!(
        host.tmpfs.context("tmpfs")?.get("/tmp").map(String::as_str),
        Some("rw,mode=1777")
    );
    assert_eq!(host.binds, Some(vec![format!("{}:/sandbox", sb.volume())]));
    let users = sb
        .sh("id -u gateway; id -u sandbox; stat -c %U /sandbox")
        .await?
        .check("ids")?;
    assert_eq!(users.stdout, "998\n1000\nsandbox\n");
    let pid1 = sb.read_file("/proc/1/cmdline").await?.context("pid 1")?;
    assert!(pid1.contains("sandbox-entry"), "{pid1:?}");
    Ok(())
}

#[tokio::test]
async fn gateway_runs_as_user_gateway_and_is_found_by_name() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = SandboxSpec::new(images::ensure("fixture").await?);
    let sb = Sandbox::create(&engine, spec).await?;
    sb.wait_http_ok(OPENCLAW_PORT, "/health", Duration::from_secs(15))
        .await?;
    let pids = sb.gateway_pids().await?;
    assert_eq!(pids.len(), 1, "{pids:?}");
    let pid = pids[0];
    let comm = sb
        .read_file(&format!("/proc/{pid}/comm"))
        .await?
        .context("comm")?;
    assert_eq!(
        comm.trim(),
        "openclaw",
        "pgrep/pidof find it by OpenClaw's name"
    );
    let cmdline = sb
        .read_file(&format!("/proc/{pid}/cmdline"))
        .await?
        .context("cmdline")?;
    assert_eq!(
        cmdline.split('\0').collect::<Vec<_>>(),
        ["openclaw", "gateway", "run", "--port", "18789", ""],
        "the fixture runs as OpenClaw's own command line"
    );
    let status = sb
        .read_file(&format!("/proc/{pid}/status"))
        .await?
        .context("status")?;
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .context("Uid line")?;
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "998"),
        "{uid_line}"
    );
    Ok(())
}

#[tokio::test]
async fn pause_and_stop_are_observable_and_reversible() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = SandboxSpec::new(images::ensure("fixture").await?);
    let sb = Sandbox::create(&engine, spec).await?;
    sb.wait_http_ok(OPENCLAW_PORT, "/health", Duration::from_secs(15))
        .await?;

    sb.pause().await?;
    assert_eq!(
        sb.status().await?,
        bollard::models::ContainerStateStatusEnum::PAUSED
    );
    // A frozen gateway still accepts TCP (backlog) but never answers.
    assert!(sb.http_get(OPENCLAW_PORT, "/health", &[]).await.is_err());
    sb.unpause().await?;
    sb.wait_http_ok(OPENCLAW_PORT, "/health", Duration::from_secs(5))
        .await?;

    let stopping = Instant::now();
    sb.stop().await?;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "PID 1 traps TERM: {:?}",
        stopping.elapsed()
    );
    assert_eq!(
        sb.status().await?,
        bollard::models::ContainerStateStatusEnum::EXITED
    );
    sb.start().await?;
    sb.wait_http_ok(OPENCLAW_PORT, "/health", Duration::from_secs(15))
        .await?;
    Ok(())
}

#[tokio::test]
async fn foreign_listener_holds_a_free_port() -> Result<()> {
    let port = free_port()?;
    let foreign = ForeignListener::occupy(port)?;
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
    assert!(
        ForeignListener::occupy(port).is_err(),
        "a second owner cannot bind"
    );
    drop(foreign);
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    Ok(())
}

#[tokio::test]
async fn sweep_leaves_fresh_sandboxes_alone() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = SandboxSpec::new(images::ensure("fixture").await?).mode(Mode::Keepalive);
    let sb = Sandbox::create(&engine, spec).await?;
    sweep_leftovers(&engine).await?;
    assert!(
        sb.inspect().await.is_ok(),
        "a fresh sandbox is not a leftover"
    );
    sb.remove().await?;
    Ok(())
}

#[tokio::test]
async fn images_ensure_is_cached_and_fast() -> Result<()> {
    let first = images::ensure("fixture").await?;
    let started = Instant::now();
    let again = images::ensure("fixture").await?;
    assert_eq!(first, again);
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "in-process cache hit"
    );
    // A fresh process pays only for the hash and one inspect.
    let started = Instant::now();
    let out = std::process::Command::new("bash")
        .arg(images::repo_root().join("tests/images/build.sh"))
        .arg("fixture")
        .output()?;
    let tag = String::from_utf8(out.stdout)?;
    assert_eq!(tag.trim(), first);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "cached build took {:?}",
        started.elapsed()
    );
    Ok(())
}
