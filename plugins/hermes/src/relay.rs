//! The `relay` link: NemoClaw's managed Hermes layout runs the gateway's API
//! server on an internal port (18642) and an in-sandbox `socat` relay on the
//! public one (8642). Which layout a sandbox has is read from Hermes' own
//! configuration (`.env` beats `config.yaml`, as in Hermes); in the legacy
//! layout the gateway serves the public port itself and this link is
//! healthy with nothing to do.

use crate::config::Config;
use runner_plugin_sdk::checks::{self, HttpProbe};
use runner_plugin_sdk::gateway::{self, LaunchError, LaunchSpec};
use runner_plugin_sdk::launch::{self, DefaultLaunch, UserRule};
use runner_plugin_sdk::process::{self, args, basename};
use runner_plugin_sdk::{ProcessInfo, RepairOutcome, Report, Sandbox};
use std::time::Duration;

pub const LINK: &str = "relay";

/// Config files are small; a bigger one is not Hermes'.
const MAX_CONFIG: u32 = 256 * 1024;

/// The value of `KEY` in a dotenv file (`KEY=value`, optional `export`,
/// optional quotes); the last assignment wins.
pub fn dotenv_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .rev()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| {
                let v = v.trim();
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                    .unwrap_or(v)
                    .to_string()
            })
        })
        .next()
}

/// The scalar at `path` in block-style YAML (nested mappings by
/// indentation, `key: value` leaves; comments and quotes allowed). Only the
/// subset Hermes' config uses for this key is read; anything else along the
/// path yields `None`, and the caller falls back to the next source. A YAML
/// crate would pull a full parser into a plugin built for size, for one
/// integer.
pub fn yaml_scalar(text: &str, path: &[&str]) -> Option<String> {
    // (indent, key) of the mappings we are inside of, matched against `path`.
    let mut stack: Vec<(usize, String)> = Vec::new();
    for raw in text.lines() {
        let line = match raw.find(" #") {
            Some(i) => &raw[..i],
            None => raw,
        };
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches('"').trim_matches('\'').to_string();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let depth = stack.len();
        let on_path = depth < path.len()
            && stack.iter().zip(path).all(|((_, k), p)| k == p)
            && key == path[depth];
        if !on_path {
            stack.push((indent, key));
            continue;
        }
        let value = value.trim();
        if depth + 1 == path.len() {
            if value.is_empty() {
                return None;
            }
            return Some(value.trim_matches('"').trim_matches('\'').to_string());
        }
        stack.push((indent, key));
    }
    None
}

/// Where the gateway's API server listens, and why that port.
pub fn internal_port(sandbox: &Sandbox, cfg: &Config) -> Result<(u16, String), String> {
    if let Some(p) = cfg.internal_port {
        return Ok((p, "setting `internal-port`".into()));
    }
    let read = |path: &str| -> Result<Option<String>, String> {
        match sandbox
            .stat(path)
            .map_err(|e| format!("cannot stat {path}: {e}"))?
        {
            None => Ok(None),
            Some(_) => sandbox
                .read(path, MAX_CONFIG)
                .map(|d| Some(String::from_utf8_lossy(&d).into_owned()))
                .map_err(|e| format!("cannot read {path}: {e}")),
        }
    };
    let port_of = |v: String, from: String| -> Result<(u16, String), String> {
        v.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .map(|p| (p, from.clone()))
            .ok_or_else(|| format!("{from} = '{v}' is not a TCP port"))
    };
    let env = format!("{}/.env", cfg.hermes_home);
    if let Some(v) = read(&env)?.and_then(|t| dotenv_value(&t, "API_SERVER_PORT")) {
        return port_of(v, format!("API_SERVER_PORT in {env}"));
    }
    let yaml = format!("{}/config.yaml", cfg.hermes_home);
    if let Some(text) = read(&yaml)? {
        for path in [
            &["platforms", "api_server", "extra", "port"][..],
            &["gateway", "platforms", "api_server", "extra", "port"][..],
        ] {
            if let Some(v) = yaml_scalar(&text, path) {
                return port_of(v, format!("{} in {yaml}", path.join(".")));
            }
        }
    }
    Ok((cfg.gateway.port, "Hermes' default".into()))
}

/// `socat …-LISTEN:<port>[,opts] …` — the relay for `port`.
pub fn is_relay_for(p: &ProcessInfo, port: u16) -> bool {
    let a = args(p);
    let program = a.first().map(|s| basename(s)).unwrap_or_default();
    if program != "socat" && p.comm != "socat" {
        return false;
    }
    a.iter().skip(1).any(|w| {
        let Some((kind, rest)) = w.split_once(':') else {
            return false;
        };
        let kind = kind.to_ascii_uppercase();
        matches!(kind.as_str(), "TCP-LISTEN" | "TCP4-LISTEN" | "TCP6-LISTEN")
            && rest.split(',').next() == Some(port.to_string().as_str())
    })
}

