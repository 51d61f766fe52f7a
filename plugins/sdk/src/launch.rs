//! Launching a gateway: the argv (with the env file sourced by a constant
//! wrapper), the log it appends to, and watching the launch until it
//! listens, is still starting, or has died — with a typed answer for the
//! failures that no retry can fix (a missing program or user).

use crate::poll::Backoff;
use crate::process;
use crate::users::Users;
use crate::{Error, FileKind, FileStat, Listener, ProcessId, ProcessInfo, Sandbox};
use std::time::{Duration, Instant};

use crate::gateway::{Owner, gateways, listener_owner};

/// How to start the gateway.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub argv: Vec<String>,
    /// User to run the launch command as; `None` = sandbox default.
    pub user: Option<String>,
    pub env: Vec<(String, String)>,
    /// Env file sourced (`. FILE`) by a `/bin/sh` wrapper before exec'ing
    /// `argv`; the wrapper fails if sourcing fails, so a launch never runs
    /// without it.
    pub env_file: Option<String>,
    /// Appended with the launch's stdout and stderr. Made a regular file
    /// owned by `user` before the launch (see [`prepare_log`]).
    pub log_file: String,
    /// How this launch was chosen, for the report (e.g. "NemoClaw's own
    /// relaunch; user `gateway` exists").
    pub chosen: String,
    /// What an operator changes when the program or user does not exist
    /// (e.g. "set `launch` (label `runner.launch`)").
    pub fix: String,
}

/// Sources the env file, then checks the program exists under the PATH the
/// file left (printing [`NOT_FOUND_MARKER`] to the log and exiting 127 if
/// not), then execs it. Constant: paths travel as arguments.
const WRAPPER: &str = "set -e; . \"$0\"; cd \"${HOME:-/}\" 2>/dev/null || cd /; \
    command -v \"$1\" >/dev/null 2>&1 || { printf 'runner-launch: %s: not found on PATH=%s\\n' \"$1\" \"$PATH\" >&2; exit 127; }; \
    exec \"$@\"";

/// First words of the line [`WRAPPER`] logs when the program is missing.
pub const NOT_FOUND_MARKER: &str = "runner-launch: ";

/// The argv actually spawned: `argv`, or the `sh` wrapper that sources the
/// env file first. The script is constant; paths travel as arguments.
pub fn launch_argv(spec: &LaunchSpec) -> Vec<String> {
    match &spec.env_file {
        Some(file) => {
            let mut v = vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                WRAPPER.to_string(),
                file.clone(),
            ];
            v.extend(spec.argv.iter().cloned());
            v
        }
        None => spec.argv.clone(),
    }
}

/// Where a launch stands, from one look at the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchState {
    /// A gateway process that was not retired owns a listener on the port.
    Listening(ProcessId),
    /// A fresh gateway process (or the spawned process itself) is alive but
    /// nothing of it listens yet.
    Running(ProcessId),
    /// Neither the spawned process nor any fresh gateway is alive.
    Gone,
}

/// Judge a launch from one process table and listener list (pure). Fresh =
/// a live gateway process whose identity is not in `retired`.
pub fn launch_state(
    procs: &[ProcessInfo],
    listeners: &[Listener],
    port: u16,
    is_gateway: &dyn Fn(&ProcessInfo) -> bool,
    retired: &[ProcessId],
    spawned: ProcessId,
) -> LaunchState {
    let listening = listeners
        .iter()
        .filter(|l| l.port == port)
        .find_map(|l| match listener_owner(l, procs, is_gateway) {
            Owner::Gateway(p) if !retired.contains(&p.id) => Some(p.id),
            _ => None,
        });
    if let Some(id) = listening {
        return LaunchState::Listening(id);
    }
    let fresh = gateways(procs, is_gateway)
        .into_iter()
        .rev()
        .find(|p| !retired.contains(&p.id))
        .map(|p| p.id);
    let spawned_alive = process::by_id(procs, spawned).is_some_and(|p| !process::is_exited(p));
    match fresh {
        Some(id) => LaunchState::Running(id),
        None if spawned_alive => LaunchState::Running(spawned),
        None => LaunchState::Gone,
    }
}

/// How a launch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launched {
    pub id: ProcessId,
    /// It already listens on the port; otherwise it was still starting when
    /// the wait ended and the host's verification takes over.
    pub listening: bool,
}

