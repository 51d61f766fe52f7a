//! `runner watch` recovering forwards and repairs that were cut short, against
//! a real engine and the fixture image: a recreated container
//! (new id, new netns, same name and volume), a killed forward process and a
//! watcher SIGKILLed in the middle of a repair.
//!
//! Under `runner watch` forwards are served in-process (a task of the watch
//! process) and live detached `runner forward serve` processes are adopted.
//! Who listens on the host port is checked from outside with `ss`.

#[path = "support/watch.rs"]
mod watch;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use runner_e2e::{Sandbox, free_port};
use watch::{
    StateDir, Watch, dashboard_ok, forward_pid, labelled, listeners, one_runner_listener,
    recover_json, setup, token, wait_dashboard,
};

/// Exactly one socket listens on `port`, of this build's runner (and of
/// `owner` when given).
fn assert_one_runner_listener(port: u16, owner: Option<u32>, w: &Watch) -> Result<u32> {
    one_runner_listener(port, owner).with_context(|| format!("watch log:\n{}", w.log_text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_on_same_volume_retargets_the_forward_without_a_stale_listener() -> Result<()> {
    let (engine, image) = setup().await?;
    let scope = token("recreate");
    let port = free_port()?;
    let mut sb = Sandbox::create(&engine, labelled(&image, &scope, port)).await?;
    let w = Watch::start("recreate", &scope, "", "30s").await?;
    wait_dashboard(port, Duration::from_secs(60), &w).await?;
    let watch_pid = w.pid().context("watch pid")?;
    assert_one_runner_listener(port, Some(watch_pid), &w)?;
    let old_id = sb.id().to_string();

    // docker rm -f + create with the same name, spec and volume.
    let t0 = Instant::now();
    sb.recreate_same_volume().await?;
    assert_ne!(sb.id(), old_id, "the recreate kept the container id");
    let healed = wait_dashboard(port, Duration::from_secs(30), &w).await?;
    eprintln!(
        "MEASURED recreate → dashboard healthy through 127.0.0.1:{port} {healed:.2?} after the new container started ({:.2?} from rm -f)",
        t0.elapsed()
    );
    // The forward was re-targeted in place: one listener, the watcher's own.
    assert_one_runner_listener(port, Some(watch_pid), &w)?;
    // Several fresh connections all reach the new container.
    for _ in 0..5 {
        assert!(dashboard_ok(port).await, "a later connection failed");
    }
    let inside = sb.gateway_pids().await?;
    assert_eq!(inside.len(), 1, "gateways in the new container: {inside:?}");
    sb.remove().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_forward_process_is_restarted_and_traffic_flows() -> Result<()> {
    // Under `runner watch` the forward that is a process of its own is an
    // adopted detached `runner forward serve` (an in-process forward is a task
    // of the watcher and dies only with it). Start one with a one-shot
    // recover, let the watcher adopt it, then kill -9 it.
    let (engine, image) = setup().await?;
    let scope = token("fwdkill");
    let port = free_port()?;
    let sb = Sandbox::create(&engine, labelled(&image, &scope, port)).await?;
    let state = StateDir::new("fwdkill")?;
    let report = recover_json(&state.0, sb.name())?;
    let detached = forward_pid(&report).context("no forward pid in the recover report")?;
    let w = Watch::start_with(
        "fwdkill",
        &scope,
        "",
        "1s",
        &[("RUNNER_STATE_DIR", state.as_str().as_str())],
    )
    .await?;
    w.wait_log(
        &["recover finished", "outcome="],
        1,
        Duration::from_secs(30),
    )
    .await?;
    // Adopted, not duplicated.
    assert_one_runner_listener(port, Some(detached), &w)?;
    assert!(dashboard_ok(port).await);

    let t0 = Instant::now();
    let rc = unsafe { libc::kill(detached as i32, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {detached}");
    // Gone (it is not our child: wait for /proc to drop it or show a zombie).
    let gone_by = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{detached}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
    {
        if Instant::now() > gone_by {
            bail!("forward {detached} still alive 5 s after SIGKILL");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let healed = wait_dashboard(port, Duration::from_secs(15), &w).await?;
    eprintln!(
        "MEASURED kill -9 of the adopted forward {detached} → traffic through 127.0.0.1:{port} again after {healed:.2?} ({:.2?} total; probe interval 1 s)",
        t0.elapsed()
    );
    assert!(
        healed < Duration::from_secs(15),
        "forward not restarted within the bound"
    );
    let watch_pid = w.pid().context("watch pid")?;
    let owner = assert_one_runner_listener(port, None, &w)?;
    assert_ne!(owner, detached);
    assert_eq!(owner, watch_pid, "the restarted forward is the watcher's");
    for _ in 0..5 {
        assert!(dashboard_ok(port).await, "a later connection failed");
    }
    drop(w);
    drop(state);
    sb.remove().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_watch_mid_repair_then_restart_leaves_no_duplicate_gateway_or_orphan_listener()
-> Result<()> {
    let (engine, image) = setup().await?;
    let scope = token("kill9");
    let port = free_port()?;
    let sb = Sandbox::create(&engine, labelled(&image, &scope, port)).await?;
    let state = StateDir::new("kill9")?;
    let env = [("RUNNER_STATE_DIR", state.as_str())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut w = Watch::start_with("kill9-a", &scope, "", "30s", &env).await?;
    wait_dashboard(port, Duration::from_secs(60), &w).await?;
    let first_pid = w.pid().context("watch pid")?;
    assert_one_runner_listener(port, Some(first_pid), &w)?;

    // A repair: docker restart, and the start event's recover begins at once.
    sb.restart_with_grace(1).await?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let finished_before_kill = w
        .log_text()
        .lines()
        .any(|l| l.contains("recover finished") && l.contains("trigger=\"start\""));
    w.kill_9().await?;
    let log_a = w.log_text();
    eprintln!(
        "killed watch {first_pid} {} the start-triggered repair finished",
        if finished_before_kill {
            "AFTER"
        } else {
            "before"
        }
    );
    assert!(
        !finished_before_kill,
        "the repair finished before the kill; not a mid-repair kill:\n{log_a}"
    );
    // Its in-process forward died with it: no orphan listener.
    let orphans = listeners(port)?;
    assert!(
        orphans.is_empty(),
        "listeners left on {port} after the watcher died: {orphans:?}"
    );
    drop(w);

    let t0 = Instant::now();
    let w = Watch::start_with("kill9-b", &scope, "", "30s", &env).await?;
    let healed = wait_dashboard(port, Duration::from_secs(60), &w).await?;
    eprintln!(
        "MEASURED watch restarted after kill -9 mid-repair: dashboard healthy after {healed:.2?} ({:.2?} incl. watch start)",
        t0.elapsed()
    );
    // Let any second launch that might race show itself.
    w.wait_log(
        &["recover finished", "outcome="],
        1,
        Duration::from_secs(30),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gateways = sb.gateway_pids().await?;
    assert_eq!(
        gateways.len(),
        1,
        "gateway processes in the container: {gateways:?}; log:\n{}",
        w.log_text()
    );
    let second_pid = w.pid().context("watch pid")?;
    assert_one_runner_listener(port, Some(second_pid), &w)?;
    assert!(dashboard_ok(port).await);
    drop(w);
    drop(state);
    sb.remove().await?;
    Ok(())
}
