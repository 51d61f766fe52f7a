//! A plugin written the way an outside author would write one: against the
//! `runner:plugin@0.2.0` WIT with plain `wit-bindgen`, without runner's SDK.
//!
//! It recovers one daemon that listens on a port inside the sandbox, and the
//! host forward to that port. The daemon's link is `agent-daemon`, not
//! `gateway`: what a liveness tick checks comes from the declared hint and
//! the report's `live` identity, never from a link name or evidence key.

wit_bindgen::generate!({ path: "../../../wit/v0.2", world: "agent-plugin" });

use exports::runner::plugin::plugin::Guest;
use runner::plugin::exec::ExecError;
use runner::plugin::files::{self, MkdirRequest};
use runner::plugin::forward::{self, ForwardRequest, ForwardState};
use runner::plugin::log::{self, Level};
use runner::plugin::processes::{self, ProcessInfo, Signal};
use runner::plugin::spawn::{self, SpawnRequest};
use runner::plugin::target::Sandbox;
use runner::plugin::types::{
    BrokenCause, CapError, Capabilities, Health, Kv, LinkReport, LinkSpec, LiveIdentity,
    LivenessHint, PluginInfo, ProbeError, ProcessId, RepairOutcome, SettingKind, SettingProblem,
    SettingSpec, SettingValue, UnknownCause,
};

const DAEMON: &str = "agent-daemon";
const REACH: &str = "host-reach";
/// A repair needs this long for a launch (a few host calls); with less left
/// it says so instead of being cut off half-way.
const MIN_REPAIR_MS: u64 = 2_000;

struct OutsideAgent;

/// The settings, as the host resolved and typed them.
struct Config {
    port: u16,
    host_port: u16,
    command: Option<Vec<String>>,
    process_name: String,
    user: Option<String>,
    log_file: String,
    start_grace_ms: u64,
    stop_signal: Signal,
}

