//! The `forward` link shared by agent plugins: the host-side port forward
//! 127.0.0.1:<host-port> → sandbox 127.0.0.1:<port>, owned by runner.

use crate::{ForwardSpec, ForwardState, ForwardStatus, RepairOutcome, Report, Sandbox};

/// The forward for `host_port` → `sandbox_port` on the default bind.
pub fn spec(host_port: u16, sandbox_port: u16) -> ForwardSpec {
    ForwardSpec {
        host_port,
        sandbox_port,
        bind: None,
    }
}

fn owner_text(status: &ForwardStatus) -> String {
    match status.pid {
        Some(pid) => format!("pid {pid}"),
        None => "an unidentified process".into(),
    }
}

/// The verdict for a forward status (pure).
pub fn assess(link: &str, status: &ForwardStatus) -> Report {
    let hp = status.spec.host_port;
    let sp = status.spec.sandbox_port;
    let r = match status.state {
        ForwardState::Owned => Report::healthy(
            link,
            format!("host 127.0.0.1:{hp} forwards to sandbox port {sp} (runner-owned)"),
        ),
        ForwardState::Absent => Report::broken(
            link,
            format!("nothing listens on host port {hp}; the forward to sandbox port {sp} is gone"),
        )
        .repairable(),
        ForwardState::Stale => Report::broken(
            link,
            format!("the runner forward on host port {hp} is dead or points at an old sandbox"),
        )
        .repairable(),
        ForwardState::Foreign => Report::broken(
            link,
            format!(
                "host port {hp} is held by {}, not by runner; refusing to take it over (free the port or set \
                 host-port)",
                owner_text(status)
            ),
        ),
    };
    let mut r = r
        .evidence("state", state_name(status.state))
        .evidence("host-port", hp)
        .evidence("sandbox-port", sp);
    if let Some(pid) = status.pid {
        r = r.evidence("pid", pid);
    }
    for kv in &status.evidence {
        r = r.evidence(&kv.key, &kv.value);
    }
    r
}

pub fn state_name(s: ForwardState) -> &'static str {
    match s {
        ForwardState::Owned => "owned",
        ForwardState::Absent => "absent",
        ForwardState::Stale => "stale",
        ForwardState::Foreign => "foreign",
    }
}

/// The `forward` link's probe.
pub fn probe(link: &str, sandbox: &Sandbox, host_port: u16, sandbox_port: u16) -> Report {
    match sandbox.forward_status(spec(host_port, sandbox_port)) {
        Ok(status) => assess(link, &status),
        Err(e) => Report::unknown(link, format!("cannot read the forward status: {e}"))
            .evidence("error", e.kind()),
    }
}

/// The `forward` link's repair: `forward.ensure`, which never replaces a
/// foreign listener.
pub fn repair(sandbox: &Sandbox, host_port: u16, sandbox_port: u16) -> RepairOutcome {
    match sandbox.forward_status(spec(host_port, sandbox_port)) {
        Ok(s) if s.state == ForwardState::Owned => {
            return RepairOutcome::NotNeeded(format!("host port {host_port} is already forwarded"));
        }
        Ok(s) if s.state == ForwardState::Foreign => {
            return RepairOutcome::Refused(format!(
                "host port {host_port} is held by {}, not by runner; refusing to take it over",
                owner_text(&s)
            ));
        }
        Ok(_) => {}
        Err(e) => return RepairOutcome::Failed(format!("cannot read the forward status: {e}")),
    }
    match sandbox.forward_ensure(spec(host_port, sandbox_port)) {
        Ok(s) => match s.state {
            ForwardState::Owned => RepairOutcome::Repaired(format!(
                "forward 127.0.0.1:{host_port} -> sandbox port {sandbox_port} started{}",
                s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            )),
            ForwardState::Foreign => RepairOutcome::Refused(format!(
                "host port {host_port} was taken by {} meanwhile; refusing to take it over",
                owner_text(&s)
            )),
            other => RepairOutcome::Failed(format!(
                "forward.ensure left host port {host_port} {}",
                state_name(other)
            )),
        },
        Err(e) => RepairOutcome::Failed(format!("forward.ensure failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Health, kv};

    fn status(state: ForwardState, pid: Option<u32>) -> ForwardStatus {
        ForwardStatus {
            state,
            spec: spec(18789, 18789),
            pid,
            evidence: vec![kv("target", "10.0.0.2:18789")],
        }
    }

    #[test]
    fn owned_forward_is_healthy() {
        let r = assess("forward", &status(ForwardState::Owned, Some(9))).build();
        assert_eq!(r.health, Health::Healthy);
        assert!(r.evidence.iter().any(|kv| kv.key == "target"));
    }

    #[test]
    fn absent_or_stale_forward_is_repairable() {
        for s in [ForwardState::Absent, ForwardState::Stale] {
            let r = assess("forward", &status(s, None)).build();
            assert_eq!(r.health, Health::Broken);
            assert!(r.repairable);
        }
    }

    #[test]
    fn foreign_forward_names_the_owner_and_is_not_repairable() {
        let r = assess("forward", &status(ForwardState::Foreign, Some(4242))).build();
        assert_eq!(r.health, Health::Broken);
        assert!(!r.repairable);
        assert!(r.summary.contains("pid 4242"), "{}", r.summary);
    }
}
