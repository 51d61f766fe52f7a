//! The cheap liveness check between full passes ([`super::schedule`]).
//!
//! A healthy full pass leaves an [`Identity`]: the container's init (host
//! pid and start time, from the inspect that preceded the pass), the
//! gateway's pid and start time and port (the `gateway` link's evidence),
//! and the host port of the `forward` link. Arming it ([`Armed`]) opens one
//! `NETLINK_SOCK_DIAG` socket in the sandbox's network namespace
//! ([`ListenProbe`]), kept until the identity is dropped. Each tick then only
//! reads:
//!
//! - `/proc/<init>/stat`: the same init still runs (not restarted);
//! - `/proc/<init>/root/proc/<gateway pid>/stat`: the same gateway process
//!   (pid *and* start time, so a reused pid does not pass), not a zombie;
//! - one sock_diag lookup of the listener a connection to the sandbox's
//!   `127.0.0.1:<gateway port>` (else `[::1]`) would reach: a gateway that
//!   lives but closed its listener (wedged) is found at the next tick, not
//!   the next full pass;
//! - the forward registry: the host forward is still served (in-process
//!   listener task alive, or a verified detached forward).
//!
//! Listening is asked of sock_diag, not read from `/proc/<init>/net/tcp{,6}`:
//! the kernel walks the host's whole TCP hash table for each such read,
//! whatever the namespace; with 40 sandboxes and their forwards that read was
//! about half of the watcher's idle CPU (perf). The lookup reads two or three
//! hash buckets, a few µs (a LISTEN dump cost ~150 µs a check with 200
//! sandboxes; see [`ListenProbe`]). When the probe cannot be made
//! (not root, the namespace already gone), the tick checks the processes and
//! the forward only, and a stopped listener is the full pass's to find.
//!
//! No engine call and no plugin call. Anything that does not match is a
//! failure, and a failure only makes a full pass due: the check never
//! decides a repair on its own.

pub use crate::backend::procfs::{ListenDiagError, ListenProbe};

use crate::backend::procfs::parse_stat;
use crate::forward::ForwardRegistry;
use crate::recovery::report::{Outcome, Report, State};

/// What the last healthy full pass depended on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The container's init as a host pid, and its start time (ticks).
    pub init_pid: u32,
    pub init_start: u64,
    /// The gateway's pid inside the container and its start time (ticks).
    pub gateway_pid: u32,
    pub gateway_start: u64,
    /// The port the gateway listens on in the sandbox's network namespace;
    /// `None` when the evidence does not name one (nothing to probe).
    pub gateway_port: Option<u16>,
    /// The host port of the forward, when the plugin has a forward link.
    pub host_port: Option<u16>,
}

fn evidence_u64(report: &Report, link: &str, key: &str) -> Option<u64> {
    report
        .links
        .iter()
        .find(|l| l.id == link)?
        .evidence
        .get(key)?
        .as_str()?
        .trim()
        .parse()
        .ok()
}

impl Identity {
    /// The identity a healthy report leaves, given the container's init.
    /// `None` when the pass was not healthy, or its evidence does not name
    /// one gateway process (then full passes run on the short interval).
    pub fn from_report(report: &Report, init_pid: u32, init_start: u64) -> Option<Identity> {
        if !matches!(report.outcome, Outcome::Healthy | Outcome::Recovered) || init_pid == 0 {
            return None;
        }
        let gateway = report.links.iter().find(|l| l.id == "gateway")?;
        if gateway.after != State::Healthy {
            return None;
        }
        let host_port = match report.links.iter().find(|l| l.id == "forward") {
            Some(f) if f.after != State::Healthy => return None,
            Some(_) => Some(u16::try_from(evidence_u64(report, "forward", "host-port")?).ok()?),
            None => None,
        };
        Some(Identity {
            init_pid,
            init_start,
            gateway_pid: u32::try_from(evidence_u64(report, "gateway", "pid")?).ok()?,
            gateway_start: evidence_u64(report, "gateway", "start-time")?,
            gateway_port: evidence_u64(report, "gateway", "port")
                .and_then(|p| u16::try_from(p).ok()),
            host_port,
        })
    }

