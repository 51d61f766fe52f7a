//! The `locks` link: the SDK's stale JSON gateway locks plus OpenClaw
//! 2026.9's gateway owner lease ([`crate::lease`]), both stale ownership
//! records that keep a relaunch from starting. With a gateway running in the
//! sandbox both are in use and nothing is read beyond the JSON locks (no
//! exec on a healthy sandbox).

use runner_plugin_sdk::bindings::runner::plugin::types::LinkReport;
use runner_plugin_sdk::{Health, ProcessInfo, RepairOutcome, Report, Sandbox, kv, locks};

use crate::config::{Config, join};
use crate::lease::{self, Observed, Verdict};

const LINK: &str = "locks";

/// What the lease check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseCheck {
    /// No `<state>/state/openclaw.sqlite`: no lease can exist.
    NoDatabase,
    /// The check could not run.
    Failed(String),
    Judged(Verdict),
}

fn check(sandbox: &Sandbox, cfg: &Config) -> (LeaseCheck, Option<Observed>) {
    let seen = match lease::observe(sandbox, cfg) {
        Ok(Some(seen)) => seen,
        Ok(None) => return (LeaseCheck::NoDatabase, None),
        Err(e) => return (LeaseCheck::Failed(e), None),
    };
    let procs = match sandbox.processes() {
        Ok(p) => p,
        Err(e) => {
            return (
                LeaseCheck::Failed(format!("cannot list processes: {e:?}")),
                None,
            );
        }
    };
    let verdict = lease::judge(&seen.facts, &procs, &join(&cfg.state_dir, "tmp"));
    (LeaseCheck::Judged(verdict), Some(seen))
}

/// Fold the lease verdict into the JSON locks' report (pure).
pub fn merge(mut r: LinkReport, lease: &LeaseCheck) -> LinkReport {
    let evidence = match lease {
        LeaseCheck::NoDatabase => "no state database".to_string(),
        LeaseCheck::Failed(e) => format!("not checked: {e}"),
        LeaseCheck::Judged(v) => format!("{}: {}", v.kind(), v.why()),
    };
    r.evidence.push(kv("owner-lease", evidence));
    let (health, summary, repairable) = match lease {
        LeaseCheck::NoDatabase
        | LeaseCheck::Judged(Verdict::Clear { .. })
        | LeaseCheck::Judged(Verdict::InUse { .. }) => return r,
        LeaseCheck::Failed(e) => (
            Health::Unknown,
            format!("cannot check the gateway owner lease: {e}"),
            false,
        ),
        LeaseCheck::Judged(Verdict::Stale { why }) => match r.health {
            Health::Healthy => (
                Health::Broken,
                format!("stale gateway owner lease and no live gateway: {why}"),
                true,
            ),
            Health::Broken => (
                Health::Broken,
                format!("{}; stale gateway owner lease: {why}", r.summary),
                r.repairable,
            ),
            Health::Unknown => return r,
        },
        LeaseCheck::Judged(Verdict::Live { why }) => (
            Health::Broken,
            format!(
                "a live gateway elsewhere owns this state dir, so a gateway start here would fail; its locks \
                 and lease are never taken over: {why}"
            ),
            false,
        ),
        LeaseCheck::Judged(Verdict::Held { why }) => (
            Health::Broken,
            format!("the gateway owner lease blocks a start and cannot be proven stale: {why}"),
            false,
        ),
        LeaseCheck::Judged(Verdict::Wait { why, retry_after_s }) => {
            r.evidence
                .push(kv("retry-after-s", (*retry_after_s).clamp(1, 300)));
            (
                Health::Unknown,
                format!("the gateway owner lease is not provably stale yet: {why}"),
                false,
            )
        }
    };
    r.health = health;
    r.summary = summary;
    r.repairable = repairable;
    r
}

