//! The plugin's settings: one table of keys, defaults and descriptions (used
//! by `describe`), and the typed view probes and repairs work from.

use runner_plugin_sdk::gateway::{self, GatewaySettings};
use runner_plugin_sdk::{SettingTable, Settings};

/// (key, default, description). Defaults are what a NemoClaw Hermes sandbox
/// has; a setting is only for layouts that differ.
pub const SETTINGS: &SettingTable = &[
    ("port", "8642", "Hermes API server port inside the sandbox"),
    (
        "host-port",
        "8642",
        "host port of the forward to the API server (127.0.0.1:<host-port>)",
    ),
    (
        "hermes-home",
        "/sandbox/.hermes",
        "HERMES_HOME: config.yaml, .env, gateway.pid, gateway.lock",
    ),
    (
        "lock-files",
        "gateway.pid,gateway.lock",
        "comma-separated pid/lock files, relative to hermes-home unless absolute",
    ),
    (
        "gateway-process",
        "",
        "extra comma-separated program names (argv[0] or kernel comm) that are the gateway; `hermes gateway run` always is",
    ),
    (
        "launch",
        "",
        "command that starts the gateway (shell-like words or a JSON array); empty = NemoClaw's relaunch `hermes gateway run` (no --port: the port comes from config.yaml)",
    ),
    (
        "launch-user",
        "",
        "user that runs `launch`; empty = the owner of hermes-home (the gateway writes there), else `gateway`, else `sandbox`",
    ),
    gateway::rows::SUPERVISOR,
    gateway::rows::SUPERVISOR_GRACE_S,
    (
        "launch-env",
        "",
        "extra environment for `launch`, NAME=VALUE words (HERMES_HOME is always set)",
    ),
    (
        "env-file",
        "",
        "optional env file sourced before `launch` (empty = none)",
    ),
    gateway::rows::GATEWAY_LOG,
    (
        "internal-port",
        "",
        "port the gateway's API server listens on; empty = API_SERVER_PORT in <hermes-home>/.env, else platforms.api_server.extra.port in <hermes-home>/config.yaml, else `port`. When it differs from `port`, an in-sandbox relay (NemoClaw's managed layout) serves `port`",
    ),
    (
        "relay-launch",
        "",
        "command that starts the relay from `port` to the internal port; empty = `socat TCP-LISTEN:<port>,bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:<internal-port>`",
    ),
    (
        "relay-log",
        "/tmp/hermes-relay.log",
        "log the relay launch appends to",
    ),
    (
        "health-path",
        "/health",
        "liveness path, requested without an Origin header (200 or 401 = alive)",
    ),
    gateway::rows::HEALTH_TIMEOUT_MS,
    gateway::rows::STOP_TIMEOUT_MS,
    (
        "start-grace-s",
        "15",
        "a gateway younger than this without a listener is still starting, not wedged",
    ),
    gateway::rows::LAUNCH_SETTLE_MS,
];

#[derive(Debug, Clone)]
pub struct Config {
    /// The settings every gateway plugin shares; its `launch_env` always
    /// sets `HERMES_HOME`.
    pub gateway: GatewaySettings,
    pub lock_files: Vec<String>,
    pub env_file: Option<String>,
    pub hermes_home: String,
    /// Explicit `internal-port`; `None` = read from the sandbox.
    pub internal_port: Option<u16>,
    pub relay_launch: Vec<String>,
    pub relay_log: String,
}

impl Config {
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, String> {
        let mut gateway = GatewaySettings::parse(s)?;
        let hermes_home = s.path("hermes-home")?.to_string();
        let lock_files = s
            .list("lock-files")?
            .into_iter()
            .map(|f| {
                if f.starts_with('/') {
                    Ok(f)
                } else if f.split('/').any(|c| c == "..") {
                    Err(format!(
                        "setting 'lock-files': '{f}' must stay inside hermes-home"
                    ))
                } else {
                    Ok(format!("{}/{f}", hermes_home.trim_end_matches('/')))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !gateway.launch_env.iter().any(|(k, _)| k == "HERMES_HOME") {
            gateway
                .launch_env
                .insert(0, ("HERMES_HOME".into(), hermes_home.clone()));
        }
        let hermes_home = hermes_home.trim_end_matches('/').to_string();
        let env_file = match s.get("env-file")?.trim() {
            "" => None,
            _ => Some(s.path("env-file")?.to_string()),
        };
        Ok(Config {
            gateway,
            lock_files,
            env_file,
            internal_port: match s.get("internal-port")?.trim() {
                "" => None,
                _ => Some(s.port("internal-port")?),
            },
            relay_launch: s.argv("relay-launch")?,
            relay_log: s.path("relay-log")?.to_string(),
            hermes_home,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runner_plugin_sdk::{Target, kv};

    fn target_with(overrides: &[(&str, &str)]) -> Target {
        Target {
            sandbox: "sb".into(),
            backend: "docker".into(),
            settings: SETTINGS
                .iter()
                .map(|(k, d, _)| {
                    kv(
                        *k,
                        overrides
                            .iter()
                            .find(|(ok, _)| ok == k)
                            .map(|(_, v)| *v)
                            .unwrap_or(d),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn defaults_follow_the_nemoclaw_hermes_layout() {
        let t = target_with(&[]);
        let c = Config::from_settings(&Settings::new(&t)).unwrap();
        assert_eq!((c.gateway.port, c.gateway.host_port), (8642, 8642));
        assert_eq!(
            c.lock_files,
            vec![
                "/sandbox/.hermes/gateway.pid",
                "/sandbox/.hermes/gateway.lock"
            ]
        );
        assert_eq!(
            c.gateway.launch_env,
            vec![("HERMES_HOME".to_string(), "/sandbox/.hermes".to_string())]
        );
        assert_eq!(c.env_file, None);
        assert!(
            c.gateway.launch.is_empty(),
            "empty = NemoClaw's `hermes gateway run`"
        );
        assert_eq!(c.gateway.launch_user, None);
        assert_eq!(c.internal_port, None);
    }

    #[test]
    fn direct_launch_and_extra_lock_files_parse() {
        let t = target_with(&[
            ("launch", "hermes gateway run"),
            ("launch-user", "gateway"),
            ("lock-files", "gateway.pid,runtime/gateway.lock,/tmp/x.pid"),
            ("launch-env", "HERMES_GATEWAY_MAX_STARTS=0"),
        ]);
        let c = Config::from_settings(&Settings::new(&t)).unwrap();
        assert_eq!(c.gateway.launch, vec!["hermes", "gateway", "run"]);
        assert_eq!(c.lock_files[1], "/sandbox/.hermes/runtime/gateway.lock");
        assert_eq!(c.lock_files[2], "/tmp/x.pid");
        assert_eq!(c.gateway.launch_env[0].0, "HERMES_HOME");
        assert_eq!(
            c.gateway.launch_env[1],
            ("HERMES_GATEWAY_MAX_STARTS".into(), "0".into())
        );
    }

    #[test]
    fn lock_file_outside_home_is_rejected() {
        let t = target_with(&[("lock-files", "../../etc/passwd")]);
        assert!(
            Config::from_settings(&Settings::new(&t))
                .unwrap_err()
                .contains("lock-files")
        );
    }
}
