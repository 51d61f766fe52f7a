//! Pure helpers over the process table: identity, matching command lines,
//! ancestry and age. Nothing here calls the host.

use crate::{ProcessId, ProcessInfo};

/// `USER_HZ`: the unit of `/proc/<pid>/stat` field 22 (100 on every Linux
/// ABI the sandboxes run on).
pub const CLOCK_TICKS_PER_SEC: u64 = 100;

/// A zombie (or dead) process has exited: it counts as gone.
pub fn is_exited(p: &ProcessInfo) -> bool {
    matches!(p.state.as_str(), "Z" | "X" | "x")
}

/// Stopped by a signal (SIGSTOP/SIGTSTP) or a tracer: alive but frozen.
pub fn is_stopped(p: &ProcessInfo) -> bool {
    matches!(p.state.as_str(), "T" | "t")
}

/// The live (not exited) process with this pid, whatever its start time.
pub fn by_pid(procs: &[ProcessInfo], pid: u32) -> Option<&ProcessInfo> {
    procs.iter().find(|p| p.id.pid == pid && !is_exited(p))
}

/// The live process with exactly this identity.
pub fn by_id(procs: &[ProcessInfo], id: ProcessId) -> Option<&ProcessInfo> {
    by_pid(procs, id.pid).filter(|p| p.id.start_time == id.start_time)
}

pub fn is_alive(procs: &[ProcessInfo], id: ProcessId) -> bool {
    by_id(procs, id).is_some()
}

/// Last path component (`/usr/bin/node` → `node`).
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Arguments with the empty strings a rewritten process title leaves behind
/// removed (Node's `process.title` pads `/proc/<pid>/cmdline`).
pub fn args(p: &ProcessInfo) -> Vec<&str> {
    p.cmdline
        .iter()
        .map(|a| a.trim_end_matches(['\0', ' ']))
        .filter(|a| !a.is_empty())
        .collect()
}

