//! Lock scenarios: whose lock is stale, and what the link removes.

use super::*;
use crate::process::tests::proc_;
use crate::{Health, ProcessId};

const OPENCLAW_LOCK: &str = "{\n  \"pid\": 42,\n  \"ownerId\": \"0b6c\",\n  \"cronOwnerProjection\": \"dynamic-default-v1\",\n  \"createdAt\": \"2026-09-20T10:00:00.000Z\",\n  \"configPath\": \"/sandbox/.openclaw/openclaw.json\",\n  \"stateDir\": \"/sandbox/.openclaw\",\n  \"port\": 18789,\n  \"startTime\": 5000\n}\n\t\t\t\t\t\t\t\t\t \t\t  \t \t\t \t\t\t  \n";
const HERMES_LOCK: &str = r#"{"pid": 77, "kind": "hermes-gateway", "argv": ["/opt/hermes/bin/hermes", "gateway", "run"], "start_time": 9000}"#;

fn gw(p: &ProcessInfo) -> bool {
    process::program_is(p, &["openclaw-gateway"])
}

fn st() -> FileStat {
    FileStat {
        kind: FileKind::Regular,
        mode: 0o600,
        uid: 998,
        gid: 998,
        size: 10,
        mtime: 0,
    }
}

fn lock(path: &str, state: LockState) -> LockFile {
    LockFile {
        path: path.into(),
        stat: st(),
        data: b"x".to_vec(),
        state,
    }
}

#[test]
fn openclaw_lock_with_token_trailer_parses() {
    let o = parse_owner(OPENCLAW_LOCK.as_bytes()).unwrap();
    assert_eq!((o.pid, o.start_time), (42, Some(5000)));
}

#[test]
fn hermes_lock_parses_kind_and_argv() {
    let o = parse_owner(HERMES_LOCK.as_bytes()).unwrap();
    assert_eq!((o.pid, o.start_time), (77, Some(9000)));
    assert_eq!(o.kind.as_deref(), Some("hermes-gateway"));
    assert_eq!(o.argv, vec!["/opt/hermes/bin/hermes", "gateway", "run"]);
}

