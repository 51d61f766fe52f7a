//! Typed runtime errors. [`LoadError`] means the plugin could not be used at
//! all (bad path, not a component, wrong contract version): a usage error,
//! nothing was touched. [`PluginFault`] means the plugin ran and misbehaved.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin file {0} does not exist")]
    NotFound(PathBuf),
    /// Not a regular file, too large, or unreadable; `cause` follows the
    /// path: "is a FIFO, not a regular file".
    #[error("plugin file {} {cause}", path.display())]
    Unreadable { path: PathBuf, cause: String },
    #[error("unknown plugin '{name}'; built-ins: {builtins}; or pass a path to a .wasm component")]
    UnknownBuiltin { name: String, builtins: String },
    #[error("{0} is not a WebAssembly file (no \\0asm header)")]
    NotWasm(String),
    #[error(
        "{0} is a core WebAssembly module, not a component; build it for wasm32-wasip2 (cargo build --target wasm32-wasip2)"
    )]
    CoreModule(String),
    #[error("{source_name} is not a valid WebAssembly component: {cause}")]
    Malformed { source_name: String, cause: String },
    #[error(
        "{source_name} does not export runner:plugin/plugin (exports: {exports}); is it a runner plugin?"
    )]
    NotAPlugin {
        source_name: String,
        exports: String,
    },
    #[error(
        "{source_name} was built against runner:plugin@{found}, but this runner supports runner:plugin@{supported}; rebuild the plugin against wit/v{supported_dir} or use a runner that supports {found}"
    )]
    UnsupportedWit {
        source_name: String,
        found: String,
        supported: String,
        supported_dir: String,
    },
    #[error("{source_name} failed to compile: {cause}")]
    Compile { source_name: String, cause: String },
    #[error("{source_name} does not match this runner's plugin world: {cause}")]
    Link { source_name: String, cause: String },
}

/// A plugin misbehaved while running. Exit code 4 at the CLI.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PluginFault {
    #[error("plugin {plugin} exceeded its {limit_ms} ms deadline in {function}")]
    Deadline {
        plugin: String,
        function: String,
        limit_ms: u64,
    },
    #[error("plugin {plugin} hit its memory limit of {limit_bytes} bytes in {function}")]
    MemoryLimit {
        plugin: String,
        function: String,
        limit_bytes: usize,
    },
    #[error("plugin {plugin} trapped in {function}: {detail}")]
    Trap {
        plugin: String,
        function: String,
        detail: String,
    },
    #[error("plugin {plugin} violated the contract in {function}: {detail}")]
    Contract {
        plugin: String,
        function: String,
        detail: String,
    },
}

impl PluginFault {
    /// Short machine-readable kind for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginFault::Deadline { .. } => "deadline",
            PluginFault::MemoryLimit { .. } => "memory-limit",
            PluginFault::Trap { .. } => "trap",
            PluginFault::Contract { .. } => "contract",
        }
    }
}
