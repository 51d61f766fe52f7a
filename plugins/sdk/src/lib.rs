//! Guest-side SDK for `runner` plugins.
//!
//! A plugin implements [`Plugin`] with agent knowledge only; this crate owns
//! the generated bindings, typed wrappers over the host capabilities, report
//! builders and the probes every agent needs (file owner/mode, process
//! identity, HTTP status), plus the links agents share: [`locks`] (stale
//! lock/pid files, compare-and-delete), [`gateway`] (identity + listener +
//! health, retire-by-identity, launch) and [`forward`]; and pure helpers:
//! [`json5`] (span-keeping reader and minimal text patcher), [`shell_env`]
//! (static reading of `sh` env files), [`process`], [`logscan`].
//!
//! ```ignore
//! struct MyAgent;
//! impl runner_plugin_sdk::Plugin for MyAgent { /* describe, probe, repair */ }
//! runner_plugin_sdk::export_plugin!(MyAgent);
//! ```

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.1",
        world: "agent-plugin",
        pub_export_macro: true,
        export_macro_name: "export_plugin_bindings",
        default_bindings_module: "runner_plugin_sdk::bindings",
        generate_all,
        // Lets plugins compare identities, states and reports directly.
        additional_derives: [PartialEq, Eq],
    });
}

pub mod checks;
mod error;
pub mod forward;
pub mod gateway;
pub mod json5;
pub mod launch;
pub mod locks;
pub mod log;
pub mod logscan;
pub mod poll;
pub mod process;
pub mod repair;
pub mod report;
pub mod sandbox;
pub mod settings;
pub mod shell_env;
pub mod supervisor;
pub mod users;

pub use bindings::exports::runner::plugin::plugin::Guest as Plugin;
pub use bindings::runner::plugin::exec::{ExecError, ExecOutput};
pub use bindings::runner::plugin::files::{FileKind, FileStat};
pub use bindings::runner::plugin::forward::{ForwardSpec, ForwardState, ForwardStatus};
pub use bindings::runner::plugin::http::{
    Response as HttpResponse, Route as HttpRoute, WsStep, WsTranscript,
};
pub use bindings::runner::plugin::processes::{Listener, ProcessInfo, Signal};
pub use bindings::runner::plugin::types::{
    CapError, Health, Kv, LinkReport, LinkSpec, PluginInfo, ProcessId, RepairOutcome, SettingSpec,
    Target,
};
pub use error::Error;
pub use report::Report;
pub use sandbox::Sandbox;
pub use settings::Settings;

/// Export a type implementing [`Plugin`] as this component's `plugin`
/// interface.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ident) => {
        $crate::bindings::export_plugin_bindings!($ty with_types_in $crate::bindings);
    };
}

/// Shorthand for a [`Kv`].
pub fn kv(key: impl Into<String>, value: impl ToString) -> Kv {
    Kv {
        key: key.into(),
        value: value.to_string(),
    }
}

/// Shorthand for a [`LinkSpec`].
pub fn link(id: &str, summary: &str, depends_on: &[&str]) -> LinkSpec {
    LinkSpec {
        id: id.into(),
        summary: summary.into(),
        depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
    }
}

/// Static tables of a plugin's chain: (id, summary, depends-on).
pub type LinkTable = [(&'static str, &'static str, &'static [&'static str])];
/// One declared setting: (key, default, description).
pub type SettingRow = (&'static str, &'static str, &'static str);
/// Static table of a plugin's settings.
pub type SettingTable = [SettingRow];

/// A `describe` answer built from static tables, so plugins declare their
/// chain and settings as data.
pub fn plugin_info(
    name: &str,
    version: &str,
    agent_kinds: &[&str],
    links: &LinkTable,
    settings: &SettingTable,
    capabilities: &[&str],
) -> PluginInfo {
    PluginInfo {
        name: name.into(),
        version: version.into(),
        agent_kinds: agent_kinds.iter().map(|k| k.to_string()).collect(),
        links: links
            .iter()
            .map(|(id, summary, deps)| link(id, summary, deps))
            .collect(),
        settings: settings
            .iter()
            .map(|(k, d, desc)| setting(k, d, desc))
            .collect(),
        capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
    }
}

/// Shorthand for a [`SettingSpec`].
pub fn setting(key: &str, default: &str, description: &str) -> SettingSpec {
    SettingSpec {
        key: key.into(),
        default: default.into(),
        description: description.into(),
    }
}

impl ExecError {
    /// Name of the variant, for evidence.
    pub fn kind(&self) -> &'static str {
        match self {
            ExecError::Denied(_) => "denied",
            ExecError::Timeout(_) => "timeout",
            ExecError::Unavailable(_) => "unavailable",
            ExecError::Failed(_) => "failed",
            ExecError::NoSuchBinary(_) => "no-such-binary",
            ExecError::NoSuchUser(_) => "no-such-user",
        }
    }
}

impl CapError {
    /// Name of the variant, for evidence.
    pub fn kind(&self) -> &'static str {
        match self {
            CapError::Denied(_) => "denied",
            CapError::Timeout(_) => "timeout",
            CapError::Unavailable(_) => "unavailable",
            CapError::Failed(_) => "failed",
        }
    }
}
