//! Pure parsers of `/proc` text and of passwd/group files. No I/O here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::backend::BackendError;

/// What `/proc/<pid>/stat` tells us (fields after the command name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatLine {
    pub comm: String,
    pub state: String,
    pub ppid: u32,
    pub pgrp: u32,
    pub session: u32,
    /// Field 22, clock ticks since boot.
    pub start_time: u64,
}

/// What `/proc/<pid>/status` tells us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct StatusLine {
    /// `NSpid:` fields, outermost (our procfs) first.
    pub nspid: Vec<u32>,
    pub real_uid: Option<u32>,
}

/// One LISTEN row of `/proc/<pid>/net/tcp{,6}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TcpListenRow {
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
}

/// `uid_map`/`gid_map` of the sandbox: `inside outside count` ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdMap(Vec<(u32, u32, u32)>);

/// A user resolved from the sandbox's `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub home: Option<String>,
    pub name: Option<String>,
}

/// Parses `/proc/<pid>/stat`. The command name sits between the first `(`
/// and the *last* `)` because it may itself contain spaces and parentheses.
pub(crate) fn parse_stat(line: &str) -> Option<StatLine> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    if close < open {
        return None;
    }
    let comm = line[open + 1..close].to_string();
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    let field = |n: usize| rest.get(n - 3).copied();
    Some(StatLine {
        comm,
        state: field(3)?.to_string(),
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        session: field(6)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

/// Parses the `NSpid:` and `Uid:` lines of `/proc/<pid>/status`.
pub(crate) fn parse_status(text: &str) -> StatusLine {
    let mut out = StatusLine::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("NSpid:") {
            out.nspid = rest
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
        } else if let Some(rest) = line.strip_prefix("Uid:") {
            out.real_uid = rest.split_whitespace().next().and_then(|f| f.parse().ok());
        }
    }
    out
}

/// LISTEN rows (state `0A`) of `/proc/net/tcp` or `tcp6`.
pub(crate) fn parse_net_tcp(text: &str, v6: bool) -> Vec<TcpListenRow> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            let (addr, port) = f[1].split_once(':')?;
            Some(TcpListenRow {
                addr: parse_hex_addr(addr, v6)?,
                port: u16::from_str_radix(port, 16).ok()?,
                inode: f[9].parse().ok()?,
            })
        })
        .collect()
}

/// The kernel prints each 32-bit word of the address with `%08X` in host
/// byte order, so the bytes of each word come back with `to_ne_bytes`.
fn parse_hex_addr(hex: &str, v6: bool) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    if v6 {
        if hex.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for i in 0..4 {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
        }
        Some(IpAddr::V6(Ipv6Addr::from(bytes)))
    } else {
        if hex.len() != 8 {
            return None;
        }
        Some(IpAddr::V4(Ipv4Addr::from(word(0)?)))
    }
}

/// `socket:[12345]` → 12345.
pub(crate) fn parse_socket_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

pub(crate) fn parse_cmdline(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

impl IdMap {
    pub(crate) fn identity() -> Self {
        Self(vec![(0, 0, u32::MAX)])
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        let ranges: Vec<(u32, u32, u32)> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace().map(|x| x.parse::<u32>().ok());
                Some((f.next()??, f.next()??, f.next()??))
            })
            .collect();
        (!ranges.is_empty()).then_some(Self(ranges))
    }

    /// Host id → sandbox id; unmapped ids show as the overflow id 65534,
    /// as the kernel shows them inside.
    pub(crate) fn to_inside(&self, outside: u32) -> u32 {
        self.0
            .iter()
            .find(|(_, o, n)| outside >= *o && (outside - o) < *n)
            .map(|(i, o, _)| i + (outside - o))
            .unwrap_or(65534)
    }

    pub(crate) fn to_outside(&self, inside: u32) -> Option<u32> {
        self.0
            .iter()
            .find(|(i, _, n)| inside >= *i && (inside - i) < *n)
            .map(|(i, o, _)| o + (inside - i))
    }
}

