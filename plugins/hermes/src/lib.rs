//! Built-in `hermes` plugin: a Hermes gateway (API server) in a NemoClaw-style
//! sandbox. `sandbox` (host) → `locks` → `gateway` → `relay` → `forward`; no
//! CORS and no dashboard chain (Hermes serves an API, not a browser
//! dashboard). See plugins/README.md.

mod config;
mod relay;

use config::Config;
use runner_plugin_sdk::bindings::runner::plugin::types::LinkReport;
use runner_plugin_sdk::gateway::{self, GatewaySpec, GatewayTraits};
use runner_plugin_sdk::launch::{DefaultLaunch, UserRule};
use runner_plugin_sdk::process::{args, invocation, program_is};
use runner_plugin_sdk::{
    Plugin, PluginInfo, ProcessInfo, RepairOutcome, Sandbox, Settings, Target, forward, locks,
    plugin_info, repair,
};

const LINKS: &[(&str, &str, &[&str])] = &[
    (
        "locks",
        "no stale gateway.pid / gateway.lock in HERMES_HOME while no gateway runs",
        &[],
    ),
    (
        "gateway",
        "Hermes gateway alive by identity, owns the API port's listener, /health answers 200 or 401",
        &["locks"],
    ),
    (
        relay::LINK,
        "in NemoClaw's managed layout (gateway on an internal port), the socat relay serves the API port; healthy with nothing to do otherwise",
        &["gateway"],
    ),
    (
        "forward",
        "host 127.0.0.1:<host-port> is forwarded to the API port by runner",
        &[relay::LINK],
    ),
];

pub(crate) const HEALTH_CODES: &[u16] = &[200, 401];

/// `hermes gateway run|restart …` (also `python3 …/bin/hermes gateway run`),
/// the form Hermes' own liveness rule accepts, or a configured program name.
fn gateway_matcher(names: &[String]) -> impl Fn(&ProcessInfo) -> bool + use<> {
    let names = names.to_vec();
    move |p: &ProcessInfo| {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        if !refs.is_empty() && program_is(p, &refs) {
            return true;
        }
        match invocation(p, &["hermes", "hermes-agent"], &["gateway"]) {
            Some(next) => matches!(args(p).get(next), Some(&"run") | Some(&"restart")),
            None => false,
        }
    }
}

/// What a Hermes gateway answers: no readiness path and no log markers.
const TRAITS: GatewayTraits = GatewayTraits {
    ok_codes: HEALTH_CODES,
    ready_path: None,
    wedge_markers: &[],
};

/// `port` = where the gateway itself listens (the internal port in the
/// relay layout).
fn spec<'a>(
    cfg: &'a Config,
    port: u16,
    is_gateway: &'a dyn Fn(&ProcessInfo) -> bool,
) -> GatewaySpec<'a> {
    cfg.gateway.spec(port, &TRAITS, is_gateway)
}

struct Hermes;

impl Plugin for Hermes {
    fn describe() -> PluginInfo {
        plugin_info(
            "hermes",
            env!("CARGO_PKG_VERSION"),
            &["hermes"],
            LINKS,
            config::SETTINGS,
            &["files", "processes", "http", "spawn", "forward", "log"],
        )
    }

    fn probe(target: Target) -> Result<Vec<LinkReport>, String> {
        let cfg = Config::from_settings(&Settings::new(&target))?;
        let sandbox = Sandbox::snapshot(&target.sandbox);
        let is_gw = gateway_matcher(&cfg.gateway.gateway_process);
        let gateway = match relay::internal_port(&sandbox, &cfg) {
            Ok((port, _)) => gateway::probe("gateway", &sandbox, &spec(&cfg, port, &is_gw)).build(),
            Err(e) => runner_plugin_sdk::Report::unknown("gateway", e).build(),
        };
        Ok(vec![
            locks::probe("locks", &sandbox, &cfg.lock_files, &is_gw).build(),
            gateway,
            relay::probe(&sandbox, &cfg).build(),
            forward::probe("forward", &sandbox, cfg.gateway.host_port, cfg.gateway.port).build(),
        ])
    }

