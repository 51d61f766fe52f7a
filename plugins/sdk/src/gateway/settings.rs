//! The settings every gateway plugin declares, parsed once.
//!
//! A plugin's settings table is data: it lists its own rows and, where the
//! meaning is the same for every agent, the shared rows in [`rows`]. Keys
//! whose default or wording is agent-specific (`port`, `launch`, …) stay in
//! the plugin's table but are parsed here, so the typed value and its
//! validation are the same everywhere.

use super::{GatewaySpec, Relaunch};
use crate::launch::DefaultLaunch;
use crate::supervisor::SupervisorSpec;
use crate::{ProcessInfo, Settings};
use std::time::Duration;

/// Rows whose default and description are the same for every agent.
pub mod rows {
    use crate::SettingRow;

    pub const SUPERVISOR: SettingRow = (
        "supervisor",
        "nemoclaw-start",
        "comma-separated PID-1 programs that relaunch the gateway themselves (NemoClaw's supervised entrypoint); with one of them as PID 1, runner waits up to supervisor-grace-s for its gateway before launching one, and credits it",
    );
    pub const SUPERVISOR_GRACE_S: SettingRow = (
        "supervisor-grace-s",
        "10",
        "longest wait for the sandbox's own supervisor to launch the gateway",
    );
    pub const GATEWAY_LOG: SettingRow = (
        "gateway-log",
        "/tmp/gateway.log",
        "log the launch appends to",
    );
    pub const HEALTH_TIMEOUT_MS: SettingRow = (
        "health-timeout-ms",
        "3000",
        "deadline of one health request",
    );
    pub const STOP_TIMEOUT_MS: SettingRow = (
        "stop-timeout-ms",
        "8000",
        "wait after SIGTERM before SIGKILL when retiring an old gateway",
    );
    pub const LAUNCH_SETTLE_MS: SettingRow = (
        "launch-settle-ms",
        "1000",
        "longest wait after launching for the gateway to listen; ends early once it listens or has exited (then the launch fails with the end of its log); a gateway still starting is left to the verification",
    );
}

/// Keys [`GatewaySettings::parse`] reads; a plugin's table declares each.
pub const KEYS: &[&str] = &[
    "port",
    "host-port",
    "gateway-process",
    "launch",
    "launch-user",
    "launch-env",
    rows::SUPERVISOR.0,
    rows::SUPERVISOR_GRACE_S.0,
    rows::GATEWAY_LOG.0,
    "health-path",
    rows::HEALTH_TIMEOUT_MS.0,
    rows::STOP_TIMEOUT_MS.0,
    "start-grace-s",
    rows::LAUNCH_SETTLE_MS.0,
];

/// What an agent's gateway answers, which is not a setting.
#[derive(Debug, Clone, Copy)]
pub struct GatewayTraits {
    /// HTTP codes of `health-path` that prove liveness.
    pub ok_codes: &'static [u16],
    /// See [`GatewaySpec::ready_path`].
    pub ready_path: Option<&'static str>,
    /// See [`GatewaySpec::wedge_markers`].
    pub wedge_markers: &'static [&'static str],
}

/// The shared gateway settings of one call, typed and validated.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub port: u16,
    pub host_port: u16,
    /// Extra program names that are the gateway.
    pub gateway_process: Vec<String>,
    /// Empty = the agent's own relaunch.
    pub launch: Vec<String>,
    /// `None` = chosen from the sandbox at repair time.
    pub launch_user: Option<String>,
    pub launch_env: Vec<(String, String)>,
    pub supervisor: SupervisorSpec,
    pub gateway_log: String,
    /// Starts with `/`.
    pub health_path: String,
    pub health_timeout_ms: u32,
    pub stop_timeout_ms: u32,
    pub start_grace_s: u32,
    pub launch_settle_ms: u32,
}

impl GatewaySettings {
    /// `Err` names the offending key.
    pub fn parse(s: &Settings<'_>) -> Result<Self, String> {
        let launch_user = match s.get("launch-user")?.trim() {
            "" => None,
            u => Some(u.to_string()),
        };
        let health_path = s.required("health-path")?.to_string();
        if !health_path.starts_with('/') {
            return Err("setting 'health-path' must start with '/'".into());
        }
        Ok(Self {
            port: s.port("port")?,
            host_port: s.port("host-port")?,
            gateway_process: s.list("gateway-process")?,
            launch: s.argv("launch")?,
            launch_user,
            launch_env: s.env("launch-env")?,
            supervisor: SupervisorSpec {
                names: s.list("supervisor")?,
                grace: Duration::from_secs(s.u32("supervisor-grace-s")?.into()),
            },
            gateway_log: s.path("gateway-log")?.to_string(),
            health_path,
            health_timeout_ms: s.u32("health-timeout-ms")?,
            stop_timeout_ms: s.u32("stop-timeout-ms")?,
            start_grace_s: s.u32("start-grace-s")?,
            launch_settle_ms: s.u32("launch-settle-ms")?,
        })
    }

