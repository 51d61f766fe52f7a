//! `runner plugin list` and `runner plugin inspect NAME|PATH`.

use std::process::ExitCode;

use crate::plugins::{PluginSource, builtin_names};
use crate::runtime::{LoadFailure, Plugin, Runtime, RuntimeOptions};

use super::exit;

/// Load a plugin for a command, mapping failures to exit codes with a
/// one-line cause on stderr.
pub async fn load_or_exit(runtime: &Runtime, spec: &str) -> Result<Plugin, ExitCode> {
    let source = PluginSource::parse(spec).map_err(|e| fail(exit::USAGE, &e.to_string()))?;
    runtime.load(&source).await.map_err(|e| match e {
        LoadFailure::Load(e) => fail(exit::USAGE, &e.to_string()),
        LoadFailure::Fault(f) => fail(exit::PLUGIN_FAULT, &f.to_string()),
    })
}

pub fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("runner: {message}");
    ExitCode::from(code)
}

pub fn new_runtime() -> Result<Runtime, ExitCode> {
    Runtime::new(RuntimeOptions::default()).map_err(|e| {
        fail(
            exit::PLUGIN_FAULT,
            &format!("cannot start the plugin runtime: {e:#}"),
        )
    })
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
        println!("{}", serde_json::to_string_pretty(&list).expect("json"));
    } else {
        println!("{:<12} {:<10} {:<8} AGENTS", "NAME", "VERSION", "WIT");
        for p in &rows {
            println!(
                "{:<12} {:<10} {:<8} {}",
                p.info.name,
                p.info.version,
                p.wit_version,
                p.info.agent_kinds.join(",")
            );
        }
    }
    ExitCode::from(exit::HEALTHY)
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
        println!(
            "{}",
            serde_json::to_string_pretty(&plugin_json(&plugin)).expect("json")
        );
        return ExitCode::from(exit::HEALTHY);
    }
    let info = &plugin.info;
    println!("name:         {}", info.name);
    println!("version:      {}", info.version);
    println!("wit:          runner:plugin@{}", plugin.wit_version);
    println!("source:       {}", plugin.source.display_name());
    println!("sha256:       {}", plugin.sha256);
    println!("size:         {} bytes", plugin.size);
    println!("agents:       {}", info.agent_kinds.join(", "));
    println!("capabilities: {}", info.capabilities.join(", "));
    println!("links:");
    println!("  {:<12} (built-in: container running)", "sandbox");
    for link in &info.links {
        let deps = if link.depends_on.is_empty() {
            "sandbox".to_string()
        } else {
            link.depends_on.join(", ")
        };
        println!("  {:<12} {}  [after: {deps}]", link.id, link.summary);
    }
    println!("settings:");
    let width = info.settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
    for s in &info.settings {
        println!(
            "  {:<width$}  = {:<28} {}",
            s.key,
            format!("{:?}", s.default),
            s.description
        );
    }
    ExitCode::from(exit::HEALTHY)
}

fn plugin_json(p: &Plugin) -> serde_json::Value {
    let info = &p.info;
    serde_json::json!({
        "name": info.name,
        "version": info.version,
        "wit": format!("runner:plugin@{}", p.wit_version),
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