/// First and longest pause between looks at a launch.
const LAUNCH_POLL_FIRST: Duration = Duration::from_millis(10);
const LAUNCH_POLL_MAX: Duration = Duration::from_millis(100);
/// A launcher that backgrounds the gateway exits right after forking it; the
/// child may not look like the gateway yet for a moment. Nothing alive for
/// this long = the launch died.
const GONE_CONFIRM: Duration = Duration::from_millis(150);

/// Why a launch did not start a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchError {
    /// The program or the user does not exist in the sandbox: trying again
    /// cannot help until the sandbox or the settings change.
    Deterministic(String),
    Failed(String),
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaunchError::Deterministic(m) | LaunchError::Failed(m) => f.write_str(m),
        }
    }
}

/// Spawn the gateway and poll (10 ms at first, growing to 100 ms) until it
/// listens on `port`, or until neither the spawned process nor a fresh
/// gateway is alive any more — then fail at once with the end of the log
/// (e.g. "another gateway owns the lease") — or until `wait` has passed with
/// it still starting: slow gateways (Hermes ~1–2 s, OpenClaw ~15 s) are then
/// left to the host's bounded verification. Never a fixed sleep. The log is
/// made the launch user's first ([`prepare_log`]), so a log an earlier
/// attempt left under another owner never blocks this one.
pub fn launch(
    sandbox: &Sandbox,
    spec: &LaunchSpec,
    port: u16,
    is_gateway: &dyn Fn(&ProcessInfo) -> bool,
    retired: &[ProcessId],
    wait: Duration,
) -> Result<Launched, LaunchError> {
    let Some(program) = spec.argv.first() else {
        return Err(LaunchError::Deterministic(format!(
            "the launch command is empty; {}",
            spec.fix
        )));
    };
    prepare_log(sandbox, &spec.log_file, spec.user.as_deref())?;
    let argv = launch_argv(spec);
    let as_user = spec.user.as_deref().unwrap_or("the sandbox's default user");
    let spawned = sandbox
        .spawn(&argv, spec.user.as_deref(), &spec.env, &spec.log_file)
        .map_err(|e| match e {
            Error::NoSuchBinary(_) => LaunchError::Deterministic(format!(
                "`{program}` does not exist in the sandbox or is not executable ({e}); {}",
                spec.fix
            )),
            Error::NoSuchUser(_) => LaunchError::Deterministic(format!(
                "user `{as_user}` does not exist in the sandbox ({e}); set `launch-user` (label `runner.launch-user`) to the gateway's user"
            )),
            other => LaunchError::Failed(format!(
                "spawning `{}` as {as_user} failed ({}): {other}",
                spec.argv.join(" "),
                other.kind()
            )),
        })?;
    let started = Instant::now();
    let mut pauses = Backoff::new(LAUNCH_POLL_FIRST, LAUNCH_POLL_MAX, Duration::MAX);
    let mut gone_since: Option<Instant> = None;
    let failed = |e: Error, what: &str| LaunchError::Failed(format!("cannot list {what}: {e}"));
    // No budget of its own: the loop ends on the settle wait or the gone
    // confirmation.
    loop {
        std::thread::sleep(pauses.next().unwrap_or(LAUNCH_POLL_MAX));
        let procs = sandbox.processes().map_err(|e| failed(e, "processes"))?;
        let listeners = sandbox.listeners().map_err(|e| failed(e, "listeners"))?;
        match launch_state(&procs, &listeners, port, is_gateway, retired, spawned) {
            LaunchState::Listening(id) => {
                return Ok(Launched {
                    id,
                    listening: true,
                });
            }
            LaunchState::Running(id) => {
                gone_since = None;
                if started.elapsed() >= wait {
                    return Ok(Launched {
                        id,
                        listening: false,
                    });
                }
            }
            LaunchState::Gone => {
                let since = *gone_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= GONE_CONFIRM {
                    if let Some(line) = not_found_line(sandbox, &spec.log_file) {
                        return Err(LaunchError::Deterministic(format!(
                            "`{program}` is not on the sandbox's PATH after sourcing the env file ({line}); {}",
                            spec.fix
                        )));
                    }
                    return Err(LaunchError::Failed(format!(
                        "`{}` (pid {}) exited and no gateway process is running {} ms after the launch{}",
                        spec.argv.join(" "),
                        spawned.pid,
                        started.elapsed().as_millis(),
                        log_tail(sandbox, &spec.log_file)
                    )));
                }
                // Look again soon: the confirmation is short.
                pauses.shorten_next(GONE_CONFIRM / 3);
            }
        }
    }
}