    fn check_processes(&self) -> Result<(), String> {
        match start_time(&format!("/proc/{}/stat", self.init_pid)) {
            Some(t) if t == self.init_start => {}
            _ => return Err(format!("container init (host pid {}) gone", self.init_pid)),
        }
        let gw = format!(
            "/proc/{}/root/proc/{}/stat",
            self.init_pid, self.gateway_pid
        );
        match std::fs::read_to_string(&gw)
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            Some(s)
                if s.start_time == self.gateway_start && !matches!(s.state.as_str(), "Z" | "X") =>
            {
                Ok(())
            }
            Some(s) if s.start_time == self.gateway_start => {
                Err(format!("gateway pid {} is a zombie", self.gateway_pid))
            }
            _ => Err(format!("gateway pid {} gone", self.gateway_pid)),
        }
    }

    fn check_forward(&self, sandbox: &str, forwards: &ForwardRegistry) -> Result<(), String> {
        if let Some(hp) = self.host_port
            && forwards.forwards_to(sandbox, hp).is_none()
        {
            return Err(format!("the forward on host port {hp} is not served"));
        }
        Ok(())
    }
}

/// An [`Identity`] the ticks check, with the listen probe made for it.
///
/// The probe's socket lives as long as this value: made once when a healthy
/// pass arms the identity, closed when the identity is dropped (any failure,
/// event or pass replaces it), so a tick never enters a namespace.
#[derive(Debug)]
pub struct Armed {
    pub identity: Identity,
    listen: Option<ListenProbe>,
}

impl Armed {
    /// Arms `identity`, opening its listen probe in the network namespace of
    /// its init. Never fails: without a probe the ticks skip the listen check.
    pub fn arm(identity: Identity, sandbox: &str) -> Armed {
        let listen = identity.gateway_port.and_then(|port| {
            ListenProbe::for_process(identity.init_pid)
                .inspect_err(|e| {
                    tracing::debug!(
                        sandbox,
                        port,
                        error = %e,
                        "no listen probe; liveness checks the gateway process only"
                    );
                })
                .ok()
        });
        Armed { identity, listen }
    }

    /// Whether the ticks also check that the gateway listens.
    pub fn probes_listening(&self) -> bool {
        self.listen.is_some()
    }

    /// The identity's checks, with listening after the processes (a gateway
    /// that is gone is reported as gone, not as not listening).
    pub fn check(&mut self, sandbox: &str, forwards: &ForwardRegistry) -> Result<(), String> {
        let id = &self.identity;
        id.check_processes()?;
        if let (Some(probe), Some(port)) = (self.listen.as_mut(), id.gateway_port) {
            match probe.listening(port) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(format!(
                        "gateway pid {} no longer listens on port {port}",
                        id.gateway_pid
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "cannot tell whether gateway pid {} listens on port {port}: {e}",
                        id.gateway_pid
                    ));
                }
            }
        }
        id.check_forward(sandbox, forwards)
    }
}

