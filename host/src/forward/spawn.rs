//! Starting a detached `runner forward serve`: its own session (so neither
//! the terminal's hangup nor a Ctrl-C aimed at the command that started it
//! reaches it), stdin from /dev/null, stdout and stderr appended to a log
//! file next to its record, cwd `/` so it pins no mount.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{ForwardError, ForwardSpec};

/// A log bigger than this is rotated (one old generation kept) when a new
/// forward starts on its port, so restarts cannot grow it without bound.
const MAX_LOG: u64 = 1024 * 1024;

pub(crate) struct ServeCommand<'a> {
    pub exe: &'a Path,
    pub state_dir: &'a Path,
    pub log: &'a Path,
    pub backend: &'a str,
    pub sandbox: &'a str,
    pub spec: &'a ForwardSpec,
    pub gone_grace: Option<Duration>,
}

/// The argv after the executable; `identity::parse_serve_argv` reads it back.
pub(crate) fn serve_args(c: &ServeCommand<'_>) -> Vec<String> {
    let mut args: Vec<String> = [
        "forward",
        "serve",
        "--backend",
        c.backend,
        "--sandbox",
        c.sandbox,
        "--host-port",
        &c.spec.host_port.to_string(),
        "--sandbox-port",
        &c.spec.sandbox_port.to_string(),
        "--bind",
        &c.spec.bind.to_string(),
    ]
    .map(str::to_string)
    .to_vec();
    if let Some(grace) = c.gone_grace {
        args.push("--gone-grace".into());
        args.push(format!("{}ms", grace.as_millis().max(1)));
    }
    args
}

pub(crate) fn spawn_serve(c: &ServeCommand<'_>) -> Result<Child, ForwardError> {
    rotate(c.log);
    // Never through a symlink, never a FIFO (the open would block until
    // someone reads it): safe_fs.
    let log = crate::safe_fs::open_append(c.log, 0o644).map_err(|e| ForwardError::StateDir {
        path: c.log.to_path_buf(),
        source: std::io::Error::other(e.problem()),
    })?;
    let stderr = log.try_clone().map_err(|source| ForwardError::StateDir {
        path: c.log.to_path_buf(),
        source,
    })?;
    let mut cmd = Command::new(c.exe);
    // argv[0] names the real binary even when spawned via /proc/self/exe, so
    // `ps` and the identity check read a runner command line.
    if c.exe == Path::new("/proc/self/exe")
        && let Ok(real) = std::env::current_exe()
    {
        cmd.arg0(real);
    }
    cmd.args(serve_args(c))
        // The child must find and write its record where we look for it.
        .env("RUNNER_STATE_DIR", c.state_dir)
        .env(
            "RUNNER_LOG",
            std::env::var("RUNNER_FORWARD_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .current_dir("/");
    // SAFETY: the closure runs between fork and exec and only makes the
    // setsid syscall, which is async-signal-safe; it touches no memory
    // shared with other threads.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    cmd.spawn().map_err(|source| ForwardError::Spawn {
        exe: c.exe.to_path_buf(),
        source,
    })
}

fn rotate(log: &Path) {
    if std::fs::symlink_metadata(log).is_ok_and(|m| m.is_file() && m.len() > MAX_LOG) {
        let mut old = log.as_os_str().to_owned();
        old.push(".1");
        let _ = std::fs::rename(log, old);
    }
}

/// The last `lines` lines of a log, for an error message.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(tail) = crate::safe_fs::read_tail(path, 8192) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&tail);
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::identity::parse_serve_argv;

    #[test]
    fn the_spawned_argv_is_recognised_as_our_forward() {
        let spec = ForwardSpec::loopback(18790, 18789);
        let c = ServeCommand {
            exe: Path::new("/usr/bin/runner"),
            state_dir: Path::new("/s"),
            log: Path::new("/s/forwards/x.log"),
            backend: "docker",
            sandbox: "sb",
            spec: &spec,
            gone_grace: Some(Duration::from_secs(2)),
        };
        let mut argv = vec!["/usr/bin/runner".to_string()];
        argv.extend(serve_args(&c));
        let parsed = parse_serve_argv(&argv).unwrap();
        assert_eq!(
            (
                parsed.sandbox.as_str(),
                parsed.host_port,
                parsed.sandbox_port,
                parsed.bind
            ),
            ("sb", 18790, 18789, spec.bind)
        );
        assert!(argv.iter().any(|a| a == "2000ms"));
    }
}
