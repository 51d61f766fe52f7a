//! Where runner keeps its state (audit log, locks, forward records) and its
//! compile cache. Both are overridable for tests and packaging. The files
//! inside are read and written only through [`crate::safe_fs`] (regular
//! files only, no symlink followed, size caps, read deadlines).

use std::path::PathBuf;

/// `$RUNNER_STATE_DIR`, else `$XDG_STATE_HOME/runner`, else
/// `~/.local/state/runner`, else `/var/lib/runner`.
pub fn state_dir() -> PathBuf {
    dir_from(
        "RUNNER_STATE_DIR",
        "XDG_STATE_HOME",
        ".local/state",
        "/var/lib/runner",
    )
}

/// `$RUNNER_CACHE_DIR`, else `$XDG_CACHE_HOME/runner`, else
/// `~/.cache/runner`, else `/var/cache/runner`.
pub fn cache_dir() -> PathBuf {
    dir_from(
        "RUNNER_CACHE_DIR",
        "XDG_CACHE_HOME",
        ".cache",
        "/var/cache/runner",
    )
}

fn dir_from(own: &str, xdg: &str, home_rel: &str, fallback: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(own).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os(xdg).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("runner");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(home_rel).join("runner");
    }
    PathBuf::from(fallback)
}
