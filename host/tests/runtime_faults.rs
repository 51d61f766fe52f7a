//! A misbehaving plugin is contained: every fault becomes a typed
//! `PluginFault` (exit 4 at the CLI), never a host panic, and the next call
//! starts clean. Uses the purpose-built `testkit` plugin.

mod support;

use std::time::{Duration, Instant};

use runner::capabilities::CallKind;
use runner::model::{Health, RepairOutcome};
use runner::runtime::errors::{LoadError, PluginFault};
use runner::runtime::{LoadFailure, Runtime};
use support::*;

async fn probe_with(
    runtime: &Runtime,
    behaviour: &str,
    deadline: Duration,
) -> Result<Result<Vec<runner::model::LinkReport>, String>, PluginFault> {
    let plugin = load(runtime, "testkit").await;
    let target = target(&plugin, LOCAL, &[("behaviour", behaviour)]);
    let caps = caps(local(), &plugin, LOCAL, CallKind::Probe);
    runtime.probe(&plugin, target, caps, deadline).await.0
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn infinite_loop_is_a_deadline_fault_within_the_deadline() {
    let runtime = runtime();
    let plugin = load(&runtime, "testkit").await;
    let target = target(&plugin, LOCAL, &[("behaviour", "loop")]);
    let caps = caps(local(), &plugin, LOCAL, CallKind::Probe);
    let started = Instant::now();
    let result = runtime
        .probe(&plugin, target, caps, Duration::from_millis(300))
        .await
        .0;
    let elapsed = started.elapsed();
    match result {
        Err(PluginFault::Deadline {
            function, limit_ms, ..
        }) => {
            assert_eq!(function, "probe");
            assert_eq!(limit_ms, 300);
        }
        other => panic!("expected a deadline fault, got {other:?}"),
    }
    // Epoch granularity is 10 ms; allow generous scheduling slack on 2 cores.
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
}

#[tokio::test]
async fn memory_bomb_is_a_memory_fault_and_host_memory_is_unaffected() {
    let runtime = runtime();
    let before = rss_bytes();
    let result = probe_with(&runtime, "membomb", Duration::from_secs(20)).await;
    match result {
        Err(PluginFault::MemoryLimit { limit_bytes, .. }) => assert_eq!(limit_bytes, 64 << 20),
        other => panic!("expected a memory-limit fault, got {other:?}"),
    }
    let after = rss_bytes();
    // The store (and its 64 MiB linear memory) is gone after the call.
    assert!(
        after < before + (48 << 20),
        "host RSS grew from {before} to {after} bytes"
    );
}

#[test]
fn panic_message_reaches_the_fault_and_the_log() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let runtime = runtime();
            probe_with(&runtime, "panic", Duration::from_secs(5)).await
        })
    });
    match result {
        Err(PluginFault::Trap { detail, .. }) => {
            assert!(detail.contains("probe exploded on purpose"), "{detail}")
        }
        other => panic!("expected a trap fault, got {other:?}"),
    }
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("probe exploded on purpose"), "log was:\n{log}");
    assert!(log.contains("plugin fault"), "log was:\n{log}");
}

#[tokio::test]
async fn a_trapped_plugin_does_not_affect_the_next_call() {
    let runtime = runtime();
    assert!(matches!(
        probe_with(&runtime, "loop", Duration::from_millis(200)).await,
        Err(PluginFault::Deadline { .. })
    ));
    assert!(matches!(
        probe_with(&runtime, "membomb", Duration::from_secs(20)).await,
        Err(PluginFault::MemoryLimit { .. })
    ));
    let reports = probe_with(&runtime, "ok", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.health == Health::Healthy));
}

#[tokio::test]
async fn unknown_wit_major_is_refused_before_instantiation_naming_both_versions() {
    let runtime = runtime();
    let err = runtime
        .load(&runner::plugins::PluginSource::File(wasm("future_wit")))
        .await
        .unwrap_err();
    let LoadFailure::Load(LoadError::UnsupportedWit {
        found, supported, ..
    }) = &err
    else {
        panic!("expected UnsupportedWit, got {err:?}");
    };
    assert_eq!(found, "9.0.0");
    assert_eq!(supported, "0.1.x");
    let message = err.to_string();
    assert!(
        message.contains("runner:plugin@9.0.0") && message.contains("runner:plugin@0.1.x"),
        "{message}"
    );
}