/// Whether the relay's target is `internal` (its `TCP:host:port` address).
fn targets(p: &ProcessInfo, internal: u16) -> bool {
    args(p).iter().skip(1).any(|w| {
        let up = w.to_ascii_uppercase();
        (up.starts_with("TCP:") || up.starts_with("TCP4:") || up.starts_with("TCP6:"))
            && w.rsplit(':')
                .next()
                .and_then(|t| t.split(',').next())
                .is_some_and(|t| t == internal.to_string())
    })
}

fn relay_argv(cfg: &Config, internal: u16) -> Vec<String> {
    vec![
        "socat".into(),
        format!(
            "TCP-LISTEN:{},bind=127.0.0.1,reuseaddr,fork",
            cfg.gateway.port
        ),
        format!("TCP:127.0.0.1:{internal}"),
    ]
}

pub fn probe(sandbox: &Sandbox, cfg: &Config) -> Report {
    let (internal, why) = match internal_port(sandbox, cfg) {
        Ok(p) => p,
        Err(e) => return Report::unknown(LINK, e),
    };
    if internal == cfg.gateway.port {
        return Report::healthy(
            LINK,
            format!(
                "no relay in this layout: the gateway serves port {} itself ({why})",
                cfg.gateway.port
            ),
        )
        .evidence("layout", "legacy");
    }
    let base = |r: Report| {
        r.evidence("layout", "relay")
            .evidence("internal-port", internal)
            .evidence("internal-port-from", &why)
    };
    let procs = match sandbox.processes() {
        Ok(p) => p,
        Err(e) => return base(Report::unknown(LINK, format!("cannot list processes: {e}"))),
    };
    let listeners = match sandbox.listeners() {
        Ok(l) => l,
        Err(e) => return base(Report::unknown(LINK, format!("cannot list listeners: {e}"))),
    };
    let relay_for = |p: &ProcessInfo| is_relay_for(p, cfg.gateway.port);
    let on_port: Vec<_> = listeners
        .iter()
        .filter(|l| l.port == cfg.gateway.port)
        .collect();
    let Some(l) = on_port.first() else {
        return base(
            Report::broken(
                LINK,
                format!(
                    "nothing listens on port {} (the gateway is on {internal}); the relay is gone",
                    cfg.gateway.port
                ),
            )
            .repairable(),
        );
    };
    let owner = l.owner.and_then(|id| process::by_id(&procs, id));
    match owner {
        Some(p) if relay_for(p) && targets(p, internal) => {
            match checks::http_code_in(
                sandbox,
                cfg.gateway.port,
                &cfg.gateway.health_path,
                crate::HEALTH_CODES,
                cfg.gateway.health_timeout_ms,
            ) {
                HttpProbe::Accepted(code) => base(
                    Report::healthy(
                        LINK,
                        format!(
                            "relay {} forwards port {} to {internal}; {} answers {code} through it",
                            process::display(p),
                            cfg.gateway.port,
                            cfg.gateway.health_path
                        ),
                    )
                    .evidence("pid", p.id.pid)
                    .evidence("start-time", p.id.start_time),
                ),
                HttpProbe::Rejected(code) => base(Report::broken(
                    LINK,
                    format!(
                        "relay {} answers {code} on {}",
                        process::display(p),
                        cfg.gateway.health_path
                    ),
                )),
                HttpProbe::NoAnswer(e) => base(Report::unknown(
                    LINK,
                    format!("GET {} through the relay: {e}", cfg.gateway.health_path),
                )),
            }
        }
        Some(p) if relay_for(p) => base(
            Report::broken(
                LINK,
                format!(
                    "relay {} on port {} does not forward to the gateway's port {internal}",
                    process::display(p),
                    cfg.gateway.port
                ),
            )
            .repairable(),
        ),
        Some(p) => base(Report::broken(
            LINK,
            format!(
                "port {} is held by {}, which is not the relay; refusing to touch it",
                cfg.gateway.port,
                process::display(p)
            ),
        )),
        None => base(Report::unknown(
            LINK,
            format!(
                "port {} is held by an unidentified process",
                cfg.gateway.port
            ),
        )),
    }
}

