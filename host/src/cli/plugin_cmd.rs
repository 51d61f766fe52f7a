//! `runner plugin list` and `runner plugin inspect NAME|PATH`.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::plugins::{PluginSource, builtin_names};
use crate::runtime::component_check::accepted_range;
use crate::runtime::{LoadFailure, Plugin, Runtime, RuntimeOptions};

use super::exit;
use super::output::{self, escape_control as e};

/// Load a plugin for a command: a failure is its exit code (2: nothing to
/// load, 4: it faulted) and a one-line cause.
pub async fn load(runtime: &Runtime, spec: &str) -> Result<Plugin, (u8, String)> {
    let source = PluginSource::parse(spec).map_err(|e| (exit::USAGE, e.to_string()))?;
    runtime.load(&source).await.map_err(|e| match e {
        LoadFailure::Load(e) => (exit::USAGE, e.to_string()),
        LoadFailure::Fault(f) => (exit::PLUGIN_FAULT, f.to_string()),
    })
}

/// [`load`], with the cause printed on stderr.
pub async fn load_or_exit(runtime: &Runtime, spec: &str) -> Result<Plugin, ExitCode> {
    load(runtime, spec)
        .await
        .map_err(|(code, message)| fail(code, &message))
}

/// One line on stderr, then `code`.
pub fn fail(code: u8, message: &str) -> ExitCode {
    output::error_line(message);
    ExitCode::from(code)
}

/// The plugin runtime; a failure is exit 4 and its cause.
pub fn try_new_runtime() -> Result<Runtime, (u8, String)> {
    Runtime::new(RuntimeOptions::default()).map_err(|e| {
        (
            exit::PLUGIN_FAULT,
            format!("cannot start the plugin runtime: {e:#}"),
        )
    })
}

/// [`try_new_runtime`], with the cause printed on stderr.
pub fn new_runtime() -> Result<Runtime, ExitCode> {
    try_new_runtime().map_err(|(code, message)| fail(code, &message))
}

pub async fn list(json: bool) -> ExitCode {
    let runtime = match new_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut rows = Vec::new();
    for name in builtin_names() {
        match load_or_exit(&runtime, name).await {
            Ok(p) => rows.push(p),
            Err(code) => return code,
        }
    }
    if json {
        let list: Vec<_> = rows.iter().map(plugin_json).collect();
        output::print_json(&serde_json::to_string_pretty(&list).expect("json"));
        return ExitCode::from(exit::HEALTHY);
    }
    let mut out = format!("{:<12} {:<10} {:<8} AGENTS\n", "NAME", "VERSION", "WIT");
    for p in &rows {
        let _ = writeln!(
            out,
            "{:<12} {:<10} {:<8} {}",
            e(&p.info.name),
            e(&p.info.version),
            p.wit_version,
            e(&p.info.agent_kinds.join(","))
        );
    }
    output::print_then(&out, exit::HEALTHY)
}

pub async fn inspect(spec: &str, json: bool) -> ExitCode {
    let runtime = match new_runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let plugin = match load_or_exit(&runtime, spec).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    if json {
        output::print_json(&serde_json::to_string_pretty(&plugin_json(&plugin)).expect("json"));
        return ExitCode::from(exit::HEALTHY);
    }
    output::print_then(&inspect_text(&plugin), exit::HEALTHY)
}

/// `plugin inspect` for humans; every string the plugin declared is
/// escaped.
fn inspect_text(plugin: &Plugin) -> String {
    let info = &plugin.info;
    let mut out = String::new();
    let _ = writeln!(out, "name:         {}", e(&info.name));
    let _ = writeln!(out, "version:      {}", e(&info.version));
    let _ = writeln!(out, "wit:          runner:plugin@{}", plugin.wit_version);
    let _ = writeln!(out, "host accepts: runner:plugin {}", accepted_range());
    let _ = writeln!(out, "source:       {}", e(&plugin.source.display_name()));
    let _ = writeln!(out, "sha256:       {}", plugin.sha256);
    let _ = writeln!(out, "size:         {} bytes", plugin.size);
    let _ = writeln!(out, "agents:       {}", e(&info.agent_kinds.join(", ")));
    let _ = writeln!(out, "capabilities: {}", e(&info.capabilities.join(", ")));
    out.push_str("links:\n");
    let _ = writeln!(out, "  {:<12} (built-in: container running)", "sandbox");
    for link in &info.links {
        let deps = if link.depends_on.is_empty() {
            "sandbox".to_string()
        } else {
            link.depends_on.join(", ")
        };
        let _ = writeln!(
            out,
            "  {:<12} {}  [after: {}]",
            e(&link.id),
            e(&link.summary),
            e(&deps)
        );
    }
    out.push_str("settings:\n");
    let width = info.settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
    for s in &info.settings {
        let _ = writeln!(
            out,
            "  {:<width$}  = {:<28} {}",
            e(&s.key),
            format!("{:?}", s.default),
            e(&s.description)
        );
    }
    out
}

fn plugin_json(p: &Plugin) -> serde_json::Value {
    let info = &p.info;
    serde_json::json!({
        "name": info.name,
        "version": info.version,
        "wit": format!("runner:plugin@{}", p.wit_version),
        "wit_accepted": accepted_range(),
        "source": p.source.display_name(),
        "sha256": p.sha256,
        "size": p.size,
        "agent_kinds": info.agent_kinds,
        "capabilities": info.capabilities,
        "links": info.links.iter().map(|l| serde_json::json!({
            "id": l.id, "summary": l.summary, "depends_on": l.depends_on,
        })).collect::<Vec<_>>(),
        "settings": info.settings.iter().map(|s| serde_json::json!({
            "key": s.key, "default": s.default, "description": s.description,
        })).collect::<Vec<_>>(),
    })
}
