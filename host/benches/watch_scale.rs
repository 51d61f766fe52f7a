//! `runner watch` at scale, against real fixture sandboxes on the local engine.
//!
//! (a) MTTR after `docker restart` of one watched fixture sandbox: the time
//!     from the gateway's first listen inside the restarted container (polled
//!     every 5 ms through its network namespace) until the dashboard answers
//!     through the host forward (/health and the origin check, polled every
//!     5 ms). That subtracts the gateway's own start-to-listen, leaving what
//!     the watcher adds: event delivery, probes, repair, forward re-target.
//!     Samples go to `docs/watch_mttr.csv` (and `docs/watch_mttr.png` with
//!     gnuplot when it is installed).
//! (b) N idle fixture sandboxes (default 200) watched by one `runner watch`:
//!     the watch process's VmRSS and its CPU use over 60 s idle (default
//!     schedule: a liveness check every 10 s, a full pass every 15 min
//!     jittered 0.5–1.5×; default `--max-concurrent`).
//! (c) M simultaneous `docker restart`s (default 50) of those sandboxes: per
//!     container, its start (its init's start time from /proc) → healthy
//!     through its host forward; and first restart call → all healthy, last
//!     restart call returned → all healthy, first call → last container
//!     started (the engine's part).
//! (d) The engine alone: M fresh fixture sandboxes, no `runner` process at
//!     all, restarted the same way as in (c): first restart call → all calls
//!     returned and → last container started. What (c) cannot beat on this
//!     machine.
//!
//! Every container is a `runner_e2e` sandbox (label `runner.e2e`, name prefix
//! `bench-watch`, label `runner.watch-test=<scope>`), removed at the end of
//! its part and on drop; a crashed run leaves them identifiable and
//! `runner_e2e::sweep_leftovers` removes them.
//!
//! `cargo bench -p runner --bench watch_scale`
//! Environment: RUNNER_BENCH_WATCH_PARTS (default `a,b,c`; `d` on request),
//! RUNNER_BENCH_WATCH_RESTARTS (default 20), RUNNER_BENCH_WATCH_N (200),
//! RUNNER_BENCH_WATCH_M (50), RUNNER_BENCH_WATCH_IDLE_S (60),
//! RUNNER_BENCH_WATCH_MAX_CONCURRENT and RUNNER_BENCH_WATCH_FULL_INTERVAL_S
//! (parts b, c; default: the watcher's),
//! RUNNER_BENCH_WATCH_LOG (the watcher's RUNNER_LOG, default `info`; its log
//! is kept as `target/tmp/watch_{mttr,scale}.log`).

#[path = "support/stats.rs"]
mod stats;
#[path = "../tests/support/watch.rs"]
mod watch;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bollard::query_parameters::RestartContainerOptionsBuilder;
use futures_util::{StreamExt, stream};
use runner_e2e::layout::OPENCLAW_PORT;
use runner_e2e::{Engine, Sandbox, free_port, images, netns};
use watch::{Watch, dashboard_ok, labelled, token};

fn pct(samples: &[f64], q: f64) -> f64 {
    stats::at(&stats::sorted(samples), q)
}

/// The watcher's default liveness interval.
const INTERVAL: &str = "10s";

fn docs_dir() -> PathBuf {
    images::repo_root().join("docs")
}

