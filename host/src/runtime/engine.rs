//! The one wasmtime [`Engine`] of the process and its epoch ticker.

use std::time::Duration;

use wasmtime::{Config, Engine};

/// Epoch tick period: the granularity of plugin deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Build the engine: component model, async host calls, epoch interruption.
pub fn build() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // A plugin is small; a deep recursion is a bug, so keep stacks modest.
    config.max_wasm_stack(1 << 20);
    config.async_stack_size(2 << 20);
    let engine = Engine::new(&config)?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// Advance the epoch every [`EPOCH_TICK`] until the engine is dropped. A
/// weak reference keeps the thread from holding the engine alive.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("runner-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn epoch ticker thread");
}

/// Epoch ticks for a deadline, rounded up, at least one.
pub fn ticks_for(deadline: Duration) -> u64 {
    let tick = EPOCH_TICK.as_millis().max(1);
    (deadline.as_millis().div_ceil(tick)).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_rounds_up_to_whole_ticks() {
        assert_eq!(ticks_for(Duration::from_millis(0)), 1);
        assert_eq!(ticks_for(Duration::from_millis(10)), 1);
        assert_eq!(ticks_for(Duration::from_millis(11)), 2);
        assert_eq!(ticks_for(Duration::from_secs(30)), 3000);
    }
}
