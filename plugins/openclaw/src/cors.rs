//! The `cors` link: `gateway.controlUi.allowedOrigins` in the sandbox's
//! `openclaw.json` (JSON5) contains the dashboard origin.
//!
//! Repair inserts the origin with a minimal text patch (every other byte,
//! comment and key stays), proves the result parses and differs only by that
//! string, writes a backup with the original owner and mode, then replaces
//! the config atomically with the original owner and mode. OpenClaw
//! hot-reloads the key in ~2 s; the dashboard link proves it took effect.

use crate::config::Config;
use runner_plugin_sdk::json5::{self, PatchError};
use runner_plugin_sdk::{FileKind, FileStat, RepairOutcome, Report, Sandbox};

pub const LINK: &str = "cors";
pub const ORIGINS_PATH: &[&str] = &["gateway", "controlUi", "allowedOrigins"];
const KEY: &str = "gateway.controlUi.allowedOrigins";
const MAX_CONFIG: u32 = 1024 * 1024;

/// What the config says about the origin (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Allowed,
    /// Missing from the list, or the list (or its parents) is missing.
    NotAllowed {
        list_exists: bool,
    },
    /// The document cannot be patched safely: parse error or wrong type.
    Invalid(String),
}

pub fn check(text: &str, origin: &str) -> State {
    let doc = match json5::parse(text) {
        Ok(d) => d,
        Err(e) => return State::Invalid(format!("does not parse as JSON5 ({e})")),
    };
    match json5::array_contains(&doc, ORIGINS_PATH, origin) {
        Ok(Some(true)) => State::Allowed,
        Ok(Some(false)) => State::NotAllowed { list_exists: true },
        Ok(None) => State::NotAllowed { list_exists: false },
        Err(e) => State::Invalid(format!("is schema-invalid: {e}")),
    }
}

/// Why the config file itself may not be edited, if so.
pub fn unsafe_file(path: &str, stat: Option<&FileStat>) -> Option<String> {
    match stat {
        None => Some(format!("config {path} does not exist")),
        Some(st) if st.kind == FileKind::Symlink => Some(format!(
            "config {path} is a symlink; refusing to edit through it"
        )),
        Some(st) if st.kind != FileKind::Regular => Some(format!(
            "config {path} is a {:?}, not a regular file",
            st.kind
        )),
        Some(_) => None,
    }
}

/// `<config>.runner-bak.<unix-seconds>`.
pub fn backup_path(config: &str, now: i64) -> String {
    format!("{config}.runner-bak.{now}")
}

pub fn probe(sandbox: &Sandbox, cfg: &Config) -> Report {
    let stat = match sandbox.stat(&cfg.config) {
        Ok(s) => s,
        Err(e) => return Report::unknown(LINK, format!("cannot stat {}: {e}", cfg.config)),
    };
    if let Some(why) = unsafe_file(&cfg.config, stat.as_ref()) {
        return Report::broken(LINK, why).evidence("config", &cfg.config);
    }
    let text = match sandbox.read(&cfg.config, MAX_CONFIG) {
        Ok(d) => String::from_utf8_lossy(&d).into_owned(),
        Err(e) => return Report::unknown(LINK, format!("cannot read {}: {e}", cfg.config)),
    };
    let r = match check(&text, &cfg.dashboard_origin) {
        State::Allowed => Report::healthy(LINK, format!("{KEY} allows {}", cfg.dashboard_origin)),
        State::NotAllowed { list_exists } => Report::broken(
            LINK,
            format!(
                "{KEY} in {} {} {}",
                cfg.config,
                if list_exists {
                    "does not contain"
                } else {
                    "is missing, so it does not allow"
                },
                cfg.dashboard_origin
            ),
        )
        .repairable(),
        State::Invalid(why) => Report::broken(
            LINK,
            format!(
                "config {} {why}; refusing to patch it (fix it by hand or run `openclaw doctor --fix`)",
                cfg.config
            ),
        ),
    };
    r.evidence("config", &cfg.config)
        .evidence("origin", &cfg.dashboard_origin)
}

