//! Built-in `openclaw` plugin: the full dashboard chain of an OpenClaw
//! gateway in a NemoClaw-style sandbox.
//!
//! `sandbox` (host) → `guards` → `locks` → `gateway` → `cors` / `forward` →
//! `dashboard`. Probes never mutate; each repair fixes one link and the host
//! re-probes to prove it. See plugins/README.md for the settings and what each
//! repair does and refuses.

mod config;
mod cors;
mod dashboard;
mod guards;
mod lease;
mod locks_link;
mod matcher;

use config::Config;
use runner_plugin_sdk::bindings::runner::plugin::types::LinkReport;
use runner_plugin_sdk::gateway::{self, GatewaySpec, GatewayTraits};
use runner_plugin_sdk::launch::{DefaultLaunch, UserRule};
use runner_plugin_sdk::{
    Health, Plugin, PluginInfo, ProcessInfo, RepairOutcome, Sandbox, Settings, Target, forward,
    locks, plugin_info, repair,
};

const LINKS: &[(&str, &str, &[&str])] = &[
    (
        guards::LINK,
        "guard preloads staged root:root 0444 from their packaged sources; env file wires each into NODE_OPTIONS",
        &[],
    ),
    (
        "locks",
        "no stale gateway lock in /tmp/openclaw-<uid>/ or <state-dir>/tmp/openclaw-<uid>/, and no gateway owner lease of a dead owner in <state-dir>/state/openclaw.sqlite",
        &[guards::LINK],
    ),
    (
        "gateway",
        "gateway process alive by identity, owns the port's listener, /health answers 200 or 401",
        &[guards::LINK, "locks"],
    ),
    (
        cors::LINK,
        "gateway.controlUi.allowedOrigins in openclaw.json contains the dashboard origin",
        &["gateway"],
    ),
    (
        "forward",
        "host 127.0.0.1:<host-port> is forwarded to the gateway port by runner",
        &["gateway"],
    ),
    (
        dashboard::LINK,
        "through the forward: HTTP answers and the WebSocket connect accepts the dashboard origin",
        &[cors::LINK, "forward"],
    ),
];

const HEALTH_CODES: &[u16] = &[200, 401];

/// What OpenClaw logs when it gave up serving but stays alive (NemoClaw's
/// wedge diagnostics grep the same lines).
const WEDGE_MARKERS: &[&str] = &["gateway startup failed", "Process will stay alive"];

struct OpenClaw;

fn lock_dir_ok(name: &str) -> bool {
    name.strip_prefix("openclaw-")
        .is_some_and(|uid| !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit()))
}

