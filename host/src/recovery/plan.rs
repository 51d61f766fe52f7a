//! The planner: given the declared chain and the latest probe, what happens
//! next? Pure logic, no I/O, unit-tested.
//!
//! Rules: only `broken` links are repaired, in declared
//! (dependency) order, one at a time, each at most once; a link is repaired
//! only when everything it depends on is healthy; `unknown` never triggers a
//! mutation; the first link that cannot be repaired stops the run and is
//! named as the failing layer.

use std::collections::{HashMap, HashSet};

use crate::model::{Health, LinkReport, LinkSpec};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every link is healthy.
    Done,
    /// Repair this link next.
    Repair(String),
    /// Stop: this link is broken and cannot be repaired (not repairable, or
    /// already repaired once in this run and broken again).
    Blocked { link: String, reason: String },
    /// Stop: this link is unknown, so nothing downstream may be touched.
    Unknown { link: String },
}

/// Decide the next step. `attempted` holds links already repaired in this
/// run.
pub fn next_step(links: &[LinkSpec], reports: &[LinkReport], attempted: &HashSet<String>) -> Step {
    let by_id: HashMap<&str, &LinkReport> = reports.iter().map(|r| (r.id.as_str(), r)).collect();
    let health = |id: &str| by_id.get(id).map_or(Health::Unknown, |r| r.health);
    for link in links {
        match health(&link.id) {
            Health::Healthy => continue,
            Health::Unknown => {
                return Step::Unknown {
                    link: link.id.clone(),
                };
            }
            Health::Broken => {}
        }
        // Declared order puts dependencies first, so any unhealthy
        // dependency was already handled above; this guards plugins whose
        // dependencies are not all earlier in the list.
        if let Some(dep) = link
            .depends_on
            .iter()
            .find(|d| d.as_str() != "sandbox" && health(d) != Health::Healthy)
        {
            return Step::Blocked {
                link: link.id.clone(),
                reason: format!("depends on '{dep}', which is not healthy"),
            };
        }
        let report = by_id[link.id.as_str()];
        if !report.repairable {
            return Step::Blocked {
                link: link.id.clone(),
                reason: format!("not repairable: {}", report.summary),
            };
        }
        if attempted.contains(&link.id) {
            return Step::Blocked {
                link: link.id.clone(),
                reason: format!("still broken after repair: {}", report.summary),
            };
        }
        return Step::Repair(link.id.clone());
    }
    Step::Done
}

/// For `--dry-run`: the broken links a recover would try, in order, as far
/// as the current probe can tell (a link behind an unknown or unrepairable
/// one would not be reached).
pub fn dry_run_plan(links: &[LinkSpec], reports: &[LinkReport]) -> (Vec<String>, Option<Step>) {
    let mut pretend: Vec<LinkReport> = reports.to_vec();
    let mut attempted = HashSet::new();
    let mut plan = Vec::new();
    loop {
        match next_step(links, &pretend, &attempted) {
            Step::Repair(id) => {
                if let Some(r) = pretend.iter_mut().find(|r| r.id == id) {
                    r.health = Health::Healthy;
                }
                attempted.insert(id.clone());
                plan.push(id);
            }
            Step::Done => return (plan, None),
            stop => return (plan, Some(stop)),
        }
    }
}

/// What verification does after one probe of the link it is proving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyStep {
    /// The link is healthy: proven.
    Proven,
    /// Not proven yet: probe again after the backoff.
    Wait,
    /// The link said "still starting" and is now broken with what it
    /// started gone (evidence `gone`), twice in a row: the launched process
    /// died, so polling on until the deadline cannot help. Stop and report
    /// the link's own summary (e.g. the end of the gateway's log).
    GaveUp,
}

/// Verification of one repaired link, fed one probe at a time (pure, so the
/// rules are unit-tested without a sandbox).
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// The link reported "unknown, still starting" (`retry-after-s`) since
    /// the repair.
    was_starting: bool,
    /// Consecutive "broken, gone" probes since it was starting.
    gone_after_start: u32,
}

/// Consecutive "broken, gone" probes after "starting" that end verification
/// (one could be a launcher handing over to the process it started).
const GONE_AFTER_START: u32 = 2;

