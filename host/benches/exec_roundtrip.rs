//! Exec capability round trip vs a bare bollard exec, side by side on the
//! same fixture container, interleaved so drift hits both equally.
//!
//! `cargo bench -p runner --bench exec_roundtrip` (RUNNER_BENCH_RUNS=N to
//! change the run count, default 60). Target: ours p50 <= 1.2 x bare p50.
//! The sealed exec (what `exec` is during probe) is measured beside them.

#[path = "support/stats.rs"]
mod stats;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use runner::backend::docker::DockerBackend;
use runner::backend::{Backend, ExecSpec};
use runner_e2e::{Engine, Mode, Sandbox, SandboxSpec, images};

const WARMUP: usize = 5;

#[tokio::main]
async fn main() -> Result<()> {
    let runs: usize = std::env::var("RUNNER_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
        .max(50);
    let engine = Engine::connect().await?;
    let image = images::ensure("fixture").await?;
    let sb = Sandbox::create(
        &engine,
        SandboxSpec::new(image)
            .mode(Mode::Keepalive)
            .name_prefix("bench"),
    )
    .await?;
    let backend = DockerBackend::connect().await?;
    let name = sb.name().to_string();

    for _ in 0..WARMUP {
        ours(&backend, &name).await?;
        sealed(&backend, &name).await?;
        runner_e2e::exec::bare_true_exec(backend.client(), &name).await?;
    }
    let mut t_ours = Vec::with_capacity(runs);
    let mut t_bare = Vec::with_capacity(runs);
    let mut t_sealed = Vec::with_capacity(runs);
    for i in 0..runs {
        t_sealed.push(sealed(&backend, &name).await?);
        // Alternate who goes first so neither always runs on a warm engine.
        if i % 2 == 0 {
            t_ours.push(ours(&backend, &name).await?);
            t_bare.push(runner_e2e::exec::bare_true_exec(backend.client(), &name).await?);
        } else {
            t_bare.push(runner_e2e::exec::bare_true_exec(backend.client(), &name).await?);
            t_ours.push(ours(&backend, &name).await?);
        }
    }
    let a = Summary::of(&mut t_ours);
    let b = Summary::of(&mut t_bare);
    let c = Summary::of(&mut t_sealed);
    println!("exec round trip of `true` on {name}, {runs} interleaved runs each");
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9}",
        "", "min ms", "p50 ms", "p90 ms", "max ms"
    );
    a.row("DockerBackend::exec");
    b.row("bare bollard exec");
    c.row("DockerBackend::exec_sealed");
    let ratio = a.p50.as_secs_f64() / b.p50.as_secs_f64();
    println!(
        "p50 ratio ours/bare = {ratio:.3} (target <= 1.20: {})",
        if ratio <= 1.2 { "met" } else { "MISSED" }
    );
    Ok(())
}

fn true_spec() -> ExecSpec {
    ExecSpec {
        argv: vec!["true".into()],
        timeout: Duration::from_secs(10),
        max_output: 64 * 1024,
        ..ExecSpec::default()
    }
}

async fn ours(backend: &DockerBackend, name: &str) -> Result<Duration> {
    let started = Instant::now();
    let r = backend.exec(name, true_spec()).await?;
    let took = started.elapsed();
    if r.exit_code != 0 {
        bail!("`true` exited {}", r.exit_code);
    }
    Ok(took)
}

async fn sealed(backend: &DockerBackend, name: &str) -> Result<Duration> {
    let started = Instant::now();
    let r = backend.exec_sealed(name, true_spec()).await?.output;
    let took = started.elapsed();
    if r.exit_code != 0 {
        bail!("sealed `true` exited {}", r.exit_code);
    }
    Ok(took)
}

struct Summary {
    min: Duration,
    p50: Duration,
    p90: Duration,
    max: Duration,
}

impl Summary {
    fn of(samples: &mut [Duration]) -> Summary {
        samples.sort();
        Summary {
            min: samples[0],
            p50: stats::at(samples, 0.5),
            p90: stats::at(samples, 0.9),
            max: samples[samples.len() - 1],
        }
    }

    fn row(&self, label: &str) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{label:<28} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            ms(self.min),
            ms(self.p50),
            ms(self.p90),
            ms(self.max)
        );
    }
}