pub fn probe(sandbox: &Sandbox, cfg: &Config, is_gw: &dyn Fn(&ProcessInfo) -> bool) -> LinkReport {
    let paths = match crate::lock_paths(sandbox, cfg) {
        Ok(p) => p,
        Err(e) => {
            return Report::unknown(LINK, format!("cannot list lock directories: {e}")).build();
        }
    };
    let view = match locks::view(sandbox, &paths, is_gw) {
        Ok(v) => v,
        Err(e) => {
            return Report::unknown(LINK, format!("cannot inspect gateway locks: {e}")).build();
        }
    };
    let report = locks::assess(LINK, &view).build();
    if !view.gateways.is_empty() {
        // The running gateway owns the lease: nothing to read.
        return report;
    }
    merge(report, &check(sandbox, cfg).0)
}

fn message(o: &RepairOutcome) -> &str {
    match o {
        RepairOutcome::Repaired(m)
        | RepairOutcome::Refused(m)
        | RepairOutcome::Failed(m)
        | RepairOutcome::NotNeeded(m) => m,
    }
}

/// One outcome for the JSON locks' and the lease's repairs: a failure wins,
/// then a mutation, then a refusal.
pub fn combine(locks: RepairOutcome, lease: Option<RepairOutcome>) -> RepairOutcome {
    let Some(lease) = lease else {
        return locks;
    };
    let both = format!("{}; {}", message(&locks), message(&lease));
    match (&locks, &lease) {
        (RepairOutcome::Failed(_), _) | (_, RepairOutcome::Failed(_)) => {
            RepairOutcome::Failed(both)
        }
        (RepairOutcome::Repaired(_), _) | (_, RepairOutcome::Repaired(_)) => {
            RepairOutcome::Repaired(both)
        }
        (RepairOutcome::Refused(_), _) | (_, RepairOutcome::Refused(_)) => {
            RepairOutcome::Refused(both)
        }
        _ => RepairOutcome::NotNeeded(both),
    }
}