impl Verification {
    /// `starting`: the link is unknown with a `retry-after-s` hint. `gone`:
    /// a broken link says what was started no longer exists. Any other
    /// broken state (e.g. "alive but no listener past the start grace" on a
    /// loaded machine) is polled on until healthy or the deadline.
    pub fn observe(&mut self, health: Health, starting: bool, gone: bool) -> VerifyStep {
        match health {
            Health::Healthy => VerifyStep::Proven,
            Health::Broken if self.was_starting && gone => {
                self.gone_after_start += 1;
                if self.gone_after_start >= GONE_AFTER_START {
                    VerifyStep::GaveUp
                } else {
                    VerifyStep::Wait
                }
            }
            Health::Unknown | Health::Broken => {
                self.was_starting |= health == Health::Unknown && starting;
                self.gone_after_start = 0;
                VerifyStep::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> Vec<LinkSpec> {
        [
            ("guards", vec![]),
            ("locks", vec!["guards"]),
            ("gateway", vec!["guards", "locks"]),
            ("forward", vec!["gateway"]),
        ]
        .into_iter()
        .map(|(id, deps)| LinkSpec {
            id: id.into(),
            summary: String::new(),
            depends_on: deps.into_iter().map(String::from).collect(),
        })
        .collect()
    }

    fn reports(states: &[(&str, Health, bool)]) -> Vec<LinkReport> {
        states
            .iter()
            .map(|(id, health, repairable)| LinkReport {
                id: id.to_string(),
                health: *health,
                summary: format!("{id} summary"),
                evidence: vec![],
                repairable: *repairable,
            })
            .collect()
    }

    use Health::{Broken, Healthy, Unknown};

    #[test]
    fn healthy_chain_needs_nothing() {
        let r = reports(&[
            ("guards", Healthy, false),
            ("locks", Healthy, false),
            ("gateway", Healthy, false),
            ("forward", Healthy, false),
        ]);
        assert_eq!(next_step(&chain(), &r, &HashSet::new()), Step::Done);
    }

    #[test]
    fn first_broken_link_in_dependency_order_is_repaired_first() {
        let r = reports(&[
            ("guards", Broken, true),
            ("locks", Healthy, false),
            ("gateway", Broken, true),
            ("forward", Broken, true),
        ]);
        assert_eq!(
            next_step(&chain(), &r, &HashSet::new()),
            Step::Repair("guards".into())
        );
    }

    #[test]
    fn unknown_link_stops_before_anything_downstream_is_touched() {
        let r = reports(&[
            ("guards", Healthy, false),
            ("locks", Unknown, false),
            ("gateway", Broken, true),
            ("forward", Healthy, false),
        ]);
        assert_eq!(
            next_step(&chain(), &r, &HashSet::new()),
            Step::Unknown {
                link: "locks".into()
            }
        );
    }

    #[test]
    fn unrepairable_broken_link_is_the_failing_layer() {
        let r = reports(&[
            ("guards", Healthy, false),
            ("locks", Healthy, false),
            ("gateway", Healthy, false),
            ("forward", Broken, false),
        ]);
        match next_step(&chain(), &r, &HashSet::new()) {
            Step::Blocked { link, reason } => {
                assert_eq!(link, "forward");
                assert!(reason.contains("not repairable"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_link_is_never_repaired_twice_in_one_run() {
        let r = reports(&[
            ("guards", Broken, true),
            ("locks", Healthy, false),
            ("gateway", Healthy, false),
            ("forward", Healthy, false),
        ]);
        let attempted = HashSet::from(["guards".to_string()]);
        assert!(
            matches!(next_step(&chain(), &r, &attempted), Step::Blocked { link, .. } if link == "guards")
        );
    }

    #[test]
    fn dependency_declared_later_blocks_instead_of_repairing() {
        let mut links = chain();
        links[0].depends_on = vec!["forward".into()];
        let r = reports(&[
            ("guards", Broken, true),
            ("locks", Healthy, false),
            ("gateway", Healthy, false),
            ("forward", Broken, true),
        ]);
        assert!(
            matches!(next_step(&links, &r, &HashSet::new()), Step::Blocked { link, .. } if link == "guards")
        );
    }

    #[test]
    fn verification_is_proven_by_the_first_healthy_probe() {
        let mut v = Verification::default();
        assert_eq!(v.observe(Broken, false, false), VerifyStep::Wait);
        assert_eq!(v.observe(Unknown, true, false), VerifyStep::Wait);
        assert_eq!(v.observe(Healthy, false, false), VerifyStep::Proven);
    }

    #[test]
    fn verification_gives_up_when_a_started_process_is_gone_twice() {
        let mut v = Verification::default();
        assert_eq!(v.observe(Unknown, true, false), VerifyStep::Wait);
        assert_eq!(v.observe(Broken, false, true), VerifyStep::Wait);
        assert_eq!(v.observe(Broken, false, true), VerifyStep::GaveUp);
    }

    #[test]
    fn a_launcher_handing_over_does_not_end_verification() {
        // One "gone" probe between starting ones: the launcher exited just
        // before the process it started showed up.
        let mut v = Verification::default();
        assert_eq!(v.observe(Unknown, true, false), VerifyStep::Wait);
        assert_eq!(v.observe(Broken, false, true), VerifyStep::Wait);
        assert_eq!(v.observe(Unknown, true, false), VerifyStep::Wait);
        assert_eq!(v.observe(Broken, false, true), VerifyStep::Wait);
        assert_eq!(v.observe(Healthy, false, false), VerifyStep::Proven);
    }

    #[test]
    fn a_slow_start_past_the_grace_is_polled_until_the_deadline() {
        // "Alive but no listener past the start grace" is broken but not
        // gone: a loaded machine can still bring it up.
        let mut v = Verification::default();
        assert_eq!(v.observe(Unknown, true, false), VerifyStep::Wait);
        for _ in 0..10 {
            assert_eq!(v.observe(Broken, false, false), VerifyStep::Wait);
        }
        assert_eq!(v.observe(Healthy, false, false), VerifyStep::Proven);
    }

    #[test]
    fn gone_without_having_been_starting_is_polled_until_the_deadline() {
        // E.g. a config the agent hot-reloads, or plain unknown without a
        // retry hint: nothing said "starting", so nothing ends early.
        let mut v = Verification::default();
        for _ in 0..10 {
            assert_eq!(v.observe(Broken, false, true), VerifyStep::Wait);
            assert_eq!(v.observe(Unknown, false, false), VerifyStep::Wait);
        }
    }

    #[test]
    fn dry_run_lists_every_broken_link_it_would_reach() {
        let r = reports(&[
            ("guards", Broken, true),
            ("locks", Broken, true),
            ("gateway", Broken, true),
            ("forward", Broken, false),
        ]);
        let (plan, stop) = dry_run_plan(&chain(), &r);
        assert_eq!(plan, vec!["guards", "locks", "gateway"]);
        assert!(matches!(stop, Some(Step::Blocked { link, .. }) if link == "forward"));
    }
}