/// `n` labelled fixture sandboxes in `scope`, created `par` at a time.
async fn create_many(
    engine: &Engine,
    image: &str,
    scope: &str,
    n: usize,
    par: usize,
) -> Result<Vec<(Sandbox, u16)>> {
    let mut ports = Vec::new();
    while ports.len() < n {
        let p = free_port()?;
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    let made: Vec<Result<(Sandbox, u16)>> = stream::iter(ports)
        .map(|port| async move {
            let spec = labelled(image, scope, port)
                .name_prefix("bench-watch")
                .label("runner.bench", "watch_scale");
            anyhow::Ok((Sandbox::create(engine, spec).await?, port))
        })
        .buffer_unordered(par)
        .collect()
        .await;
    made.into_iter().collect()
}

async fn remove_many(sbs: Vec<(Sandbox, u16)>) {
    let _: Vec<()> = stream::iter(sbs)
        .map(|(sb, _)| async move {
            let name = sb.name().to_string();
            if let Err(e) = sb.remove().await {
                eprintln!("remove {name}: {e:#}");
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
}

async fn restart(engine: &Engine, name: &str) -> Result<()> {
    engine
        .docker()
        .restart_container(
            name,
            Some(RestartContainerOptionsBuilder::default().t(1).build()),
        )
        .await?;
    Ok(())
}

/// Polls every 5 ms until `ok` or `limit`: the Unix time it first held.
async fn first_ok<F, Fut>(limit: Duration, ok: F) -> Option<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    first_ok_every(limit, Duration::from_millis(5), ok).await
}

/// Polls every `every` until `ok` or `limit`: the Unix time it first held.
async fn first_ok_every<F, Fut>(limit: Duration, every: Duration, mut ok: F) -> Option<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ok().await {
            return Some(stats::unix_now());
        }
        tokio::time::sleep(every).await;
    }
    None
}

/// The Unix time the gateway of container `name` first accepts on its port,
/// polled every 5 ms through the container's network namespace (the pid is
/// looked up again whenever the namespace cannot be entered).
async fn first_listen(engine: Engine, name: String) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pid = None;
    while Instant::now() < deadline {
        if pid.is_none() {
            pid = engine
                .docker()
                .inspect_container(&name, None)
                .await
                .ok()
                .and_then(|i| i.state?.pid)
                .filter(|p| *p > 0)
                .map(|p| p as u32);
        }
        if let Some(p) = pid {
            match netns::tcp_listening(p, OPENCLAW_PORT, Duration::from_secs(1)).await {
                Ok(true) => return Some(stats::unix_now()),
                Ok(false) => {}
                Err(_) => pid = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// Unix time the sandbox's (single) gateway process started, from field 22
/// of its /proc/PID/stat inside the container (clock ticks since boot; the
/// container shares the host's clock).
async fn gateway_start(sb: &Sandbox) -> Result<f64> {
    let pids = sb.gateway_pids().await?;
    let pid = pids.first().context("no gateway process")?.to_string();
    let stat = sb
        .exec(&["cat", &format!("/proc/{pid}/stat")], Some("0"))
        .await?
        .check("read the gateway's stat")?
        .stdout;
    stat_start_unix(&stat)
}

/// Unix time of the process whose /proc/PID/stat is `stat` (field 22, clock
/// ticks since boot; containers share the host's clock).
fn stat_start_unix(stat: &str) -> Result<f64> {
    let after = stat.rsplit_once(") ").context("stat")?.1;
    let ticks: f64 = after
        .split_whitespace()
        .nth(19)
        .context("starttime")?
        .parse()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")?
        .split_whitespace()
        .next()
        .context("uptime")?
        .parse()?;
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(stats::unix_now() - uptime + ticks / hz)
}

/// Unix time container `name`'s current run started: its init's start time
/// from the host's /proc (the bench runs on the engine's host, as root).
async fn container_start(engine: &Engine, name: &str) -> Result<f64> {
    let pid = engine
        .docker()
        .inspect_container(name, None)
        .await?
        .state
        .and_then(|s| s.pid)
        .filter(|p| *p > 0)
        .context("no init pid")?;
    stat_start_unix(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
}

async fn part_a(engine: &Engine, image: &str) -> Result<()> {
    let runs = stats::env_or::<usize>("RUNNER_BENCH_WATCH_RESTARTS", 20).max(20);
    let scope = token("bench-mttr");
    let mut sbs = create_many(engine, image, &scope, 1, 1).await?;
    let port = sbs[0].1;
    let name = sbs[0].0.name().to_string();
    // 20+ repairs of one sandbox in a few minutes are a crash loop by the
    // default policy (5 in 60 s); the bench measures repairs, not the policy.
    let policy = "[policy]\nmax-repairs = 1000\nwindow = 60\n";
    let filter = std::env::var("RUNNER_BENCH_WATCH_LOG").unwrap_or_else(|_| "info".into());
    let w = Watch::start_with(
        "bench-mttr",
        &scope,
        policy,
        INTERVAL,
        &[("RUNNER_LOG", &filter)],
    )
    .await?;
    first_ok(Duration::from_secs(60), || dashboard_ok(port))
        .await
        .context("never healthy at discovery")?;
    // Warm-up restart (page cache, first retarget).
    restart(engine, &name).await?;
    first_ok(Duration::from_secs(30), || dashboard_ok(port))
        .await
        .context("warm-up restart never healed")?;

    let mut rows = Vec::new();
    for i in 0..runs {
        let t0 = stats::unix_now();
        restart(engine, &name).await?;
        let t_started = stats::unix_now();
        let listen = tokio::spawn(first_listen(engine.clone(), name.clone()));
        let healthy = first_ok(Duration::from_secs(30), || dashboard_ok(port)).await;
        let t_listen = listen.await?.context("the gateway never listened")?;
        let Some(t_healthy) = healthy else {
            bail!(
                "restart {i}: not healthy through the forward in 30 s; log:\n{}",
                w.log_text()
            );
        };
        let t_gw = gateway_start(&sbs[0].0).await?;
        // healthy-through-forward minus the gateway's own start-to-listen.
        let mttr = ((t_healthy - t_started) - (t_listen - t_gw)) * 1000.0;
        rows.push((
            i,
            (t_started - t0) * 1000.0,
            (t_listen - t_started) * 1000.0,
            (t_healthy - t_started) * 1000.0,
            (t_listen - t_gw) * 1000.0,
            mttr,
        ));
        eprintln!(
            "restart {i}: docker restart {:.0} ms, started→listen {:.0} ms, started→healthy {:.0} ms, gateway start→listen {:.0} ms, MTTR {mttr:.0} ms",
            rows[i].1, rows[i].2, rows[i].3, rows[i].4
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Keep the watcher's log (timings of every step) for the write-up.
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("watch_mttr.log");
    if std::fs::write(&log, w.log_text()).is_ok() {
        eprintln!("watch log: {}", log.display());
    }
    drop(w);
    remove_many(std::mem::take(&mut sbs)).await;

    let mttr: Vec<f64> = rows.iter().map(|r| r.5).collect();
    let gw: Vec<f64> = rows.iter().map(|r| r.4).collect();
    let raw: Vec<f64> = rows.iter().map(|r| r.3).collect();
    let listen: Vec<f64> = rows.iter().map(|r| r.2).collect();
    println!("\n(a) MTTR after `docker restart` under `runner watch` ({runs} restarts)\n");
    println!("| measurement (ms) | n | min | p50 | p95 | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, s) in [
        ("container started → gateway listening", &listen),
        ("container started → healthy through forward", &raw),
        ("gateway process start → listening", &gw),
        (
            "MTTR: started → healthy minus gateway start → listen",
            &mttr,
        ),
    ] {
        println!(
            "| {label} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            s.len(),
            pct(s, 0.0),
            pct(s, 0.5),
            pct(s, 0.95),
            pct(s, 1.0)
        );
    }
    let csv = docs_dir().join("watch_mttr.csv");
    let mut text = String::from(
        "restart,docker_restart_ms,started_to_listen_ms,started_to_healthy_ms,gateway_start_to_listen_ms,mttr_ms\n",
    );
    for r in &rows {
        text.push_str(&format!(
            "{},{:.1},{:.1},{:.1},{:.1},{:.1}\n",
            r.0, r.1, r.2, r.3, r.4, r.5
        ));
    }
    std::fs::write(&csv, text)?;
    println!("\nsamples: {}", csv.display());
    plot(&csv, &mttr);
    Ok(())
}

/// A PNG with gnuplot when it is installed, else an ASCII plot on stdout.
fn plot(csv: &std::path::Path, mttr: &[f64]) {
    let png = csv.with_extension("png");
    let script = format!(
        "set terminal pngcairo size 800,400; set output '{}'; set datafile separator ','; \
         set title 'runner watch: MTTR after docker restart (fixture)'; set xlabel 'restart'; \
         set ylabel 'MTTR (ms)'; set grid; \
         plot '{}' using 1:6 skip 1 with linespoints title 'MTTR'",
        png.display(),
        csv.display()
    );
    let ran = std::process::Command::new("gnuplot")
        .args(["-e", &script])
        .status()
        .is_ok_and(|s| s.success());
    if ran {
        println!("plot: {}", png.display());
        return;
    }
    let max = mttr.iter().cloned().fold(1.0, f64::max);
    println!("\nMTTR per restart (ms, ASCII; gnuplot not available)\n```");
    for (i, m) in mttr.iter().enumerate() {
        let bar = "#".repeat(((m / max) * 50.0).round() as usize);
        println!("{i:>3} {m:>6.0} {bar}");
    }
    println!("```");
}

fn proc_stat_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(") ").context("stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime, stime are fields 14, 15 (1-based) → 11, 12 after the comm.
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn proc_status_kb(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {key}"))
}

async fn parts_bc(engine: &Engine, image: &str, do_b: bool, do_c: bool) -> Result<()> {
    let n = stats::env_or::<usize>("RUNNER_BENCH_WATCH_N", 200);
    let m = stats::env_or::<usize>("RUNNER_BENCH_WATCH_M", 50).min(n);
    let idle = stats::env_or::<usize>("RUNNER_BENCH_WATCH_IDLE_S", 60) as u64;
    let n = if do_b { n } else { m };
    let scope = token("bench-scale");
    let t0 = Instant::now();
    let sbs = create_many(engine, image, &scope, n, 8).await;
    let sbs = match sbs {
        Ok(s) => s,
        Err(e) => bail!("creating {n} sandboxes: {e:#}"),
    };
    eprintln!("created {n} sandboxes in {:.1?}", t0.elapsed());
    let result = async {
        let t1 = Instant::now();
        let filter = std::env::var("RUNNER_BENCH_WATCH_LOG").unwrap_or_else(|_| "info".into());
        // RUNNER_BENCH_WATCH_MAX_CONCURRENT overrides the watcher's default.
        let mut extra = std::env::var("RUNNER_BENCH_WATCH_MAX_CONCURRENT")
            .map(|n| format!("max-concurrent = {n}\n"))
            .unwrap_or_default();
        // RUNNER_BENCH_WATCH_FULL_INTERVAL_S overrides the full-pass interval.
        if let Ok(s) = std::env::var("RUNNER_BENCH_WATCH_FULL_INTERVAL_S") {
            extra.push_str(&format!("full-interval = {s}\n"));
        }
        let w = Watch::start_with("bench-scale", &scope, &extra, INTERVAL, &[("RUNNER_LOG", &filter)])
            .await?;
        let passes = || w.log_text().matches("recover finished").count();
        let pid = w.pid().context("watch pid")?;
        // Everything discovered, recovered and healthy through its forward.
        for (sb, port) in &sbs {
            if first_ok(Duration::from_secs(600), || dashboard_ok(*port))
                .await
                .is_none()
            {
                bail!("{} never healthy; log tail:\n{}", sb.name(), tail(&w));
            }
        }
        let all_healthy = t1.elapsed();
        eprintln!("all {n} healthy under watch after {all_healthy:.1?}");
        if do_b {
            // Let the discovery round settle, then measure idle.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
            let c0 = proc_stat_ticks(pid)?;
            let p0 = passes();
            let s0 = Instant::now();
            let mut rss_max = 0;
            while s0.elapsed() < Duration::from_secs(idle) {
                rss_max = rss_max.max(proc_status_kb(pid, "VmRSS:")?);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let c1 = proc_stat_ticks(pid)?;
            let full_passes = passes() - p0;
            let wall = s0.elapsed().as_secs_f64();
            let cpu = (c1 - c0) as f64 / hz / wall * 100.0;
            let rss = proc_status_kb(pid, "VmRSS:")?;
            let hwm = proc_status_kb(pid, "VmHWM:")?;
            let threads = proc_status_kb(pid, "Threads:")?;
            println!(
                "\n(b) {n} idle fixture sandboxes under one `runner watch` (defaults: liveness every {INTERVAL}, full pass every 15 min ± 50 %)\n"
            );
            println!("| measurement | value | target |");
            println!("|---|---:|---:|");
            println!(
                "| discovery → all {n} healthy through forwards | {:.1} s | |",
                all_healthy.as_secs_f64()
            );
            println!(
                "| VmRSS at end of idle | {:.1} MB | ≤ 150 MB |",
                rss as f64 / 1024.0
            );
            println!(
                "| VmRSS max over idle (1 s samples) | {:.1} MB | |",
                rss_max as f64 / 1024.0
            );
            println!(
                "| VmHWM (peak incl. discovery) | {:.1} MB | |",
                hwm as f64 / 1024.0
            );
            println!("| CPU over {wall:.0} s idle | {cpu:.2} % of one core | ≤ 2 % |");
            println!("| threads | {threads} | |");
            println!("| full passes during the idle window | {full_passes} | |");
        }
        if do_c {
            let chosen: Vec<&(Sandbox, u16)> = sbs.iter().take(m).collect();
            let t_first = stats::unix_now();
            // Per container: its restart call, then (from its return) its
            // dashboard polled every 25 ms (50 pollers at 5 ms would be
            // ~20 000 requests/s through the watcher's forwards on 2 cores).
            let runs: Vec<Result<(f64, Option<f64>)>> = stream::iter(chosen.iter())
                .map(|(sb, port)| {
                    let port = *port;
                    async move {
                        restart(engine, sb.name()).await?;
                        let returned = stats::unix_now();
                        let healthy = first_ok_every(
                            Duration::from_secs(120),
                            Duration::from_millis(25),
                            || dashboard_ok(port),
                        )
                        .await;
                        anyhow::Ok((returned, healthy))
                    }
                })
                .buffered(m)
                .collect()
                .await;
            let mut t_last_return: f64 = 0.0;
            let mut waits = Vec::new();
            for r in runs {
                let (returned, healthy) = r?;
                t_last_return = t_last_return.max(returned);
                waits.push(healthy);
            }
            let restarted = t_last_return - t_first;
            let failed = waits.iter().filter(|w| w.is_none()).count();
            let t_all = waits.iter().flatten().cloned().fold(0.0, f64::max);
            let mut per = Vec::new();
            let mut t_last_start: f64 = 0.0;
            for ((sb, _), healthy) in chosen.iter().zip(&waits) {
                let started = container_start(engine, sb.name()).await?;
                t_last_start = t_last_start.max(started);
                if let Some(h) = healthy {
                    per.push((h - started) * 1000.0);
                }
            }
            println!(
                "\n(c) {m} simultaneous `docker restart`s under one `runner watch` watching {n}\n"
            );
            println!("| measurement | value | target |");
            println!("|---|---:|---:|");
            println!(
                "| first restart call → all {m} calls returned (engine) | {restarted:.1} s | |"
            );
            println!(
                "| first restart call → last container started (engine) | {:.1} s | |",
                t_last_start - t_first
            );
            println!(
                "| first restart call → all {m} healthy through forwards | {:.1} s | ≤ 10 s |",
                t_all - t_first
            );
            println!(
                "| last restart call returned → all {m} healthy | {:.1} s | |",
                t_all - t_last_return
            );
            if !per.is_empty() {
                println!(
                    "| per container: its start → healthy through forward, p50 / p95 / max | {:.0} / {:.0} / {:.0} ms | |",
                    pct(&per, 0.5),
                    pct(&per, 0.95),
                    pct(&per, 1.0)
                );
            }
            println!("| not healthy within 120 s | {failed} | 0 |");
            println!(
                "| watch VmRSS after | {:.1} MB | |",
                proc_status_kb(pid, "VmRSS:")? as f64 / 1024.0
            );
        }
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("watch_scale.log");
        if std::fs::write(&log, w.log_text()).is_ok() {
            eprintln!("watch log: {}", log.display());
        }
        drop(w);
        anyhow::Ok(())
    }
    .await;
    let t2 = Instant::now();
    remove_many(sbs).await;
    eprintln!("removed {n} sandboxes in {:.1?}", t2.elapsed());
    result
}

async fn part_d(engine: &Engine, image: &str) -> Result<()> {
    let m = stats::env_or("RUNNER_BENCH_WATCH_M", 50usize);
    let sbs = create_many(engine, image, "engine-alone", m, 8).await?;
    // Let the first boots settle so only the restarts load the engine.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let load = stats::load_average();
    let result = async {
        let t_first = stats::unix_now();
        let returned: Vec<Result<f64>> = stream::iter(sbs.iter())
            .map(|(sb, _)| async move {
                restart(engine, sb.name()).await?;
                anyhow::Ok(stats::unix_now())
            })
            .buffer_unordered(m)
            .collect()
            .await;
        let mut t_last_return: f64 = 0.0;
        for r in returned {
            t_last_return = t_last_return.max(r?);
        }
        let mut t_last_start: f64 = 0.0;
        for (sb, _) in &sbs {
            t_last_start = t_last_start.max(container_start(engine, sb.name()).await?);
        }
        println!("\n(d) {m} simultaneous `docker restart`s, the engine alone (no runner running; load average before: {load})\n");
        println!("| measurement | value |");
        println!("|---|---:|");
        println!(
            "| first restart call → all {m} calls returned | {:.1} s |",
            t_last_return - t_first
        );
        println!(
            "| first restart call → last container started | {:.1} s |",
            t_last_start - t_first
        );
        anyhow::Ok(())
    }
    .await;
    remove_many(sbs).await;
    result
}

fn tail(w: &Watch) -> String {
    let text = w.log_text();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::main]
async fn main() -> Result<()> {
    let parts = std::env::var("RUNNER_BENCH_WATCH_PARTS").unwrap_or_else(|_| "a,b,c".into());
    let engine = Engine::connect().await?;
    let image = images::ensure("fixture").await?;
    if parts.contains('a') {
        part_a(&engine, &image).await?;
    }
    let (b, c) = (parts.contains('b'), parts.contains('c'));
    if b || c {
        parts_bc(&engine, &image, b, c).await?;
    }
    if parts.contains('d') {
        part_d(&engine, &image).await?;
    }
    Ok(())
}
