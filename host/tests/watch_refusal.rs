//! `runner watch` on a sandbox whose gateway program does not exist: a
//! deterministic failure is not a crash loop. One attempt, refused, one
//! CRITICAL line and `runner_quarantined_sandboxes 1`; no retry on the
//! interval; a container start gets exactly one new attempt.

#[path = "support/watch.rs"]
mod watch;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use runner_e2e::{Sandbox, free_port};

use watch::{Watch, labelled, setup, token};

/// Launch attempts of the gateway link in the audit log.
fn gateway_launches(w: &Watch, sandbox: &str) -> usize {
    w.audit(sandbox)
        .iter()
        .filter(|r| r["link"] == "gateway" && r["action"] == "spawn.detached")
        .count()
}

async fn wait_quarantined(w: &Watch, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if w.scrape().await?.contains("runner_quarantined_sandboxes 1") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not quarantined in {limit:?}; log:\n{}", w.log_text());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_gateway_program_is_tried_once_then_quarantined_until_the_container_starts_again()
-> Result<()> {
    let (engine, image) = setup().await?;
    let scope = token("refusal");
    let port = free_port()?;
    let sb = Sandbox::create(&engine, labelled(&image, &scope, port)).await?;
    // The layout loses its gateway program; the first boot's gateway is gone.
    sb.wait_http_ok(18789, "/health", Duration::from_secs(30))
        .await?;
    sb.exec(&["rm", "-f", "/usr/local/bin/openclaw"], None)
        .await?
        .check("remove the gateway program")?;
    sb.kill_gateway_9().await?;
    let w = Watch::start("refusal", &scope, "", "1s").await?;
    wait_quarantined(&w, Duration::from_secs(60)).await?;
    let log = w.log_text();
    assert_eq!(
        log.matches("CRITICAL: sandbox").count(),
        1,
        "one CRITICAL line:\n{log}"
    );
    assert!(
        log.contains("openclaw"),
        "the cause names the program:\n{log}"
    );
    assert!(
        log.contains("launch"),
        "the cause names the setting:\n{log}"
    );
    assert_eq!(gateway_launches(&w, sb.name()), 1, "{log}");
    // Many liveness intervals later: still exactly one attempt.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        gateway_launches(&w, sb.name()),
        1,
        "retried a deterministic failure:\n{}",
        w.log_text()
    );

    // A container start may bring what was missing: exactly one new attempt.
    sb.restart_with_grace(1).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while gateway_launches(&w, sb.name()) < 2 {
        if Instant::now() > deadline {
            bail!("no attempt after the restart; log:\n{}", w.log_text());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_quarantined(&w, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(gateway_launches(&w, sb.name()), 2, "{}", w.log_text());
    sb.remove().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_configured_sandboxes_are_refused_at_start_each_named() -> Result<()> {
    let state = std::env::temp_dir().join(format!("runner-watch-badcfg-{}", token("badcfg")));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state)?;
    let config = state.join("watch.toml");
    std::fs::write(
        &config,
        "labels = false\n\
         [[sandbox]]\nname = \"a\"\nplugin = \"/nonexistent/agent.wasm\"\n\
         [[sandbox]]\nname = \"b\"\nplugin = \"openclaw\"\nsettings = { no-such-key = \"1\" }\n\
         [[sandbox]]\nname = \"c\"\nplugin = \"openclaw\"\nsettings = { host-port = \"18800\" }\n",
    )?;
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["watch", "--config"])
            .arg(&config)
            .env("RUNNER_STATE_DIR", &state)
            .env("RUNNER_CACHE_DIR", watch::cache_dir())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("[[sandbox]] a"), "{stderr}");
    assert!(
        stderr.contains("[[sandbox]] b") && stderr.contains("no-such-key"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("[[sandbox]] c"),
        "a valid entry is not a problem: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}
