//! The plugin's settings: one table of keys, defaults and descriptions (used
//! by `describe`), and the typed view every probe and repair works from.

use runner_plugin_sdk::gateway::{self, GatewaySettings};
use runner_plugin_sdk::{SettingTable, Settings};

/// (key, default, description). Defaults are what a NemoClaw OpenClaw
/// sandbox has; a setting is only for layouts that differ.
pub const SETTINGS: &SettingTable = &[
    (
        "port",
        "18789",
        "gateway port inside the sandbox (HTTP + WebSocket)",
    ),
    (
        "host-port",
        "18789",
        "host port of the forward to the dashboard (127.0.0.1:<host-port>)",
    ),
    (
        "config",
        "/sandbox/.openclaw/openclaw.json",
        "OpenClaw config file (JSON5) holding gateway.controlUi.allowedOrigins",
    ),
    (
        "state-dir",
        "/sandbox/.openclaw",
        "OpenClaw state dir; 2026.9 keeps its locks in <state-dir>/tmp/openclaw-<uid>/",
    ),
    (
        "gateway-process",
        "openclaw-gateway",
        "comma-separated program names (argv[0] or kernel comm) that are the gateway; `openclaw gateway [run]` always is",
    ),
    (
        "launch",
        "",
        "command that starts the gateway (shell-like words or a JSON array), run after the env file is sourced; empty = NemoClaw's relaunch `openclaw gateway run --port <port>`",
    ),
    (
        "launch-user",
        "",
        "user that runs `launch`; empty = `gateway` when the sandbox has that user (NemoClaw), else the owner of state-dir, else `sandbox`",
    ),
    gateway::rows::SUPERVISOR,
    gateway::rows::SUPERVISOR_GRACE_S,
    (
        "launch-env",
        "",
        "extra environment for `launch`, NAME=VALUE words",
    ),
    (
        "guard-source-dir",
        "/usr/local/lib/nemoclaw/preloads",
        "directory of the packaged (trusted) guard preloads",
    ),
    (
        "guards",
        "nemoclaw-sandbox-safety-net.js,nemoclaw-ciao-network-guard.js",
        "comma-separated guard preload file names, staged from guard-source-dir into staged-dir",
    ),
    (
        "staged-dir",
        "/tmp",
        "where guards are staged (root:root 0444)",
    ),
    (
        "env-file",
        "/tmp/nemoclaw-proxy-env.sh",
        "env file sourced by the launch; wires every guard into NODE_OPTIONS",
    ),
    (
        "env-file-source",
        "/usr/local/lib/nemoclaw/nemoclaw-proxy-env.sh",
        "packaged source of env-file (staged verbatim); empty or absent = env-file is generated",
    ),
    gateway::rows::GATEWAY_LOG,
    (
        "dashboard-origin",
        "http://127.0.0.1:18789",
        "origin the browser dashboard uses; must be allowed by the gateway",
    ),
    (
        "gateway-token",
        "",
        "token for the WebSocket connect; empty = gateway.auth.token from the config",
    ),
    (
        "origin-check",
        "websocket",
        "how the dashboard origin is proven: `websocket` (OpenClaw connect handshake) or `http:<path>` (GET with Origin)",
    ),
    (
        "health-path",
        "/health",
        "gateway liveness path (200 or 401 = alive)",
    ),
    gateway::rows::HEALTH_TIMEOUT_MS,
    (
        "ws-timeout-ms",
        "5000",
        "deadline of the dashboard WebSocket conversation",
    ),
    gateway::rows::STOP_TIMEOUT_MS,
    (
        "start-grace-s",
        "90",
        "a gateway younger than this without a listener is still starting, not wedged (OpenClaw listens 7-25 s after start when idle, over 30 s on a loaded host; a wedge it logs is caught sooner)",
    ),
    gateway::rows::LAUNCH_SETTLE_MS,
];

/// Typed settings of one call.
#[derive(Debug, Clone)]
pub struct Config {
    /// The settings every gateway plugin shares.
    pub gateway: GatewaySettings,
    pub config: String,
    pub state_dir: String,
    pub guard_source_dir: String,
    pub guards: Vec<String>,
    pub staged_dir: String,
    pub env_file: String,
    pub env_file_source: Option<String>,
    pub dashboard_origin: String,
    pub gateway_token: String,
    pub origin_check: OriginCheck,
    pub ws_timeout_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginCheck {
    WebSocket,
    /// GET this path with the Origin header: 2xx allowed, 403 rejected.
    Http(String),
}

impl Config {
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, String> {
        let gateway = GatewaySettings::parse(s)?;
        let guards = s.list("guards")?;
        for g in &guards {
            if g.contains('/') || g == "." || g == ".." {
                return Err(format!(
                    "setting 'guards': '{g}' must be a file name, not a path"
                ));
            }
        }
        let origin_check = match s.get("origin-check")?.trim() {
            "" | "websocket" | "ws" => OriginCheck::WebSocket,
            other => match other.strip_prefix("http:") {
                Some(path) if path.starts_with('/') => OriginCheck::Http(path.to_string()),
                _ => {
                    return Err(format!(
                        "setting 'origin-check' = '{other}' must be `websocket` or `http:/path`"
                    ));
                }
            },
        };
        let optional_path = |key: &str| -> Result<Option<String>, String> {
            match s.get(key)?.trim() {
                "" => Ok(None),
                _ => s.path(key).map(|p| Some(p.to_string())),
            }
        };
        Ok(Config {
            gateway,
            config: s.path("config")?.to_string(),
            state_dir: s.path("state-dir")?.to_string(),
            guard_source_dir: s.path("guard-source-dir")?.to_string(),
            guards,
            staged_dir: s.path("staged-dir")?.to_string(),
            env_file: s.path("env-file")?.to_string(),
            env_file_source: optional_path("env-file-source")?,
            dashboard_origin: s
                .required("dashboard-origin")?
                .trim_end_matches('/')
                .to_string(),
            gateway_token: s.get("gateway-token")?.trim().to_string(),
            origin_check,
            ws_timeout_ms: s.u32("ws-timeout-ms")?,
        })
    }

