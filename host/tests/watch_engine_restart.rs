//! Chaos: the engine itself dies under `runner watch`. A watched sandbox
//! (`--network none`: runner reaches the gateway through the container's
//! network namespace) lives on a private dockerd ([`PrivateEngine`]), which
//! is killed with SIGKILL or stopped with SIGTERM and started again, several
//! times in one run. The watcher must stay up without spinning while the
//! engine is gone, reconnect by itself, and recover the sandbox the engine
//! brings back — with exactly one gateway every time.
//!
//! Restart policy `always`: after a SIGKILL, dockerd 20.10 (no live-restore)
//! stops the containers it finds still running while it restores them, and
//! that stop counts as a manual one (`killWithSignal` outside shutdown sets
//! `HasBeenManuallyStopped`), so an `unless-stopped` container stays exited
//! — and `runner watch` never starts a stopped sandbox.

#[path = "support/watch.rs"]
mod watch;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bollard::models::RestartPolicyNameEnum;
use runner_e2e::{Engine, PrivateEngine, Sandbox, free_port, images};
use watch::{Watch, dashboard_ok, labelled, token, wait_dashboard};

/// Engine restarts in one run.
const CYCLES: usize = 3;
/// How long the engine stays dead each time.
const DOWN: Duration = Duration::from_secs(3);
/// Engine restarts this close together would fill the default crash-loop
/// window (5 repairs in 60 s; a restart can cost two passes: the resubscribe
/// probe's, abandoned when the restoring engine stops the container, and the
/// start's). This test is about reconnecting, not about that policy.
const POLICY: &str = "[policy]\nmax-repairs = 20\n";
/// From the engine answering again to the dashboard healthy.
const HEAL_WITHIN: Duration = Duration::from_secs(12);

fn lines_with(log: &str, needles: &[&str]) -> usize {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_engine_restarts_and_recovers_the_sandbox_it_brings_back() -> Result<()> {
    let shared = Engine::connect().await?;
    let image = images::ensure("fixture").await?;
    let mut private = PrivateEngine::start().await?;
    private.load_image(shared.host(), &image)?;
    let engine = private.engine().await?;
    let scope = token("engine-chaos");
    let port = free_port()?;
    let sb = Sandbox::create(
        &engine,
        labelled(&image, &scope, port)
            .restart(RestartPolicyNameEnum::ALWAYS)
            .network("none"),
    )
    .await?;
    let host = private.unix_host();
    let mut w = Watch::start_with(
        "engine-chaos",
        &scope,
        POLICY,
        "30s",
        &[("DOCKER_HOST", host.as_str())],
    )
    .await?;
    wait_dashboard(port, Duration::from_secs(60), &w).await?;
    let recovered =
        |w: &Watch| lines_with(&w.log_text(), &["recover finished", "outcome=recovered"]);
    w.wait_log(
        &["recover finished", "outcome=recovered"],
        1,
        Duration::from_secs(30),
    )
    .await?;

    let mut recoveries = 0;
    let mut duplicates = 0;
    for cycle in 1..=CYCLES {
        let before = recovered(&w);
        let log_before = w.log_text().lines().count();
        let t0 = Instant::now();
        // Odd cycles crash the engine, even ones restart it cleanly.
        let how = if cycle % 2 == 1 { "kill -9" } else { "SIGTERM" };
        if cycle % 2 == 1 {
            private.kill_9()?;
        } else {
            private.stop()?;
        }
        tokio::time::sleep(DOWN).await;
        // Still running, and not spinning: the reconnects back off.
        assert!(
            w.child.try_wait()?.is_none(),
            "runner watch exited while the engine was gone:\n{}",
            w.log_text()
        );
        let log = w.log_text();
        let during: Vec<&str> = log.lines().skip(log_before).collect();
        let reconnects = during
            .iter()
            .filter(|l| l.contains("waiting before reconnecting"))
            .count();
        assert!(
            (1..=8).contains(&reconnects) && during.len() < 100,
            "cycle {cycle}: {reconnects} reconnect attempts and {} log lines in {DOWN:?} without an engine:\n{}",
            during.len(),
            during.join("\n")
        );

        private.launch()?;
        let back = t0.elapsed();
        // The engine's part (restoring and restarting the container) apart
        // from runner's (noticing and repairing it).
        let restarted = Instant::now();
        let running = runner_e2e::wait::poll_until(
            "the engine to run the sandbox again",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || async {
                let engine = private.engine().await?;
                let state = engine
                    .docker()
                    .inspect_container(sb.name(), None)
                    .await?
                    .state
                    .context("no state")?;
                Ok((state.running == Some(true)).then_some(()))
            },
        )
        .await
        .map(|()| restarted.elapsed())?;
        // Well inside the 30 s liveness interval: the engine's restart of
        // the container must be seen (replayed events, the resubscribe
        // probe), not found by the next periodic check.
        let healed = wait_dashboard(port, HEAL_WITHIN, &w)
            .await
            .with_context(|| {
                format!(
                    "cycle {cycle} ({how}); dockerd log:\n{}",
                    private.log_tail()
                )
            })?;
        w.wait_log(
            &["recover finished", "outcome=recovered"],
            before + 1,
            Duration::from_secs(30),
        )
        .await?;
        // Let a second launch, if one were racing, show itself.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let gateways = sb.gateway_pids().await?;
        assert!(!gateways.is_empty(), "no gateway after cycle {cycle}");
        duplicates += gateways.len() - 1;
        recoveries += recovered(&w) - before;
        assert!(
            dashboard_ok(port).await,
            "cycle {cycle}: dashboard lost again"
        );
        eprintln!(
            "MEASURED cycle {cycle} ({how}): engine dead {DOWN:?}, back after {back:.2?}; sandbox running again {running:.2?} later, \
             dashboard healthy {healed:.2?} after that; \
             {reconnects} reconnect attempts while down; gateways {gateways:?}"
        );
    }
    eprintln!(
        "MEASURED {CYCLES} engine restart cycles (kill -9 and SIGTERM): {recoveries} recoveries, {duplicates} duplicate gateways"
    );
    assert_eq!(duplicates, 0, "duplicate gateways; log:\n{}", w.log_text());
    assert!(
        recoveries >= CYCLES,
        "{recoveries} recoveries for {CYCLES} engine restarts"
    );
    assert!(w.child.try_wait()?.is_none(), "runner watch exited");
    w.scrape()
        .await
        .context("metrics after the engine restarts")?;
    drop(w);
    sb.remove().await?;
    Ok(())
}
