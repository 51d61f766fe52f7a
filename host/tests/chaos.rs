//! Chaos suite (issue 10 item 9): the real `runner` binary killed, raced and
//! fed faulty plugins against real fixture sandboxes, each case repeated and
//! counted (docs/reliability.md, "Chaos suite"). Every case checks the
//! sandbox from outside afterwards: exactly one gateway, one forward that is
//! runner's, no lock left held, an audit log of whole JSON lines, and a next
//! run that works. Each run is bounded to seconds; the counts are printed as
//! `MEASURED` lines.

#[path = "support/e2e.rs"]
mod e2e;
#[path = "support/watch.rs"]
mod watch;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use e2e::{Runner, Target};
use runner_e2e::{Engine, Mode, Sandbox, free_port};
use serde_json::Value;
use watch::{StateDir, Watch, labelled, listeners, one_runner_listener, setup, token};

/// How often a kill trigger looks at the audit log.
const AUDIT_POLL: Duration = Duration::from_millis(2);
/// A kill trigger that never fires fails the run after this long.
const TRIGGER_LIMIT: Duration = Duration::from_secs(20);

/// The state every chaos run must leave behind, checked from outside after
/// the follow-up `recover` (`next`) that must have succeeded: exactly one
/// gateway (the one `next` reports), the guard chain intact, exactly one
/// listener on the host port and it is runner's forward serving the
/// gateway, no lock held, the audit log whole JSON lines.
async fn assert_settled(sb: &Sandbox, runner: &Runner, next: &e2e::Run, port: u16) -> Result<()> {
    next.expect_ok();
    next.assert_all_healthy_after();
    let (pid, _) = sb.sole_gateway().await?;
    if let Some(reported) = next.evidence("gateway", "pid") {
        ensure!(
            reported == pid.to_string(),
            "the next recover reports gateway {reported}, the sandbox runs {pid}"
        );
    }
    e2e::assert_guards_staged(sb).await?;
    one_runner_listener(port, None)?;
    e2e::assert_forward_after_run(next, port, "/health").await;
    e2e::locks_free(runner.state_dir())?;
    e2e::audit_whole_lines(&runner.audit_path())?;
    Ok(())
}

/// Audit records whose `action` is `action`, after the first `skip`.
fn audit_actions(path: &Path, skip: usize, action: &str) -> usize {
    // Read raw: a line being appended right now may be incomplete.
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .skip(skip)
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["action"] == action)
        .count()
}

fn audit_len(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// 1. kill -9 of `runner recover` mid-repair
// ---------------------------------------------------------------------------

/// What breaks the sandbox before the recover that gets killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    /// `docker restart`: guards, gateway and forward all to repair.
    DockerRestart,
    /// kill -9 of the gateway: a stale state lock, then a relaunch.
    KillGateway,
}

impl Break {
    /// The mutations (`capability.action`, count) that repairing this break
    /// takes, whoever makes them: the killed run or the next one.
    fn repair_needs(self) -> &'static [(&'static str, usize)] {
        match self {
            Break::DockerRestart => &[("files.write", 3), ("spawn.detached", 1)],
            Break::KillGateway => &[("files.remove-if", 1), ("spawn.detached", 1)],
        }
    }

    async fn apply(self, sb: &Sandbox) -> Result<()> {
        match self {
            Break::DockerRestart => sb.docker_restart().await,
            Break::KillGateway => sb.kill_gateway_9().await.map(|_| ()),
        }
    }
}

/// When the recover is killed.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This share (percent) of the time an uninterrupted repair took to its
    /// first mutation: starting, probing, planning.
    BeforeMutating(u32),
    /// This share (percent) of the way from an uninterrupted repair's first
    /// mutation to its end: repairing, verifying.
    Mutating(u32),
    /// Right after the audit log shows a mutation of this `capability.action`.
    AfterAudit(&'static str),
}

