//! What a plugin's [`wasmtime::Store`] holds for one call.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::MemoryCap;
use crate::capabilities::{CapContext, CapsView};

pub struct PluginState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) memory: MemoryCap,
    pub(crate) caps: CapContext,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CapsView for PluginState {
    fn caps(&mut self) -> &mut CapContext {
        &mut self.caps
    }
}
