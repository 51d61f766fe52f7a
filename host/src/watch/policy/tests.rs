//! The policy's decisions over time, with injected times.

use super::*;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn policy() -> Policy {
    Policy::new(PolicyConfig::default())
}

fn broken() -> RunResult {
    RunResult::Repaired {
        healthy_after: false,
    }
}

/// Repairs whenever allowed, at the earliest allowed time, until
/// quarantined; returns the repair times.
fn crash_loop(p: &mut Policy, start: Duration, limit: usize) -> Vec<Duration> {
    let mut t = start;
    let mut times = Vec::new();
    for _ in 0..limit {
        match p.decide(t, Observed::Running) {
            Decision::Repair => {
                times.push(t);
                if let Transition::Quarantined { .. } = p.record(t, broken()) {
                    break;
                }
                t += s(1);
            }
            Decision::Defer { at } => {
                assert!(at > t, "defer to the past: {at:?} <= {t:?}");
                t = at;
            }
            Decision::Skip(r) => panic!("unexpected skip {r:?}"),
        }
    }
    times
}

#[test]
fn defaults_allow_five_repairs_a_minute_then_back_off_from_ten_seconds_to_five_minutes() {
    let c = PolicyConfig::default();
    assert_eq!((c.max_repairs, c.window), (5, s(60)));
    assert_eq!((c.backoff_initial, c.backoff_max), (s(10), s(300)));
    assert_eq!(c.reset_after, s(600));
    let delays: Vec<u64> = (1..=7).map(|r| c.delay(r).as_secs()).collect();
    assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
    assert_eq!(c.rounds_to_max(), 6);
    c.validate().unwrap();
}

#[test]
fn invalid_configs_are_refused() {
    let bad = |f: fn(&mut PolicyConfig)| {
        let mut c = PolicyConfig::default();
        f(&mut c);
        c.validate().unwrap_err()
    };
    assert_eq!(bad(|c| c.max_repairs = 0), PolicyError::NoRepairs);
    assert_eq!(bad(|c| c.window = Duration::ZERO), PolicyError::NoWindow);
    assert_eq!(bad(|c| c.backoff_initial = s(400)), PolicyError::Backoff);
    assert_eq!(bad(|c| c.max_rounds = Some(0)), PolicyError::NoRounds);
}

#[test]
fn a_single_repair_is_immediate_and_not_a_loop() {
    let mut p = policy();
    assert_eq!(p.decide(s(100), Observed::Running), Decision::Repair);
    assert_eq!(
        p.record(
            s(100),
            RunResult::Repaired {
                healthy_after: true
            }
        ),
        Transition::None
    );
    assert_eq!(p.decide(s(101), Observed::Running), Decision::Repair);
    assert_eq!(p.round(), 0);
}

#[test]
fn healthy_probes_never_count() {
    let mut p = policy();
    for i in 0..1000 {
        assert_eq!(p.decide(s(i), Observed::Running), Decision::Repair);
        assert_eq!(p.record(s(i), RunResult::Healthy), Transition::None);
    }
    assert_eq!(p.repairs_in_window(), 0);
}

#[test]
fn window_fills_then_backoff_doubles_then_quarantine() {
    let mut p = policy();
    let times = crash_loop(&mut p, s(1000), 100);
    // 5 quick repairs fill the window, then rounds 1..=6 (10 s .. 300 s),
    // then the repair after the 300 s round quarantines.
    let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(gaps, [1, 1, 1, 1, 56, 20, 40, 80, 160, 300]);
    assert!(p.is_quarantined());
    assert_eq!(
        p.decide(s(100_000), Observed::Running),
        Decision::Skip(SkipReason::Quarantined)
    );
}

#[test]
fn never_more_than_max_repairs_in_any_window() {
    for max in 1..=6 {
        let cfg = PolicyConfig {
            max_repairs: max,
            window: s(60),
            backoff_initial: s(2),
            backoff_max: s(16),
            ..PolicyConfig::default()
        };
        let mut p = Policy::new(cfg);
        let times = crash_loop(&mut p, s(0), 500);
        for (i, &t) in times.iter().enumerate() {
            let in_window = times[i..].iter().filter(|&&u| u - t < s(60)).count();
            assert!(in_window <= max as usize, "max {max}: {times:?}");
        }
    }
}

#[test]
fn max_rounds_quarantines_early() {
    let mut p = Policy::new(PolicyConfig {
        max_rounds: Some(2),
        ..PolicyConfig::default()
    });
    let times = crash_loop(&mut p, s(0), 100);
    // 5 in the window, then round 1 and round 2 end broken → quarantine.
    assert_eq!(times.len(), 7);
    assert!(p.is_quarantined());
}

