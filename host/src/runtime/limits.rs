//! Per-store resource limits that remember whether they were hit, so a trap
//! caused by the memory cap is reported as such (it is not a `Trap` variant).

use wasmtime::ResourceLimiter;

#[derive(Debug)]
pub struct MemoryCap {
    limit: usize,
    hit: bool,
}

impl MemoryCap {
    pub fn new(limit: usize) -> Self {
        Self { limit, hit: false }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn was_hit(&self) -> bool {
        self.hit
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            // Trap instead of returning -1 from memory.grow: allocators treat
            // -1 as "abort" anyway, and a trap is attributed cleanly.
            wasmtime::bail!(
                "memory limit of {} bytes exceeded (wanted {desired})",
                self.limit
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