    fn repair(target: Target, link: String) -> RepairOutcome {
        let cfg = Config::from_settings(&Settings::new(&target));
        repair::dispatch(&link, cfg, |cfg, link| {
            let sandbox = Sandbox::new(&target.sandbox);
            let is_gw = gateway_matcher(&cfg.gateway.gateway_process);
            Some(match link {
                "locks" => locks::repair(&sandbox, &cfg.lock_files, &is_gw),
                "gateway" => repair_gateway(&sandbox, cfg, &is_gw),
                relay::LINK => relay::repair(&sandbox, cfg),
                "forward" => forward::repair(&sandbox, cfg.gateway.host_port, cfg.gateway.port),
                _ => return None,
            })
        })
    }
}

fn repair_gateway(
    sandbox: &Sandbox,
    cfg: &Config,
    is_gw: &dyn Fn(&ProcessInfo) -> bool,
) -> RepairOutcome {
    let port = match relay::internal_port(sandbox, cfg) {
        Ok((port, _)) => port,
        Err(e) => return RepairOutcome::Failed(e),
    };
    let users = [
        UserRule::OwnerOf(&cfg.hermes_home),
        UserRule::Named("gateway"),
        UserRule::Named("sandbox"),
    ];
    let default = DefaultLaunch {
        argv: vec!["hermes".into(), "gateway".into(), "run".into()],
        origin: "NemoClaw's relaunch",
        users: &users,
    };
    let spec = spec(cfg, port, is_gw);
    let relaunch = cfg
        .gateway
        .relaunch(&cfg.gateway.launch_env, cfg.env_file.as_deref(), default);
    gateway::relaunch(sandbox, &spec, relaunch)
}

runner_plugin_sdk::export_plugin!(Hermes);

#[cfg(test)]
mod tests {
    use super::*;
    use runner_plugin_sdk::ProcessId;

    fn p(cmd: &[&str]) -> ProcessInfo {
        ProcessInfo {
            id: ProcessId {
                pid: 9,
                start_time: 1,
            },
            ppid: 1,
            uid: 998,
            state: "S".into(),
            comm: "hermes".into(),
            cmdline: cmd.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn describe_declares_locks_gateway_forward() {
        let info = Hermes::describe();
        let ids: Vec<&str> = info.links.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["locks", "gateway", "relay", "forward"]);
        assert_eq!(info.links[1].depends_on, ["locks"]);
        assert_eq!(info.links[2].depends_on, ["gateway"]);
        assert_eq!(info.links[3].depends_on, ["relay"]);
        assert!(
            info.settings
                .iter()
                .any(|s| s.key == "port" && s.default == "8642")
        );
        assert!(!info.capabilities.iter().any(|c| c == "exec"));
    }

    #[test]
    fn hermes_gateway_run_is_the_gateway() {
        let m = gateway_matcher(&[]);
        assert!(m(&p(&[
            "/opt/hermes/venv/bin/python3",
            "/opt/hermes/venv/bin/hermes",
            "gateway",
            "run"
        ])));
        assert!(m(&p(&["hermes", "gateway", "run", "--replace"])));
        assert!(!m(&p(&["hermes", "gateway", "status"])));
        assert!(!m(&p(&["hermes", "dashboard", "--port", "9119"])));
        assert!(!m(&p(&[
            "/bin/sh",
            "-c",
            "exec \"$@\"",
            "x",
            "hermes",
            "gateway",
            "run"
        ])));
    }

    #[test]
    fn hermes_lock_of_the_live_gateway_is_not_stale() {
        let gw = ProcessInfo {
            id: ProcessId {
                pid: 77,
                start_time: 9000,
            },
            ..p(&["python3", "/opt/hermes/bin/hermes", "gateway", "run"])
        };
        let lock = br#"{"pid": 77, "kind": "hermes-gateway", "argv": ["/opt/hermes/bin/hermes", "gateway", "run"], "start_time": 9000}"#;
        let m = gateway_matcher(&[]);
        assert!(matches!(
            locks::classify(lock, 0, std::slice::from_ref(&gw), &m),
            locks::LockState::Live { .. }
        ));
        // After a SIGTERM the pid file is gone but gateway.lock stays with the old identity.
        let reborn = ProcessInfo {
            id: ProcessId {
                pid: 77,
                start_time: 9999,
            },
            ..gw
        };
        assert!(matches!(
            locks::classify(lock, 0, &[reborn], &m),
            locks::LockState::Stale { .. }
        ));
    }
}