/// `gateway.state.lock` and `gateway.<8 hex>.lock` (never the
/// `.lock.sqlite` coordinators: their SQLite lock is the real mutex).
fn lock_file_ok(name: &str) -> bool {
    if name == "gateway.state.lock" {
        return true;
    }
    name.strip_prefix("gateway.")
        .and_then(|rest| rest.strip_suffix(".lock"))
        .is_some_and(|h| h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What an OpenClaw gateway answers: `/readyz` says whether a young one is
/// still starting, and its log announces a wedge.
const TRAITS: GatewayTraits = GatewayTraits {
    ok_codes: HEALTH_CODES,
    ready_path: Some("/readyz"),
    wedge_markers: WEDGE_MARKERS,
};

fn spec<'a>(cfg: &'a Config, is_gateway: &'a dyn Fn(&ProcessInfo) -> bool) -> GatewaySpec<'a> {
    cfg.gateway.spec(cfg.gateway.port, &TRAITS, is_gateway)
}

fn lock_paths(sandbox: &Sandbox, cfg: &Config) -> Result<Vec<String>, String> {
    locks::discover(sandbox, &cfg.lock_parents(), &lock_dir_ok, &lock_file_ok)
}

fn config_of(target: &Target) -> Result<Config, String> {
    Config::from_settings(&Settings::new(target))
}

impl Plugin for OpenClaw {
    fn describe() -> PluginInfo {
        plugin_info(
            "openclaw",
            env!("CARGO_PKG_VERSION"),
            &["openclaw"],
            LINKS,
            config::SETTINGS,
            &[
                "files",
                "processes",
                "exec",
                "http",
                "spawn",
                "forward",
                "log",
            ],
        )
    }

    fn probe(target: Target) -> Result<Vec<LinkReport>, String> {
        let cfg = config_of(&target)?;
        let sandbox = Sandbox::snapshot(&target.sandbox);
        let is_gw = matcher::gateway_matcher(&cfg.gateway.gateway_process);

        let guards = guards::probe(&sandbox, &cfg);
        let locks = locks_link::probe(&sandbox, &cfg, &is_gw);
        let gateway = gateway::probe("gateway", &sandbox, &spec(&cfg, &is_gw));
        let cors = cors::probe(&sandbox, &cfg);
        let fwd =
            forward::probe("forward", &sandbox, cfg.gateway.host_port, cfg.gateway.port).build();
        let fwd_down = (fwd.health != Health::Healthy).then(|| fwd.summary.clone());
        let dash = dashboard::probe(&sandbox, &cfg, fwd_down.as_deref());
        Ok(vec![
            guards.build(),
            locks,
            gateway.build(),
            cors.build(),
            fwd,
            dash.build(),
        ])
    }

    fn repair(target: Target, link: String) -> RepairOutcome {
        repair::dispatch(&link, config_of(&target), |cfg, link| {
            let sandbox = Sandbox::new(&target.sandbox);
            let is_gw = matcher::gateway_matcher(&cfg.gateway.gateway_process);
            Some(match link {
                guards::LINK => guards::repair(&sandbox, cfg),
                "locks" => locks_link::repair(&sandbox, cfg, &is_gw),
                "gateway" => repair_gateway(&sandbox, cfg, &is_gw),
                cors::LINK => cors::repair(&sandbox, cfg),
                "forward" => forward::repair(&sandbox, cfg.gateway.host_port, cfg.gateway.port),
                dashboard::LINK => RepairOutcome::Refused(
                    "the dashboard link has no repair of its own: it is fixed through the cors and forward links".into(),
                ),
                _ => return None,
            })
        })
    }
}

/// Never a naked launch: the guard chain must be intact right now.
fn repair_gateway(
    sandbox: &Sandbox,
    cfg: &Config,
    is_gw: &dyn Fn(&ProcessInfo) -> bool,
) -> RepairOutcome {
    let guards = guards::probe(sandbox, cfg).build();
    if guards.health != Health::Healthy {
        return RepairOutcome::Refused(format!(
            "the guard chain is not intact ({}); refusing to launch an unguarded gateway (NemoClaw#2701)",
            guards.summary
        ));
    }
    let users = [
        UserRule::Named("gateway"),
        UserRule::OwnerOf(&cfg.state_dir),
        UserRule::Named("sandbox"),
    ];
    let default = DefaultLaunch {
        argv: cfg.default_launch_argv(),
        origin: "NemoClaw's relaunch",
        users: &users,
    };
    let spec = spec(cfg, is_gw);
    let relaunch = cfg
        .gateway
        .relaunch(&cfg.gateway.launch_env, Some(&cfg.env_file), default);
    gateway::relaunch(sandbox, &spec, relaunch)
}

runner_plugin_sdk::export_plugin!(OpenClaw);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_declares_the_chain_in_dependency_order() {
        let info = OpenClaw::describe();
        let ids: Vec<&str> = info.links.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(
            ids,
            ["guards", "locks", "gateway", "cors", "forward", "dashboard"]
        );
        let deps = |id: &str| {
            info.links
                .iter()
                .find(|l| l.id == id)
                .unwrap()
                .depends_on
                .clone()
        };
        assert!(deps("guards").is_empty());
        assert_eq!(deps("locks"), ["guards"]);
        assert_eq!(deps("gateway"), ["guards", "locks"]);
        assert_eq!(deps("cors"), ["gateway"]);
        assert_eq!(deps("forward"), ["gateway"]);
        assert_eq!(deps("dashboard"), ["cors", "forward"]);
        // Every dependency is declared earlier.
        for (i, l) in info.links.iter().enumerate() {
            for d in &l.depends_on {
                assert!(
                    ids[..i].contains(&d.as_str()),
                    "{} depends on later {d}",
                    l.id
                );
            }
        }
        assert_eq!(
            info.capabilities,
            [
                "files",
                "processes",
                "exec",
                "http",
                "spawn",
                "forward",
                "log"
            ]
        );
        assert!(
            info.settings
                .iter()
                .any(|s| s.key == "port" && s.default == "18789")
        );
    }

    #[test]
    fn lock_names_follow_openclaw_2026_9() {
        assert!(lock_dir_ok("openclaw-998"));
        assert!(lock_dir_ok("openclaw-0"));
        assert!(!lock_dir_ok("openclaw-"));
        assert!(!lock_dir_ok("openclaw-state-locks-0"));
        assert!(lock_file_ok("gateway.state.lock"));
        assert!(lock_file_ok("gateway.1a2b3c4d.lock"));
        assert!(!lock_file_ok("gateway.state.lock.sqlite"));
        assert!(!lock_file_ok("gateway.1a2b3c4d.lock.sqlite"));
        assert!(!lock_file_ok("gateway.xyz.lock"));
        assert!(!lock_file_ok("device-identity.1a2b3c4d.lock.sqlite"));
    }
}
