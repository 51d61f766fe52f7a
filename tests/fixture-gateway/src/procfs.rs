//! Process identity from /proc: a pid alone is never trusted (pids are recycled), the
//! pair (pid, start time = field 22 of /proc/PID/stat) is.

use std::fs;

/// What the lock-liveness rule needs to know about a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcView {
    /// Present and not a zombie (a zombie holds no lock).
    pub alive: bool,
    pub start_time: Option<u64>,
    /// cmdline looks like a gateway; only consulted when the lock has no startTime.
    pub looks_like_gateway: bool,
}

/// Field 22 (starttime) of a /proc/PID/stat line. The comm field (2) may contain spaces
/// and parentheses, so parsing starts after the last ')'.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // after_comm begins with field 3 (state); field 22 is 19 further.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

fn parse_state(stat: &str) -> Option<char> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().next()?.chars().next()
}

/// `fixture-gateway …`, OpenClaw's `openclaw gateway run …` (what the fixture runs as
/// through its /usr/local/bin/openclaw symlink) or a retitled `openclaw-gateway`.
pub fn cmdline_looks_like_gateway(cmdline: &str) -> bool {
    cmdline.contains("fixture-gateway")
        || cmdline.contains("openclaw-gateway")
        || cmdline.contains("openclaw gateway")
}

pub fn view(pid: u32) -> ProcView {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return ProcView::default();
    };
    if matches!(parse_state(&stat), Some('Z' | 'X') | None) {
        return ProcView::default();
    }
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default();
    ProcView {
        alive: true,
        start_time: parse_start_time(&stat),
        looks_like_gateway: cmdline_looks_like_gateway(&cmdline),
    }
}

pub fn self_start_time() -> Option<u64> {
    parse_start_time(&fs::read_to_string("/proc/self/stat").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (fixture gate) w)) S 1 4242 4242 0 -1 4194560 120 0 0 0 \
                        1 2 0 0 20 0 3 0 987654 12345678 300 18446744073709551615";

    #[test]
    fn start_time_survives_hostile_comm() {
        assert_eq!(parse_start_time(STAT), Some(987654));
        assert_eq!(parse_state(STAT), Some('S'));
    }

    #[test]
    fn truncated_stat_has_no_start_time() {
        assert_eq!(parse_start_time("1 (x) S 0 1"), None);
        assert_eq!(parse_start_time("no parens"), None);
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(self_start_time().is_some());
        let me = view(std::process::id());
        assert!(me.alive);
        assert_eq!(me.start_time, self_start_time());
    }

    #[test]
    fn gateway_cmdlines_are_recognised() {
        assert!(cmdline_looks_like_gateway("fixture-gateway --mode normal"));
        assert!(cmdline_looks_like_gateway("openclaw-gateway"));
        assert!(cmdline_looks_like_gateway(
            "openclaw gateway run --port 18789 "
        ));
        assert!(cmdline_looks_like_gateway(
            "/usr/local/bin/openclaw gateway"
        ));
        assert!(!cmdline_looks_like_gateway("sleep 1000"));
    }
}
