//! Test images come from `tests/images/build.sh NAME`, which owns hashing, caching and
//! cross-process locking; here we only make sure each test process asks once.

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::OnceCell;

/// A cold build of a real agent image takes minutes (npm/pip installs); a cached one
/// well under a second. Overridable for slow machines.
const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(1800);

/// The repository root, found from this crate's manifest dir so any cwd works.
pub fn repo_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

type Cache = Mutex<HashMap<String, Arc<OnceCell<String>>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn build_timeout() -> Duration {
    std::env::var("RUNNER_E2E_IMAGE_BUILD_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_BUILD_TIMEOUT)
}

/// Builds (or finds cached) `runner-test/NAME:<hash>` and returns that tag. Runs the
/// builder at most once per process; concurrent processes serialize on its flock.
pub async fn ensure(name: &str) -> Result<String> {
    let cell = cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name.to_string())
        .or_default()
        .clone();
    cell.get_or_try_init(|| run_builder(name)).await.cloned()
}

async fn run_builder(name: &str) -> Result<String> {
    let script = repo_root().join("tests/images/build.sh");
    let limit = build_timeout();
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(&script)
        .arg(name)
        .current_dir(repo_root())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .with_context(|| {
            format!(
                "building image {name} took longer than {limit:?} ({})",
                script.display()
            )
        })?
        .with_context(|| format!("cannot run {}", script.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Keep the builder's timing lines in the test's captured output.
    eprint!("{stderr}");
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "tests/images/build.sh {name} failed ({}):\n{}",
            out.status,
            tail.join("\n")
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tag = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .with_context(|| format!("tests/images/build.sh {name} printed no tag"))?;
    if !tag.starts_with(&format!("runner-test/{name}:")) {
        bail!("tests/images/build.sh {name} printed {tag:?}, not a runner-test/{name} tag");
    }
    Ok(tag)
}