/// Resolves a docker-style user spec against passwd/group text.
pub(crate) fn resolve_user_spec(
    spec: &str,
    passwd: &str,
    group: &str,
) -> Result<ResolvedUser, BackendError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(BackendError::NoSuchUser(format!("empty user in '{spec}'")));
    }
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let found = match user.parse::<u32>() {
        Ok(uid) => entries.iter().find(|f| f[2].parse() == Ok(uid)),
        Err(_) => entries.iter().find(|f| f[0] == user),
    };
    let mut resolved = match (found, user.parse::<u32>()) {
        (Some(f), _) => ResolvedUser {
            uid: f[2]
                .parse()
                .map_err(|_| BackendError::NoSuchUser(format!("bad passwd entry for '{user}'")))?,
            gid: f[3]
                .parse()
                .map_err(|_| BackendError::NoSuchUser(format!("bad passwd entry for '{user}'")))?,
            home: Some(f[5].to_string()).filter(|h| !h.is_empty()),
            name: Some(f[0].to_string()),
        },
        // A numeric uid needs no passwd entry; its group then defaults to
        // the same number rather than to root's group.
        (None, Ok(uid)) => ResolvedUser {
            uid,
            gid: uid,
            home: None,
            name: None,
        },
        (None, Err(_)) => {
            return Err(BackendError::NoSuchUser(format!(
                "user '{user}' is not in the sandbox's /etc/passwd"
            )));
        }
    };
    if let Some(g) = grp {
        resolved.gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    BackendError::NoSuchUser(format!(
                        "group '{g}' is not in the sandbox's /etc/group"
                    ))
                })?,
        };
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_plain() {
        let line = "1234 (sleep) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 2400000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.comm, "sleep");
        assert_eq!(s.state, "S");
        assert_eq!(s.ppid, 1);
        assert_eq!(s.pgrp, 1234);
        assert_eq!(s.session, 1234);
        assert_eq!(s.start_time, 987654);
    }

    #[test]
    fn stat_line_comm_with_spaces_and_parens() {
        let line = "42 (a) b (c)) R 7 42 40 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0\n";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.comm, "a) b (c)");
        assert_eq!(s.state, "R");
        assert_eq!(s.ppid, 7);
        assert_eq!(s.session, 40);
        assert_eq!(s.start_time, 555);
    }

    #[test]
    fn stat_line_garbage() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x) S 1"), None);
        assert_eq!(parse_stat("12 )x( S 1 2 3"), None);
    }

    #[test]
    fn status_nspid_and_uid() {
        let text =
            "Name:\tsleep\nUid:\t1000\t1001\t1002\t1003\nGid:\t0\t0\t0\t0\nNSpid:\t31337\t12\n";
        let s = parse_status(text);
        assert_eq!(s.nspid, vec![31337, 12]);
        assert_eq!(s.real_uid, Some(1000));
        let top = parse_status("NSpid:\t77\nUid:\t0\t0\t0\t0\n");
        assert_eq!(top.nspid, vec![77]);
        assert_eq!(parse_status("Name:\tx\n"), StatusLine::default());
    }

    #[test]
    fn net_tcp_listen_rows() {
        // Real rows from a little-endian host.
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 24567 1 0000000000000000 100 0 0 10 0\n   1: 00000000:4965 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 24568 1 0000000000000000 100 0 0 10 0\n   2: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 24999 1 0000000000000000 20 4 30 10 -1\n";
        let rows = parse_net_tcp(v4, false);
        assert_eq!(rows.len(), 2);
        if cfg!(target_endian = "little") {
            assert_eq!(rows[0].addr.to_string(), "127.0.0.1");
        }
        assert_eq!(rows[0].port, 8080);
        assert_eq!(rows[0].inode, 24567);
        assert_eq!(rows[1].addr.to_string(), "0.0.0.0");
        assert_eq!(rows[1].port, 18789);

        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:4965 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0\n   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31338 1 0000000000000000 100 0 0 10 0\n";
        let rows = parse_net_tcp(v6, true);
        assert_eq!(rows.len(), 2);
        if cfg!(target_endian = "little") {
            assert_eq!(rows[0].addr.to_string(), "::1");
        }
        assert_eq!(rows[0].port, 18789);
        assert_eq!(rows[1].addr.to_string(), "::");
        assert_eq!(rows[1].inode, 31338);
        assert!(parse_net_tcp("header\n   0: zz:1 00:0 0A 0 0 0 0 0 1\n", false).is_empty());
    }

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link("socket:[24567]"), Some(24567));
        assert_eq!(parse_socket_link("pipe:[24567]"), None);
        assert_eq!(parse_socket_link("/dev/null"), None);
    }

    #[test]
    fn cmdline_split() {
        assert_eq!(parse_cmdline(b"sleep\x00300\x00"), vec!["sleep", "300"]);
        assert_eq!(parse_cmdline(b"openclaw-gateway"), vec!["openclaw-gateway"]);
        assert!(parse_cmdline(b"").is_empty());
    }

    #[test]
    fn id_maps() {
        let m = IdMap::parse("         0     100000      65536\n").unwrap();
        assert_eq!(m.to_inside(100000), 0);
        assert_eq!(m.to_inside(101000), 1000);
        assert_eq!(m.to_inside(5), 65534);
        assert_eq!(m.to_outside(1000), Some(101000));
        assert_eq!(m.to_outside(70000), None);
        let id = IdMap::parse("0 0 4294967295\n").unwrap();
        assert_eq!(id.to_inside(1000), 1000);
        assert_eq!(id.to_outside(0), Some(0));
    }

    #[test]
    fn user_specs() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nsandbox:x:1000:1000::/sandbox:/bin/sh\n";
        let group = "root:x:0:\nsandbox:x:1000:\nwheel:x:10:sandbox\n";
        let u = resolve_user_spec("sandbox", passwd, group).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.home.as_deref()),
            (1000, 1000, Some("/sandbox"))
        );
        let u = resolve_user_spec("sandbox:wheel", passwd, group).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 10));
        let u = resolve_user_spec("0", passwd, group).unwrap();
        assert_eq!(u.name.as_deref(), Some("root"));
        let u = resolve_user_spec("4242:7", passwd, group).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 7));
        assert!(matches!(
            resolve_user_spec("nosuchuser", passwd, group),
            Err(BackendError::NoSuchUser(_))
        ));
        assert!(matches!(
            resolve_user_spec("sandbox:nogroup", passwd, group),
            Err(BackendError::NoSuchUser(_))
        ));
    }
}
