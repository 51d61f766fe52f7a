//! Watch's decisions end to end (events → worker → pass → policy) against
//! an engine in memory, on tokio's paused clock: time only moves when every
//! task waits, so minutes of backoff take no wall time.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backend::events::EventAction;
use crate::forward::ForwardRegistry;

use super::config::WatchConfig;
use super::metrics::Metrics;
use super::policy::RunResult;
use super::supervisor::{Watcher, supervise};
use super::testing::{CountingRecover, MemoryEngine};
use super::{PLUGIN_LABEL, WatchOptions};

const SB: &str = "sb";
/// Long enough that no interval pass happens inside a scenario unless it
/// waits for one.
const INTERVAL: Duration = Duration::from_secs(3600);

struct Harness {
    engine: Arc<MemoryEngine>,
    recover: Arc<CountingRecover>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Harness {
    /// A watcher over one running, labelled sandbox, after its first
    /// (discovery) pass.
    async fn start(answer: RunResult) -> Harness {
        let engine = Arc::new(MemoryEngine::default());
        engine.add_running(SB, &[(PLUGIN_LABEL, "openclaw")]);
        let recover = Arc::new(CountingRecover::answering(answer));
        let (stop, shutdown) = watch::channel(false);
        let opts = WatchOptions {
            config: WatchConfig::default(),
            interval: INTERVAL,
            full_interval: INTERVAL,
            max_concurrent: 4,
            timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(1),
        };
        let watcher = Arc::new(Watcher::new(
            engine.clone(),
            recover.clone(),
            Arc::new(ForwardRegistry::new()),
            Arc::new(Metrics::default()),
            opts,
            shutdown,
        ));
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(supervise(watcher, Some(ready_tx)));
        ready_rx.await.expect("the watcher subscribed");
        let h = Harness {
            engine,
            recover,
            stop,
            task,
        };
        h.settle().await;
        assert_eq!(h.recover.reasons(), ["discovered"]);
        h
    }

    /// Let every task run until all of them wait (a short step of the
    /// paused clock).
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Advance the paused clock by `d`, letting due work run on the way.
    async fn advance(&self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(1).min(until - Instant::now())).await;
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.expect("the watcher ends cleanly");
    }
}