#[test]
fn ten_minutes_healthy_forgets_the_loop() {
    let mut p = policy();
    for i in 0..5 {
        assert_eq!(p.decide(s(i), Observed::Running), Decision::Repair);
        p.record(
            s(i),
            RunResult::Repaired {
                healthy_after: true,
            },
        );
    }
    assert_eq!(p.round(), 1);
    // Healthy probes every 30 s: not yet after 9 min, reset at 10 min.
    let mut reset_at = None;
    for k in 1..=30 {
        let t = s(4 + 30 * k);
        if p.record(t, RunResult::Healthy) == Transition::Reset {
            reset_at = Some(t);
            break;
        }
    }
    assert_eq!(reset_at, Some(s(604)));
    assert_eq!(p.round(), 0);
}

#[test]
fn a_repair_interrupts_the_healthy_stretch() {
    let mut p = policy();
    for i in 0..5 {
        p.decide(s(i), Observed::Running);
        p.record(s(i), broken());
    }
    p.record(s(100), RunResult::Healthy);
    p.record(s(400), RunResult::Inconclusive);
    assert_eq!(p.record(s(500), RunResult::Healthy), Transition::None);
    assert_eq!(p.record(s(1000), RunResult::Healthy), Transition::None);
    assert_eq!(p.record(s(1100), RunResult::Healthy), Transition::Reset);
}

#[test]
fn stop_then_die_is_never_repaired() {
    let mut p = policy();
    p.on_lifecycle(s(10), Lifecycle::StopRequested);
    // Being stopped: still running during the stop timeout.
    assert_eq!(
        p.decide(s(11), Observed::Running),
        Decision::Skip(SkipReason::Stopping)
    );
    p.on_lifecycle(s(12), Lifecycle::Died);
    for t in [13, 100, 10_000] {
        assert_eq!(
            p.decide(s(t), Observed::NotRunning),
            Decision::Skip(SkipReason::StoppedOnPurpose)
        );
    }
    // `docker start` by an operator: watched again.
    p.on_lifecycle(s(20_000), Lifecycle::Started);
    assert_eq!(p.decide(s(20_000), Observed::Running), Decision::Repair);
}

#[test]
fn exited_by_itself_without_restart_policy_is_left_alone() {
    let mut p = policy();
    p.on_lifecycle(s(1), Lifecycle::Died);
    assert_eq!(
        p.decide(s(2), Observed::NotRunning),
        Decision::Skip(SkipReason::NotRunning)
    );
    assert_eq!(
        p.decide(s(2), Observed::Restarting),
        Decision::Skip(SkipReason::RestartPending)
    );
}

#[test]
fn policy_restart_die_then_start_is_repaired() {
    let mut p = policy();
    p.on_lifecycle(s(1), Lifecycle::Died);
    p.on_lifecycle(s(2), Lifecycle::Started);
    assert_eq!(p.decide(s(2), Observed::Running), Decision::Repair);
}

#[test]
fn docker_restart_event_sequence_is_repaired() {
    // What Docker reports for `docker restart`: kill → die → stop → start
    // → restart.
    let mut p = policy();
    p.on_lifecycle(s(1), Lifecycle::StopRequested);
    p.on_lifecycle(s(1), Lifecycle::Died);
    p.on_lifecycle(s(1), Lifecycle::StopRequested);
    p.on_lifecycle(s(2), Lifecycle::Started);
    assert_eq!(p.decide(s(2), Observed::Running), Decision::Repair);
}

#[test]
fn a_signal_that_does_not_stop_expires() {
    let mut p = policy();
    p.on_lifecycle(s(10), Lifecycle::StopRequested); // docker kill -s HUP
    assert_eq!(
        p.decide(s(30), Observed::Running),
        Decision::Skip(SkipReason::Stopping)
    );
    assert_eq!(p.decide(s(70), Observed::Running), Decision::Repair);
}

#[test]
fn running_after_a_missed_start_is_believed() {
    let mut p = policy();
    p.on_lifecycle(s(1), Lifecycle::StopRequested);
    p.on_lifecycle(s(1), Lifecycle::Died);
    // The start event fell into a stream gap; the engine says running.
    assert_eq!(p.decide(s(5), Observed::Running), Decision::Repair);
}

#[test]
fn missing_program_quarantines_after_one_attempt_until_a_start_or_new_settings() {
    let mut p = policy();
    assert_eq!(p.decide(s(0), Observed::Running), Decision::Repair);
    assert_eq!(
        p.record(s(1), RunResult::Deterministic),
        Transition::QuarantinedUntilChange
    );
    // No second attempt, however long it stays like that.
    for t in [2, 60, 600, 6000] {
        assert_eq!(
            p.decide(s(t), Observed::Running),
            Decision::Skip(SkipReason::Quarantined)
        );
    }
    // A container start (e.g. `docker restart`) may bring what was missing.
    p.on_lifecycle(s(6001), Lifecycle::Died);
    p.on_lifecycle(s(6002), Lifecycle::Started);
    assert_eq!(p.decide(s(6003), Observed::Running), Decision::Repair);
    assert_eq!(
        p.record(s(6004), RunResult::Deterministic),
        Transition::QuarantinedUntilChange
    );
    // New settings lift it too; a crash-loop quarantine they do not.
    assert!(p.on_settings_changed());
    assert_eq!(p.decide(s(6005), Observed::Running), Decision::Repair);
    let mut looped = policy();
    crash_loop(&mut looped, s(0), 100);
    assert!(looped.is_quarantined());
    assert!(!looped.on_settings_changed());
    assert!(looped.is_quarantined());
}

