//! `runner watch` against a real engine and the fixture image.
//!
//! Every test runs its own `runner watch` process with its own state dir and
//! a `require-label` scoped to that test, so it never touches another test's
//! (or anyone's) labelled sandboxes on the shared engine. What the watcher did
//! is checked from outside: the container, the host port, the audit log, the
//! metrics endpoint and its structured log.

#[path = "support/watch.rs"]
mod watch;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bollard::query_parameters::{KillContainerOptionsBuilder, StopContainerOptionsBuilder};
use runner_e2e::{Engine, Mode, Sandbox, SandboxSpec, free_port, images};
use watch::{
    FIXTURE_LABELS, SCOPE_LABEL, Watch, dashboard_ok, http, labelled, recover_json, runner_cli,
    setup, token, wait_dashboard,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_restart_of_labelled_sandbox_recovers_without_a_command() -> Result<()> {
    let (engine, image) = setup().await?;
    let scope = token("restart");
    let port = free_port()?;
    let sb = Sandbox::create(&engine, labelled(&image, &scope, port)).await?;
    let w = Watch::start("restart", &scope, "", "30s").await?;
    // Discovery recovers it at once (CORS origin, forward) with no command.
    let first = wait_dashboard(port, Duration::from_secs(60), &w).await?;
    w.wait_log(
        &["recover finished", "trigger=\"discovered\""],
        1,
        Duration::from_secs(30),
    )
    .await?;
    eprintln!("discovered and healthy after {first:.2?}");
    let before = w.repairs(sb.name()).await?;

    let t0 = Instant::now();
    sb.restart_with_grace(2).await?;
    let restart_took = t0.elapsed();
    let healed = wait_dashboard(port, Duration::from_secs(25), &w).await?;
    let total = t0.elapsed();
    eprintln!(
        "MEASURED docker restart took {restart_took:.2?}; dashboard healthy again {healed:.2?} after it returned ({total:.2?} from the restart call)"
    );
    // The interval is 30 s: the repair was triggered by the start event.
    w.wait_log(
        &["recover finished", "trigger=\"start\"", "outcome=recovered"],
        1,
        Duration::from_secs(20),
    )
    .await?;
    if let Some(line) = w
        .log_text()
        .lines()
        .find(|l| l.contains("recover finished") && l.contains("trigger=\"start\""))
    {
        eprintln!("MEASURED the start-triggered recover: {line}");
    }
    let after = w.repairs(sb.name()).await?;
    assert!(after > before, "no repair counted: {before} -> {after}");
    assert!(total < Duration::from_secs(25));
    sb.remove().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_crashing_gateway_is_backed_off_then_quarantined() -> Result<()> {
    let (engine, image) = setup().await?;
    let scope = token("crash");
    let port = free_port()?;
    let spec = labelled(&image, &scope, port).env("FIXTURE_MODE", "always-crash");
    let sb = Sandbox::create(&engine, spec).await?;
    // A short policy so the whole loop fits in well under a minute:
    // 5 repairs / 20 s, backoff 1 s doubling to 2 s (2 rounds), then quarantine.
    let policy = "[policy]\nmax-repairs = 5\nwindow = 20\nbackoff-initial = 1\nbackoff-max = 2\n";
    let started = Instant::now();
    let w = Watch::start("crash", &scope, policy, "1s").await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let text = w.scrape().await?;
        if text.contains("runner_quarantined_sandboxes 1") {
            break;
        }
        if Instant::now() > deadline {
            bail!("not quarantined in 90 s; log:\n{}", w.log_text());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let quarantined_after = started.elapsed();
    let log = w.log_text();
    assert!(log.contains("CRITICAL"), "no CRITICAL line:\n{log}");
    assert!(
        log.contains("crash loop: backing off"),
        "no backoff:\n{log}"
    );
    let times = w.repair_times(sb.name());
    eprintln!("MEASURED quarantined after {quarantined_after:.2?}; repair times (s): {times:?}");
    assert_eq!(times.len(), 7, "5 in the window + 2 backoff rounds:\n{log}");
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().filter(|u| **u - t < 20.0).count();
        assert!(in_window <= 5, "more than 5 repairs in 20 s: {times:?}");
    }
    // Quarantined: no more repairs, whatever the interval says.
    let count = w.repairs(sb.name()).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        w.repairs(sb.name()).await?,
        count,
        "repaired after quarantine"
    );
    assert!(log.contains("decision=\"skip\"") || w.log_text().contains("reason=\"quarantined\""));
    sb.remove().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_controls_see_zero_repairs() -> Result<()> {
    let (engine, image) = setup().await?;
    let scope = token("negative");
    let (p_healthy, p_stop, p_kill) = (free_port()?, free_port()?, free_port()?);
    let healthy = Sandbox::create(&engine, labelled(&image, &scope, p_healthy)).await?;
    let stopped = Sandbox::create(&engine, labelled(&image, &scope, p_stop)).await?;
    let killed = Sandbox::create(&engine, labelled(&image, &scope, p_kill)).await?;
    // In scope but without runner.plugin: never selected.
    let mut unspec = SandboxSpec::new(&image)
        .mode(Mode::Keepalive)
        .label(SCOPE_LABEL, &scope);
    for (k, v) in FIXTURE_LABELS {
        unspec = unspec.label(*k, *v);
    }
    let unlabelled = Sandbox::create(&engine, unspec).await?;
    let w = Watch::start("negative", &scope, "", "1s").await?;
    for p in [p_healthy, p_stop, p_kill] {
        wait_dashboard(p, Duration::from_secs(60), &w).await?;
    }
    // Operators stop and kill two of them on purpose.
    let docker = engine.docker();
    docker
        .stop_container(
            stopped.name(),
            Some(StopContainerOptionsBuilder::default().t(2).build()),
        )
        .await?;
    docker
        .kill_container(
            killed.name(),
            Some(
                KillContainerOptionsBuilder::default()
                    .signal("SIGKILL")
                    .build(),
            ),
        )
        .await?;
    // Let the watcher settle its last probes, then take the baseline.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let base: HashMap<String, (u64, usize)> = {
        let mut m = HashMap::new();
        for sb in [&healthy, &stopped, &killed, &unlabelled] {
            m.insert(
                sb.name().to_string(),
                (w.repairs(sb.name()).await?, w.audit(sb.name()).len()),
            );
        }
        m
    };
    // At least 8 probe intervals.
    tokio::time::sleep(Duration::from_secs(10)).await;
    for sb in [&healthy, &stopped, &killed, &unlabelled] {
        let now = (w.repairs(sb.name()).await?, w.audit(sb.name()).len());
        assert_eq!(
            now,
            base[sb.name()],
            "{} was touched; log:\n{}",
            sb.name(),
            w.log_text()
        );
    }
    assert_eq!(w.repairs(unlabelled.name()).await?, 0);
    assert!(w.audit(unlabelled.name()).is_empty());
    for sb in [&stopped, &killed] {
        let state = sb.status().await?;
        assert_eq!(
            format!("{state:?}").to_lowercase(),
            "exited",
            "{} was restarted",
            sb.name()
        );
    }
    assert!(dashboard_ok(p_healthy).await);
    let log = w.log_text();
    assert!(log.contains("stopped-on-purpose"), "no skip logged:\n{log}");
    eprintln!(
        "MEASURED zero repairs over 10 s at a 1 s interval for healthy, stopped, killed and unlabelled sandboxes"
    );
    for sb in [healthy, stopped, killed, unlabelled] {
        sb.remove().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully() -> Result<()> {
    let (engine, image) = setup().await?;
    let scope = token("sigterm");
    let port = free_port()?;
    let sb = Sandbox::create(&engine, labelled(&image, &scope, port)).await?;
    let mut w = Watch::start("sigterm", &scope, "", "30s").await?;
    wait_dashboard(port, Duration::from_secs(60), &w).await?;
    // Break it (restart) and send SIGTERM while the repair is in flight.
    sb.restart_with_grace(1).await?;
    // SIGTERM as soon as the start-triggered recover is running (it takes
    // a few hundred ms; the log is polled every 5 ms).
    let started = Instant::now();
    while !w
        .log_text()
        .lines()
        .any(|l| l.contains("recover started") && l.contains("trigger=\"start\""))
    {
        if started.elapsed() > Duration::from_secs(20) {
            bail!(
                "the start-triggered recover never started:\n{}",
                w.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t0 = Instant::now();
    w.terminate()?;
    let status = tokio::time::timeout(Duration::from_secs(30), w.child.wait())
        .await
        .context("runner watch did not exit within 30 s of SIGTERM")??;
    let took = t0.elapsed();
    eprintln!("MEASURED SIGTERM → exit {status} in {took:.2?}");
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        w.log_text()
    );
    let log = w.log_text();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("shutdown complete"), "{log}");
    // The repair the restart triggered was in flight and allowed to finish.
    let finished = log
        .lines()
        .find(|l| l.contains("recover finished") && l.contains("trigger=\"start\""))
        .and_then(|l| log.find(l))
        .context("the start-triggered repair never finished")?;
    let signalled = log.find("SIGTERM").context("no signal line")?;
    let waiting = log
        .find("waiting for in-flight repairs")
        .context("no shutdown line")?;
    let complete = log.find("shutdown complete").context("no completion")?;
    assert!(
        signalled < finished && waiting < complete && finished < complete,
        "repair not finished inside the shutdown:\n{log}"
    );
    // Its in-process forward is closed; the sandbox itself is left running.
    assert!(
        http(port, "/health", &[]).await.is_err(),
        "forward still served after shutdown"
    );
    assert_eq!(
        format!("{:?}", sb.status().await?).to_lowercase(),
        "running"
    );
    sb.remove().await?;
    Ok(())
}

/// A second, private dockerd (tests/engine.sh with every path, the socket and
/// the bridge overridden): the shared engine is never stopped or restarted.
struct PrivateEngine {
    env: Vec<(&'static str, String)>,
    host: String,
    data_root: String,
}

impl PrivateEngine {
    fn new() -> PrivateEngine {
        let data_root = "/var/lib/runner-watch-engine-test".to_string();
        let env = vec![
            (
                "RUNNER_DOCKER_HOST_SOCK",
                "/run/rwt/docker.sock".to_string(),
            ),
            ("RUNNER_DOCKER_DATA_ROOT", data_root.clone()),
            ("RUNNER_DOCKER_EXEC_ROOT", "/run/rwtx".to_string()),
            ("RUNNER_DOCKER_BRIDGE", "rwtbr0".to_string()),
            ("RUNNER_DOCKER_BRIDGE_CIDR", "172.31.250.1/24".to_string()),
        ];
        PrivateEngine {
            env,
            host: "unix:///run/rwt/docker.sock".into(),
            data_root,
        }
    }

    fn script(&self, cmd: &str) -> Result<()> {
        let _ = std::fs::create_dir_all("/run/rwt");
        let out = std::process::Command::new("bash")
            .arg(images::repo_root().join("tests/engine.sh"))
            .arg(cmd)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .output()?;
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            bail!("tests/engine.sh {cmd} failed: {}", out.status);
        }
        Ok(())
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        let _ = self.script("stop");
        let _ = std::fs::remove_dir_all(&self.data_root);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_restart_is_survived() -> Result<()> {
    let shared = Engine::connect().await?;
    let image = images::ensure("fixture").await?;
    let private = PrivateEngine::new();
    private.script("ensure")?;
    // The image travels by save | load (no registry).
    let copy = std::process::Command::new("bash")
        .args([
            "-c",
            &format!(
                "docker -H {} save {image} | docker -H {} load",
                shared.host(),
                private.host
            ),
        ])
        .stdin(Stdio::null())
        .output()?;
    if !copy.status.success() {
        bail!(
            "copying {image} to the private engine failed: {}",
            String::from_utf8_lossy(&copy.stderr)
        );
    }
    let engine = Engine::connect_to(&private.host).await?;
    let scope = token("engine");
    let port = free_port()?;
    let sb = Sandbox::create(&engine, labelled(&image, &scope, port)).await?;
    let w = Watch::start_with(
        "engine",
        &scope,
        "",
        "30s",
        &[("DOCKER_HOST", private.host.as_str())],
    )
    .await?;
    wait_dashboard(port, Duration::from_secs(60), &w).await?;

    // The daemon goes away (SIGTERM: kill → die → stop per container, then the
    // stream ends) and comes back.
    let t0 = Instant::now();
    private.script("stop")?;
    w.wait_log(&["event stream"], 1, Duration::from_secs(20))
        .await?;
    private.script("ensure")?;
    let engine = Engine::connect_to(&private.host).await?;
    let back = t0.elapsed();
    // The container stayed exited (restart policy no), and the watcher did not
    // start it: it was stopped by the daemon's shutdown.
    assert_eq!(format!("{:?}", sb.status().await?).to_lowercase(), "exited");
    // Resubscribed: a start after the restart is seen and repaired at once.
    w.wait_log(&["subscribed to engine events"], 2, Duration::from_secs(60))
        .await?;
    let t1 = Instant::now();
    engine
        .docker()
        .start_container(
            sb.name(),
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await?;
    let healed = wait_dashboard(port, Duration::from_secs(30), &w).await?;
    w.wait_log(
        &["recover finished", "trigger=\"start\"", "outcome=recovered"],
        1,
        Duration::from_secs(30),
    )
    .await?;
    eprintln!(
        "MEASURED engine down and back in {back:.2?}; after `docker start` the dashboard was healthy in {healed:.2?} ({:.2?} total)",
        t1.elapsed()
    );
    drop(w);
    sb.remove().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_from_runner_recover_is_adopted_not_duplicated() -> Result<()> {
    let (engine, image) = setup().await?;
    let scope = token("adopt");
    let port = free_port()?;
    let sb = Sandbox::create(&engine, labelled(&image, &scope, port)).await?;
    let state = std::env::temp_dir().join(format!("runner-watch-adopt-state-{}", token("a")));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state)?;
    // A one-shot recover leaves a detached forward behind.
    let report = recover_json(&state, sb.name())?;
    let forward = report["links"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["id"] == "forward"))
        .context("no forward link")?;
    let pid = forward["evidence"]["pid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!pid.is_empty(), "no forward pid in {forward}");
    let state_s = state.to_string_lossy().into_owned();
    let w = Watch::start_with(
        "adopt",
        &scope,
        "",
        "30s",
        &[("RUNNER_STATE_DIR", state_s.as_str())],
    )
    .await?;
    w.wait_log(
        &["recover finished", "outcome="],
        1,
        Duration::from_secs(30),
    )
    .await?;
    let log = w.log_text();
    assert!(
        log.contains("mutations=0"),
        "the watcher mutated a healthy sandbox:\n{log}"
    );
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the detached forward {pid} was replaced:\n{log}"
    );
    assert!(dashboard_ok(port).await);
    drop(w);
    let _ = runner_cli(&state, &["forward", "stop", "--all"]);
    let _ = std::fs::remove_dir_all(&state);
    sb.remove().await?;
    Ok(())
}

#[tokio::test]
async fn a_bad_watch_config_is_a_usage_error() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("runner-watch-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("bad.toml");
    std::fs::write(&config, "[policy]\nmax-repairs = 0\n")?;
    let out = runner_cli(
        &dir,
        &["watch", "--config", config.to_str().unwrap_or_default()],
    )?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max-repairs"));
    std::fs::write(&config, "intervall = 3\n")?;
    let out = runner_cli(
        &dir,
        &["watch", "--config", config.to_str().unwrap_or_default()],
    )?;
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A gateway killed inside the container is no container event: the cheap
/// liveness tick (procfs only) notices it, and only then does a full pass run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_gateway_is_noticed_by_the_liveness_tick_without_an_event() -> Result<()> {
    let (engine, image) = setup().await?;
    let scope = token("liveness");
    let port = free_port()?;
    let sb = Sandbox::create(&engine, labelled(&image, &scope, port)).await?;
    // Full passes an hour apart: anything within the test is the liveness
    // tick (1 s) or an event.
    let w = Watch::start("liveness", &scope, "full-interval = 3600\n", "1s").await?;
    wait_dashboard(port, Duration::from_secs(60), &w).await?;
    w.wait_log(
        &[
            "recover finished",
            "trigger=\"discovered\"",
            "liveness=\"armed\"",
        ],
        1,
        Duration::from_secs(30),
    )
    .await?;
    // Several ticks with everything alive: no full pass beyond discovery.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let passes = |text: &str| {
        text.lines()
            .filter(|l| l.contains("recover finished"))
            .count()
    };
    assert_eq!(
        passes(&w.log_text()),
        1,
        "extra full passes:\n{}",
        w.log_text()
    );
    let before = w.repairs(sb.name()).await?;

    let pids = sb.gateway_pids().await?;
    assert_eq!(pids.len(), 1, "one gateway expected: {pids:?}");
    sb.exec(&["kill", "-9", &pids[0].to_string()], Some("0"))
        .await?
        .check("kill the gateway")?;
    w.wait_log(
        &[
            "liveness check failed",
            &format!("gateway pid {} gone", pids[0]),
        ],
        1,
        Duration::from_secs(15),
    )
    .await?;
    w.wait_log(
        &[
            "recover finished",
            "trigger=\"liveness\"",
            "outcome=recovered",
        ],
        1,
        Duration::from_secs(30),
    )
    .await?;
    wait_dashboard(port, Duration::from_secs(30), &w).await?;
    let after = w.repairs(sb.name()).await?;
    assert!(after > before, "no repair counted: {before} -> {after}");
    let log = w.log_text();
    assert!(
        !log.lines()
            .any(|l| l.contains("engine event") && l.contains(sb.name())),
        "the repair came from an engine event, not the tick:\n{log}"
    );
    let new_pids = sb.gateway_pids().await?;
    assert_eq!(
        new_pids.len(),
        1,
        "one gateway after the repair: {new_pids:?}"
    );
    assert_ne!(new_pids, pids);
    sb.remove().await?;
    Ok(())
}
