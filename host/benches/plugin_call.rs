//! Plugin runtime costs, printed as a table:
//! cold compile, cache-hit load, warm call (InstancePre → fresh Store →
//! `probe`), and `runner plugin inspect openclaw` end to end with a warm
//! cache.
//!
//! `cargo bench -p runner --bench plugin_call`

#[path = "support/stats.rs"]
mod stats;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runner::backend::local::LocalBackend;
use runner::capabilities::{CallKind, CapContext, Grant, Services};
use runner::forward::ForwardRegistry;
use runner::model::Target;
use runner::plugins::PluginSource;
use runner::runtime::{Runtime, RuntimeOptions};

fn stats(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p = |q: f64| ms(stats::at(&samples, q));
    (ms(samples[0]), p(0.5), p(0.9))
}

fn row(name: &str, n: usize, samples: Vec<Duration>, target: &str) {
    let (min, p50, p90) = stats(samples);
    println!("| {name:<48} | {n:>4} | {min:>9.3} | {p50:>9.3} | {p90:>9.3} | {target:<10} |");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let testkit = PathBuf::from(env!("RUNNER_WASM_PLUGIN_DIR")).join("testkit.wasm");
    let cache = std::env::temp_dir().join(format!("runner-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);

    println!(
        "| measurement                                      |    n |  min (ms) |  p50 (ms) |  p90 (ms) | target     |"
    );
    println!(
        "|--------------------------------------------------|------|-----------|-----------|-----------|------------|"
    );

    // Cold compile: a fresh cache dir every time.
    let mut cold = Vec::new();
    for i in 0..5 {
        let opts = RuntimeOptions {
            cache_dir: Some(cache.join(format!("cold-{i}"))),
            ..Default::default()
        };
        let runtime = Runtime::new(opts).unwrap();
        let started = Instant::now();
        rt.block_on(runtime.load(&PluginSource::File(testkit.clone())))
            .unwrap();
        cold.push(started.elapsed());
    }
    row("load, cold compile (testkit)", 5, cold, "-");

    // Cache hit: new runtime, same cache dir.
    let warm_opts = RuntimeOptions {
        cache_dir: Some(cache.join("warm")),
        ..Default::default()
    };
    let runtime = Runtime::new(warm_opts.clone()).unwrap();
    rt.block_on(runtime.load(&PluginSource::File(testkit.clone())))
        .unwrap();
    let mut hit = Vec::new();
    for _ in 0..20 {
        let runtime = Runtime::new(warm_opts.clone()).unwrap();
        let started = Instant::now();
        rt.block_on(runtime.load(&PluginSource::File(testkit.clone())))
            .unwrap();
        hit.push(started.elapsed());
    }
    row("load, compile-cache hit (incl. describe)", 20, hit, "-");

    // Warm call: InstancePre already built; each call gets a fresh Store.
    let plugin = rt
        .block_on(runtime.load(&PluginSource::File(testkit.clone())))
        .unwrap();
    let backend: Arc<dyn runner::backend::Backend> = Arc::new(LocalBackend::new("localhost"));
    let forwards = Arc::new(ForwardRegistry::new());
    let target = Target {
        sandbox: "localhost".into(),
        backend: "local".into(),
        settings: runner::settings::resolve("testkit", &plugin.info.settings, &[]).unwrap(),
    };
    let mut warm = Vec::new();
    for i in 0..1100 {
        let caps = CapContext::new(
            Grant::call(
                plugin.name(),
                "localhost",
                CallKind::Probe,
                &plugin.info.capabilities,
            ),
            Services {
                backend: Some(backend.clone()),
                forwards: Some(forwards.clone()),
                audit: None,
            },
        );
        let started = Instant::now();
        let (result, _) =
            rt.block_on(runtime.probe(&plugin, target.clone(), caps, Duration::from_secs(5)));
        let elapsed = started.elapsed();
        result.unwrap().unwrap();
        if i >= 100 {
            warm.push(elapsed);
        }
    }
    row(
        "warm probe call (fresh Store from InstancePre)",
        1000,
        warm,
        "<= 1 ms",
    );

    let mut describe = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        rt.block_on(runtime.describe(&plugin)).unwrap();
        describe.push(started.elapsed());
    }
    row("warm describe call", 200, describe, "-");

    // End to end: the release binary, warm cache (first run fills it).
    let bin = env!("CARGO_BIN_EXE_runner");
    let cli_cache = cache.join("cli");
    let inspect = || {
        let out = Command::new(bin)
            .args(["plugin", "inspect", "openclaw"])
            .env("RUNNER_CACHE_DIR", &cli_cache)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    inspect();
    let mut e2e = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        inspect();
        e2e.push(started.elapsed());
    }
    row(
        "`runner plugin inspect openclaw`, warm cache",
        30,
        e2e,
        "<= 50 ms",
    );

    let _ = std::fs::remove_dir_all(&cache);
}
