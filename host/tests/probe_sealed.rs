//! `status` cannot change a sandbox, whatever its plugin runs: a probe's
//! exec is sealed (the sandbox's files read-only, never root, its own pid,
//! network and IPC namespaces). The testkit plugin probes by running the
//! command it is given; each scenario is a command that would change a real
//! fixture sandbox if it ran as an ordinary `docker exec` does.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use runner_e2e::{Engine, Sandbox, SandboxSpec, images};
use serde_json::Value;

fn shared_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("runner-e2e-cache")
}

/// `runner status` with the testkit probing by running `argv` (comma-separated).
async fn probe_runs(sb: &Sandbox, state: &std::path::Path, argv: &str) -> Result<(Value, String)> {
    probe_runs_as(sb, state, argv, "").await
}

/// The same, as `user` (empty: the sandbox's default user).
async fn probe_runs_as(
    sb: &Sandbox,
    state: &std::path::Path,
    argv: &str,
    user: &str,
) -> Result<(Value, String)> {
    let testkit = PathBuf::from(env!("RUNNER_WASM_PLUGIN_DIR")).join("testkit.wasm");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["status", "--plugin"])
            .arg(&testkit)
            .args(["--sandbox", sb.name(), "--json", "--timeout", "30s"])
            .args(["--set", "behaviour=exec", "--set"])
            .arg(format!("argv={argv}"))
            .args(["--set", &format!("user={user}")])
            .env("RUNNER_STATE_DIR", state)
            .env("RUNNER_CACHE_DIR", shared_cache())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("runner status did not end within 60 s")??;
    let report: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("report of {argv}: {}", String::from_utf8_lossy(&out.stdout)))?;
    Ok((report, String::from_utf8_lossy(&out.stderr).into_owned()))
}

/// The testkit's `alpha` link: what its exec printed.
fn exec_output(report: &Value) -> (i64, String, String) {
    let alpha = report["links"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["id"] == "alpha"))
        .cloned()
        .unwrap_or(Value::Null);
    let field = |k: &str| {
        alpha["evidence"][k]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    (
        field("exit").parse().unwrap_or(-1),
        field("stdout"),
        field("stderr"),
    )
}

#[tokio::test]
async fn a_probe_can_read_the_sandbox_but_never_write_signal_or_reach_it() -> Result<()> {
    let engine = Engine::connect().await?;
    let spec = SandboxSpec::new(images::ensure("fixture").await?).name_prefix("sealed");
    let sb = Sandbox::create(&engine, spec).await?;
    let gateway = sb
        .wait_new_gateway_pid(None, Duration::from_secs(20))
        .await?;
    let state = std::env::temp_dir().join(format!("runner-sealed-{}", std::process::id()));
    std::fs::create_dir_all(&state)?;
    let log_before = sb.read_file("/tmp/gateway.log").await?.unwrap_or_default();

    // Reading works: the sandbox's own files, as the sandbox sees them.
    let (report, _) = probe_runs(&sb, &state, "cat,/usr/local/bin/nemoclaw-start").await?;
    let (code, stdout, _) = exec_output(&report);
    assert_eq!(code, 0, "{report}");
    assert!(!stdout.is_empty(), "{report}");

    // Never root, even when the sandbox's default user is.
    let (report, _) = probe_runs(&sb, &state, "id,-u").await?;
    assert_eq!(exec_output(&report).1.trim(), "65534", "{report}");

    // Each as a user the sandbox's own permissions would let write.
    let attempts = [
        ("create a file", "touch,/tmp/probe-was-here", ""),
        (
            "append to the gateway's log",
            "sh,-c,echo tampered >> /tmp/gateway.log",
            "gateway",
        ),
        (
            "write the console",
            "sh,-c,echo tampered > /dev/console",
            "",
        ),
    ];
    for (what, argv, user) in attempts {
        let (report, stderr) = probe_runs_as(&sb, &state, argv, user).await?;
        let (code, _, err) = exec_output(&report);
        assert_ne!(code, 0, "{what}: {report}");
        assert!(
            err.to_lowercase().contains("read-only file system"),
            "{what}: {err}"
        );
        assert!(
            stderr.contains("probe exec tried to write"),
            "{what}: {stderr}"
        );
        assert_eq!(report["mutations"], serde_json::json!([]), "{what}");
    }
    assert_eq!(sb.read_file("/tmp/probe-was-here").await?, None);
    assert_eq!(
        sb.read_file("/tmp/gateway.log").await?.unwrap_or_default(),
        log_before
    );

    // The gateway's pid means nothing in the probe's own pid namespace.
    let (report, _) = probe_runs(&sb, &state, &format!("kill,-9,{gateway}")).await?;
    assert_ne!(exec_output(&report).0, 0, "{report}");
    let (report, _) = probe_runs(&sb, &state, "sh,-c,kill -9 -1; ps").await?;
    let (_, ps, _) = exec_output(&report);
    assert!(
        !ps.contains("openclaw"),
        "the probe saw the sandbox's processes: {ps}"
    );
    assert_eq!(
        sb.gateway_pids().await?,
        vec![gateway],
        "the gateway was touched"
    );

    // No network: the gateway's port on the sandbox's loopback is out of reach.
    let (report, _) = probe_runs(&sb, &state, "wget,-O-,http://127.0.0.1:18789/health").await?;
    let (code, _, err) = exec_output(&report);
    assert_ne!(code, 0, "{report}");
    assert!(err.contains("unreachable"), "{report}");

    // Nothing was audited: nothing changed.
    assert!(!state.join("audit.jsonl").exists());
    sb.remove().await?;
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}
