//! `--timeout` bounds the whole command, the engine connection included:
//! against an engine socket that accepts and never answers, `status` ends
//! by its deadline with one `unknown` report (exit 3), not after the
//! client's own multi-second connect timeouts.

use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::net::UnixListener;

/// The compile cache the e2e tests of this build share: plugin loads are
/// warm, so timings measure runner, not Cranelift.
fn shared_cache() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("runner-e2e-cache")
}

/// A socket that accepts every connection and never says a word.
fn silent_engine(path: &std::path::Path) -> Result<tokio::task::JoinHandle<()>> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    Ok(tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    }))
}

#[tokio::test]
async fn engine_that_accepts_and_never_answers_ends_the_run_by_its_deadline() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("runner-deadline-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sock = dir.join("engine.sock");
    let _engine = silent_engine(&sock)?;
    let t0 = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args([
            "status",
            "--plugin",
            "openclaw",
            "--sandbox",
            "sb",
            "--json",
        ])
        .args(["--timeout", "300ms"])
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .env("RUNNER_STATE_DIR", &dir)
        .env("RUNNER_CACHE_DIR", shared_cache())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    let took = t0.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim())?;
    assert_eq!(report["outcome"], "unknown");
    // The deadline plus process start and the plugin's cached load; the
    // client's own connect timeouts alone are 5 s + 3 s.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A plugin's exec that would outlive its call (a `sleep` longer than the
/// whole `--timeout`) is ended inside the sandbox by the call's deadline,
/// not left running after runner has moved on.
#[tokio::test]
async fn exec_longer_than_the_run_is_killed_in_the_sandbox_by_the_deadline() -> Result<()> {
    use runner_e2e::{Engine, Mode, Sandbox, SandboxSpec, images};
    let engine = Engine::connect().await?;
    let spec = SandboxSpec::new(images::ensure("fixture").await?)
        .mode(Mode::Keepalive)
        .name_prefix("deadline");
    let sb = Sandbox::create(&engine, spec).await?;
    let dir = std::env::temp_dir().join(format!("runner-deadline-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let testkit = std::path::PathBuf::from(env!("RUNNER_WASM_PLUGIN_DIR")).join("testkit.wasm");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["status", "--plugin"])
        .arg(&testkit)
        .args(["--sandbox", sb.name(), "--json", "--timeout", "1s"])
        .args(["--set", "behaviour=exec", "--set", "argv=sleep,7.123"])
        .env("RUNNER_STATE_DIR", &dir)
        .env("RUNNER_CACHE_DIR", shared_cache())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim())?;
    // The sleep is gone once runner has answered (give the kill a moment).
    // A probe's exec runs sealed in namespaces of its own, so look for it
    // among every process of the host, the sandbox's included.
    let mut left = usize::MAX;
    for _ in 0..20 {
        left = host_processes_with_cmdline("sleep\u{0}7.123\u{0}");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the exec outlived the run: {report}");
    sb.remove().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// How many processes of this host run exactly `cmdline` (NUL-separated).
fn host_processes_with_cmdline(cmdline: &str) -> usize {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .filter(|e| {
                    std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == cmdline.as_bytes())
                })
                .count()
        })
        .unwrap_or(0)
}