/// The container init's current start time, from its host pid.
pub fn start_time(stat_path: &str) -> Option<u64> {
    parse_stat(&std::fs::read_to_string(stat_path).ok()?).map(|s| s.start_time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::report::{Action, LinkEntry, Mode, PluginRef, SCHEMA, evidence_map};

    fn link(id: &str, after: State, ev: &[(&str, &str)]) -> LinkEntry {
        LinkEntry {
            id: id.into(),
            before: after,
            action: Action::None,
            after,
            summary: String::new(),
            evidence: evidence_map(ev.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
            ms: 0,
        }
    }

    fn report(outcome: Outcome, links: Vec<LinkEntry>) -> Report {
        Report {
            schema: SCHEMA,
            sandbox: "s".into(),
            backend: "docker".into(),
            plugin: PluginRef {
                name: "openclaw".into(),
                version: "0".into(),
                sha256: String::new(),
            },
            mode: Mode::Recover,
            outcome,
            links,
            mutations: vec![],
            duration_ms: 0,
            failing_layer: None,
            message: None,
            deterministic: None,
            plan: None,
        }
    }

    fn healthy_links() -> Vec<LinkEntry> {
        vec![
            link(
                "gateway",
                State::Healthy,
                &[("pid", "42"), ("start-time", "9001"), ("port", "18789")],
            ),
            link("forward", State::Healthy, &[("host-port", "18790")]),
        ]
    }

    #[test]
    fn identity_from_a_healthy_report() {
        let id = Identity::from_report(&report(Outcome::Healthy, healthy_links()), 7, 100).unwrap();
        assert_eq!(
            id,
            Identity {
                init_pid: 7,
                init_start: 100,
                gateway_pid: 42,
                gateway_start: 9001,
                gateway_port: Some(18789),
                host_port: Some(18790),
            }
        );
    }

    #[test]
    fn no_identity_without_health_or_evidence() {
        assert_eq!(
            Identity::from_report(&report(Outcome::Broken, healthy_links()), 7, 100),
            None
        );
        assert_eq!(
            Identity::from_report(&report(Outcome::Healthy, healthy_links()), 0, 100),
            None
        );
        let mut sick_forward = healthy_links();
        sick_forward[1].after = State::Unknown;
        assert_eq!(
            Identity::from_report(&report(Outcome::Healthy, sick_forward), 7, 100),
            None
        );
        let no_pid = vec![link("gateway", State::Healthy, &[("port", "1")])];
        assert_eq!(
            Identity::from_report(&report(Outcome::Healthy, no_pid), 7, 100),
            None
        );
    }

    #[test]
    fn check_passes_for_a_live_identity_and_fails_for_a_stale_one() {
        // This test process as both the "init" and the "gateway": its own
        // /proc/<pid>/root is the host root, whose /proc shows it again.
        let me = std::process::id();
        let start = start_time(&format!("/proc/{me}/stat")).unwrap();
        let forwards = ForwardRegistry::new();
        let live = Identity {
            init_pid: me,
            init_start: start,
            gateway_pid: me,
            gateway_start: start,
            gateway_port: None,
            host_port: None,
        };
        // No gateway port: no listen probe, the process and forward checks.
        let check = |id: &Identity| Armed::arm(id.clone(), "s").check("s", &forwards);
        assert_eq!(check(&live), Ok(()));
        let restarted = Identity {
            init_start: start + 1,
            ..live.clone()
        };
        assert!(check(&restarted).unwrap_err().contains("init"));
        let reused = Identity {
            gateway_start: start + 1,
            ..live.clone()
        };
        assert!(check(&reused).unwrap_err().contains("gateway"));
        // A free port: no forward serves it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let unforwarded = Identity {
            host_port: Some(port),
            ..live
        };
        assert!(check(&unforwarded).unwrap_err().contains("forward"));
    }

    #[test]
    fn armed_check_fails_once_the_gateway_stops_listening() {
        // This process as init and gateway again, its own netns as the
        // sandbox's (entering it needs root, as the watcher has).
        let me = std::process::id();
        let start = start_time(&format!("/proc/{me}/stat")).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let id = Identity {
            init_pid: me,
            init_start: start,
            gateway_pid: me,
            gateway_start: start,
            gateway_port: Some(port),
            host_port: None,
        };
        let forwards = ForwardRegistry::new();
        let mut armed = Armed::arm(id.clone(), "s");
        assert!(armed.probes_listening(), "no probe (not root?)");
        assert_eq!(armed.check("s", &forwards), Ok(()));
        drop(listener);
        assert_eq!(
            armed.check("s", &forwards),
            Err(format!("gateway pid {me} no longer listens on port {port}"))
        );
        // The processes come first: a gone gateway is not "not listening".
        let mut gone = Armed::arm(
            Identity {
                gateway_start: start + 1,
                ..id.clone()
            },
            "s",
        );
        assert_eq!(
            gone.check("s", &forwards),
            Err(format!("gateway pid {me} gone"))
        );
        // No port in the evidence: nothing to probe, the pid checks only.
        let mut unprobed = Armed::arm(
            Identity {
                gateway_port: None,
                ..id
            },
            "s",
        );
        assert!(!unprobed.probes_listening());
        assert_eq!(unprobed.check("s", &forwards), Ok(()));
    }

    #[test]
    fn arming_without_a_namespace_keeps_the_pid_checks() {
        // A pid that cannot exist (above pid_max): no namespace to enter.
        let armed = Armed::arm(
            Identity {
                init_pid: u32::MAX,
                init_start: 1,
                gateway_pid: 1,
                gateway_start: 1,
                gateway_port: Some(1),
                host_port: None,
            },
            "s",
        );
        assert!(!armed.probes_listening());
    }
}