pub fn repair(sandbox: &Sandbox, cfg: &Config) -> RepairOutcome {
    let path = &cfg.config;
    let stat = match sandbox.stat(path) {
        Ok(s) => s,
        Err(e) => return RepairOutcome::Failed(format!("cannot stat {path}: {e}")),
    };
    if let Some(why) = unsafe_file(path, stat.as_ref()) {
        return RepairOutcome::Refused(why);
    }
    let stat = stat.expect("checked above");
    let original = match sandbox.read(path, MAX_CONFIG) {
        Ok(d) => d,
        Err(e) => return RepairOutcome::Failed(format!("cannot read {path}: {e}")),
    };
    let Ok(text) = std::str::from_utf8(&original) else {
        return RepairOutcome::Refused(format!("config {path} is not UTF-8; refusing to patch it"));
    };
    let patched = match json5::ensure_string_in_array(text, ORIGINS_PATH, &cfg.dashboard_origin) {
        Ok(p) => p,
        Err(e @ (PatchError::Parse(_) | PatchError::WrongType { .. })) => {
            return RepairOutcome::Refused(format!("config {path} {e}; refusing to patch it"));
        }
        Err(e) => return RepairOutcome::Failed(format!("config {path}: {e}; nothing written")),
    };
    if !patched.changed {
        return RepairOutcome::NotNeeded(format!("{KEY} already allows {}", cfg.dashboard_origin));
    }
    let backup = backup_path(path, runner_plugin_sdk::locks::now_secs());
    if let Err(e) = sandbox.write(&backup, &original, stat.mode, stat.uid, stat.gid) {
        return RepairOutcome::Failed(format!(
            "writing backup {backup} failed: {e}; config untouched"
        ));
    }
    // The gateway never rewrites a hand-written config, but an operator might:
    // only replace exactly what was patched.
    match (sandbox.stat(path), sandbox.read(path, MAX_CONFIG)) {
        (Ok(Some(now)), Ok(data)) if data == original && now.kind == FileKind::Regular => {}
        _ => {
            return RepairOutcome::Failed(format!(
                "config {path} changed while it was being patched; nothing written (backup {backup})"
            ));
        }
    }
    if let Err(e) = sandbox.write(path, patched.text.as_bytes(), stat.mode, stat.uid, stat.gid) {
        return RepairOutcome::Failed(format!("writing {path} failed: {e} (backup {backup})"));
    }
    RepairOutcome::Repaired(format!(
        "added {} to {KEY} in {path} (owner {}:{}, mode {:o} kept; backup {backup}); OpenClaw hot-reloads it",
        cfg.dashboard_origin, stat.uid, stat.gid, stat.mode
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE_CONFIG: &str = r#"// /sandbox/.openclaw/openclaw.json — written by sandbox-entry on the first boot.
{
  "gateway": {
    "mode": "local",
    "port": 18789,
    "auth": { "mode": "token", "token": "t" },
    "controlUi": {
      "allowedOrigins": ["http://127.0.0.1:18789"]
    },
  },
}
"#;

    #[test]
    fn image_config_with_comments_allows_the_default_origin() {
        assert_eq!(
            check(IMAGE_CONFIG, "http://127.0.0.1:18789"),
            State::Allowed
        );
    }

    #[test]
    fn other_origin_is_not_allowed_and_exact_match_is_required() {
        assert_eq!(
            check(IMAGE_CONFIG, "http://localhost:18789"),
            State::NotAllowed { list_exists: true }
        );
        assert_eq!(
            check(IMAGE_CONFIG, "http://127.0.0.1:18789/x"),
            State::NotAllowed { list_exists: true }
        );
    }

    #[test]
    fn missing_control_ui_is_not_allowed_but_patchable() {
        assert_eq!(
            check("{gateway: {mode: 'local'}}", "http://a"),
            State::NotAllowed { list_exists: false }
        );
        assert_eq!(
            check("{}", "http://a"),
            State::NotAllowed { list_exists: false }
        );
    }

    #[test]
    fn string_instead_of_array_is_invalid() {
        let s = check(
            r#"{"gateway":{"controlUi":{"allowedOrigins":"http://a"}}}"#,
            "http://a",
        );
        assert!(
            matches!(&s, State::Invalid(why) if why.contains("schema-invalid")),
            "{s:?}"
        );
        assert!(matches!(check("{gateway: ", "http://a"), State::Invalid(_)));
    }

    #[test]
    fn origin_added_keeps_comments_and_other_keys_in_the_image_config() {
        let p = json5::ensure_string_in_array(IMAGE_CONFIG, ORIGINS_PATH, "http://localhost:18789")
            .unwrap();
        assert!(p.changed);
        assert!(p.text.starts_with("// /sandbox/.openclaw/openclaw.json"));
        assert!(
            p.text.contains(
                r#""allowedOrigins": ["http://127.0.0.1:18789", "http://localhost:18789"]"#
            ),
            "{}",
            p.text
        );
        assert_eq!(
            p.text.len(),
            IMAGE_CONFIG.len() + r#", "http://localhost:18789""#.len()
        );
        assert_eq!(check(&p.text, "http://localhost:18789"), State::Allowed);
    }

    #[test]
    fn symlinked_config_is_refused() {
        let st = FileStat {
            kind: FileKind::Symlink,
            mode: 0o777,
            uid: 0,
            gid: 0,
            size: 1,
            mtime: 0,
        };
        assert!(unsafe_file("/c", Some(&st)).unwrap().contains("symlink"));
        assert!(unsafe_file("/c", None).unwrap().contains("does not exist"));
    }

    #[test]
    fn backup_name_is_next_to_the_config() {
        assert_eq!(
            backup_path("/sandbox/.openclaw/openclaw.json", 1700000000),
            "/sandbox/.openclaw/openclaw.json.runner-bak.1700000000"
        );
    }
}