    /// The probe's view of the gateway listening on `port` (the setting, or
    /// an internal port the agent resolved).
    pub fn spec<'a>(
        &'a self,
        port: u16,
        traits: &GatewayTraits,
        is_gateway: &'a dyn Fn(&ProcessInfo) -> bool,
    ) -> GatewaySpec<'a> {
        GatewaySpec {
            port,
            health_path: &self.health_path,
            ok_codes: traits.ok_codes,
            ready_path: traits.ready_path,
            health_timeout_ms: self.health_timeout_ms,
            start_grace_secs: self.start_grace_s.into(),
            is_gateway,
            log_file: Some(&self.gateway_log),
            wedge_markers: traits.wedge_markers,
        }
    }

    /// The relaunch these settings describe; `env` is the launch
    /// environment (the agent may have added to `launch_env`).
    pub fn relaunch<'a>(
        &'a self,
        env: &'a [(String, String)],
        env_file: Option<&'a str>,
        default: DefaultLaunch<'a>,
    ) -> Relaunch<'a> {
        Relaunch {
            launch: &self.launch,
            launch_user: self.launch_user.as_deref(),
            env,
            env_file,
            log_file: &self.gateway_log,
            stop_timeout_ms: self.stop_timeout_ms,
            settle_ms: self.launch_settle_ms,
            default,
            supervisor: (!self.supervisor.names.is_empty()).then(|| self.supervisor.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SettingRow, Target, kv};

    const TABLE: &[SettingRow] = &[
        ("port", "18789", ""),
        ("host-port", "18790", ""),
        ("gateway-process", "gw-a, gw-b", ""),
        ("launch", "agent gateway run", ""),
        ("launch-user", "", ""),
        ("launch-env", "A=1", ""),
        rows::SUPERVISOR,
        rows::SUPERVISOR_GRACE_S,
        rows::GATEWAY_LOG,
        ("health-path", "/health", ""),
        rows::HEALTH_TIMEOUT_MS,
        rows::STOP_TIMEOUT_MS,
        ("start-grace-s", "90", ""),
        rows::LAUNCH_SETTLE_MS,
    ];

    fn target_with(overrides: &[(&str, &str)]) -> Target {
        Target {
            sandbox: "sb".into(),
            backend: "docker".into(),
            settings: TABLE
                .iter()
                .map(|(k, d, _)| {
                    let v = overrides.iter().find(|(o, _)| o == k).map_or(*d, |o| o.1);
                    kv(*k, v)
                })
                .collect(),
        }
    }

    const TRAITS: GatewayTraits = GatewayTraits {
        ok_codes: &[200, 401],
        ready_path: Some("/readyz"),
        wedge_markers: &["gave up"],
    };

    #[test]
    fn the_shared_keys_are_exactly_what_parse_reads() {
        let declared: Vec<&str> = TABLE.iter().map(|r| r.0).collect();
        assert_eq!(declared, KEYS);
        for key in KEYS {
            let without: Vec<_> = target_with(&[])
                .settings
                .into_iter()
                .filter(|kv| kv.key != *key)
                .collect();
            let t = Target {
                settings: without,
                ..target_with(&[])
            };
            let err = GatewaySettings::parse(&Settings::new(&t)).unwrap_err();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn a_gateway_plugins_defaults_become_its_probe_and_relaunch() {
        let t = target_with(&[]);
        let gw = GatewaySettings::parse(&Settings::new(&t)).unwrap();
        assert_eq!((gw.port, gw.host_port), (18789, 18790));
        assert_eq!(gw.gateway_process, ["gw-a", "gw-b"]);
        assert_eq!(gw.launch, ["agent", "gateway", "run"]);
        assert_eq!(gw.launch_user, None);
        assert_eq!(gw.supervisor.names, ["nemoclaw-start"]);
        assert_eq!(gw.supervisor.grace, Duration::from_secs(10));

        let never = |_: &ProcessInfo| false;
        let spec = gw.spec(4000, &TRAITS, &never);
        assert_eq!(spec.port, 4000, "the agent may resolve an internal port");
        assert_eq!(spec.health_path, "/health");
        assert_eq!(spec.start_grace_secs, 90);
        assert_eq!(spec.log_file, Some("/tmp/gateway.log"));
        assert_eq!(spec.ready_path, Some("/readyz"));
        assert_eq!(spec.wedge_markers, ["gave up"]);

        let users: [crate::launch::UserRule<'_>; 0] = [];
        let default = DefaultLaunch {
            argv: vec!["agent".into()],
            origin: "the agent's relaunch",
            users: &users,
        };
        let r = gw.relaunch(&gw.launch_env, Some("/tmp/env.sh"), default);
        assert_eq!(r.env, [("A".to_string(), "1".to_string())]);
        assert_eq!((r.stop_timeout_ms, r.settle_ms), (8000, 1000));
        assert_eq!(r.log_file, "/tmp/gateway.log");
        assert!(r.supervisor.is_some());
    }

    #[test]
    fn no_supervisor_names_means_no_supervisor_wait() {
        let t = target_with(&[("supervisor", " , ")]);
        let gw = GatewaySettings::parse(&Settings::new(&t)).unwrap();
        let users: [crate::launch::UserRule<'_>; 0] = [];
        let default = DefaultLaunch {
            argv: vec![],
            origin: "",
            users: &users,
        };
        assert!(gw.relaunch(&[], None, default).supervisor.is_none());
    }

    #[test]
    fn bad_shared_settings_are_rejected_with_the_key() {
        for (k, v) in [
            ("port", "0"),
            ("host-port", "70000"),
            ("launch", "'unterminated"),
            ("launch-env", "NOT AN ASSIGNMENT"),
            ("gateway-log", "relative.log"),
            ("health-path", "health"),
            ("stop-timeout-ms", "soon"),
        ] {
            let t = target_with(&[(k, v)]);
            let err = GatewaySettings::parse(&Settings::new(&t)).unwrap_err();
            assert!(err.contains(k), "{k}: {err}");
        }
    }
}