#[tokio::test(start_paused = true)]
async fn start_event_runs_one_urgent_pass() {
    let h = Harness::start(RunResult::Healthy).await;
    h.engine.emit(SB, EventAction::Start);
    h.settle().await;
    assert_eq!(h.recover.reasons(), ["discovered", "start"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn sandbox_stopped_on_purpose_is_never_repaired() {
    let h = Harness::start(RunResult::Healthy).await;
    h.engine.emit(SB, EventAction::Kill);
    h.engine.emit(SB, EventAction::Die);
    // Interval passes look at it again and again, and leave it alone.
    h.advance(INTERVAL * 3).await;
    assert_eq!(h.recover.reasons(), ["discovered"]);
    // An operator's start: watched again.
    h.engine.emit(SB, EventAction::Start);
    h.settle().await;
    assert_eq!(h.recover.reasons(), ["discovered", "start"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn docker_restart_event_burst_coalesces_into_one_pass() {
    let h = Harness::start(RunResult::Healthy).await;
    for action in [
        EventAction::Kill,
        EventAction::Die,
        EventAction::Stop,
        EventAction::Start,
        EventAction::Restart,
    ] {
        h.engine.emit(SB, action);
    }
    h.advance(Duration::from_secs(60)).await;
    assert_eq!(h.recover.reasons(), ["discovered", "start"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn triggers_during_a_pass_coalesce_into_one_more_pass() {
    let h = Harness::start(RunResult::Healthy).await;
    h.recover.hold_next(1);
    h.engine.emit(SB, EventAction::Start);
    h.settle().await;
    for _ in 0..3 {
        h.engine.emit(SB, EventAction::Health { healthy: false });
    }
    h.settle().await;
    assert_eq!(h.recover.reasons(), ["discovered", "start"]);
    h.recover.release();
    h.advance(Duration::from_secs(60)).await;
    assert_eq!(h.recover.reasons(), ["discovered", "start", "unhealthy"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn reconnect_replays_from_the_last_event_and_probes_again() {
    let h = Harness::start(RunResult::Healthy).await;
    h.engine.emit(SB, EventAction::Start);
    h.settle().await;
    h.engine.restart(&[]);
    h.advance(Duration::from_secs(5)).await;
    // Resubscribed from the start it saw (which the engine replays and the
    // watcher drops as seen), then everything is probed at once.
    let subs = h.engine.subscriptions();
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert!(subs[1] > subs[0]);
    assert_eq!(h.recover.reasons(), ["discovered", "start", "resubscribed"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn events_missed_during_a_disconnect_are_replayed() {
    let h = Harness::start(RunResult::Healthy).await;
    h.engine
        .restart(&[(SB, EventAction::Die), (SB, EventAction::Start)]);
    h.advance(Duration::from_secs(5)).await;
    // The replayed start wins over the probe-everything trigger: one pass.
    assert_eq!(h.recover.reasons(), ["discovered", "start"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn engine_restart_mid_pass_abandons_it_and_repairs_once_after_the_replay() {
    let h = Harness::start(RunResult::Healthy).await;
    h.recover.hold_next(1);
    h.engine.emit(SB, EventAction::Start);
    h.settle().await;
    assert_eq!(h.recover.reasons(), ["discovered", "start"]);
    // The engine goes away under the pass and restarts the container.
    h.engine
        .restart(&[(SB, EventAction::Die), (SB, EventAction::Start)]);
    h.advance(Duration::from_secs(60)).await;
    let calls = h.recover.calls();
    assert_eq!(
        calls.iter().map(|c| c.reason).collect::<Vec<_>>(),
        ["discovered", "start", "start"]
    );
    assert!(
        !calls[1].finished.load(Ordering::SeqCst),
        "the pass under the restart ran on"
    );
    assert!(calls[2].finished.load(Ordering::SeqCst));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stale_die_delivered_after_a_start_does_not_abandon_its_pass() {
    let h = Harness::start(RunResult::Healthy).await;
    h.recover.hold_next(1);
    h.engine.emit(SB, EventAction::Start);
    h.settle().await;
    h.engine
        .emit_stale(SB, EventAction::Die, Duration::from_millis(5));
    h.settle().await;
    h.recover.release();
    h.advance(Duration::from_secs(60)).await;
    let calls = h.recover.calls();
    assert_eq!(calls.len(), 2, "{:?}", h.recover.reasons());
    assert!(calls[1].finished.load(Ordering::SeqCst));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn duplicate_starts_during_a_pass_run_one_more_pass() {
    let h = Harness::start(RunResult::Healthy).await;
    h.recover.hold_next(1);
    h.engine.emit(SB, EventAction::Restart);
    h.settle().await;
    h.engine.emit(SB, EventAction::Start);
    h.engine.emit(SB, EventAction::Start);
    h.settle().await;
    h.recover.release();
    h.advance(Duration::from_secs(60)).await;
    assert_eq!(h.recover.reasons(), ["discovered", "restart", "start"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn crash_loop_backs_off_then_quarantines_until_an_operator_restart() {
    let h = Harness::start(RunResult::Repaired {
        healthy_after: false,
    })
    .await;
    h.advance(Duration::from_secs(1000)).await;
    let calls = h.recover.calls();
    let gaps: Vec<u64> = calls
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs())
        .collect();
    // Retried every 10 s until 5 repairs fill the minute, then rounds of
    // 10 s doubling to 5 min (each spaced from the last repair, and never
    // more than 5 in a minute), then quarantine.
    assert_eq!(gaps, [10, 10, 10, 10, 20, 20, 40, 80, 160, 300]);
    h.advance(INTERVAL * 3).await;
    assert_eq!(
        h.recover.calls().len(),
        calls.len(),
        "repaired in quarantine"
    );
    // A policy restart (die → start) does not lift it...
    h.engine.emit(SB, EventAction::Die);
    h.engine.emit(SB, EventAction::Start);
    h.settle().await;
    assert_eq!(h.recover.calls().len(), calls.len());
    // ...an operator's stop → start does.
    h.recover.answer(RunResult::Healthy);
    h.engine.emit(SB, EventAction::Stop);
    h.engine.emit(SB, EventAction::Die);
    h.engine.emit(SB, EventAction::Start);
    h.settle().await;
    assert_eq!(h.recover.reasons().last(), Some(&"start"));
    assert_eq!(h.recover.calls().len(), calls.len() + 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn deterministic_failure_quarantines_after_one_attempt_until_the_next_start() {
    let h = Harness::start(RunResult::Deterministic).await;
    h.advance(INTERVAL * 3).await;
    assert_eq!(h.recover.reasons(), ["discovered"]);
    h.engine.emit(SB, EventAction::Die);
    h.engine.emit(SB, EventAction::Start);
    h.settle().await;
    assert_eq!(h.recover.reasons(), ["discovered", "start"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn destroyed_sandbox_is_no_longer_watched() {
    let h = Harness::start(RunResult::Healthy).await;
    h.engine.emit(SB, EventAction::Die);
    h.engine.emit(SB, EventAction::Destroy);
    h.advance(INTERVAL * 2).await;
    assert_eq!(h.recover.reasons(), ["discovered"]);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn sandbox_being_stopped_is_not_repaired_until_the_signal_proves_harmless() {
    let h = Harness::start(RunResult::Healthy).await;
    // A stop in progress: the container still runs, a trigger comes in.
    h.engine.emit(SB, EventAction::Kill);
    h.engine.emit(SB, EventAction::Health { healthy: false });
    h.settle().await;
    assert_eq!(h.recover.reasons(), ["discovered"]);
    // No `die` within the stop grace: it was a signal the gateway survived.
    h.advance(Duration::from_secs(61)).await;
    h.engine.emit(SB, EventAction::Health { healthy: false });
    h.settle().await;
    assert_eq!(h.recover.reasons(), ["discovered", "unhealthy"]);
    h.stop().await;
}
