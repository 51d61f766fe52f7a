//! Shared helpers for the host's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use runner::backend::Backend;
use runner::backend::local::LocalBackend;
use runner::capabilities::{CallKind, CapContext, Grant, Services};
use runner::forward::ForwardRegistry;
use runner::model::{Kv, Target};
use runner::plugins::PluginSource;
use runner::runtime::{Plugin, Runtime, RuntimeOptions};

/// A private state and cache dir for runs of the real `runner` binary,
/// removed on drop.
pub struct CliHome {
    pub state: PathBuf,
}

impl CliHome {
    pub fn new(tag: &str) -> Self {
        let state = std::env::temp_dir().join(format!("runner-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        Self { state }
    }

    /// `runner` with this home's state and cache dirs.
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_runner"));
        cmd.env("RUNNER_STATE_DIR", &self.state)
            .env("RUNNER_CACHE_DIR", self.state.join("cache"));
        cmd
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).output().expect("runner runs")
    }
}

impl Drop for CliHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// Where build.rs put the guest components (built-ins and test plugins).
pub fn wasm(name: &str) -> PathBuf {
    PathBuf::from(env!("RUNNER_WASM_PLUGIN_DIR")).join(format!("{name}.wasm"))
}

/// A runtime with a private compile cache so tests never share state.
pub fn runtime() -> Runtime {
    let cache = std::env::temp_dir().join(format!("runner-test-cache-{}", std::process::id()));
    Runtime::new(RuntimeOptions {
        cache_dir: Some(cache),
        ..RuntimeOptions::default()
    })
    .expect("runtime starts")
}

pub async fn load(runtime: &Runtime, name: &str) -> Plugin {
    runtime
        .load(&PluginSource::File(wasm(name)))
        .await
        .unwrap_or_else(|e| panic!("load {name}: {e}"))
}

pub const LOCAL: &str = "localhost";

pub fn local() -> Arc<dyn Backend> {
    Arc::new(LocalBackend::new(LOCAL))
}

/// A target with the plugin's defaults overridden by `settings`.
pub fn target(plugin: &Plugin, sandbox: &str, settings: &[(&str, &str)]) -> Target {
    let overrides: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Target {
        sandbox: sandbox.to_string(),
        backend: "local".into(),
        settings: runner::settings::resolve(
            &plugin.info.name,
            &plugin.info.settings,
            &[&overrides],
        )
        .expect("settings"),
    }
}

pub fn caps(
    backend: Arc<dyn Backend>,
    plugin: &Plugin,
    sandbox: &str,
    kind: CallKind,
) -> CapContext {
    let grant = Grant::call(plugin.name(), sandbox, kind, &plugin.info.capabilities)
        .repairing(Some("alpha"));
    CapContext::new(
        grant,
        Services {
            backend: Some(backend),
            forwards: Some(Arc::new(ForwardRegistry::new())),
            audit: None,
        },
    )
}

pub fn evidence<'a>(kvs: &'a [Kv], key: &str) -> Option<&'a str> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
}

pub const SECOND: Duration = Duration::from_secs(1);