/// The command line for messages, at most 160 characters; the kernel's
/// command name when there is none (kernel threads, zombies).
pub fn display(p: &ProcessInfo) -> String {
    let joined = args(p).join(" ");
    let text = if joined.is_empty() {
        format!("[{}]", p.comm)
    } else {
        joined
    };
    if text.chars().count() > 160 {
        let cut: String = text.chars().take(157).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// `pid 42 (openclaw-gateway)`, for messages.
pub fn describe(p: &ProcessInfo) -> String {
    format!("pid {} ({})", p.id.pid, display(p))
}

/// Is `argv[0]` (or the kernel's command name) one of `names`? Compared by
/// basename; `comm` is cut at 15 characters by the kernel, so a name longer
/// than that matches its 15-character prefix.
pub fn program_is(p: &ProcessInfo, names: &[&str]) -> bool {
    let argv0 = args(p).first().map(|a| basename(a).to_string());
    // A process title may be a whole line in argv[0] ("openclaw-gateway --x").
    let argv0_word = argv0
        .as_deref()
        .and_then(|a| a.split_whitespace().next())
        .map(str::to_string);
    let comm_is = |n: &str| {
        !p.comm.is_empty()
            && (p.comm == n || (p.comm.len() == 15 && n.starts_with(p.comm.as_str())))
    };
    names
        .iter()
        .any(|n| argv0.as_deref() == Some(*n) || argv0_word.as_deref() == Some(*n) || comm_is(n))
}

/// Does the process run `<program> <words...>`, where `program` is one of
/// `programs` found as an argument's basename (directly, or as the script of
/// an interpreter such as `node /usr/lib/node_modules/openclaw/openclaw.mjs`;
/// `.js`, `.mjs`, `.cjs` and `.py` suffixes are ignored)? Returns the index of
/// the argument after `words`. A shell running a `-c` string never matches:
/// the string is not the program.
pub fn invocation(p: &ProcessInfo, programs: &[&str], words: &[&str]) -> Option<usize> {
    let argv = args(p);
    let first = basename(argv.first()?);
    if matches!(first, "sh" | "bash" | "dash" | "ash" | "zsh" | "busybox") && argv.contains(&"-c") {
        return None;
    }
    let strip = |a: &str| -> String {
        let b = basename(a);
        [".mjs", ".cjs", ".js", ".py"]
            .iter()
            .find_map(|ext| b.strip_suffix(ext))
            .unwrap_or(b)
            .to_string()
    };
    (0..argv.len()).find_map(|i| {
        if !programs.contains(&strip(argv[i]).as_str()) {
            return None;
        }
        let rest = &argv[i + 1..];
        (rest.len() >= words.len() && rest.iter().zip(words).all(|(a, w)| a == w))
            .then_some(i + 1 + words.len())
    })
}

/// Is `pid` a descendant of a process matching `pred` (parent chain, at
/// most 64 steps)? The process itself counts.
pub fn has_ancestor(procs: &[ProcessInfo], pid: u32, pred: &dyn Fn(&ProcessInfo) -> bool) -> bool {
    let mut cur = pid;
    for _ in 0..64 {
        let Some(p) = by_pid(procs, cur) else {
            return false;
        };
        if pred(p) {
            return true;
        }
        if p.ppid == 0 || p.ppid == cur {
            return false;
        }
        cur = p.ppid;
    }
    false
}

/// Time since boot from `/proc/uptime` ("12345.67 54321.00"), in clock
/// ticks (hundredths of a second, the unit of start times). Integer only:
/// float formatting would double the size of a plugin.
pub fn parse_uptime(data: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(data).ok()?;
    let first = text.split_whitespace().next()?;
    let (secs, frac) = first.split_once('.').unwrap_or((first, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let mut hundredths = 0u64;
    for (i, b) in frac.bytes().take(2).enumerate() {
        hundredths += u64::from(b - b'0') * if i == 0 { 10 } else { 1 };
    }
    secs.checked_mul(CLOCK_TICKS_PER_SEC)?
        .checked_add(hundredths)
}

/// Whole seconds since a process started `start_time` ticks after boot,
/// given the uptime in ticks.
pub fn age_secs(start_time: u64, uptime_ticks: u64) -> u64 {
    uptime_ticks.saturating_sub(start_time) / CLOCK_TICKS_PER_SEC
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A listener on 127.0.0.1:18789 held by `pid`/`start`.
    pub(crate) fn listener(pid: u32, start: u64) -> crate::Listener {
        crate::Listener {
            address: "127.0.0.1".into(),
            port: 18789,
            owner: Some(ProcessId {
                pid,
                start_time: start,
            }),
        }
    }

    pub(crate) fn proc_(pid: u32, start: u64, ppid: u32, state: &str, cmd: &[&str]) -> ProcessInfo {
        ProcessInfo {
            id: ProcessId {
                pid,
                start_time: start,
            },
            ppid,
            uid: 998,
            state: state.into(),
            comm: cmd
                .first()
                .map(|c| basename(c).chars().take(15).collect())
                .unwrap_or_default(),
            cmdline: cmd.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn zombie_is_not_alive_and_reused_pid_is_not_the_same_identity() {
        let procs = vec![proc_(10, 500, 1, "Z", &[]), proc_(11, 600, 1, "S", &["x"])];
        assert!(!is_alive(
            &procs,
            ProcessId {
                pid: 10,
                start_time: 500
            }
        ));
        assert!(is_alive(
            &procs,
            ProcessId {
                pid: 11,
                start_time: 600
            }
        ));
        assert!(!is_alive(
            &procs,
            ProcessId {
                pid: 11,
                start_time: 599
            }
        ));
    }

    #[test]
    fn process_title_with_padding_matches_program_name() {
        let mut p = proc_(5, 1, 1, "S", &["openclaw-gateway", "", ""]);
        p.comm = "openclaw-gatewa".into();
        assert!(program_is(&p, &["openclaw-gateway"]));
        assert_eq!(display(&p), "openclaw-gateway");
        // comm alone (cmdline unreadable) still matches via the 15-char prefix.
        p.cmdline.clear();
        assert!(program_is(&p, &["openclaw-gateway"]));
        assert!(!program_is(&p, &["openclaw"]));
    }

    #[test]
    fn interpreter_script_invocation_is_found() {
        let p = proc_(
            5,
            1,
            1,
            "S",
            &[
                "node",
                "/usr/lib/node_modules/openclaw/openclaw.mjs",
                "gateway",
                "run",
                "--port",
                "18789",
            ],
        );
        assert_eq!(invocation(&p, &["openclaw"], &["gateway"]), Some(3));
        let h = proc_(
            6,
            1,
            1,
            "S",
            &[
                "/opt/venv/bin/python3",
                "/opt/venv/bin/hermes",
                "gateway",
                "run",
            ],
        );
        assert_eq!(invocation(&h, &["hermes"], &["gateway", "run"]), Some(4));
        let status = proc_(7, 1, 1, "S", &["openclaw", "status"]);
        assert_eq!(invocation(&status, &["openclaw"], &["gateway"]), None);
    }

    #[test]
    fn shell_wrapper_running_the_command_is_not_the_program() {
        let p = proc_(
            5,
            1,
            1,
            "S",
            &[
                "/bin/sh",
                "-c",
                ". \"$0\"; exec \"$@\"",
                "/tmp/env.sh",
                "openclaw",
                "gateway",
                "run",
            ],
        );
        assert_eq!(invocation(&p, &["openclaw"], &["gateway"]), None);
    }

    #[test]
    fn ancestry_walks_parents_and_stops_on_loops() {
        let procs = vec![
            proc_(1, 1, 0, "S", &["init"]),
            proc_(20, 5, 1, "S", &["openclaw-gateway"]),
            proc_(21, 6, 20, "S", &["node", "worker.js"]),
            proc_(30, 7, 30, "S", &["loop"]),
        ];
        let gw = |p: &ProcessInfo| program_is(p, &["openclaw-gateway"]);
        assert!(has_ancestor(&procs, 21, &gw));
        assert!(has_ancestor(&procs, 20, &gw));
        assert!(!has_ancestor(&procs, 1, &gw));
        assert!(!has_ancestor(&procs, 30, &gw));
        assert!(!has_ancestor(&procs, 99, &gw));
    }

    #[test]
    fn uptime_and_age() {
        assert_eq!(parse_uptime(b"350.57 100.00\n"), Some(35_057));
        assert_eq!(parse_uptime(b"350.5"), Some(35_050));
        assert_eq!(parse_uptime(b"350"), Some(35_000));
        assert_eq!(parse_uptime(b"garbage"), None);
        assert_eq!(parse_uptime(b"-1.0"), None);
        assert_eq!(age_secs(30_000, 35_057), 50);
        assert_eq!(age_secs(40_000, 35_057), 0);
    }

    #[test]
    fn long_command_lines_are_cut_for_display() {
        let long = "x".repeat(300);
        let p = proc_(5, 1, 1, "S", &[&long]);
        assert_eq!(display(&p).chars().count(), 160);
        let k = proc_(2, 1, 0, "S", &[]);
        assert_eq!(display(&k), "[]");
    }
}