/// One way to pick the gateway's user from what the sandbox shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRule<'a> {
    /// This account, if `/etc/passwd` has it.
    Named(&'a str),
    /// The (non-root) owner of this path, e.g. the state dir the gateway
    /// writes.
    OwnerOf(&'a str),
}

/// The launch user and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChoice {
    pub user: String,
    pub why: String,
}

/// The first rule that matches the sandbox. When none does, the first
/// named account is returned anyway (the spawn then reports it missing,
/// which is what an operator needs to see).
pub fn choose_user(sandbox: &Sandbox, rules: &[UserRule<'_>]) -> Result<UserChoice, Error> {
    let users = Users::read(sandbox)?;
    for rule in rules {
        match *rule {
            UserRule::Named(name) if users.by_name(name).is_some() => {
                return Ok(UserChoice {
                    user: name.to_string(),
                    why: format!("user `{name}` exists in the sandbox"),
                });
            }
            UserRule::OwnerOf(path) => {
                let Some(st) = sandbox.stat(path)? else {
                    continue;
                };
                if st.uid == 0 {
                    continue;
                }
                let user = users
                    .by_uid(st.uid)
                    .map_or_else(|| st.uid.to_string(), |a| a.name.clone());
                return Ok(UserChoice {
                    why: format!("`{user}` owns {path}"),
                    user,
                });
            }
            UserRule::Named(_) => {}
        }
    }
    let first = rules
        .iter()
        .find_map(|r| match r {
            UserRule::Named(n) => Some(*n),
            UserRule::OwnerOf(_) => None,
        })
        .unwrap_or("root");
    Ok(UserChoice {
        user: first.to_string(),
        why: "no candidate user exists in the sandbox".to_string(),
    })
}

/// The agent's own relaunch, used when the `launch` setting is empty.
pub struct DefaultLaunch<'a> {
    /// e.g. `openclaw gateway run --port 18789`.
    pub argv: Vec<String>,
    /// Whose relaunch this is, e.g. "NemoClaw's relaunch".
    pub origin: &'a str,
    /// How to pick the user when `launch-user` is empty, in order.
    pub users: &'a [UserRule<'a>],
}

/// The command, the user and why, from the `launch` / `launch-user`
/// settings (empty = decide from the sandbox, see [`DefaultLaunch`]).
pub fn resolve(
    sandbox: &Sandbox,
    argv_setting: &[String],
    user_setting: Option<&str>,
    default: DefaultLaunch<'_>,
) -> Result<(Vec<String>, String, String), Error> {
    let (argv, how) = if argv_setting.is_empty() {
        (default.argv, default.origin.to_string())
    } else {
        (argv_setting.to_vec(), "setting `launch`".to_string())
    };
    let (user, why) = match user_setting {
        Some(u) => (u.to_string(), "setting `launch-user`".to_string()),
        None => {
            let c = choose_user(sandbox, default.users)?;
            (c.user, c.why)
        }
    };
    Ok((argv, user, format!("{how}; {why}")))
}

/// The last non-empty line of the log when it is [`WRAPPER`]'s "not found"
/// report (control characters dropped, at most 300 characters).
pub fn not_found_line(sandbox: &Sandbox, path: &str) -> Option<String> {
    let content = sandbox.read_head(path, 1024 * 1024).ok()?;
    if content.truncated {
        return None;
    }
    let text = String::from_utf8_lossy(&content.data);
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    last.starts_with(NOT_FOUND_MARKER)
        .then(|| last.chars().filter(|c| !c.is_control()).take(300).collect())
}

/// Largest log whose content is carried over when its owner must change.
const MAX_KEPT_LOG: u32 = 4 * 1024 * 1024;

/// What [`prepare_log`] must do with the log as it is (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFix {
    /// A regular file of the launch user, mode 0600 or 0644 (NemoClaw's
    /// rule for `/tmp/gateway.log`).
    Fine,
    /// Absent: create it empty, 0600.
    Create,
    /// A regular file with another owner or mode: rewrite it atomically as
    /// the launch user's, content kept, mode 0644 if it was readable by
    /// others, else 0600.
    Rewrite { mode: u32 },
    /// Not a regular file (symlink, directory, device): never written
    /// through; an operator must remove it.
    Refuse(String),
}