impl Config {
    fn of(sandbox: &Sandbox) -> Result<Config, SettingProblem> {
        let settings = sandbox.settings();
        let get = |key: &str| {
            settings
                .iter()
                .find(|s| s.key == key)
                .and_then(|s| s.value.clone())
        };
        let wrong = |key: &str| SettingProblem {
            key: key.into(),
            message: "missing or not of its declared kind".into(),
        };
        let port = |key: &str| match get(key) {
            Some(SettingValue::Port(p)) => Ok(p),
            _ => Err(wrong(key)),
        };
        let text = |key: &str| match get(key) {
            Some(SettingValue::Text(t)) => Some(t),
            _ => None,
        };
        Ok(Config {
            port: port("port")?,
            host_port: port("host-port")?,
            // Words separated by spaces, no quoting: enough for a daemon
            // command line, and nothing for a shell to interpret.
            command: text("command")
                .map(|c| c.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .filter(|argv| !argv.is_empty()),
            process_name: text("process-name").ok_or_else(|| wrong("process-name"))?,
            user: text("user"),
            log_file: match get("log-file") {
                Some(SettingValue::Path(p)) => p,
                _ => return Err(wrong("log-file")),
            },
            start_grace_ms: match get("start-grace") {
                Some(SettingValue::Duration(ms)) => ms,
                _ => return Err(wrong("start-grace")),
            },
            stop_signal: match get("stop-signal") {
                Some(SettingValue::Choice(c)) if c == "int" => Signal::Int,
                Some(SettingValue::Choice(c)) if c == "hup" => Signal::Hup,
                Some(SettingValue::Choice(c)) if c == "term" => Signal::Term,
                _ => return Err(wrong("stop-signal")),
            },
        })
    }

    /// Whether `p` is the daemon: its kernel name or its program's basename.
    fn is_daemon(&self, p: &ProcessInfo) -> bool {
        let argv0 = p.cmdline.first().map(|a| a.rsplit('/').next().unwrap_or(a));
        p.comm == self.process_name || argv0 == Some(self.process_name.as_str())
    }
}

/// What the daemon is doing, from one look at processes and listeners.
enum Daemon {
    /// Listening on the port; the owner when the host could attribute it.
    Serving(Option<ProcessInfo>),
    /// Running but not listening yet, within the start grace.
    Starting(ProcessInfo, u64),
    /// Running past its grace without listening: wedged.
    Wedged(Vec<ProcessInfo>),
    /// Only a zombie is left: it exited.
    Exited(u32),
    Absent,
}

fn same(a: ProcessId, b: ProcessId) -> bool {
    a.pid == b.pid && a.start_time == b.start_time
}

fn look(sandbox: &Sandbox, cfg: &Config) -> Result<Daemon, CapError> {
    let listeners = processes::listeners(sandbox)?;
    let procs = processes::all(sandbox)?;
    // The host forward connects to the sandbox's loopback, which a listener
    // on a wildcard address serves too.
    let serving = listeners.iter().find(|l| {
        l.port == cfg.port && matches!(l.address.as_str(), "127.0.0.1" | "::1" | "0.0.0.0" | "::")
    });
    if let Some(listener) = serving {
        let owner = listener
            .owner
            .and_then(|id| procs.iter().find(|p| same(p.id, id)).cloned());
        return Ok(Daemon::Serving(owner));
    }
    let (zombies, live): (Vec<ProcessInfo>, Vec<ProcessInfo>) = procs
        .into_iter()
        .filter(|p| cfg.is_daemon(p))
        .partition(|p| p.state == "Z");
    // An age the host could not tell counts as old: waiting on it forever
    // would hide a wedged daemon.
    if let Some(young) = live
        .iter()
        .find(|p| p.age.is_some_and(|a| a < cfg.start_grace_ms))
    {
        let left = cfg.start_grace_ms - young.age.unwrap_or(0);
        return Ok(Daemon::Starting(young.clone(), left));
    }
    Ok(match (live.is_empty(), zombies.first()) {
        (false, _) => Daemon::Wedged(live),
        (true, Some(z)) => Daemon::Exited(z.id.pid),
        (true, None) => Daemon::Absent,
    })
}

fn report(id: &str, health: Health, summary: String, repairable: bool) -> LinkReport {
    LinkReport {
        id: id.into(),
        health,
        summary,
        evidence: Vec::new(),
        repairable,
        live: None,
    }
}

fn kv(key: &str, value: impl ToString) -> Kv {
    Kv {
        key: key.into(),
        value: value.to_string(),
    }
}

/// A capability error in words, for summaries.
fn why(e: &CapError) -> String {
    let (kind, text) = match e {
        CapError::Denied(t) => ("denied", t),
        CapError::Timeout(t) => ("timed out", t),
        CapError::Unavailable(t) => ("unavailable", t),
        CapError::Gone(t) => ("sandbox gone", t),
        CapError::Failed(t) => ("failed", t),
    };
    format!("{kind}: {text}")
}

fn undecided(id: &str, e: &CapError) -> LinkReport {
    report(
        id,
        Health::Unknown(UnknownCause::Undecided),
        format!("cannot tell: {}", why(e)),
        false,
    )
}

fn probe_daemon(sandbox: &Sandbox, cfg: &Config) -> LinkReport {
    let repairable = cfg.command.is_some();
    let broken = |cause, summary| report(DAEMON, Health::Broken(cause), summary, repairable);
    let mut r = match look(sandbox, cfg) {
        Err(e) => return undecided(DAEMON, &e),
        Ok(Daemon::Serving(Some(owner))) => {
            let mut r = report(
                DAEMON,
                Health::Healthy,
                format!("pid {} listens on port {}", owner.id.pid, cfg.port),
                repairable,
            );
            r.evidence = vec![kv("pid", owner.id.pid), kv("comm", &owner.comm)];
            if let Some(age) = owner.age {
                r.evidence.push(kv("age-ms", age));
            }
            r.live = Some(LiveIdentity {
                process: owner.id,
                port: Some(cfg.port),
            });
            r
        }
        Ok(Daemon::Serving(None)) => report(
            DAEMON,
            Health::Healthy,
            format!("port {} is listening (owner not visible)", cfg.port),
            repairable,
        ),
        Ok(Daemon::Starting(p, left)) => report(
            DAEMON,
            Health::Unknown(UnknownCause::RetryAfter(left.min(5_000))),
            format!(
                "pid {} is starting, not listening on {} yet",
                p.id.pid, cfg.port
            ),
            false,
        ),
        Ok(Daemon::Wedged(ps)) => broken(
            BrokenCause::Failing,
            format!(
                "pid {} runs but does not listen on port {}",
                ps[0].id.pid, cfg.port
            ),
        ),
        Ok(Daemon::Exited(pid)) => broken(
            BrokenCause::Gone,
            format!("pid {pid} exited (zombie) before listening on {}", cfg.port),
        ),
        Ok(Daemon::Absent) => broken(
            BrokenCause::Failing,
            format!(
                "no {} process and nothing on port {}",
                cfg.process_name, cfg.port
            ),
        ),
    };
    if !repairable && !matches!(r.health, Health::Healthy) {
        r.summary.push_str("; set `command` to let runner start it");
    }
    let image = sandbox.info().image;
    if !image.is_empty() {
        r.evidence.push(kv("image", image));
    }
    r
}

fn forward_request(cfg: &Config) -> ForwardRequest {
    ForwardRequest {
        sandbox_port: cfg.port,
        host_port: cfg.host_port,
        bind: None,
    }
}

fn probe_reach(sandbox: &Sandbox, cfg: &Config) -> LinkReport {
    let status = match forward::status(sandbox, &forward_request(cfg)) {
        Ok(s) => s,
        Err(e) => return undecided(REACH, &e),
    };
    let at = format!(
        "{}:{} -> sandbox :{}",
        status.bind, status.host_port, cfg.port
    );
    let (health, repairable, summary) = match status.state {
        ForwardState::Owned => (Health::Healthy, true, format!("forwarded {at}")),
        ForwardState::Absent | ForwardState::Stale => (
            Health::Broken(BrokenCause::Failing),
            true,
            format!("not forwarded ({:?}) {at}", status.state),
        ),
        ForwardState::Foreign => (
            Health::Broken(BrokenCause::Deterministic(format!(
                "host port {} free of other programs",
                cfg.host_port
            ))),
            false,
            format!("another program holds host port {}", cfg.host_port),
        ),
    };
    let mut r = report(REACH, health, summary, repairable);
    r.evidence = status.evidence;
    r
}

fn repair_daemon(sandbox: &Sandbox, cfg: &Config) -> RepairOutcome {
    let Some(argv) = cfg.command.clone() else {
        return RepairOutcome::Refused(
            "no `command` is set; set it (e.g. --set command=/usr/bin/agent-daemon)".into(),
        );
    };
    let left = sandbox.remaining();
    if left < MIN_REPAIR_MS {
        return RepairOutcome::Failed(format!("only {left} ms left in this call; not launching"));
    }
    match look(sandbox, cfg) {
        Err(e) => return RepairOutcome::Failed(format!("cannot look at the daemon: {}", why(&e))),
        Ok(Daemon::Serving(_)) => return RepairOutcome::NotNeeded("already listening".into()),
        Ok(Daemon::Starting(p, _)) => {
            return RepairOutcome::NotNeeded(format!("pid {} is still starting", p.id.pid));
        }
        Ok(Daemon::Wedged(ps)) => {
            for p in ps {
                // By identity: a pid reused since the look is never signalled.
                if let Err(e) = processes::send_signal(sandbox, p.id, cfg.stop_signal) {
                    return RepairOutcome::Failed(format!(
                        "retiring pid {}: {}",
                        p.id.pid,
                        why(&e)
                    ));
                }
            }
        }
        Ok(Daemon::Exited(_) | Daemon::Absent) => {}
    }
    if let Err(e) = ensure_log_dir(sandbox, &cfg.log_file) {
        return RepairOutcome::Failed(e);
    }
    let req = SpawnRequest {
        argv,
        user: cfg.user.clone(),
        env: Vec::new(),
        workdir: None,
        log_file: cfg.log_file.clone(),
    };
    match spawn::detached(sandbox, &req) {
        Ok(ProcessId { pid, .. }) => {
            log::write(
                Level::Info,
                &format!("launched {} as pid {pid}", req.argv[0]),
            );
            RepairOutcome::Repaired(format!("launched pid {pid}, log {}", cfg.log_file))
        }
        Err(e) => {
            let text = match e {
                ExecError::NoSuchBinary(t) => format!("no such program: {t}"),
                ExecError::NoSuchUser(t) => format!("no such user: {t}"),
                ExecError::Denied(t)
                | ExecError::Timeout(t)
                | ExecError::Unavailable(t)
                | ExecError::Gone(t)
                | ExecError::Failed(t) => t,
            };
            RepairOutcome::Failed(format!("launching {}: {text}", req.argv[0]))
        }
    }
}

/// The log's directory, created when missing: sticky and world-writable
/// like `/tmp`, so the daemon's user can create its log whoever it is, and
/// cannot remove anyone else's.
fn ensure_log_dir(sandbox: &Sandbox, log_file: &str) -> Result<(), String> {
    let dir = match log_file.rsplit_once('/') {
        Some(("", _)) | None => return Ok(()),
        Some((dir, _)) => dir,
    };
    match files::stat(sandbox, dir) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => files::mkdir(
            sandbox,
            &MkdirRequest {
                path: dir.into(),
                mode: 0o1777,
                uid: 0,
                gid: 0,
            },
        )
        .map(|_| ())
        .map_err(|e| format!("creating {dir}: {}", why(&e))),
        Err(e) => Err(format!("looking at {dir}: {}", why(&e))),
    }
}

