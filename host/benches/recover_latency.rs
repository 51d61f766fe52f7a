//! Recovery latency of the real `runner` binary against real sandboxes.
//!
//! (a) `runner status --json` on a healthy fixture sandbox (forward up) vs one
//!     bare bollard exec round trip, interleaved; and the engine exec round
//!     trips one `status` causes, counted from the engine's own event stream
//!     (`exec_create` events of that container).
//! (b) `runner recover --json` right after `kill -9` of the gateway: wall
//!     time until the command exits healthy (verified), minus the gateway's
//!     own start-to-listen time (process start time from the report's
//!     `gateway` evidence, first listen from polling the sandbox's loopback
//!     every 5 ms through its network namespace). What is left is runner's
//!     overhead: process start, probes, lock removal, launch (the plugin
//!     polls until the gateway listens or exits, bounded by
//!     `launch-settle-ms`), verification, forward and dashboard checks.
//!
//! `cargo bench -p runner --bench recover_latency`
//! Environment: RUNNER_BENCH_AGENTS (default `fixture,hermes,openclaw`),
//! RUNNER_BENCH_STATUS_RUNS (default 30), RUNNER_BENCH_FIXTURE_RUNS (default
//! 12, at least 10), RUNNER_BENCH_AGENT_RUNS (default 3, real agents).

#[path = "../tests/support/e2e.rs"]
mod e2e;
#[path = "support/stats.rs"]
mod stats;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use bollard::query_parameters::EventsOptionsBuilder;
use e2e::{Runner, Target};
use futures_util::StreamExt;
use runner_e2e::layout::OPENCLAW_PORT;
use runner_e2e::{Engine, Mode, Sandbox, SandboxSpec, free_port, images, netns};

#[derive(Debug, Clone, Copy)]
struct Stats {
    n: usize,
    min: f64,
    p50: f64,
    p90: f64,
    max: f64,
}

impl Stats {
    fn of(samples: &[f64]) -> Stats {
        let s = stats::sorted(samples);
        Stats {
            n: s.len(),
            min: s[0],
            p50: stats::at(&s, 0.5),
            p90: stats::at(&s, 0.9),
            max: s[s.len() - 1],
        }
    }
}

fn header() {
    println!(
        "| {:<52} | {:>4} | {:>9} | {:>9} | {:>9} | {:>9} |",
        "measurement (ms)", "n", "min", "p50", "p90", "max"
    );
    println!(
        "|{:-<54}|{:->6}|{:->11}|{:->11}|{:->11}|{:->11}|",
        "", "", "", "", "", ""
    );
}

fn row(label: &str, s: Stats) {
    println!(
        "| {label:<52} | {:>4} | {:>9.1} | {:>9.1} | {:>9.1} | {:>9.1} |",
        s.n, s.min, s.p50, s.p90, s.max
    );
}