/// Retire relays for this port that do not forward to `internal` (by
/// identity: only `socat` processes listening on our port), then launch one.
pub fn repair(sandbox: &Sandbox, cfg: &Config) -> RepairOutcome {
    let (internal, _) = match internal_port(sandbox, cfg) {
        Ok(p) => p,
        Err(e) => return RepairOutcome::Failed(e),
    };
    if internal == cfg.gateway.port {
        return RepairOutcome::NotNeeded("no relay in this layout".into());
    }
    let stale = move |p: &ProcessInfo| is_relay_for(p, cfg.gateway.port) && !targets(p, internal);
    let retired = match gateway::retire(
        sandbox,
        &stale,
        gateway::StopBudget {
            term: Duration::from_secs(2),
            kill: Duration::from_secs(2),
        },
    ) {
        Ok(ids) => ids,
        Err(e) => return RepairOutcome::Failed(format!("could not retire the old relay: {e}")),
    };
    let users = [
        UserRule::OwnerOf(&cfg.hermes_home),
        UserRule::Named("gateway"),
        UserRule::Named("sandbox"),
    ];
    let default = DefaultLaunch {
        argv: relay_argv(cfg, internal),
        origin: "NemoClaw's relay",
        users: &users,
    };
    let (argv, user, chosen) = match launch::resolve(
        sandbox,
        &cfg.relay_launch,
        cfg.gateway.launch_user.as_deref(),
        default,
    ) {
        Ok(r) => r,
        Err(e) => return RepairOutcome::Failed(format!("cannot choose the relay launch: {e}")),
    };
    let spec = LaunchSpec {
        argv,
        user: Some(user),
        env: Vec::new(),
        env_file: None,
        log_file: cfg.relay_log.clone(),
        chosen,
        fix: "set `relay-launch` (label `runner.relay-launch`) to the relay's command".into(),
    };
    let is_relay = move |p: &ProcessInfo| is_relay_for(p, cfg.gateway.port);
    match gateway::launch(
        sandbox,
        &spec,
        cfg.gateway.port,
        &is_relay,
        &retired,
        Duration::from_secs(2),
    ) {
        Ok(l) => RepairOutcome::Repaired(format!(
            "launched relay pid {} {} -> {internal}: {} as {} ({})",
            l.id.pid,
            cfg.gateway.port,
            spec.argv.join(" "),
            spec.user.as_deref().unwrap_or("the default user"),
            spec.chosen
        )),
        Err(LaunchError::Deterministic(why)) => RepairOutcome::Refused(why),
        Err(LaunchError::Failed(why)) => RepairOutcome::Failed(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runner_plugin_sdk::ProcessId;

    fn p(cmd: &[&str]) -> ProcessInfo {
        ProcessInfo {
            id: ProcessId {
                pid: 30,
                start_time: 5,
            },
            ppid: 1,
            uid: 998,
            state: "S".into(),
            comm: basename(cmd[0]).chars().take(15).collect(),
            cmdline: cmd.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn managed_layout_port_is_read_from_hermes_config() {
        let yaml = "# c\nplatforms:\n  api_server:\n    enabled: true\n    extra:\n      host: 127.0.0.1\n      port: 18642 # internal\nsecurity:\n  port: 1\n";
        assert_eq!(
            yaml_scalar(yaml, &["platforms", "api_server", "extra", "port"]).as_deref(),
            Some("18642")
        );
        assert_eq!(
            yaml_scalar(yaml, &["security", "port"]).as_deref(),
            Some("1")
        );
        assert_eq!(
            yaml_scalar(yaml, &["platforms", "api_server", "port"]),
            None
        );
        let nested =
            "gateway:\n  platforms:\n    api_server:\n      extra:\n        port: '18642'\n";
        assert_eq!(
            yaml_scalar(
                nested,
                &["gateway", "platforms", "api_server", "extra", "port"]
            )
            .as_deref(),
            Some("18642")
        );
        assert_eq!(
            dotenv_value("A=1\nexport API_SERVER_PORT=\"18642\"\n", "API_SERVER_PORT").as_deref(),
            Some("18642")
        );
        assert_eq!(dotenv_value("API_SERVER_KEY=x", "API_SERVER_PORT"), None);
    }

    #[test]
    fn socat_listening_on_the_public_port_is_the_relay() {
        let relay = p(&[
            "socat",
            "TCP-LISTEN:8642,bind=127.0.0.1,reuseaddr,fork",
            "TCP:127.0.0.1:18642",
        ]);
        assert!(is_relay_for(&relay, 8642));
        assert!(targets(&relay, 18642));
        assert!(!targets(&relay, 18643));
        assert!(!is_relay_for(&relay, 18642));
        let other = p(&[
            "/usr/bin/socat",
            "TCP4-LISTEN:9000,fork",
            "TCP:127.0.0.1:8642",
        ]);
        assert!(!is_relay_for(&other, 8642));
        let not_socat = p(&["nc", "-l", "TCP-LISTEN:8642"]);
        assert!(!is_relay_for(&not_socat, 8642));
    }
}