#[tokio::test]
async fn exec_in_another_sandbox_is_denied() {
    let runtime = runtime();
    let reports = probe_with(&runtime, "escape-exec", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    let alpha = reports.iter().find(|r| r.id == "alpha").unwrap();
    assert_eq!(
        evidence(&alpha.evidence, "error"),
        Some("denied"),
        "{alpha:?}"
    );
    assert!(
        evidence(&alpha.evidence, "message")
            .unwrap()
            .contains("bound to sandbox 'localhost'")
    );
}

#[tokio::test]
async fn exec_in_another_sandbox_is_denied_in_repair_too() {
    let runtime = runtime();
    let plugin = load(&runtime, "testkit").await;
    let target = target(&plugin, LOCAL, &[("behaviour", "escape-exec")]);
    let caps = caps(local(), &plugin, LOCAL, CallKind::Repair);
    let (outcome, caps) = runtime
        .repair(&plugin, target, "alpha", caps, Duration::from_secs(5))
        .await;
    match outcome.unwrap() {
        RepairOutcome::Failed(m) => assert!(m.starts_with("denied"), "{m}"),
        other => panic!("expected a denied exec, got {other:?}"),
    }
    assert!(
        caps.mutations.is_empty(),
        "a denied call is not a mutation: {:?}",
        caps.mutations
    );
}

#[tokio::test]
async fn writing_through_a_symlink_is_denied_and_nothing_changes() {
    let dir = std::env::temp_dir().join(format!("runner-symlink-{}", std::process::id()));
    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
    let escaped = dir.join("link").join("escaped");

    let runtime = runtime();
    let plugin = load(&runtime, "testkit").await;
    let target = target(
        &plugin,
        LOCAL,
        &[
            ("behaviour", "symlink-write"),
            ("path", escaped.to_str().unwrap()),
        ],
    );
    let caps = caps(local(), &plugin, LOCAL, CallKind::Repair);
    let (outcome, _) = runtime
        .repair(&plugin, target, "alpha", caps, Duration::from_secs(5))
        .await;
    match outcome.unwrap() {
        RepairOutcome::Failed(m) => assert!(m.starts_with("denied"), "{m}"),
        other => panic!("expected the write to be denied, got {other:?}"),
    }
    assert!(
        !outside.join("escaped").exists(),
        "the write escaped through the symlink"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn probe_may_not_mutate_even_a_plain_file() {
    let path = std::env::temp_dir().join(format!("runner-probe-write-{}", std::process::id()));
    let runtime = runtime();
    let reports = {
        let plugin = load(&runtime, "testkit").await;
        let target = target(
            &plugin,
            LOCAL,
            &[
                ("behaviour", "symlink-write"),
                ("path", path.to_str().unwrap()),
            ],
        );
        let caps = caps(local(), &plugin, LOCAL, CallKind::Probe);
        runtime
            .probe(&plugin, target, caps, Duration::from_secs(5))
            .await
            .0
            .unwrap()
            .unwrap()
    };
    let alpha = reports.iter().find(|r| r.id == "alpha").unwrap();
    assert_eq!(evidence(&alpha.evidence, "error"), Some("denied"));
    assert!(
        evidence(&alpha.evidence, "message")
            .unwrap()
            .contains("only repair may")
    );
    assert!(!path.exists());
}

#[tokio::test]
async fn reporting_an_undeclared_link_is_a_contract_fault() {
    let runtime = runtime();
    match probe_with(&runtime, "undeclared-link", Duration::from_secs(5)).await {
        Err(PluginFault::Contract { detail, .. }) => assert!(detail.contains("gamma"), "{detail}"),
        other => panic!("expected a contract fault, got {other:?}"),
    }
}

#[tokio::test]
async fn a_core_module_is_refused_as_not_a_component() {
    let path = std::env::temp_dir().join(format!("runner-core-{}.wasm", std::process::id()));
    // The smallest valid core module: magic and version 1.
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    let err = runtime()
        .load(&runner::plugins::PluginSource::File(path.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LoadFailure::Load(LoadError::CoreModule(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains("wasm32-wasip2"));
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn second_load_comes_from_the_compile_cache() {
    let cache = std::env::temp_dir().join(format!("runner-cache-probe-{}", std::process::id()));
    let options = runner::runtime::RuntimeOptions {
        cache_dir: Some(cache.clone()),
        ..Default::default()
    };
    let first = Runtime::new(options.clone()).unwrap();
    load(&first, "testkit").await;
    // Besides the entry, the cache dir holds only its MAC key.
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "mac.key")
        .collect();
    assert_eq!(names.len(), 1, "one compiled entry is stored: {names:?}");
    let name = &names[0];
    let second = Runtime::new(options).unwrap();
    let plugin = load(&second, "testkit").await;
    assert!(
        name.starts_with(&plugin.sha256),
        "entry {name} is keyed by the component hash"
    );
    std::fs::remove_dir_all(cache).unwrap();
}
