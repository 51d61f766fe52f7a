//! The `locks` link: report on the lock files and remove exactly the stale
//! ones, each by compare-and-delete.

use super::{LockFile, LockState, UNREADABLE_GRACE_SECS, inspect};
use crate::process;
use crate::{FileKind, ProcessInfo, RepairOutcome, Report, Sandbox};

/// What the `locks` link sees, before any decision.
#[derive(Debug, Clone)]
pub struct LocksView {
    /// Live gateway processes (matched by the plugin).
    pub gateways: Vec<ProcessInfo>,
    pub locks: Vec<LockFile>,
}

/// The verdict of the `locks` link (pure, so it is unit-tested).
pub fn assess(link: &str, view: &LocksView) -> Report {
    let stale: Vec<&LockFile> = view
        .locks
        .iter()
        .filter(|l| matches!(l.state, LockState::Stale { .. }))
        .collect();
    let young: Vec<&LockFile> = view
        .locks
        .iter()
        .filter(|l| matches!(l.state, LockState::Young { .. }))
        .collect();
    let odd: Vec<&LockFile> = view
        .locks
        .iter()
        .filter(|l| matches!(l.state, LockState::NotRegular { .. }))
        .collect();
    let live = view
        .locks
        .iter()
        .filter(|l| matches!(l.state, LockState::Live { .. }))
        .count();

    let mut report = if let Some(gw) = view.gateways.first() {
        Report::healthy(
            link,
            format!(
                "gateway {} is running; its locks are in use",
                process::describe(gw)
            ),
        )
    } else if !stale.is_empty() {
        let list: Vec<String> = stale
            .iter()
            .map(|l| match &l.state {
                LockState::Stale { why } => format!("{} ({why})", l.path),
                _ => unreachable!(),
            })
            .collect();
        Report::broken(
            link,
            format!(
                "{} stale lock(s) and no live gateway: {}",
                stale.len(),
                list.join("; ")
            ),
        )
        .repairable()
    } else if let Some(l) = young.first() {
        let age = match l.state {
            LockState::Young { age_secs } => age_secs,
            _ => 0,
        };
        Report::broken(
            link,
            format!(
                "unreadable lock {} is only {age} s old and no gateway is running; it blocks a start until it \
                 is {UNREADABLE_GRACE_SECS} s old (re-run then)",
                l.path
            ),
        )
    } else if let Some(l) = odd.first() {
        let kind = match l.state {
            LockState::NotRegular { kind } => kind,
            _ => FileKind::Other,
        };
        Report::broken(
            link,
            format!(
                "lock path {} is a {kind:?}, not a regular file; refusing to touch it (remove it by hand)",
                l.path
            ),
        )
    } else {
        Report::healthy(link, format!("no stale gateway lock ({live} live)"))
    };
    report = report
        .evidence("locks-found", view.locks.len())
        .evidence("live", live)
        .evidence("stale", stale.len());
    for l in &view.locks {
        let verdict = match &l.state {
            LockState::Live { why, .. } => format!("live: {why}"),
            LockState::Stale { why } => format!("stale: {why}"),
            LockState::Young { age_secs } => format!("unreadable, {age_secs} s old"),
            LockState::NotRegular { kind } => format!("{kind:?}, never touched"),
        };
        report = report.evidence(&format!("lock {}", l.path), verdict);
    }
    if let Some(gw) = view.gateways.first() {
        report = report
            .evidence("gateway-pid", gw.id.pid)
            .evidence("gateway-start-time", gw.id.start_time);
    }
    report
}

/// Observe processes and locks.
pub fn view(
    sandbox: &Sandbox,
    paths: &[String],
    is_gateway: &dyn Fn(&ProcessInfo) -> bool,
) -> Result<LocksView, String> {
    let procs = sandbox
        .processes()
        .map_err(|e| format!("cannot list processes: {e}"))?;
    let gateways = procs
        .iter()
        .filter(|p| !process::is_exited(p) && is_gateway(p))
        .cloned()
        .collect();
    let locks = inspect(sandbox, paths, &procs, is_gateway)?;
    Ok(LocksView { gateways, locks })
}

/// The `locks` link's probe.
pub fn probe(
    link: &str,
    sandbox: &Sandbox,
    paths: &[String],
    is_gateway: &dyn Fn(&ProcessInfo) -> bool,
) -> Report {
    match view(sandbox, paths, is_gateway) {
        Ok(v) => assess(link, &v),
        Err(e) => Report::unknown(link, format!("cannot inspect gateway locks: {e}")),
    }
}

/// The `locks` link's repair: with no live gateway, remove every stale lock
/// by compare-and-delete. Live, young and non-regular locks are left alone.
pub fn repair(
    sandbox: &Sandbox,
    paths: &[String],
    is_gateway: &dyn Fn(&ProcessInfo) -> bool,
) -> RepairOutcome {
    let v = match view(sandbox, paths, is_gateway) {
        Ok(v) => v,
        Err(e) => return RepairOutcome::Failed(format!("cannot inspect gateway locks: {e}")),
    };
    if let Some(gw) = v.gateways.first() {
        return RepairOutcome::NotNeeded(format!(
            "gateway {} is running; its locks are not stale",
            process::describe(gw)
        ));
    }
    let stale: Vec<&LockFile> = v
        .locks
        .iter()
        .filter(|l| matches!(l.state, LockState::Stale { .. }))
        .collect();
    if stale.is_empty() {
        // Nothing removable: either all is well, or only young/non-regular
        // locks remain, which are never touched.
        let verdict = assess("locks", &v).build();
        return match verdict.health {
            crate::Health::Healthy => RepairOutcome::NotNeeded("no stale gateway lock".into()),
            _ => RepairOutcome::Refused(verdict.summary),
        };
    }
    let mut removed = Vec::new();
    let mut changed = Vec::new();
    for l in stale {
        match sandbox.remove_if(&l.path, Some(&l.data)) {
            Ok(true) => removed.push(l.path.clone()),
            Ok(false) => changed.push(l.path.clone()),
            Err(e) => {
                return RepairOutcome::Failed(format!(
                    "removing stale lock {} failed: {e}{}",
                    l.path,
                    if removed.is_empty() {
                        String::new()
                    } else {
                        format!(" (already removed: {})", removed.join(", "))
                    }
                ));
            }
        }
    }
    if removed.is_empty() {
        return RepairOutcome::Failed(format!(
            "stale lock(s) {} changed or vanished before removal; nothing removed (re-probe)",
            changed.join(", ")
        ));
    }
    let mut msg = format!(
        "removed {} stale lock(s): {}",
        removed.len(),
        removed.join(", ")
    );
    if !changed.is_empty() {
        msg.push_str(&format!(
            "; left {} rewritten in the meantime",
            changed.join(", ")
        ));
    }
    RepairOutcome::Repaired(msg)
}