pub fn repair(
    sandbox: &Sandbox,
    cfg: &Config,
    is_gw: &dyn Fn(&ProcessInfo) -> bool,
) -> RepairOutcome {
    let paths = match crate::lock_paths(sandbox, cfg) {
        Ok(p) => p,
        Err(e) => return RepairOutcome::Failed(format!("cannot list lock directories: {e}")),
    };
    // Refuses (NotNeeded) while a gateway runs; the lease is then in use too.
    match locks::view(sandbox, &paths, is_gw) {
        Ok(v) if !v.gateways.is_empty() => return locks::repair(sandbox, &paths, is_gw),
        Ok(_) => {}
        Err(e) => return RepairOutcome::Failed(format!("cannot inspect gateway locks: {e}")),
    }
    let json = locks::repair(sandbox, &paths, is_gw);
    let lease = match check(sandbox, cfg) {
        (LeaseCheck::NoDatabase, _)
        | (LeaseCheck::Judged(Verdict::Clear { .. }), _)
        | (LeaseCheck::Judged(Verdict::InUse { .. }), _) => None,
        (LeaseCheck::Failed(e), _) => Some(RepairOutcome::Failed(format!(
            "cannot check the gateway owner lease: {e}"
        ))),
        (LeaseCheck::Judged(Verdict::Stale { why }), Some(seen)) => {
            Some(lease::release(sandbox, cfg, &seen, &why))
        }
        (LeaseCheck::Judged(v), _) => Some(RepairOutcome::Refused(format!(
            "gateway owner lease not released ({}): {}",
            v.kind(),
            v.why()
        ))),
    };
    combine(json, lease)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(health: Health, repairable: bool) -> LinkReport {
        let r = match health {
            Health::Healthy => Report::healthy(LINK, "no stale gateway lock (0 live)"),
            Health::Broken => Report::broken(LINK, "1 stale lock(s) and no live gateway: x"),
            Health::Unknown => Report::unknown(LINK, "cannot inspect"),
        };
        if repairable { r.repairable() } else { r }.build()
    }

    fn ev<'a>(r: &'a LinkReport, key: &str) -> Option<&'a str> {
        r.evidence
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.as_str())
    }

    fn stale() -> LeaseCheck {
        LeaseCheck::Judged(Verdict::Stale {
            why: "owner pid 60 on host old".into(),
        })
    }

    #[test]
    fn stale_lease_alone_breaks_the_link_repairably() {
        let r = merge(report(Health::Healthy, false), &stale());
        assert_eq!((r.health, r.repairable), (Health::Broken, true));
        assert!(
            r.summary.contains("stale gateway owner lease"),
            "{}",
            r.summary
        );
        assert_eq!(
            ev(&r, "owner-lease"),
            Some("stale: owner pid 60 on host old")
        );
    }

    #[test]
    fn stale_lease_joins_stale_locks() {
        let r = merge(report(Health::Broken, true), &stale());
        assert_eq!((r.health, r.repairable), (Health::Broken, true));
        assert!(r.summary.starts_with("1 stale lock(s)"), "{}", r.summary);
        assert!(
            r.summary.contains("; stale gateway owner lease"),
            "{}",
            r.summary
        );
        // A young unreadable lock stays unrepairable.
        let r = merge(report(Health::Broken, false), &stale());
        assert!(!r.repairable);
    }

    #[test]
    fn live_or_unprovable_lease_is_never_repairable() {
        for v in [
            Verdict::Live { why: "held".into() },
            Verdict::Held {
                why: "no expiry".into(),
            },
        ] {
            let r = merge(report(Health::Broken, true), &LeaseCheck::Judged(v));
            assert_eq!((r.health, r.repairable), (Health::Broken, false));
        }
    }

    #[test]
    fn young_lease_is_unknown_with_a_retry_hint() {
        let r = merge(
            report(Health::Healthy, false),
            &LeaseCheck::Judged(Verdict::Wait {
                why: "renewed 25 s ago".into(),
                retry_after_s: 20,
            }),
        );
        assert_eq!((r.health, r.repairable), (Health::Unknown, false));
        assert_eq!(ev(&r, "retry-after-s"), Some("20"));
    }

    #[test]
    fn failed_check_is_unknown_and_clear_changes_nothing() {
        let r = merge(
            report(Health::Broken, true),
            &LeaseCheck::Failed("no-such-binary: node".into()),
        );
        assert_eq!((r.health, r.repairable), (Health::Unknown, false));
        let before = report(Health::Broken, true);
        let r = merge(
            before.clone(),
            &LeaseCheck::Judged(Verdict::Clear { why: "none".into() }),
        );
        assert_eq!(
            (r.health, r.repairable, &r.summary),
            (before.health, true, &before.summary)
        );
        let r = merge(
            report(Health::Healthy, false),
            &LeaseCheck::Judged(Verdict::InUse {
                why: "owner pid 60 alive here".into(),
            }),
        );
        assert_eq!((r.health, r.repairable), (Health::Healthy, false));
        assert_eq!(
            ev(&r, "owner-lease"),
            Some("in-use: owner pid 60 alive here")
        );
        let r = merge(report(Health::Healthy, false), &LeaseCheck::NoDatabase);
        assert_eq!(r.health, Health::Healthy);
        assert_eq!(ev(&r, "owner-lease"), Some("no state database"));
    }

    #[test]
    fn outcomes_combine_failure_first_then_mutation() {
        let nn = || RepairOutcome::NotNeeded("no stale gateway lock".into());
        let rep = || RepairOutcome::Repaired("released lease".into());
        assert_eq!(combine(nn(), None), nn());
        assert!(
            matches!(combine(nn(), Some(rep())), RepairOutcome::Repaired(m) if m.contains("released lease"))
        );
        assert!(matches!(
            combine(rep(), Some(RepairOutcome::Failed("changed".into()))),
            RepairOutcome::Failed(_)
        ));
        assert!(matches!(
            combine(nn(), Some(RepairOutcome::Refused("live".into()))),
            RepairOutcome::Refused(_)
        ));
    }
}