/// An uninterrupted repair: how long to its first audited mutation, and in all.
#[derive(Debug, Clone, Copy)]
struct Timing {
    first_mutation: Duration,
    total: Duration,
}

impl Timing {
    fn kill_after(&self, at: KillAt) -> Option<Duration> {
        match at {
            KillAt::BeforeMutating(p) => Some(self.first_mutation * p / 100),
            KillAt::Mutating(p) => {
                Some(self.first_mutation + (self.total - self.first_mutation) * p / 100)
            }
            KillAt::AfterAudit(_) => None,
        }
    }
}

/// `runner recover` of `t` left to finish, timed from outside: when its first
/// mutation reached the audit log, and when it exited.
async fn timed_recover(runner: &Runner, t: &Target) -> Result<(e2e::Run, Timing)> {
    let audit = runner.audit_path();
    let before = audit_len(&audit);
    let args = t.args("recover");
    let mut child = runner.spawn(&args);
    let started = Instant::now();
    let mut first = None;
    while first.is_none() && child.try_wait()?.is_none() {
        ensure!(
            started.elapsed() < TRIGGER_LIMIT,
            "recover ran past {TRIGGER_LIMIT:?}"
        );
        if audit_len(&audit) > before {
            first = Some(started.elapsed());
        }
        tokio::time::sleep(AUDIT_POLL).await;
    }
    let out = tokio::time::timeout(TRIGGER_LIMIT, child.wait_with_output())
        .await
        .context("recover ran too long")??;
    let total = started.elapsed();
    let run = e2e::Run {
        args,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: total,
    };
    let first_mutation = first.with_context(|| format!("no mutation\n{}", run.context()))?;
    Ok((
        run,
        Timing {
            first_mutation,
            total,
        },
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_recover_mid_repair_then_the_next_recover_repairs_cleanly() -> Result<()> {
    let sb = e2e::healthy_keepalive("chaos-kill-recover").await?;
    let port = free_port()?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("chaos-kill-recover");
    runner.recover(&t).await.expect_ok();

    // Each break's uninterrupted repair, timed (the quicker of two): the
    // swept kill points are shares of it, so they land inside the repair
    // however loaded the box is.
    let breaks = [Break::DockerRestart, Break::KillGateway];
    let mut timings = Vec::new();
    for b in breaks {
        let mut quickest = Timing {
            first_mutation: Duration::MAX,
            total: Duration::MAX,
        };
        for _ in 0..2 {
            b.apply(&sb).await?;
            let (run, timing) = timed_recover(&runner, &t).await?;
            run.expect(0, "recovered");
            assert_settled(&sb, &runner, &run, port).await?;
            quickest.first_mutation = quickest.first_mutation.min(timing.first_mutation);
            quickest.total = quickest.total.min(timing.total);
        }
        timings.push((b, quickest));
    }
    eprintln!("MEASURED uninterrupted repairs: {timings:?}");

    // A break: 0, 40, 80 % of the way to the first mutation, then 0, 10,
    // …, 80 % of the mutating part: 12 points.
    let mut plan: Vec<(Break, KillAt)> = Vec::new();
    for b in breaks {
        plan.extend([0, 40, 80].map(|p| (b, KillAt::BeforeMutating(p))));
        plan.extend((0..90).step_by(10).map(|p| (b, KillAt::Mutating(p))));
    }
    for action in ["files.write", "spawn.detached", "forward.ensure"] {
        plan.push((Break::DockerRestart, KillAt::AfterAudit(action)));
    }
    for action in ["files.remove-if", "spawn.detached"] {
        plan.push((Break::KillGateway, KillAt::AfterAudit(action)));
    }

    let audit = runner.audit_path();
    let (mut killed_running, mut finished_first, mut mutated_before_kill) = (0, 0, 0);
    let mut unaudited = Vec::new();
    for (i, &(b, at)) in plan.iter().enumerate() {
        let before = audit_len(&audit);
        b.apply(&sb).await?;
        let mut child = runner.spawn(&t.args("recover"));
        let started = Instant::now();
        match at {
            KillAt::BeforeMutating(_) | KillAt::Mutating(_) => {
                let (_, timing) = timings.iter().find(|(x, _)| *x == b).unwrap();
                tokio::time::sleep(timing.kill_after(at).unwrap()).await;
            }
            KillAt::AfterAudit(action) => {
                while audit_actions(&audit, before, action) == 0 {
                    if child.try_wait()?.is_some() {
                        break;
                    }
                    ensure!(
                        started.elapsed() < TRIGGER_LIMIT,
                        "run {i}: no {action} in the audit log after {TRIGGER_LIMIT:?}"
                    );
                    tokio::time::sleep(AUDIT_POLL).await;
                }
            }
        }
        let running = child.try_wait()?.is_none();
        child.start_kill()?;
        tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .context("the killed recover was not reaped")??;
        let at_kill = started.elapsed();
        let mutated = audit_len(&audit) - before;
        if running {
            killed_running += 1;
        } else {
            finished_first += 1;
        }
        if mutated > 0 && running {
            mutated_before_kill += 1;
        }
        e2e::audit_whole_lines(&audit).with_context(|| format!("run {i} ({b:?}, {at:?})"))?;
        e2e::locks_free(runner.state_dir())
            .with_context(|| format!("run {i}: a lock outlived the killed recover"))?;

        let killed_kinds: Vec<String> = e2e::audit_whole_lines(&audit)?
            .split_off(before)
            .iter()
            .map(|r| r["action"].as_str().unwrap_or("").to_string())
            .collect();

        let next = runner.recover(&t).await;
        // What the repair needed and neither run's audit lines show was
        // done by the killed run after its effect and before its audit line.
        let next_kinds = next.mutation_kinds();
        let missing: Vec<&str> = b
            .repair_needs()
            .iter()
            .filter(|(kind, n)| {
                killed_kinds
                    .iter()
                    .chain(&next_kinds)
                    .filter(|k| k == kind)
                    .count()
                    < *n
            })
            .map(|(kind, _)| *kind)
            .collect();
        if !missing.is_empty() {
            unaudited.push((i, missing.clone()));
        }
        assert_settled(&sb, &runner, &next, port)
            .await
            .with_context(|| {
                format!(
                    "run {i}: {b:?}, killed at {at:?} ({at_kill:.0?}, {mutated} mutation(s) audited)\n{}",
                    next.context()
                )
            })?;
        eprintln!(
            "run {i}: {b:?} killed at {at:?} after {at_kill:.0?} ({}; audited before the kill {killed_kinds:?}) -> next recover {} in {:.0?}: {next_kinds:?}",
            if running { "mid-run" } else { "already done" },
            next.report()["outcome"],
            next.elapsed
        );
    }
    eprintln!(
        "MEASURED kill -9 of recover: {} runs, {killed_running} killed while running ({mutated_before_kill} after mutating), {finished_first} had finished; every next recover exit 0, 1 gateway, 1 forward, no lock held, audit whole",
        plan.len()
    );
    // Every change is audited (`pending`) before it is made, so a kill at
    // any point leaves a trace of what the killed run may have changed.
    assert!(
        unaudited.is_empty(),
        "run(s) left a mutation done but not audited: {unaudited:?}"
    );
    assert!(
        killed_running >= 20,
        "only {killed_running} of {} kills hit a running recover",
        plan.len()
    );
    assert!(
        mutated_before_kill >= 10,
        "only {mutated_before_kill} kills came after the repair had started mutating"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 2. kill -9 of `runner watch` mid-repair, a new watch takes over
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_watch_mid_repair_then_a_new_watch_takes_over() -> Result<()> {
    let (engine, image) = setup().await?;
    let scope = token("chaos-watch");
    let port = free_port()?;
    let sb = Sandbox::create(&engine, labelled(&image, &scope, port)).await?;
    let state = StateDir::new("chaos-watch")?;
    let env = [("RUNNER_STATE_DIR", state.as_str())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let audit = state.0.join("audit.jsonl");
    let start = |n: usize| {
        let tag = format!("chaos-watch-{n}");
        let (scope, env) = (&scope, &env);
        async move { Watch::start_with(&tag, scope, "", "30s", env).await }
    };

    let mut w = start(0).await?;
    watch::wait_dashboard(port, Duration::from_secs(30), &w).await?;
    // Kill this long after the repair's first audited mutation.
    let delays_ms = [0u64, 0, 10, 20, 40, 60, 80, 120, 160, 200];
    let mut mid_repair = 0;
    for (i, &delay) in delays_ms.iter().enumerate() {
        let before = audit_len(&audit);
        sb.restart_with_grace(1).await?;
        let t0 = Instant::now();
        while audit_len(&audit) == before {
            ensure!(
                t0.elapsed() < TRIGGER_LIMIT,
                "run {i}: the watcher repaired nothing after the restart:\n{}",
                w.log_text()
            );
            tokio::time::sleep(AUDIT_POLL).await;
        }
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let finished = w
            .log_text()
            .lines()
            .any(|l| l.contains("recover finished") && l.contains("trigger=\"start\""));
        w.kill_9().await?;
        if !finished {
            mid_repair += 1;
        }
        // Its in-process forward died with it; it held no lock.
        let orphans = listeners(port)?;
        ensure!(
            orphans.is_empty(),
            "run {i}: listeners left on {port} by the dead watcher: {orphans:?}"
        );
        e2e::locks_free(&state.0)?;
        e2e::audit_whole_lines(&audit)?;

        let t1 = Instant::now();
        w = start(i + 1).await?;
        let healed = watch::wait_dashboard(port, Duration::from_secs(30), &w).await?;
        w.wait_log(
            &["recover finished", "outcome="],
            1,
            Duration::from_secs(30),
        )
        .await?;
        let gateways = sb.gateway_pids().await?;
        ensure!(
            gateways.len() == 1,
            "run {i}: gateways {gateways:?}; log:\n{}",
            w.log_text()
        );
        one_runner_listener(port, w.pid())
            .with_context(|| format!("run {i}: the new watcher's forward"))?;
        e2e::locks_free(&state.0)?;
        eprintln!(
            "run {i}: watch killed {delay} ms after the repair's first mutation ({}), the next watch healthy after {healed:.2?} ({:.2?} incl. its start)",
            if finished {
                "repair already done"
            } else {
                "mid-repair"
            },
            t1.elapsed()
        );
    }
    eprintln!(
        "MEASURED kill -9 of watch: {} runs, {mid_repair} mid-repair; every next watch: 1 gateway, its own forward, no lock held, audit whole",
        delays_ms.len()
    );
    assert!(mid_repair >= 5, "only {mid_repair} kills were mid-repair");
    drop(w);
    sb.remove().await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// 3. concurrent recovers by every alias after a docker restart
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_recovers_by_every_alias_launch_one_gateway_every_time() -> Result<()> {
    const ROUNDS: usize = 10;
    let sb = e2e::healthy_keepalive("chaos-alias").await?;
    let port = free_port()?;
    let runner = Runner::new("chaos-alias");
    let aliases = e2e::every_alias(&sb, port);
    for round in 0..ROUNDS {
        let before = runner.audit().len();
        sb.restart_with_grace(1).await?;
        let runs = e2e::recover_all_at_once(&runner, &aliases).await;
        for run in &runs {
            run.expect_ok();
        }
        let added = e2e::audit_since(&runner, before);
        assert_eq!(
            e2e::gateway_launches(&added),
            1,
            "round {round}: gateway launches: {added:?}"
        );
        assert!(
            added.iter().all(|r| r["sandbox"] == sb.name()),
            "round {round}: every audit line keys on the container name: {added:?}"
        );
        let pids = sb.gateway_pids().await?;
        assert_eq!(pids.len(), 1, "round {round}: gateways {pids:?}");
        one_runner_listener(port, None)?;
        e2e::assert_forward_after_run(&runs[0], port, "/health").await;
        eprintln!(
            "round {round}: {} recovers at once: {:?}",
            runs.len(),
            runs.iter()
                .map(|r| r.report()["outcome"].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        );
    }
    eprintln!(
        "MEASURED {ROUNDS} rounds of {} concurrent recovers (name, full id, short id, name): 1 gateway launch each round",
        aliases.len()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 4. the supervised race: the init's launch delay swept 0–2 s
// ---------------------------------------------------------------------------

/// How one supervised start went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Supervised {
    /// Broken at the probe; runner waited and credited the init's gateway.
    Credited,
    /// Already serving at the probe or by the repair.
    AlreadyRunning,
}

/// A supervised fixture sandbox (`nemoclaw-start` as PID 1) whose init waits
/// `delay` s before launching, recovered the moment it starts.
async fn supervised_start(engine: &Engine, runner: &Runner, delay: f64) -> Result<Supervised> {
    let spec = e2e::fixture_spec(Mode::Supervised, "race")
        .await?
        .env("SANDBOX_LAUNCH_DELAY", format!("{delay:.2}"));
    let sb = Sandbox::create(engine, spec).await?;
    let port = free_port()?;
    let run = runner.recover(&Target::fixture(&sb, port)).await;
    run.expect_ok();
    let gateway = run.link("gateway");
    let kind = match gateway["action"].as_str() {
        Some("none") if gateway["before"] == "broken" => {
            // Broken at the probe, then the init's gateway came: credited
            // during the wait, or already serving when the repair looked.
            let note = gateway["evidence"]["not-needed"].as_str().unwrap_or("");
            ensure!(
                !note.is_empty(),
                "delay {delay}: the repair says why it did nothing\n{}",
                run.context()
            );
            if note.contains("supervisor") && note.contains("nemoclaw-start") {
                Supervised::Credited
            } else {
                Supervised::AlreadyRunning
            }
        }
        Some("none") => Supervised::AlreadyRunning,
        other => bail!("delay {delay}: gateway action {other:?}\n{}", run.context()),
    };
    // The init has launched (its log says so); a second launch by anyone
    // would show by now. Hold a little past it, then count.
    runner_e2e::wait::poll_until(
        &format!("the init's launch in {}", sb.name()),
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let log = sb.gateway_log().await?;
            Ok(log
                .contains("[sandbox-entry] gateway launched")
                .then_some(()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pids = sb.gateway_pids().await?;
    ensure!(
        pids.len() == 1,
        "delay {delay}: gateways {pids:?}\n{}",
        run.context()
    );
    eprintln!(
        "delay {delay:.2} s: recover took {:.0?}; {kind:?}: {}",
        run.elapsed, gateway["summary"]
    );
    sb.remove().await?;
    Ok(kind)
}

/// NemoClaw's supervised `nemoclaw-start` launching the gateway itself,
/// recovered the moment the container starts: whatever the init's launch
/// delay (0–2 s in 0.04 s steps, 51 starts), runner never launches a second
/// gateway and the report credits the init. Three starts run at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_launching_late_is_credited_and_never_doubled() -> Result<()> {
    const STEPS: u32 = 50;
    const LANES: u32 = 3;
    let engine = Engine::connect().await?;
    let runner = Runner::new("chaos-supervised-race");
    let t0 = Instant::now();
    let lanes = (0..LANES).map(|lane| {
        let (engine, runner) = (&engine, &runner);
        async move {
            let mut kinds = Vec::new();
            for step in (lane..=STEPS).step_by(LANES as usize) {
                let delay = 2.0 * f64::from(step) / f64::from(STEPS);
                kinds.push(supervised_start(engine, runner, delay).await?);
            }
            anyhow::Ok(kinds)
        }
    });
    let mut kinds = Vec::new();
    for lane in futures_util::future::join_all(lanes).await {
        kinds.extend(lane?);
    }
    let sweep = t0.elapsed();
    let launches = e2e::gateway_launches(&runner.audit());
    assert_eq!(launches, 0, "runner launched beside the init");
    let credited = kinds.iter().filter(|k| **k == Supervised::Credited).count();
    assert_eq!(kinds.len(), STEPS as usize + 1);
    assert!(credited > 0, "the sweep never caught the init mid-start");

    // Control: with the supervisor rule switched off the same start is a
    // race runner loses — it launches a gateway of its own.
    let control = Runner::new("chaos-supervised-race-control");
    let spec = e2e::fixture_spec(Mode::Supervised, "race")
        .await?
        .env("SANDBOX_LAUNCH_DELAY", "1.5");
    let sb = Sandbox::create(&engine, spec).await?;
    let run = control
        .recover(&Target::fixture(&sb, free_port()?).set("supervisor", ""))
        .await;
    sb.remove().await?;
    assert_eq!(
        run.link("gateway")["action"],
        "repaired",
        "without the rule runner launches beside the init\n{}",
        run.context()
    );
    eprintln!(
        "MEASURED {} supervised starts in {sweep:.1?} ({LANES} at a time): {credited} credited to the init during runner's wait, {} already running, 0 launches by runner, 0 duplicate gateways",
        kinds.len(),
        kinds.len() - credited
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 5. plugin faults during a real recover
// ---------------------------------------------------------------------------

/// A faulting plugin (`testkit`) run against a real, broken sandbox.
struct PluginFault {
    what: &'static str,
    settings: &'static [&'static str],
    /// In the report's message.
    message: &'static str,
}

/// The repair of `beta` first leaves this marker in the sandbox (a real
/// mutation), then faults.
const MARKER: &str = "/tmp/chaos-repair-started";

const PLUGIN_FAULTS: &[PluginFault] = &[
    PluginFault {
        what: "trap in probe",
        settings: &["behaviour=panic"],
        message: "probe exploded on purpose",
    },
    PluginFault {
        what: "endless loop in probe",
        settings: &["behaviour=loop"],
        message: "deadline in probe",
    },
    PluginFault {
        what: "memory exhausted in probe",
        settings: &["behaviour=membomb"],
        message: "memory limit",
    },
    PluginFault {
        what: "trap in repair after a mutation",
        settings: &[
            "beta=broken",
            "repair-argv=touch /tmp/chaos-repair-started",
            "repair-fault=panic",
        ],
        message: "repair exploded on purpose",
    },
    PluginFault {
        what: "endless loop in repair after a mutation",
        settings: &[
            "beta=broken",
            "repair-argv=touch /tmp/chaos-repair-started",
            "repair-fault=loop",
        ],
        message: "deadline in repair",
    },
    PluginFault {
        what: "memory exhausted in repair after a mutation",
        settings: &[
            "beta=broken",
            "repair-argv=touch /tmp/chaos-repair-started",
            "repair-fault=membomb",
        ],
        message: "memory limit",
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_faults_during_a_real_recover_exit_4_and_leave_nothing_blocking() -> Result<()> {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let sb = e2e::healthy_keepalive("chaos-plugin-fault").await?;
    let port = free_port()?;
    let t = Target::fixture(&sb, port);
    let runner = Runner::new("chaos-plugin-fault");
    let testkit = e2e::test_plugin("testkit");
    // Compiled once beforehand, so "promptly" below times the fault, not
    // the first compile of the component.
    let warm = runner
        .run(
            &[
                "status".into(),
                "--plugin".into(),
                testkit.clone(),
                "--sandbox".into(),
                sb.name().into(),
            ],
            &[],
        )
        .await;
    assert_eq!(warm.code, Some(0), "{}", warm.context());
    for case in PLUGIN_FAULTS {
        sb.kill_gateway_9().await?;
        sb.exec(&["rm", "-f", MARKER], Some("0"))
            .await?
            .check("remove the marker")?;
        let mut args: Vec<String> = [
            "recover",
            "--plugin",
            &testkit,
            "--sandbox",
            sb.name(),
            "--json",
            "--timeout",
            &format!("{}ms", TIMEOUT.as_millis()),
        ]
        .map(str::to_string)
        .to_vec();
        for s in case.settings {
            args.extend(["--set".to_string(), s.to_string()]);
        }
        let audited = runner.audit_raw().len();
        let fault = runner.run(&args, &[]).await;
        fault.expect(4, "plugin-fault");
        assert!(
            fault.message().contains(case.message) && fault.message().contains("testkit"),
            "{}: the message names the plugin and the fault\n{}",
            case.what,
            fault.context()
        );
        // Promptly: a loop ends at the deadline, a trap or a memory bomb sooner.
        assert!(
            fault.elapsed < TIMEOUT + Duration::from_secs(3),
            "{}: took {:?}",
            case.what,
            fault.elapsed
        );
        e2e::locks_free(runner.state_dir())?;
        let added = e2e::audit_whole_lines(&runner.audit_path())?.split_off(audited);
        if case.settings.iter().any(|s| s.starts_with("repair-argv")) {
            // The repair really mutated the sandbox before it faulted, and
            // that mutation is on record.
            assert!(
                sb.file_meta(MARKER).await?.is_some(),
                "{}: no marker",
                case.what
            );
            assert!(
                added
                    .iter()
                    .any(|r| r["detail"].as_str().is_some_and(|d| d.contains(MARKER))),
                "{}: the repair's exec is not audited: {added:?}",
                case.what
            );
        } else {
            assert!(added.is_empty(), "{}: probe mutated: {added:?}", case.what);
        }
        // Nothing the faulting run did blocks the real plugin's recover.
        let next = runner.recover(&t).await;
        next.expect(0, "recovered");
        assert_settled(&sb, &runner, &next, port)
            .await
            .with_context(|| format!("after {}", case.what))?;
        eprintln!(
            "{}: exit 4 in {:.0?} ({}); the next recover {:.0?}",
            case.what,
            fault.elapsed,
            fault.message(),
            next.elapsed
        );
    }
    eprintln!(
        "MEASURED {} plugin faults during a real recover: each exit 4 within {TIMEOUT:?} + 3 s, no lock held, the next recover exit 0 with 1 gateway",
        PLUGIN_FAULTS.len()
    );
    Ok(())
}

/// The outside checks recognise what they claim to: a torn last audit line
/// and a lock some process still holds.
#[test]
fn the_checks_catch_a_torn_audit_line_and_a_held_lock() -> Result<()> {
    use std::os::fd::AsRawFd;
    let dir = std::env::temp_dir().join(format!("runner-chaos-checks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("locks"))?;
    let audit = dir.join("audit.jsonl");
    std::fs::write(&audit, "{\"action\":\"files.write\"}\n")?;
    assert_eq!(e2e::audit_whole_lines(&audit)?.len(), 1);
    std::fs::write(&audit, "{\"action\":\"files.write\"}\n{\"action\":\"spa")?;
    assert!(e2e::audit_whole_lines(&audit).is_err(), "a torn last line");
    std::fs::write(&audit, "{\"action\":\"files.write\"}\n{\"act\n")?;
    assert!(e2e::audit_whole_lines(&audit).is_err(), "a torn inner line");

    let lock = std::fs::File::create(dir.join("locks/docker-sb.lock"))?;
    assert_eq!(e2e::locks_free(&dir)?, 1);
    // SAFETY: flock on a valid, owned descriptor.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(rc, 0);
    assert!(e2e::locks_free(&dir).is_err(), "a held lock");
    drop(lock);
    assert_eq!(e2e::locks_free(&dir)?, 1);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