pub fn log_fix(path: &str, stat: Option<&FileStat>, uid: u32, gid: u32) -> LogFix {
    let Some(st) = stat else {
        return LogFix::Create;
    };
    match st.kind {
        FileKind::Regular => {}
        FileKind::Symlink => {
            return LogFix::Refuse(format!(
                "{path} is a symlink; runner never writes through one — remove it and re-run"
            ));
        }
        _ => {
            return LogFix::Refuse(format!(
                "{path} is not a regular file — remove it and re-run"
            ));
        }
    }
    let mode_ok = st.mode == 0o600 || st.mode == 0o644;
    if st.uid == uid && st.gid == gid && mode_ok {
        return LogFix::Fine;
    }
    LogFix::Rewrite {
        mode: if st.mode & 0o004 != 0 { 0o644 } else { 0o600 },
    }
}

/// Make `path` a regular file owned by `user` before the launch appends to
/// it as that user. A log left by an earlier attempt under another owner
/// (e.g. root) is rewritten atomically with its content (up to 4 MiB: a
/// longer one keeps its first 4 MiB and says so in its last line).
pub fn prepare_log(sandbox: &Sandbox, path: &str, user: Option<&str>) -> Result<(), LaunchError> {
    let failed =
        |e: Error| LaunchError::Failed(format!("cannot prepare the gateway log {path}: {e}"));
    let (uid, gid) = match user {
        None => (0, 0),
        Some(u) => match Users::read(sandbox).map_err(failed)?.ids_of(u) {
            Some(ids) => ids,
            // The spawn itself reports the missing user (the host sees it).
            None => return Ok(()),
        },
    };
    let stat = sandbox.stat(path).map_err(failed)?;
    match log_fix(path, stat.as_ref(), uid, gid) {
        LogFix::Fine => Ok(()),
        LogFix::Create => sandbox.write(path, b"", 0o600, uid, gid).map_err(failed),
        LogFix::Rewrite { mode } => {
            let content = sandbox.read_head(path, MAX_KEPT_LOG).map_err(failed)?;
            let mut data = content.data;
            if content.truncated {
                data.extend_from_slice(
                    format!(
                        "\nrunner: this log was longer than {MAX_KEPT_LOG} bytes when its owner was changed to uid {uid}; the rest was dropped\n"
                    )
                    .as_bytes(),
                );
            }
            sandbox.write(path, &data, mode, uid, gid).map_err(failed)
        }
        LogFix::Refuse(why) => Err(LaunchError::Failed(why)),
    }
}

