//! `--timeout` bounds the whole command, the engine connection included:
//! against an engine socket that accepts and never answers, `status` ends
//! by its deadline with one `unknown` report (exit 3), not after the
//! client's own multi-second connect timeouts.

use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::net::UnixListener;

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
        .env("RUNNER_CACHE_DIR", dir.join("cache"))
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
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
