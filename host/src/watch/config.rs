//! `runner watch --config FILE`: which sandboxes to watch and how.
//!
//! ```toml
//! interval = 10          # seconds between liveness checks of each sandbox
//! full-interval = 900    # mean seconds between full passes (jittered 0.5–1.5×)
//! max-concurrent = 16    # urgent repairs running at once, across sandboxes
//! labels = true          # also watch every container labelled runner.plugin=<name>
//! require-label = "team=a" # optional: label-selected containers must also carry this
//!
//! [policy]               # crash-loop policy (seconds); see watch::policy
//! max-repairs = 5
//! window = 60
//!
//! [[sandbox]]
//! name = "my-sandbox"
//! plugin = "openclaw"
//! settings = { host-port = "18790" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::policy::{PolicyConfig, PolicyError};
use crate::safe_fs::{self, SafeFsError};

/// A config file larger than this is refused.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// At most this many sandboxes are watched at once.
pub const MAX_SANDBOXES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Missing, not a regular file (a FIFO would block for ever), over
    /// [`MAX_CONFIG_BYTES`], or not read within the deadline (safe_fs).
    #[error("watch config {0}")]
    File(#[source] SafeFsError),
    #[error("watch config {} is not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SandboxEntry {
    pub name: String,
    pub plugin: String,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct WatchConfig {
    /// Seconds between liveness checks of each sandbox.
    pub interval: Option<f64>,
    /// Mean seconds between full passes of a healthy sandbox.
    pub full_interval: Option<f64>,
    pub max_concurrent: Option<usize>,
    /// Watch containers labelled `runner.plugin=<name>`.
    pub labels: bool,
    /// `key=value` (or just `key`) that label-selected containers must also
    /// carry: several watchers can split one engine.
    pub require_label: Option<String>,
    /// Seconds a recover may take.
    pub timeout: Option<f64>,
    /// Seconds in-flight repairs get to finish on SIGTERM.
    pub shutdown_grace: Option<f64>,
    pub policy: PolicyConfig,
    pub sandbox: Vec<SandboxEntry>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            interval: None,
            full_interval: None,
            max_concurrent: None,
            labels: true,
            require_label: None,
            timeout: None,
            shutdown_grace: None,
            policy: PolicyConfig::default(),
            sandbox: Vec::new(),
        }
    }
}

fn secs(name: &str, v: Option<f64>) -> Result<Option<Duration>, ConfigError> {
    match v {
        None => Ok(None),
        Some(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => {
            Ok(Some(Duration::from_secs_f64(v)))
        }
        Some(v) => Err(ConfigError::Invalid(format!(
            "{name} = {v}: must be between 0 and 86400 seconds"
        ))),
    }
}

impl WatchConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let bytes = safe_fs::read_user_file(path, MAX_CONFIG_BYTES).map_err(ConfigError::File)?;
        let text =
            String::from_utf8(bytes).map_err(|_| ConfigError::NotText { path: path.into() })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.into(),
                source,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let cfg: WatchConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            source: Box::new(e),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy.validate()?;
        secs("interval", self.interval)?;
        secs("full-interval", self.full_interval)?;
        secs("timeout", self.timeout)?;
        secs("shutdown-grace", self.shutdown_grace)?;
        if let Some(n) = self.max_concurrent
            && !(1..=64).contains(&n)
        {
            return Err(ConfigError::Invalid(format!(
                "max-concurrent = {n}: must be 1..=64"
            )));
        }
        if self.sandbox.len() > MAX_SANDBOXES {
            return Err(ConfigError::Invalid(format!(
                "at most {MAX_SANDBOXES} sandboxes may be listed"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.sandbox {
            if s.name.trim().is_empty() || s.plugin.trim().is_empty() {
                return Err(ConfigError::Invalid(
                    "every [[sandbox]] needs a name and a plugin".into(),
                ));
            }
            if !seen.insert(s.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "sandbox '{}' is listed twice",
                    s.name
                )));
            }
        }
        if !self.labels && self.sandbox.is_empty() {
            return Err(ConfigError::Invalid(
                "labels = false and no [[sandbox]]: nothing to watch".into(),
            ));
        }
        Ok(())
    }

    /// Does a label-selected container also carry `require-label`?
    pub fn required_label_matches(
        &self,
        labels: &std::collections::HashMap<String, String>,
    ) -> bool {
        let Some(req) = &self.require_label else {
            return true;
        };
        match req.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(req.as_str()),
        }
    }

    pub fn interval(&self) -> Option<Duration> {
        secs("interval", self.interval).ok().flatten()
    }

    pub fn full_interval(&self) -> Option<Duration> {
        secs("full-interval", self.full_interval).ok().flatten()
    }

    pub fn timeout(&self) -> Option<Duration> {
        secs("timeout", self.timeout).ok().flatten()
    }

    pub fn shutdown_grace(&self) -> Option<Duration> {
        secs("shutdown-grace", self.shutdown_grace).ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses() {
        let c = WatchConfig::parse(
            r#"
interval = 2.5
full-interval = 120
max-concurrent = 2
labels = false
[policy]
max-repairs = 3
window = 20
backoff-initial = 1
backoff-max = 4
[[sandbox]]
name = "a"
plugin = "openclaw"
settings = { host-port = "18790" }
"#,
        )
        .unwrap();
        assert_eq!(c.interval(), Some(Duration::from_millis(2500)));
        assert_eq!(c.full_interval(), Some(Duration::from_secs(120)));
        assert_eq!(c.policy.max_repairs, 3);
        assert_eq!(c.sandbox[0].settings["host-port"], "18790");
    }

    #[test]
    fn empty_config_watches_labels_with_defaults() {
        let c = WatchConfig::parse("").unwrap();
        assert!(c.labels);
        assert_eq!(c.policy, PolicyConfig::default());
    }

    #[test]
    fn a_config_that_is_not_a_small_regular_file_is_refused_at_once() {
        let dir = std::env::temp_dir().join(format!("runner-config-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("watch.toml");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = WatchConfig::load(&fifo).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "watch config {} is a FIFO, not a regular file",
                fifo.display()
            )
        );
        let big = dir.join("big.toml");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_CONFIG_BYTES + 1)
            .unwrap();
        let err = WatchConfig::load(&big).unwrap_err().to_string();
        assert!(err.contains("larger than the 1 MiB limit"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn mistakes_are_refused() {
        for bad in [
            "intervall = 3",
            "interval = -1",
            "full-interval = 0",
            "max-concurrent = 0",
            "labels = false",
            "[policy]\nmax-repairs = 0",
            "[[sandbox]]\nname = \"a\"\nplugin = \"x\"\n[[sandbox]]\nname = \"a\"\nplugin = \"x\"",
            "[[sandbox]]\nname = \"\"\nplugin = \"x\"",
        ] {
            assert!(WatchConfig::parse(bad).is_err(), "accepted: {bad}");
        }
    }
}