#[test]
fn operator_stop_start_lifts_quarantine() {
    let mut p = policy();
    crash_loop(&mut p, s(0), 100);
    assert!(p.is_quarantined());
    // A policy restart (die → start) does not.
    p.on_lifecycle(s(5000), Lifecycle::Died);
    p.on_lifecycle(s(5001), Lifecycle::Started);
    assert!(p.is_quarantined());
    p.on_lifecycle(s(6000), Lifecycle::StopRequested);
    p.on_lifecycle(s(6000), Lifecycle::Died);
    p.on_lifecycle(s(6100), Lifecycle::Started);
    assert!(!p.is_quarantined());
    assert_eq!(p.decide(s(6100), Observed::Running), Decision::Repair);
}

#[test]
fn destroy_forgets_the_stop() {
    let mut p = policy();
    p.on_lifecycle(s(1), Lifecycle::StopRequested);
    p.on_lifecycle(s(1), Lifecycle::Died);
    p.on_lifecycle(s(2), Lifecycle::Destroyed);
    assert_eq!(
        p.decide(s(3), Observed::NotRunning),
        Decision::Skip(SkipReason::NotRunning)
    );
}

// Clock skew, after supervisord's *_in_future tests.

#[test]
fn last_repair_in_the_future_does_not_stretch_the_delay() {
    let mut p = policy();
    for i in 0..5 {
        p.decide(s(10_000 + i), Observed::Running);
        p.record(s(10_000 + i), broken());
    }
    // The clock jumps back an hour: the policy keeps its own "now".
    match p.decide(s(10_000 - 3600), Observed::Running) {
        Decision::Defer { at } => {
            assert_eq!(at, s(10_060), "deferred wrongly: {at:?}");
        }
        other => panic!("expected a defer, got {other:?}"),
    }
    // And forward again: allowed once the window has passed.
    assert_eq!(p.decide(s(10_060), Observed::Running), Decision::Repair);
}

#[test]
fn a_stale_event_does_not_rewind_state() {
    let mut p = policy();
    p.on_lifecycle(s(100), Lifecycle::Started);
    // A replayed kill from before the start (since= replay): it is
    // clamped to "now" and so counts as a new stop request...
    p.on_lifecycle(s(50), Lifecycle::StopRequested);
    assert_eq!(
        p.decide(s(101), Observed::Running),
        Decision::Skip(SkipReason::Stopping)
    );
    // ...which expires after stop_grace, never later.
    assert_eq!(p.decide(s(160), Observed::Running), Decision::Repair);
}

#[test]
fn backoff_deadline_in_the_future_after_skew_is_bounded() {
    let mut p = Policy::new(PolicyConfig {
        max_repairs: 1,
        ..PolicyConfig::default()
    });
    p.decide(s(100), Observed::Running);
    assert!(matches!(
        p.record(s(100), broken()),
        Transition::BackingOff { round: 1, .. }
    ));
    // A decision stamped before the last repair (skewed caller clock).
    let d = p.decide(s(10), Observed::Running);
    assert_eq!(d, Decision::Defer { at: s(160) });
    assert_eq!(p.decide(s(160), Observed::Running), Decision::Repair);
}

#[test]
fn window_forgets_old_repairs() {
    let mut p = policy();
    for i in 0..4 {
        p.decide(s(i), Observed::Running);
        p.record(s(i), broken());
    }
    assert_eq!(p.repairs_in_window(), 4);
    assert_eq!(p.decide(s(61), Observed::Running), Decision::Repair);
    assert_eq!(p.repairs_in_window(), 2);
    assert_eq!(p.decide(s(64), Observed::Running), Decision::Repair);
    assert_eq!(p.repairs_in_window(), 0);
}

#[test]
fn config_parses_from_toml_in_seconds() {
    let c: PolicyConfig =
        toml::from_str("max-repairs = 3\nwindow = 20\nbackoff-initial = 0.5\n").unwrap();
    assert_eq!(c.max_repairs, 3);
    assert_eq!(c.window, s(20));
    assert_eq!(c.backoff_initial, Duration::from_millis(500));
    assert_eq!(c.backoff_max, s(300));
    assert!(toml::from_str::<PolicyConfig>("windw = 3").is_err());
}
