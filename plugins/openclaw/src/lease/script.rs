//! Running the lease script in the sandbox: observe (read-only) and release
//! (compare-and-delete inside the database's write lock).

use super::{EXEC_TIMEOUT_MS, Facts, MAX_OUTPUT, SCRIPT, parse_facts};
use crate::config::{Config, join};
use runner_plugin_sdk::json5::{self, Node};
use runner_plugin_sdk::{FileKind, RepairOutcome, Sandbox, log};

/// `<state-dir>/state/openclaw.sqlite`.
pub fn db_path(cfg: &Config) -> String {
    join(&join(&cfg.state_dir, "state"), "openclaw.sqlite")
}

/// The lease as seen now: `None` when there is no state database (no
/// OpenClaw 2026.9 state, nothing to check and no exec).
pub struct Observed {
    pub facts: Facts,
    pub user: String,
}

fn run_script(
    sandbox: &Sandbox,
    cfg: &Config,
    user: &str,
    mode: &str,
    expect: Option<&str>,
) -> Result<String, String> {
    let db = db_path(cfg);
    let mut cmd = sandbox
        .command(["node", "--no-warnings", "-", mode, db.as_str()])
        .user(user)
        .env("RUNNER_LEASE_DIRS", &cfg.lock_parents().join(":"))
        .stdin(SCRIPT.as_bytes())
        .timeout_ms(EXEC_TIMEOUT_MS)
        .max_output(MAX_OUTPUT);
    if let Some(row) = expect {
        cmd = cmd.env("RUNNER_LEASE_EXPECT", row);
    }
    let out = cmd
        .run()
        .map_err(|e| format!("node {mode} of {db}: {}: {e}", e.kind()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.exit_code != 0 && !stdout.contains("\"error\"") {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
        return Err(format!(
            "node {mode} of {db} exited {}: {tail}",
            out.exit_code
        ));
    }
    Ok(stdout)
}

/// Read the lease facts (read-only). `Ok(None)`: no state database.
pub fn observe(sandbox: &Sandbox, cfg: &Config) -> Result<Option<Observed>, String> {
    let db = db_path(cfg);
    let st = match sandbox.stat(&db) {
        Ok(Some(st)) => st,
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("cannot stat {db}: {e:?}")),
    };
    if st.kind != FileKind::Regular {
        return Err(format!(
            "{db} is a {:?}, not a regular file; not reading it",
            st.kind
        ));
    }
    // As the database's owner, so nothing the script touches changes owner.
    let user = format!("{}:{}", st.uid, st.gid);
    let stdout = run_script(sandbox, cfg, &user, "observe", None)?;
    let facts = parse_facts(&stdout).map_err(|e| format!("lease facts of {db}: {e}"))?;
    Ok(Some(Observed { facts, user }))
}

/// Release the row judged stale in `seen`, compare-and-delete inside the
/// database's write lock.
pub fn release(sandbox: &Sandbox, cfg: &Config, seen: &Observed, why: &str) -> RepairOutcome {
    let Some(row) = &seen.facts.row else {
        return RepairOutcome::NotNeeded("no gateway owner lease".into());
    };
    let db = db_path(cfg);
    log::info(&format!(
        "releasing gateway owner lease {} in {db} (compare-and-delete as {}): {why}",
        row.owner, seen.user
    ));
    let stdout = match run_script(sandbox, cfg, &seen.user, "reclaim", Some(&row.raw)) {
        Ok(s) => s,
        Err(e) => {
            return RepairOutcome::Failed(format!("releasing the stale owner lease failed: {e}"));
        }
    };
    let line = stdout.lines().rfind(|l| l.starts_with('{')).unwrap_or("");
    let doc = match json5::parse(line) {
        Ok(d) => d,
        Err(e) => {
            return RepairOutcome::Failed(format!(
                "releasing the stale owner lease: unreadable answer ({e}): {}",
                stdout.trim()
            ));
        }
    };
    let result = doc.get("result").and_then(Node::as_str).unwrap_or("");
    match result {
        "deleted" => RepairOutcome::Repaired(format!(
            "released the gateway owner lease {} in {db}: {why}",
            row.owner
        )),
        "absent" => RepairOutcome::NotNeeded(format!(
            "the gateway owner lease {} was already gone from {db}",
            row.owner
        )),
        "changed" => RepairOutcome::Failed(format!(
            "the gateway owner lease in {db} changed before its release (renewed or replaced); nothing removed \
             (re-probe)"
        )),
        "held" => RepairOutcome::Refused(format!(
            "a gateway coordinator became held while releasing the owner lease {}: a live gateway owns {}; \
             nothing removed",
            row.owner, cfg.state_dir
        )),
        _ => RepairOutcome::Failed(format!(
            "releasing the stale owner lease: {}",
            doc.get("error")
                .and_then(Node::as_str)
                .unwrap_or(stdout.trim())
        )),
    }
}
