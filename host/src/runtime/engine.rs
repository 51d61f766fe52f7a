//! The one wasmtime [`Engine`] of the process and its epoch ticker.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use wasmtime::{Config, Engine};

/// Epoch tick period: the granularity of plugin deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How often a parked ticker looks whether its engine is gone.
const PARKED_CHECK: Duration = Duration::from_secs(1);

/// Build the engine: component model, async host calls, epoch interruption.
/// The ticker must be [`EpochTicker::running`] for every call with a deadline.
pub fn build() -> wasmtime::Result<(Engine, EpochTicker)> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // A plugin is small; a deep recursion is a bug, so keep stacks modest.
    config.max_wasm_stack(1 << 20);
    config.async_stack_size(2 << 20);
    let engine = Engine::new(&config)?;
    let weak = engine.weak();
    let ticker = EpochTicker::start(move || match weak.upgrade() {
        Some(engine) => {
            engine.increment_epoch();
            true
        }
        None => false,
    });
    Ok((engine, ticker))
}

/// Advances the engine's epoch every [`EPOCH_TICK`], but only while a plugin
/// call is in flight: an idle `runner watch` would otherwise wake 100 times
/// a second for nothing (~10 % of its idle CPU with 200 sandboxes, perf).
/// Deadlines stay exact, because a store's deadline counts ticks from the
/// epoch at its call's start and the ticker runs for the whole call.
#[derive(Clone)]
pub struct EpochTicker {
    state: Arc<TickerState>,
}

struct TickerState {
    calls: Mutex<usize>,
    wake: Condvar,
}

/// Keeps the ticker running while held.
pub struct Ticking {
    state: Arc<TickerState>,
}

impl TickerState {
    fn calls(&self) -> MutexGuard<'_, usize> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl EpochTicker {
    /// A thread that calls `tick` every [`EPOCH_TICK`] while any
    /// [`Ticking`] is held, and ends once `tick` returns false (its engine
    /// is gone: the thread holds only a weak reference).
    fn start(tick: impl Fn() -> bool + Send + 'static) -> Self {
        let state = Arc::new(TickerState {
            calls: Mutex::new(0),
            wake: Condvar::new(),
        });
        let shared = state.clone();
        std::thread::Builder::new()
            .name("runner-epoch".into())
            .spawn(move || {
                loop {
                    let mut calls = shared.calls();
                    while *calls == 0 {
                        calls = match shared.wake.wait_timeout(calls, PARKED_CHECK) {
                            Ok((guard, _)) => guard,
                            Err(p) => p.into_inner().0,
                        };
                        if *calls == 0 && Arc::strong_count(&shared) == 1 {
                            return; // every EpochTicker handle is gone
                        }
                    }
                    drop(calls);
                    if !tick() {
                        return;
                    }
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .expect("spawn epoch ticker thread");
        Self { state }
    }

    /// Ticks until the returned guard is dropped.
    pub fn running(&self) -> Ticking {
        let mut calls = self.state.calls();
        *calls += 1;
        if *calls == 1 {
            self.state.wake.notify_one();
        }
        Ticking {
            state: self.state.clone(),
        }
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        *self.state.calls() -= 1;
    }
}

/// Epoch ticks for a deadline, rounded up, at least one.
pub fn ticks_for(deadline: Duration) -> u64 {
    let tick = EPOCH_TICK.as_millis().max(1);
    (deadline.as_millis().div_ceil(tick)).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    fn counting() -> (EpochTicker, Arc<AtomicUsize>) {
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        let ticker = EpochTicker::start(move || {
            t.fetch_add(1, Ordering::SeqCst);
            true
        });
        (ticker, ticks)
    }

    fn wait_for_ticks(ticks: &AtomicUsize, at_least: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while ticks.load(Ordering::SeqCst) < at_least {
            assert!(Instant::now() < deadline, "the ticker never ticked");
            std::thread::sleep(EPOCH_TICK);
        }
    }

    #[test]
    fn the_ticker_ticks_only_while_a_call_holds_it() {
        let (ticker, ticks) = counting();
        std::thread::sleep(EPOCH_TICK * 10);
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            0,
            "ticked with no call in flight"
        );

        let call = ticker.running();
        let nested = ticker.running();
        wait_for_ticks(&ticks, 3);
        drop(call);
        // One call still in flight: still ticking.
        let now = ticks.load(Ordering::SeqCst);
        wait_for_ticks(&ticks, now + 2);
        drop(nested);
        // At most the tick already under way lands after the last call ends.
        let parked = ticks.load(Ordering::SeqCst);
        std::thread::sleep(EPOCH_TICK * 10);
        assert!(ticks.load(Ordering::SeqCst) <= parked + 1);
    }

    #[test]
    fn the_ticker_thread_ends_with_its_engine() {
        let alive = Arc::new(AtomicUsize::new(1));
        let flag = alive.clone();
        let ticker = EpochTicker::start(move || flag.load(Ordering::SeqCst) == 1);
        let _call = ticker.running();
        alive.store(0, Ordering::SeqCst);
        // Once the thread has returned, only `ticker` and `_call` hold it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&ticker.state) > 2 {
            assert!(Instant::now() < deadline, "the ticker thread did not end");
            std::thread::sleep(EPOCH_TICK);
        }
    }

    #[test]
    fn deadline_rounds_up_to_whole_ticks() {
        assert_eq!(ticks_for(Duration::from_millis(0)), 1);
        assert_eq!(ticks_for(Duration::from_millis(10)), 1);
        assert_eq!(ticks_for(Duration::from_millis(11)), 2);
        assert_eq!(ticks_for(Duration::from_secs(30)), 3000);
    }
}