    /// NemoClaw's relaunch of the gateway.
    pub fn default_launch_argv(&self) -> Vec<String> {
        ["openclaw", "gateway", "run", "--port"]
            .iter()
            .map(|s| s.to_string())
            .chain([self.gateway.port.to_string()])
            .collect()
    }

    /// `<staged-dir>/<guard>` for every guard.
    pub fn staged_paths(&self) -> Vec<String> {
        self.guards
            .iter()
            .map(|g| join(&self.staged_dir, g))
            .collect()
    }

    pub fn source_path(&self, guard: &str) -> String {
        join(&self.guard_source_dir, guard)
    }

    /// Parents of the per-uid lock directories: legacy `/tmp` and 2026.9's
    /// `<state-dir>/tmp`.
    pub fn lock_parents(&self) -> Vec<String> {
        vec!["/tmp".to_string(), join(&self.state_dir, "tmp")]
    }
}

pub fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runner_plugin_sdk::{Target, kv};

    pub fn target_with(overrides: &[(&str, &str)]) -> Target {
        Target {
            sandbox: "sb".into(),
            backend: "docker".into(),
            settings: SETTINGS
                .iter()
                .map(|(k, d, _)| {
                    let v = overrides
                        .iter()
                        .find(|(ok, _)| ok == k)
                        .map(|(_, v)| *v)
                        .unwrap_or(d);
                    kv(*k, v)
                })
                .collect(),
        }
    }

    #[test]
    fn defaults_follow_the_nemoclaw_layout() {
        let t = target_with(&[]);
        let c = Config::from_settings(&Settings::new(&t)).unwrap();
        assert_eq!((c.gateway.port, c.gateway.host_port), (18789, 18789));
        assert_eq!(c.config, "/sandbox/.openclaw/openclaw.json");
        assert_eq!(
            c.staged_paths(),
            vec![
                "/tmp/nemoclaw-sandbox-safety-net.js",
                "/tmp/nemoclaw-ciao-network-guard.js"
            ]
        );
        assert_eq!(
            c.source_path("x.js"),
            "/usr/local/lib/nemoclaw/preloads/x.js"
        );
        assert_eq!(c.lock_parents(), vec!["/tmp", "/sandbox/.openclaw/tmp"]);
        // Empty = decided from the sandbox at repair time (NemoClaw's relaunch).
        assert!(c.gateway.launch.is_empty());
        assert_eq!(c.gateway.launch_user, None);
        assert_eq!(
            c.default_launch_argv(),
            vec!["openclaw", "gateway", "run", "--port", "18789"]
        );
        assert_eq!(c.origin_check, OriginCheck::WebSocket);
        assert_eq!(
            c.env_file_source.as_deref(),
            Some("/usr/local/lib/nemoclaw/nemoclaw-proxy-env.sh")
        );
    }

    #[test]
    fn fixture_overrides_parse() {
        let t = target_with(&[
            ("gateway-process", "fixture-gateway"),
            ("launch", "/usr/local/bin/fixture-launch --mode normal"),
            ("env-file-source", ""),
            ("origin-check", "http:/origin-check"),
        ]);
        let c = Config::from_settings(&Settings::new(&t)).unwrap();
        assert_eq!(c.gateway.gateway_process, vec!["fixture-gateway"]);
        assert_eq!(
            c.gateway.launch,
            vec!["/usr/local/bin/fixture-launch", "--mode", "normal"]
        );
        assert_eq!(c.env_file_source, None);
        assert_eq!(c.origin_check, OriginCheck::Http("/origin-check".into()));
    }

    #[test]
    fn bad_settings_are_rejected_with_the_key() {
        for (k, v) in [
            ("port", "0"),
            ("config", "relative.json"),
            ("guards", "../etc/passwd"),
            ("origin-check", "ftp"),
            ("launch-env", "NOT AN ASSIGNMENT"),
        ] {
            let t = target_with(&[(k, v)]);
            let err = Config::from_settings(&Settings::new(&t)).unwrap_err();
            assert!(err.contains(k), "{k}: {err}");
        }
    }
}