/// `exec_create` events of container `id` between two instants (Unix
/// nanoseconds; the engine's `since`/`until` filters only have seconds).
async fn exec_creates(engine: &Engine, id: &str, from_ns: i64, to_ns: i64) -> Result<usize> {
    let filters = HashMap::from([("container", vec![id])]);
    let since = (from_ns / 1_000_000_000).to_string();
    let until = (to_ns / 1_000_000_000 + 1).to_string();
    let opts = EventsOptionsBuilder::default()
        .since(&since)
        .until(&until)
        .filters(&filters)
        .build();
    let mut stream = engine.docker().events(Some(opts));
    let mut n = 0;
    let collect = async {
        while let Some(ev) = stream.next().await {
            let ev = ev?;
            let at = ev.time_nano.unwrap_or(0);
            if (from_ns..=to_ns).contains(&at)
                && ev
                    .action
                    .as_deref()
                    .is_some_and(|a| a.starts_with("exec_create"))
            {
                n += 1;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(30), collect)
        .await
        .context("event stream did not end")??;
    Ok(n)
}

fn unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i64
}

async fn keepalive(engine: &Engine, image: &str, prefix: &str) -> Result<Sandbox> {
    let spec = SandboxSpec::new(image)
        .mode(Mode::Keepalive)
        .name_prefix(format!("bench-{prefix}"));
    Sandbox::create(engine, spec).await
}

async fn part_a(engine: &Engine) -> Result<()> {
    let runs = stats::env_or::<usize>("RUNNER_BENCH_STATUS_RUNS", 30).max(10);
    let sb = keepalive(engine, &images::ensure("fixture").await?, "status").await?;
    sb.wait_http_ok(OPENCLAW_PORT, "/health", Duration::from_secs(20))
        .await?;
    let runner = Runner::new("bench-status");
    let t = Target::fixture(&sb, free_port()?);
    runner.recover(&t).await.expect(0, "recovered");
    // Warm-up: compile cache, engine connection paths.
    for _ in 0..3 {
        runner.status(&t).await.expect(0, "healthy");
        runner_e2e::exec::bare_true_exec(engine.docker(), sb.name()).await?;
    }

    let mut status = Vec::new();
    let mut exec = Vec::new();
    for i in 0..runs {
        let s = async {
            let r = runner.status(&t).await;
            r.expect(0, "healthy");
            r.elapsed.as_secs_f64() * 1000.0
        };
        if i % 2 == 0 {
            status.push(s.await);
            exec.push(
                runner_e2e::exec::bare_true_exec(engine.docker(), sb.name())
                    .await?
                    .as_secs_f64()
                    * 1000.0,
            );
        } else {
            exec.push(
                runner_e2e::exec::bare_true_exec(engine.docker(), sb.name())
                    .await?
                    .as_secs_f64()
                    * 1000.0,
            );
            status.push(s.await);
        }
    }

    // Exec round trips per status, from the engine's event stream.
    let counted = 10;
    let from = unix_nanos();
    for _ in 0..counted {
        runner.status(&t).await.expect(0, "healthy");
    }
    let to = unix_nanos();
    // Let the engine publish the last events before reading them back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let creates = exec_creates(engine, sb.id(), from, to).await?;
    // The counter itself works: one bare exec shows up as one exec_create.
    let probe_from = unix_nanos();
    runner_e2e::exec::bare_true_exec(engine.docker(), sb.name()).await?;
    let probe_to = unix_nanos();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ensure!(
        exec_creates(engine, sb.id(), probe_from, probe_to).await? == 1,
        "the exec_create counter does not see a bare exec"
    );

    let (s, e) = (Stats::of(&status), Stats::of(&exec));
    println!(
        "\n(a) `runner status` on a healthy fixture sandbox vs one bare exec ({runs} interleaved runs each)\n"
    );
    header();
    row("`runner status --json` (whole process, healthy)", s);
    row("bare bollard exec of `true`", e);
    let ratio = s.p50 / e.p50;
    println!(
        "\np50 ratio status / bare exec = {ratio:.2} (target <= 2.5: {})",
        if ratio <= 2.5 { "met" } else { "MISSED" }
    );
    println!(
        "engine exec round trips: {creates} exec_create events over {counted} statuses = {:.1} per status (target <= 2)",
        creates as f64 / counted as f64
    );
    Ok(())
}

struct Sample {
    total: f64,
    start_to_listen: f64,
    /// Start -> `/readyz` 200, for gateways that have a readiness path.
    start_to_ready: Option<f64>,
    before_start: f64,
    after_listen: f64,
    gateway_link_ms: f64,
}

/// Kill the gateway, run `recover`, time it against the gateway's own start.
async fn recover_once(
    sb: &Sandbox,
    runner: &Runner,
    t: &Target,
    port: u16,
    ready_path: Option<&'static str>,
) -> Result<Sample> {
    sb.kill_gateway_9().await?;
    let host_pid = sb.host_pid().await?;
    while netns::tcp_listening(host_pid, port, Duration::from_secs(1)).await? {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let poll = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut listening = None;
        while Instant::now() < deadline {
            if let Ok(true) = netns::tcp_listening(host_pid, port, Duration::from_secs(1)).await {
                listening = Some(stats::unix_now());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut ready = None;
        if let (Some(_), Some(path)) = (listening, ready_path) {
            while Instant::now() < deadline {
                let r = netns::http_get(host_pid, port, path, &[], Duration::from_secs(2)).await;
                if r.is_ok_and(|r| r.status == 200) {
                    ready = Some(stats::unix_now());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        (listening, ready)
    });
    let t0 = stats::unix_now();
    let run = runner.recover(t).await;
    let t_end = t0 + run.elapsed.as_secs_f64();
    run.expect(0, "recovered");
    run.assert_all_healthy_after();
    let (t_listen, t_ready) = poll.await?;
    let t_listen = t_listen.context("the gateway never listened")?;
    let ticks: u64 = run
        .evidence("gateway", "start-time")
        .context("no start-time evidence")?
        .parse()?;
    let t_start = e2e::start_time_to_unix(ticks);
    let gateway_link_ms = run.link("gateway")["ms"].as_f64().unwrap_or(0.0);
    Ok(Sample {
        total: (t_end - t0) * 1000.0,
        start_to_listen: (t_listen - t_start) * 1000.0,
        start_to_ready: t_ready.map(|r| (r - t_start) * 1000.0),
        before_start: (t_start - t0) * 1000.0,
        after_listen: (t_end - t_listen) * 1000.0,
        gateway_link_ms,
    })
}

async fn part_b(engine: &Engine, agent: &str, runs: usize, extra: &[(&str, &str)]) -> Result<()> {
    // OpenClaw's gateway link waits for `/readyz` 200 (plugins/README.md).
    let (image, port, ready, ready_path) = match agent {
        "fixture" => ("fixture", OPENCLAW_PORT, 20, None),
        "hermes" => ("hermes", 8642, 60, None),
        "openclaw" => ("openclaw", OPENCLAW_PORT, 180, Some("/readyz")),
        other => bail!("unknown agent {other}"),
    };
    let sb = keepalive(engine, &images::ensure(image).await?, agent).await?;
    sb.wait_http_ok(port, "/health", Duration::from_secs(ready))
        .await?;
    let runner = Runner::new(&format!("bench-{agent}"));
    let host_port = free_port()?;
    let mut t = match agent {
        "fixture" => Target::fixture(&sb, host_port),
        "hermes" => Target::hermes(&sb, host_port),
        _ => Target::openclaw(&sb, host_port),
    };
    for (k, v) in extra {
        t = t.set(k, v);
    }
    runner.recover(&t).await.expect(0, "recovered");
    let mut samples = Vec::new();
    for i in 0..runs {
        let s = recover_once(&sb, &runner, &t, port, ready_path).await?;
        eprintln!(
            "{agent} run {}: total {:.0} ms, gateway start->listen {:.0} ms, overhead {:.0} ms",
            i + 1,
            s.total,
            s.start_to_listen,
            s.total - s.start_to_listen
        );
        samples.push(s);
    }
    let pick = |f: fn(&Sample) -> f64| Stats::of(&samples.iter().map(f).collect::<Vec<_>>());
    let label = if extra.is_empty() {
        agent.to_string()
    } else {
        let sets: Vec<String> = extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{agent} ({})", sets.join(", "))
    };
    println!("\n(b) `runner recover` after kill -9: {label}\n");
    header();
    row(
        "recover wall time (exit 0, verified healthy)",
        pick(|s| s.total),
    );
    row("gateway's own start -> listen", pick(|s| s.start_to_listen));
    let overhead = pick(|s| s.total - s.start_to_listen);
    row("runner overhead = wall - start->listen", overhead);
    if samples.iter().all(|s| s.start_to_ready.is_some()) {
        let ready = |s: &Sample| s.start_to_ready.unwrap_or(0.0);
        row("gateway's own start -> ready (/readyz 200)", pick(ready));
        row(
            "runner overhead vs ready = wall - start->ready",
            pick(|s| s.total - s.start_to_ready.unwrap_or(0.0)),
        );
    }
    row(
        "  of which: recover start -> gateway start",
        pick(|s| s.before_start),
    );
    row(
        "  of which: gateway listens -> recover exits",
        pick(|s| s.after_listen),
    );
    row(
        "report: gateway link ms (repair + verify)",
        pick(|s| s.gateway_link_ms),
    );
    if agent == "fixture" {
        println!(
            "\nfixture overhead p50 {:.0} ms (target <= 300 ms: {})",
            overhead.p50,
            if overhead.p50 <= 300.0 {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let engine = Engine::connect().await?;
    let agents =
        std::env::var("RUNNER_BENCH_AGENTS").unwrap_or_else(|_| "fixture,hermes,openclaw".into());
    println!(
        "runner recovery latency (binary {})",
        env!("CARGO_BIN_EXE_runner")
    );
    part_a(&engine).await?;
    let fixture_runs = stats::env_or::<usize>("RUNNER_BENCH_FIXTURE_RUNS", 12).max(10);
    let agent_runs = stats::env_or::<usize>("RUNNER_BENCH_AGENT_RUNS", 3).max(1);
    for agent in agents.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        if agent == "fixture" {
            part_b(&engine, agent, fixture_runs, &[]).await?;
            // `launch-settle-ms` only bounds the post-launch poll (it ends
            // as soon as the gateway listens); 0 = return after one look.
            part_b(&engine, agent, fixture_runs, &[("launch-settle-ms", "0")]).await?;
        } else {
            part_b(&engine, agent, agent_runs, &[]).await?;
        }
    }
    Ok(())
}
