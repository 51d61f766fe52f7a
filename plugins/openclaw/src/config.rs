//! The plugin's settings: one table of keys, defaults and descriptions (used
//! by `describe`), and the typed view every probe and repair works from.

use runner_plugin_sdk::Settings;

/// (key, default, description). Defaults are what a NemoClaw OpenClaw
/// sandbox has; a setting is only for layouts that differ.
pub const SETTINGS: &[(&str, &str, &str)] = &[
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
    (
        "supervisor",
        "nemoclaw-start",
        "comma-separated PID-1 programs that relaunch the gateway themselves (NemoClaw's supervised entrypoint); with one of them as PID 1, runner waits up to supervisor-grace-s for its gateway before launching one, and credits it",
    ),
    (
        "supervisor-grace-s",
        "10",
        "longest wait for the sandbox's own supervisor to launch the gateway",
    ),
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
    (
        "gateway-log",
        "/tmp/gateway.log",
        "log the launch appends to",
    ),
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
    (
        "health-timeout-ms",
        "3000",
        "deadline of one health request",
    ),
    (
        "ws-timeout-ms",
        "5000",
        "deadline of the dashboard WebSocket conversation",
    ),
    (
        "stop-timeout-ms",
        "8000",
        "wait after SIGTERM before SIGKILL when retiring an old gateway",
    ),
    (
        "start-grace-s",
        "90",
        "a gateway younger than this without a listener is still starting, not wedged (OpenClaw listens 7-25 s after start when idle, over 30 s on a loaded host; a wedge it logs is caught sooner)",
    ),
    (
        "launch-settle-ms",
        "1000",
        "longest wait after launching for the gateway to listen; ends early once it listens or has exited (then the launch fails with the end of its log); a gateway still starting is left to the verification",
    ),
];

/// Typed settings of one call.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub host_port: u16,
    pub config: String,
    pub state_dir: String,
    pub gateway_process: Vec<String>,
    pub launch: Vec<String>,
    pub launch_user: Option<String>,
    pub launch_env: Vec<(String, String)>,
    pub supervisor: runner_plugin_sdk::supervisor::SupervisorSpec,
    pub guard_source_dir: String,
    pub guards: Vec<String>,
    pub staged_dir: String,
    pub env_file: String,
    pub env_file_source: Option<String>,
    pub gateway_log: String,
    pub dashboard_origin: String,
    pub gateway_token: String,
    pub origin_check: OriginCheck,
    pub health_path: String,
    pub health_timeout_ms: u32,
    pub ws_timeout_ms: u32,
    pub stop_timeout_ms: u32,
    pub start_grace_s: u32,
    pub launch_settle_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginCheck {
    WebSocket,
    /// GET this path with the Origin header: 2xx allowed, 403 rejected.
    Http(String),
}

impl Config {
    pub fn from_settings(s: &Settings<'_>) -> Result<Self, String> {
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
        let launch_user = match s.get("launch-user")?.trim() {
            "" => None,
            u => Some(u.to_string()),
        };
        let health_path = s.required("health-path")?.to_string();
        if !health_path.starts_with('/') {
            return Err("setting 'health-path' must start with '/'".into());
        }
        Ok(Config {
            port: s.port("port")?,
            host_port: s.port("host-port")?,
            config: s.path("config")?.to_string(),
            state_dir: s.path("state-dir")?.to_string(),
            gateway_process: s.list("gateway-process")?,
            launch: s.argv("launch")?,
            launch_user,
            launch_env: s.env("launch-env")?,
            supervisor: runner_plugin_sdk::supervisor::SupervisorSpec {
                names: s.list("supervisor")?,
                grace: std::time::Duration::from_secs(s.u32("supervisor-grace-s")?.into()),
            },
            guard_source_dir: s.path("guard-source-dir")?.to_string(),
            guards,
            staged_dir: s.path("staged-dir")?.to_string(),
            env_file: s.path("env-file")?.to_string(),
            env_file_source: optional_path("env-file-source")?,
            gateway_log: s.path("gateway-log")?.to_string(),
            dashboard_origin: s
                .required("dashboard-origin")?
                .trim_end_matches('/')
                .to_string(),
            gateway_token: s.get("gateway-token")?.trim().to_string(),
            origin_check,
            health_path,
            health_timeout_ms: s.u32("health-timeout-ms")?,
            ws_timeout_ms: s.u32("ws-timeout-ms")?,
            stop_timeout_ms: s.u32("stop-timeout-ms")?,
            start_grace_s: s.u32("start-grace-s")?,
            launch_settle_ms: s.u32("launch-settle-ms")?,
        })
    }

    /// NemoClaw's relaunch of the gateway.
    pub fn default_launch_argv(&self) -> Vec<String> {
        ["openclaw", "gateway", "run", "--port"]
            .iter()
            .map(|s| s.to_string())
            .chain([self.port.to_string()])
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
        assert_eq!((c.port, c.host_port), (18789, 18789));
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
        assert!(c.launch.is_empty());
        assert_eq!(c.launch_user, None);
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
        assert_eq!(c.gateway_process, vec!["fixture-gateway"]);
        assert_eq!(
            c.launch,
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
