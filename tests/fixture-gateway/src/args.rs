//! Command line and environment. Flags win over environment variables so a test can
//! start one odd gateway by hand inside a container whose env selects another mode.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: fixture-gateway [gateway [run]] [--as-user USER] [options]
       openclaw gateway run [--port N] [options]   (installed as /usr/local/bin/openclaw)

Imitates an OpenClaw gateway with controllable failure modes. A leading `gateway run`
(or `gateway`) is accepted and skipped, so OpenClaw's own relaunch command line works.

options (environment variable in brackets):
  --mode MODE            [FIXTURE_MODE] crash-without-guards (default) | normal |
                         serve-then-wedge | slow-start | always-crash | stale-lock-blocks
  --port N               [FIXTURE_PORT, OPENCLAW_GATEWAY_PORT] default 18789
  --state DIR            [OPENCLAW_STATE_DIR] default $HOME/.openclaw
  --config PATH          [OPENCLAW_CONFIG_PATH] default /sandbox/.openclaw/openclaw.json
  --health-status CODE   [FIXTURE_HEALTH_STATUS] 200 (default) | 401 | 500
  --wedge-after SECS     [FIXTURE_WEDGE_AFTER] serve-then-wedge: serve this long, default 5
  --slow-start SECS      [FIXTURE_SLOW_START] slow-start: wait before listening, default 10
  --lock-timeout-ms MS   [FIXTURE_LOCK_TIMEOUT_MS] give up on a held lock, default 5000
  --guards POLICY        [FIXTURE_GUARDS] require (default) | ignore; crash-without-guards
                         always requires
  --as-user USER         drop from root to USER (name or uid) first, then re-exec with
                         the same argv[0] (`fixture-gateway` or `openclaw`) and the rest
";