fn repair_reach(sandbox: &Sandbox, cfg: &Config) -> RepairOutcome {
    match forward::ensure(sandbox, &forward_request(cfg)) {
        Ok(s) if s.state == ForwardState::Owned => RepairOutcome::Repaired(format!(
            "forwarding {}:{} -> sandbox :{}",
            s.bind, s.host_port, cfg.port
        )),
        Ok(s) if s.state == ForwardState::Foreign => {
            RepairOutcome::Refused(format!("another program holds host port {}", s.host_port))
        }
        Ok(s) => RepairOutcome::Failed(format!("forward is {:?}", s.state)),
        Err(e) => RepairOutcome::Failed(format!("forward: {}", why(&e))),
    }
}

impl Guest for OutsideAgent {
    fn describe() -> PluginInfo {
        use SettingKind::*;
        let link = |id: &str, summary: &str, deps: &[&str]| LinkSpec {
            id: id.into(),
            summary: summary.into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
        };
        let signals = ["term", "int", "hup"].map(str::to_string).to_vec();
        // A table reads better as one row per setting.
        #[rustfmt::skip]
        let settings = [
            ("port", Port, Some("7777"), "daemon port in the sandbox"),
            ("host-port", Port, Some("7777"), "host port of the forward"),
            ("command", Text, None, "starts the daemon (words, no quoting)"),
            ("process-name", Text, Some("agent-daemon"), "comm or argv[0] basename of the daemon"),
            ("user", Text, None, "user the daemon runs as; unset = the sandbox default"),
            ("log-file", Path, Some("/tmp/agent-daemon/daemon.log"), "where the daemon's output goes"),
            ("start-grace", Duration, Some("15s"), "how long a new daemon may take to listen"),
            ("stop-signal", Choice(signals), Some("term"), "signal that retires a wedged daemon"),
        ];
        PluginInfo {
            name: "outside-agent".into(),
            version: "0.2.0".into(),
            agent_kinds: vec!["outside-agent".into()],
            links: vec![
                link(DAEMON, "the daemon process listens on its port", &[]),
                link(REACH, "the host forwards a port to the daemon", &[DAEMON]),
            ],
            settings: settings
                .into_iter()
                .map(|(key, kind, default, description)| SettingSpec {
                    key: key.into(),
                    kind,
                    default: default.map(str::to_string),
                    description: description.into(),
                })
                .collect(),
            capabilities: Capabilities::PROCESSES
                | Capabilities::SPAWN
                | Capabilities::FILES
                | Capabilities::FORWARD,
            liveness: Some(LivenessHint {
                link: DAEMON.into(),
                listens: true,
                forwarded: true,
            }),
        }
    }

    fn probe(sandbox: &Sandbox) -> Result<Vec<LinkReport>, ProbeError> {
        let cfg = Config::of(sandbox).map_err(ProbeError::InvalidSetting)?;
        let daemon = probe_daemon(sandbox, &cfg);
        let reach = probe_reach(sandbox, &cfg);
        Ok(vec![daemon, reach])
    }

    fn repair(sandbox: &Sandbox, link: String) -> RepairOutcome {
        let cfg = match Config::of(sandbox) {
            Ok(cfg) => cfg,
            Err(p) => return RepairOutcome::Refused(format!("setting '{}': {}", p.key, p.message)),
        };
        match link.as_str() {
            DAEMON => repair_daemon(sandbox, &cfg),
            REACH => repair_reach(sandbox, &cfg),
            other => RepairOutcome::Refused(format!("no link named '{other}'")),
        }
    }
}

export!(OutsideAgent);
