//! Host bindings generated from `wit/v0.1`. Every import is async so host
//! calls can do I/O without blocking the executor.

wasmtime::component::bindgen!({
    path: "../wit/v0.1",
    world: "agent-plugin",
    imports: { default: async },
    exports: { default: async },
});

pub use runner::plugin::types::{
    CapError, Health, Kv, LinkReport, LinkSpec, PluginInfo, ProcessId, RepairOutcome, SettingSpec,
    Target,
};