pub const DEFAULT_PORT: u16 = 18789;
pub const DEFAULT_CONFIG: &str = "/sandbox/.openclaw/openclaw.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    CrashWithoutGuards,
    ServeThenWedge,
    SlowStart,
    AlwaysCrash,
    StaleLockBlocks,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode, String> {
        Ok(match s {
            "normal" => Mode::Normal,
            "crash-without-guards" => Mode::CrashWithoutGuards,
            "serve-then-wedge" => Mode::ServeThenWedge,
            "slow-start" => Mode::SlowStart,
            "always-crash" => Mode::AlwaysCrash,
            "stale-lock-blocks" => Mode::StaleLockBlocks,
            other => return Err(format!("unknown mode {other:?}")),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::CrashWithoutGuards => "crash-without-guards",
            Mode::ServeThenWedge => "serve-then-wedge",
            Mode::SlowStart => "slow-start",
            Mode::AlwaysCrash => "always-crash",
            Mode::StaleLockBlocks => "stale-lock-blocks",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub mode: Mode,
    pub port: u16,
    pub state_dir: PathBuf,
    pub config_path: PathBuf,
    pub health_status: u16,
    pub wedge_after: Duration,
    pub slow_start: Duration,
    pub lock_timeout: Duration,
    pub require_guards: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    /// Privilege drop requested; `rest` is the remaining argv for the re-exec.
    AsUser {
        user: String,
        rest: Vec<String>,
    },
    Run(Options),
}

/// OpenClaw's CLI shape: `openclaw gateway run [flags]` (also `openclaw gateway [flags]`).
/// Returns the flags after that subcommand prefix, or all of `args` when there is none.
pub fn strip_subcommand(args: &[String]) -> &[String] {
    match args {
        [g, r, rest @ ..] if g == "gateway" && r == "run" => rest,
        [g, rest @ ..] if g == "gateway" => rest,
        _ => args,
    }
}

pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Command, String> {
    if let Some(i) = args.iter().position(|a| a == "--as-user") {
        let user = args
            .get(i + 1)
            .ok_or("--as-user needs a value")?
            .to_string();
        let mut rest = args.to_vec();
        rest.drain(i..=i + 1);
        // Validate the remainder now, so a typo fails before anything privileged happens.
        parse(&rest, env)?;
        return Ok(Command::AsUser { user, rest });
    }

    let mut flags: Vec<(&str, &str)> = Vec::new();
    let mut it = strip_subcommand(args).iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--mode" | "--port" | "--state" | "--config" | "--health-status" | "--wedge-after"
            | "--slow-start" | "--lock-timeout-ms" | "--guards" => {
                let v = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
                flags.push((arg.as_str(), v.as_str()));
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let get = |flag: &str, vars: &[&str]| -> Option<String> {
        flags
            .iter()
            .rev()
            .find(|(f, _)| *f == flag)
            .map(|(_, v)| v.to_string())
            .or_else(|| vars.iter().find_map(|k| env(k).filter(|v| !v.is_empty())))
    };

    let mode = match get("--mode", &["FIXTURE_MODE"]) {
        Some(m) => Mode::parse(&m)?,
        None => Mode::CrashWithoutGuards,
    };
    let port = match get("--port", &["FIXTURE_PORT", "OPENCLAW_GATEWAY_PORT"]) {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("invalid port {p:?}"))?,
        None => DEFAULT_PORT,
    };
    let state_dir = match get("--state", &["OPENCLAW_STATE_DIR"]) {
        Some(s) => PathBuf::from(s),
        None => PathBuf::from(env("HOME").unwrap_or_else(|| "/".into())).join(".openclaw"),
    };
    let config_path = PathBuf::from(
        get("--config", &["OPENCLAW_CONFIG_PATH"]).unwrap_or_else(|| DEFAULT_CONFIG.into()),
    );
    let health_status = match get("--health-status", &["FIXTURE_HEALTH_STATUS"]) {
        Some(s) => match s.as_str() {
            "200" => 200,
            "401" => 401,
            "500" => 500,
            _ => return Err(format!("health status must be 200, 401 or 500, not {s:?}")),
        },
        None => 200,
    };
    let secs = |flag: &str, var: &str, default: f64| -> Result<Duration, String> {
        match get(flag, &[var]) {
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0 && *v < 86_400.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("{flag}: invalid seconds {s:?}")),
            None => Ok(Duration::from_secs_f64(default)),
        }
    };
    let wedge_after = secs("--wedge-after", "FIXTURE_WEDGE_AFTER", 5.0)?;
    let slow_start = secs("--slow-start", "FIXTURE_SLOW_START", 10.0)?;
    let lock_timeout = match get("--lock-timeout-ms", &["FIXTURE_LOCK_TIMEOUT_MS"]) {
        Some(s) => Duration::from_millis(
            s.parse::<u64>()
                .map_err(|_| format!("invalid lock timeout {s:?}"))?,
        ),
        None => Duration::from_millis(5000),
    };
    let require_guards = match get("--guards", &["FIXTURE_GUARDS"]).as_deref() {
        None | Some("require") => true,
        Some("ignore") => mode == Mode::CrashWithoutGuards,
        Some(other) => return Err(format!("--guards must be require or ignore, not {other:?}")),
    };

    Ok(Command::Run(Options {
        mode,
        port,
        state_dir,
        config_path,
        health_status,
        wedge_after,
        slow_start,
        lock_timeout,
        require_guards,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run(args: &str, env: &[(&str, &str)]) -> Result<Options, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.clone());
        match parse(&argv(args), &lookup)? {
            Command::Run(o) => Ok(o),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_openclaw_layout() {
        let o = run("", &[("HOME", "/home/gateway")]).unwrap();
        assert_eq!(o.mode, Mode::CrashWithoutGuards);
        assert_eq!(o.port, 18789);
        assert_eq!(o.state_dir, PathBuf::from("/home/gateway/.openclaw"));
        assert_eq!(o.config_path, PathBuf::from(DEFAULT_CONFIG));
        assert_eq!(o.health_status, 200);
        assert_eq!(o.lock_timeout, Duration::from_secs(5));
        assert!(o.require_guards);
    }

    #[test]
    fn flags_override_environment() {
        let env = [
            ("FIXTURE_MODE", "always-crash"),
            ("FIXTURE_PORT", "1000"),
            ("OPENCLAW_STATE_DIR", "/s"),
        ];
        let o = run(
            "--mode serve-then-wedge --port 2000 --wedge-after 1.5",
            &env,
        )
        .unwrap();
        assert_eq!(o.mode, Mode::ServeThenWedge);
        assert_eq!(o.port, 2000);
        assert_eq!(o.wedge_after, Duration::from_millis(1500));
        assert_eq!(o.state_dir, PathBuf::from("/s"));
        let o = run("", &env).unwrap();
        assert_eq!((o.mode, o.port), (Mode::AlwaysCrash, 1000));
    }

    #[test]
    fn openclaw_port_variable_is_a_fallback() {
        let o = run("", &[("OPENCLAW_GATEWAY_PORT", "19001")]).unwrap();
        assert_eq!(o.port, 19001);
        let o = run(
            "",
            &[("OPENCLAW_GATEWAY_PORT", "19001"), ("FIXTURE_PORT", "5")],
        )
        .unwrap();
        assert_eq!(o.port, 5);
    }

    #[test]
    fn guard_check_can_be_skipped_except_in_the_crash_mode() {
        assert!(
            !run("--mode normal --guards ignore", &[])
                .unwrap()
                .require_guards
        );
        assert!(run("--guards ignore", &[]).unwrap().require_guards);
    }

    #[test]
    fn bad_values_are_rejected() {
        for bad in [
            "--mode nope",
            "--port 0",
            "--port 70000",
            "--health-status 404",
            "--wedge-after -1",
            "--guards maybe",
            "--port",
            "stray",
        ] {
            assert!(run(bad, &[]).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn as_user_is_split_off_and_the_rest_validated() {
        let none = |_: &str| None;
        let cmd = parse(&argv("--mode normal --as-user gateway --port 1"), &none).unwrap();
        assert_eq!(
            cmd,
            Command::AsUser {
                user: "gateway".into(),
                rest: argv("--mode normal --port 1"),
            }
        );
        assert!(parse(&argv("--as-user gateway --mode bogus"), &none).is_err());
        assert!(parse(&argv("--as-user"), &none).is_err());
    }

    #[test]
    fn openclaw_cli_shape_is_accepted() {
        let o = run("gateway run --port 18789", &[("FIXTURE_MODE", "normal")]).unwrap();
        assert_eq!((o.mode, o.port), (Mode::Normal, 18789));
        let o = run("gateway run --port 19000 --mode slow-start", &[]).unwrap();
        assert_eq!((o.mode, o.port), (Mode::SlowStart, 19000));
        assert_eq!(run("gateway run", &[]).unwrap(), run("", &[]).unwrap());
        assert_eq!(run("gateway --port 5", &[]).unwrap().port, 5);
        // Environment still applies behind the subcommand.
        assert_eq!(
            run("gateway run", &[("FIXTURE_PORT", "1234")])
                .unwrap()
                .port,
            1234
        );
        // Only a leading prefix is skipped.
        for bad in [
            "run gateway",
            "--port 1 gateway run",
            "gateway run run",
            "gateway stop",
        ] {
            assert!(run(bad, &[]).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn as_user_keeps_the_subcommand_for_the_re_exec() {
        let none = |_: &str| None;
        let cmd = parse(&argv("gateway run --as-user gateway --port 18789"), &none).unwrap();
        assert_eq!(
            cmd,
            Command::AsUser {
                user: "gateway".into(),
                rest: argv("gateway run --port 18789"),
            }
        );
        assert!(parse(&argv("gateway run --as-user gateway --bogus"), &none).is_err());
    }

    #[test]
    fn help_wins() {
        assert_eq!(
            parse(&argv("--port 1 --help"), &|_| None).unwrap(),
            Command::Help
        );
    }
}