/// The last lines of a log, for failure messages (empty when unreadable).
pub fn log_tail(sandbox: &Sandbox, path: &str) -> String {
    let Ok(content) = sandbox.read_head(path, 256 * 1024) else {
        return String::new();
    };
    if content.truncated {
        return format!("; see {path}");
    }
    let text = String::from_utf8_lossy(&content.data);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..]
        .iter()
        .map(|l| {
            l.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" | ");
    if tail.is_empty() {
        format!("; {path} is empty")
    } else {
        format!("; last lines of {path}: {tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::tests::{listener, proc_};

    fn is_gw(p: &ProcessInfo) -> bool {
        process::program_is(p, &["openclaw-gateway"])
            || process::invocation(p, &["openclaw"], &["gateway", "run"]).is_some()
    }

    fn id(pid: u32, start_time: u64) -> ProcessId {
        ProcessId { pid, start_time }
    }

    #[test]
    fn launch_is_listening_once_a_fresh_gateway_owns_the_port() {
        let gw = proc_(50, 99_500, 1, "S", &["openclaw-gateway"]);
        let state = launch_state(
            &[gw],
            &[listener(50, 99_500)],
            18789,
            &is_gw,
            &[],
            id(49, 99_400),
        );
        assert_eq!(state, LaunchState::Listening(id(50, 99_500)));
    }

    #[test]
    fn launch_is_running_while_the_fresh_gateway_does_not_listen_yet() {
        // The launcher (pid 49, a shell) backgrounded the gateway and exited.
        let gw = proc_(50, 99_500, 1, "S", &["openclaw-gateway"]);
        let state = launch_state(&[gw], &[], 18789, &is_gw, &[], id(49, 99_400));
        assert_eq!(state, LaunchState::Running(id(50, 99_500)));
        // Before the gateway exec'd, only the spawned process is alive.
        let sh = proc_(49, 99_400, 1, "S", &["/bin/sh", "-c", "x"]);
        let state = launch_state(&[sh], &[], 18789, &is_gw, &[], id(49, 99_400));
        assert_eq!(state, LaunchState::Running(id(49, 99_400)));
    }

    #[test]
    fn launch_is_gone_when_nothing_fresh_is_alive() {
        // The retired gateway still holds the port while it dies, and the
        // spawned process is a zombie: neither counts.
        let old = proc_(40, 50_000, 1, "S", &["openclaw-gateway"]);
        let zombie = proc_(49, 99_400, 1, "Z", &["openclaw-gateway"]);
        let state = launch_state(
            &[old, zombie],
            &[listener(40, 50_000)],
            18789,
            &is_gw,
            &[id(40, 50_000)],
            id(49, 99_400),
        );
        assert_eq!(state, LaunchState::Gone);
    }

    #[test]
    fn launch_ignores_listeners_on_other_ports_and_foreign_owners() {
        let gw = proc_(50, 99_500, 1, "S", &["openclaw-gateway"]);
        let other = proc_(60, 99_600, 1, "S", &["python3", "-m", "http.server"]);
        let mut elsewhere = listener(50, 99_500);
        elsewhere.port = 9999;
        let state = launch_state(
            &[gw, other],
            &[elsewhere, listener(60, 99_600)],
            18789,
            &is_gw,
            &[],
            id(49, 99_400),
        );
        assert_eq!(state, LaunchState::Running(id(50, 99_500)));
    }

    #[test]
    fn launch_argv_sources_the_env_file_through_a_constant_script() {
        let spec = LaunchSpec {
            argv: vec!["openclaw".into(), "gateway".into(), "run".into()],
            user: Some("gateway".into()),
            env: vec![],
            env_file: Some("/tmp/nemoclaw-proxy-env.sh".into()),
            log_file: "/tmp/gateway.log".into(),
            chosen: String::new(),
            fix: String::new(),
        };
        let argv = launch_argv(&spec);
        assert_eq!(&argv[..2], &["/bin/sh", "-c"]);
        assert!(argv[2].starts_with("set -e; . \"$0\";"));
        assert_eq!(argv[3], "/tmp/nemoclaw-proxy-env.sh");
        assert_eq!(&argv[4..], &["openclaw", "gateway", "run"]);
        let bare = LaunchSpec {
            env_file: None,
            ..spec
        };
        assert_eq!(launch_argv(&bare), vec!["openclaw", "gateway", "run"]);
    }

    fn stat(kind: FileKind, mode: u32, uid: u32) -> FileStat {
        FileStat {
            kind,
            mode,
            uid,
            gid: uid,
            size: 10,
            mtime: 0,
        }
    }

    #[test]
    fn root_owned_log_left_by_an_earlier_attempt_is_rewritten_for_the_launch_user() {
        let p = "/tmp/gateway.log";
        assert_eq!(log_fix(p, None, 998, 998), LogFix::Create);
        assert_eq!(
            log_fix(p, Some(&stat(FileKind::Regular, 0o644, 998)), 998, 998),
            LogFix::Fine
        );
        assert_eq!(
            log_fix(p, Some(&stat(FileKind::Regular, 0o600, 998)), 998, 998),
            LogFix::Fine
        );
        assert_eq!(
            log_fix(p, Some(&stat(FileKind::Regular, 0o644, 0)), 998, 998),
            LogFix::Rewrite { mode: 0o644 }
        );
        // World-writable: wrong mode, rewritten private.
        assert_eq!(
            log_fix(p, Some(&stat(FileKind::Regular, 0o662, 998)), 998, 998),
            LogFix::Rewrite { mode: 0o600 }
        );
        assert!(matches!(
            log_fix(p, Some(&stat(FileKind::Symlink, 0o777, 0)), 998, 998),
            LogFix::Refuse(m) if m.contains("symlink")
        ));
        assert!(matches!(
            log_fix(p, Some(&stat(FileKind::Directory, 0o755, 0)), 998, 998),
            LogFix::Refuse(_)
        ));
    }

    #[test]
    fn wrapper_reports_a_missing_program_with_the_marker() {
        assert!(WRAPPER.contains("command -v \"$1\""));
        assert!(WRAPPER.contains(NOT_FOUND_MARKER.trim_end()));
        assert!(WRAPPER.contains("exit 127"));
    }
}
