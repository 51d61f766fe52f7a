//! Crash-loop accounting: a sliding window of repairs (like systemd's start
//! limit), then backoff rounds of geometric delay (like the kubelet's
//! CrashLoopBackOff), forgotten after a healthy, unrepaired stretch.

use std::collections::VecDeque;
use std::time::Duration;

use super::PolicyConfig;

/// What a repair did to the crash loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Not crash-looping.
    Calm,
    /// The window filled or a round ended broken: round `round` begins.
    BackingOff { round: u32, delay: Duration },
    /// A round at the maximum delay (or the last allowed round) ended
    /// broken: retrying has not helped.
    Exhausted { rounds: u32 },
}

#[derive(Debug, Clone)]
pub(super) struct CrashLoop {
    cfg: PolicyConfig,
    /// Repair times inside the window (at most `max_repairs`).
    repairs: VecDeque<Duration>,
    /// The last repair (kept after it leaves the window: backoff rounds
    /// outlast it).
    last_repair: Option<Duration>,
    /// Backoff round (0 = not crash-looping).
    round: u32,
    /// Since when the sandbox has been healthy without a repair.
    healthy_since: Option<Duration>,
}

impl CrashLoop {
    pub(super) fn new(cfg: PolicyConfig) -> Self {
        Self {
            cfg,
            repairs: VecDeque::new(),
            last_repair: None,
            round: 0,
            healthy_since: None,
        }
    }

    pub(super) fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    pub(super) fn round(&self) -> u32 {
        self.round
    }

    pub(super) fn repairs_in_window(&self) -> usize {
        self.repairs.len()
    }

    /// Drop repairs that left the window by `now`.
    pub(super) fn prune(&mut self, now: Duration) {
        let window = self.cfg.window;
        while let Some(&first) = self.repairs.front() {
            if now.saturating_sub(first) >= window {
                self.repairs.pop_front();
            } else {
                break;
            }
        }
    }

    /// A quarantine was lifted: start over.
    pub(super) fn forget(&mut self) {
        self.round = 0;
        self.repairs.clear();
    }

    /// Anything but a healthy probe ends the healthy stretch.
    pub(super) fn unhealthy(&mut self) {
        self.healthy_since = None;
    }

    /// When the next repair may run (None: now).
    pub(super) fn next_allowed(&self, now: Duration) -> Option<Duration> {
        let mut at = None;
        if self.repairs.len() >= self.cfg.max_repairs as usize
            && let Some(&first) = self.repairs.front()
        {
            at = Some(first + self.cfg.window);
        }
        if self.round > 0
            && let Some(last) = self.last_repair
        {
            let by_backoff = last + self.cfg.delay(self.round);
            at = Some(at.map_or(by_backoff, |a: Duration| a.max(by_backoff)));
        }
        at.filter(|&a| a > now)
    }

    /// A healthy probe at `now`; `true` when it forgot the crash loop.
    pub(super) fn healthy(&mut self, now: Duration) -> bool {
        let since = *self.healthy_since.get_or_insert(now);
        let last_repair = self.last_repair.unwrap_or(since);
        if self.round > 0
            && now.saturating_sub(since) >= self.cfg.reset_after
            && now.saturating_sub(last_repair) >= self.cfg.reset_after
        {
            self.round = 0;
            return true;
        }
        false
    }

    pub(super) fn repaired(&mut self, now: Duration, healthy_after: bool) -> Step {
        self.healthy_since = healthy_after.then_some(now);
        self.repairs.push_back(now);
        self.last_repair = Some(now);
        while self.repairs.len() > self.cfg.max_repairs as usize {
            self.repairs.pop_front();
        }
        let window_full = self.repairs.len() >= self.cfg.max_repairs as usize;
        if self.round == 0 && !window_full {
            return Step::Calm;
        }
        // Crash-looping: a repair during the loop ends the round.
        let exhausted = self.round >= self.cfg.rounds_to_max();
        let capped = self.cfg.max_rounds.is_some_and(|m| self.round >= m);
        if exhausted || capped {
            return Step::Exhausted { rounds: self.round };
        }
        self.round += 1;
        Step::BackingOff {
            round: self.round,
            delay: self.cfg.delay(self.round),
        }
    }
}