#[test]
fn quoted_numbers_in_a_json_lock_are_read() {
    let o = parse_owner(br#"{"pid": "42", "start_time": "+5000"}"#).unwrap();
    assert_eq!((o.pid, o.start_time), (42, Some(5000)));
}

#[test]
fn plain_pid_files_parse() {
    assert_eq!(parse_owner(b"123 4567\n").unwrap().start_time, Some(4567));
    assert_eq!(parse_owner(b"123\n").unwrap().start_time, None);
    assert_eq!(parse_owner(b"123 abc"), None);
    assert_eq!(parse_owner(b"0"), None);
}

#[test]
fn garbled_or_empty_lock_has_no_owner() {
    assert_eq!(parse_owner(b"{\n  \"pid\": "), None);
    assert_eq!(parse_owner(b""), None);
    assert_eq!(parse_owner(b"{\"pid\": -1}"), None);
    assert_eq!(parse_owner(b"{\"pid\": \"x\"}"), None);
    assert_eq!(parse_owner(b"{\"pid\": 4.5}"), None);
}

#[test]
fn lock_with_live_identity_is_not_stale() {
    let procs = vec![proc_(42, 5000, 1, "S", &["openclaw-gateway"])];
    assert!(matches!(
        classify(OPENCLAW_LOCK.as_bytes(), 100, &procs, &gw),
        LockState::Live { pid: 42, .. }
    ));
}

#[test]
fn lock_of_dead_pid_is_stale() {
    let procs = vec![proc_(7, 1, 1, "S", &["sh"])];
    let s = classify(OPENCLAW_LOCK.as_bytes(), 0, &procs, &gw);
    assert!(
        matches!(&s, LockState::Stale { why } if why.contains("gone")),
        "{s:?}"
    );
}

#[test]
fn lock_of_zombie_owner_is_stale() {
    let procs = vec![proc_(42, 5000, 1, "Z", &[])];
    assert!(matches!(
        classify(OPENCLAW_LOCK.as_bytes(), 0, &procs, &gw),
        LockState::Stale { .. }
    ));
}

#[test]
fn lock_whose_pid_was_reused_is_stale() {
    let procs = vec![proc_(42, 6000, 1, "S", &["openclaw-gateway"])];
    let s = classify(OPENCLAW_LOCK.as_bytes(), 0, &procs, &gw);
    assert!(
        matches!(&s, LockState::Stale { why } if why.contains("reused")),
        "{s:?}"
    );
}

#[test]
fn lock_without_start_time_trusts_a_gateway_looking_owner_only() {
    let procs = vec![
        proc_(42, 1, 1, "S", &["openclaw-gateway"]),
        proc_(43, 1, 1, "S", &["bash"]),
    ];
    assert!(matches!(
        classify(b"{\"pid\": 42}", 0, &procs, &gw),
        LockState::Live { .. }
    ));
    assert!(matches!(
        classify(b"{\"pid\": 43}", 0, &procs, &gw),
        LockState::Stale { .. }
    ));
}

#[test]
fn unreadable_lock_is_stale_only_after_thirty_seconds() {
    assert_eq!(
        classify(b"{\n  \"pid\": ", 12, &[], &gw),
        LockState::Young { age_secs: 12 }
    );
    assert_eq!(
        classify(b"", 30, &[], &gw),
        LockState::Young { age_secs: 30 }
    );
    assert!(matches!(
        classify(b"", 31, &[], &gw),
        LockState::Stale { .. }
    ));
}

#[test]
fn stale_lock_with_no_gateway_is_broken_and_repairable() {
    let v = LocksView {
        gateways: vec![],
        locks: vec![lock(
            "/tmp/openclaw-998/gateway.state.lock",
            LockState::Stale {
                why: "owner pid 42 is gone".into(),
            },
        )],
    };
    let r = assess("locks", &v).build();
    assert_eq!(r.health, Health::Broken);
    assert!(r.repairable);
    assert!(
        r.summary
            .contains("gateway.state.lock (owner pid 42 is gone)"),
        "{}",
        r.summary
    );
}

#[test]
fn stale_lock_next_to_a_live_gateway_is_healthy() {
    let v = LocksView {
        gateways: vec![proc_(50, 9, 1, "S", &["openclaw-gateway"])],
        locks: vec![lock(
            "/tmp/openclaw-998/gateway.state.lock",
            LockState::Stale { why: "gone".into() },
        )],
    };
    let r = assess("locks", &v).build();
    assert_eq!(r.health, Health::Healthy);
    assert!(
        r.evidence
            .iter()
            .any(|kv| kv.key == "gateway-pid" && kv.value == "50")
    );
}

#[test]
fn young_unreadable_lock_is_broken_but_not_repairable() {
    let v = LocksView {
        gateways: vec![],
        locks: vec![lock(
            "/s/tmp/openclaw-998/gateway.state.lock",
            LockState::Young { age_secs: 5 },
        )],
    };
    let r = assess("locks", &v).build();
    assert_eq!(r.health, Health::Broken);
    assert!(!r.repairable);
    assert!(r.summary.contains("5 s old"));
}

#[test]
fn symlinked_lock_is_never_touched() {
    let v = LocksView {
        gateways: vec![],
        locks: vec![lock(
            "/tmp/openclaw-0/gateway.state.lock",
            LockState::NotRegular {
                kind: FileKind::Symlink,
            },
        )],
    };
    let r = assess("locks", &v).build();
    assert_eq!(r.health, Health::Broken);
    assert!(!r.repairable);
    assert!(r.summary.contains("Symlink"));
}

#[test]
fn only_live_locks_is_healthy() {
    let v = LocksView {
        gateways: vec![],
        locks: vec![lock(
            "/x/gateway.state.lock",
            LockState::Live {
                pid: 3,
                why: "cli".into(),
            },
        )],
    };
    assert_eq!(assess("locks", &v).build().health, Health::Healthy);
    let _ = ProcessId {
        pid: 0,
        start_time: 0,
    };
}
