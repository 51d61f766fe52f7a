//! Lease scenarios: which rows are released and which are left alone.

use super::parse::parse_owner;
use super::*;
use runner_plugin_sdk::ProcessId;
use runner_plugin_sdk::ProcessInfo;

const STATE_TMP: &str = "/sandbox/.openclaw/tmp";
const NOW: i64 = 1_795_448_960_000;
/// This sandbox: pid 1 started 20 s ago (uptime 1000 s).
const UPTIME: u64 = 100_000;
const INIT_START: u64 = 98_000;

fn p(pid: u32, start: u64, cmd: &str) -> ProcessInfo {
    ProcessInfo {
        id: ProcessId {
            pid,
            start_time: start,
        },
        ppid: 1,
        uid: 998,
        state: "S".into(),
        comm: cmd.chars().take(15).collect(),
        cmdline: vec![cmd.into()],
    }
}

fn procs() -> Vec<ProcessInfo> {
    vec![p(1, INIT_START, "sandbox-entry"), p(18, 98_010, "sleep")]
}

fn coord(name: &str, held: bool) -> Coordinator {
    Coordinator {
        path: format!("{STATE_TMP}/openclaw-998/{name}"),
        held,
    }
}

/// A lease of pid 60 on host `old`, last renewed `age_ms` ago.
fn facts(host: &str, age_ms: i64) -> Facts {
    Facts {
        hostname: "new".into(),
        now_ms: NOW,
        uptime_ticks: Some(UPTIME),
        row: Some(LeaseRow {
            owner: "7bcf742a".into(),
            expires_at: Some(NOW - age_ms + 300_000),
            heartbeat_at: Some(NOW - age_ms),
            updated_at: NOW - age_ms,
            process: Some(LeaseOwner {
                pid: 60,
                host: host.into(),
                started_at: Some(1_064_365),
            }),
            raw: "{}".into(),
        }),
        coordinators: vec![
            coord("gateway.e6802e23.lock.sqlite", false),
            coord("gateway.state.lock.sqlite", false),
        ],
    }
}

fn judge_(f: &Facts, procs: &[ProcessInfo]) -> Verdict {
    judge(f, procs, STATE_TMP)
}

#[test]
fn dead_owner_of_an_earlier_container_is_stale() {
    // Last renewed 50 s ago, this sandbox started 20 s ago.
    let v = judge_(&facts("old", 50_000), &procs());
    assert!(matches!(v, Verdict::Stale { .. }), "{v:?}");
    assert!(v.why().contains("not renewed for 50 s"), "{v:?}");
    assert!(v.why().contains("host old"), "{v:?}");
}

#[test]
fn recently_renewed_foreign_lease_waits_out_one_heartbeat() {
    let v = judge_(&facts("old", 25_000), &procs());
    assert_eq!(
        v,
        Verdict::Wait {
            why: v.why().to_string(),
            retry_after_s: 20
        }
    );
}

#[test]
fn held_coordinator_means_a_live_owner_somewhere() {
    let mut f = facts("old", 50_000);
    f.coordinators[1].held = true;
    let v = judge_(&f, &procs());
    assert!(matches!(v, Verdict::Live { .. }), "{v:?}");
    assert!(v.why().contains("gateway.state.lock.sqlite"), "{v:?}");
    // A held coordinator outside the state dir (this sandbox's lifecycle one) counts too.
    let mut f = facts("old", 50_000);
    f.coordinators.push(Coordinator {
        path: "/tmp/openclaw-state-locks-998/gateway-lifecycle.27da31a3.lock.sqlite".into(),
        held: true,
    });
    assert!(matches!(judge_(&f, &procs()), Verdict::Live { .. }));
}

#[test]
fn lease_renewed_after_this_sandbox_started_belongs_to_a_neighbour() {
    // Renewed 50 s ago, but this sandbox started 60 s ago.
    let v = judge_(&facts("old", 50_000), &[p(1, 94_000, "init")]);
    assert!(matches!(v, Verdict::Wait { .. }), "{v:?}");
    assert!(v.why().contains("ran alongside"), "{v:?}");
    assert!(v.why().contains("expires in 250 s"), "{v:?}");
}

#[test]
fn without_the_state_coordinator_nothing_is_proven() {
    let mut f = facts("old", 50_000);
    f.coordinators
        .retain(|c| !c.path.ends_with("gateway.state.lock.sqlite"));
    let v = judge_(&f, &procs());
    assert!(matches!(v, Verdict::Wait { .. }), "{v:?}");
    // A coordinator of that name elsewhere does not count.
    f.coordinators.push(Coordinator {
        path: "/tmp/openclaw-998/gateway.state.lock.sqlite".into(),
        held: false,
    });
    assert!(matches!(judge_(&f, &procs()), Verdict::Wait { .. }));
}

#[test]
fn unknown_sandbox_start_is_not_proof() {
    let mut f = facts("old", 50_000);
    f.uptime_ticks = None;
    assert!(matches!(judge_(&f, &procs()), Verdict::Wait { .. }));
    let f = facts("old", 50_000);
    assert!(matches!(
        judge_(&f, &[p(18, 98_010, "sleep")]),
        Verdict::Wait { .. }
    ));
}

#[test]
fn foreign_owner_whose_identity_lives_here_is_live() {
    let v = judge_(
        &facts("old", 50_000),
        &[
            p(1, INIT_START, "init"),
            p(60, 1_064_365, "openclaw-gateway"),
        ],
    );
    assert!(matches!(v, Verdict::InUse { .. }), "{v:?}");
    // Same pid, other start time: not the owner.
    let v = judge_(
        &facts("old", 50_000),
        &[p(1, INIT_START, "init"), p(60, 5, "bash")],
    );
    assert!(matches!(v, Verdict::Stale { .. }), "{v:?}");
}

#[test]
fn expired_lease_is_left_to_openclaw() {
    let mut f = facts("old", 10_000);
    f.row.as_mut().unwrap().expires_at = Some(NOW);
    assert!(matches!(judge_(&f, &procs()), Verdict::Clear { .. }));
}

#[test]
fn same_host_follows_openclaws_own_rule() {
    // Gone: OpenClaw reclaims it itself.
    let v = judge_(&facts("new", 5_000), &procs());
    assert!(matches!(v, Verdict::Clear { .. }), "{v:?}");
    // Alive with its start time: in use here.
    let live = [
        p(1, INIT_START, "init"),
        p(60, 1_064_365, "openclaw-gateway"),
    ];
    assert!(matches!(
        judge_(&facts("new", 5_000), &live),
        Verdict::InUse { .. }
    ));
    // Reused pid: OpenClaw reclaims it.
    let reused = [p(1, INIT_START, "init"), p(60, 7, "sleep")];
    assert!(matches!(
        judge_(&facts("new", 5_000), &reused),
        Verdict::Clear { .. }
    ));
    // Alive and no start time recorded: nobody can prove it dead.
    let mut f = facts("new", 5_000);
    f.row.as_mut().unwrap().process.as_mut().unwrap().started_at = None;
    assert!(matches!(judge_(&f, &reused), Verdict::Wait { .. }));
}

#[test]
fn lease_without_owner_identity_or_expiry_is_never_stale() {
    let mut f = facts("old", 50_000);
    f.row.as_mut().unwrap().process = None;
    assert!(matches!(judge_(&f, &procs()), Verdict::Wait { .. }));
    f.row.as_mut().unwrap().expires_at = None;
    assert!(matches!(judge_(&f, &procs()), Verdict::Held { .. }));
}

#[test]
fn no_row_is_clear() {
    let mut f = facts("old", 0);
    f.row = None;
    assert!(matches!(judge_(&f, &procs()), Verdict::Clear { .. }));
}

/// Verbatim output of the script in a recreated runner-test/openclaw sandbox.
const OBSERVED: &str = r#"{"hostname":"76fe8ded137c","now_ms":1795448932905,"uptime":"10808.72","db":true,"table":true,"row":{"owner":"7bcf742a-9627-4eb9-9704-12aa65bd6ea5","expires_at":1795449201586,"heartbeat_at":1795448901586,"payload_json":"{\"owner\":{\"pid\":60,\"host\":\"a80487a186e4\",\"startedAt\":1064365},\"port\":18789,\"mode\":\"foreground\",\"supervisor\":null}","created_at":1795448781157,"updated_at":1795448901586},"coordinators":[{"path":"/sandbox/.openclaw/tmp/openclaw-998/gateway.e6802e23.lock.sqlite","held":false},{"path":"/sandbox/.openclaw/tmp/openclaw-998/gateway.state.lock.sqlite","held":false},{"path":"/tmp/openclaw-state-locks-998/gateway-lifecycle.27da31a3.lock.sqlite","held":false}]}"#;

#[test]
fn script_output_parses() {
    let f = parse_facts(&format!("noise\n{OBSERVED}\n")).unwrap();
    assert_eq!(f.hostname, "76fe8ded137c");
    assert_eq!(f.uptime_ticks, Some(1_080_872));
    let row = f.row.as_ref().unwrap();
    assert_eq!(row.owner, "7bcf742a-9627-4eb9-9704-12aa65bd6ea5");
    assert_eq!(row.expires_at, Some(1_795_449_201_586));
    assert_eq!(row.last_renewed(), 1_795_448_901_586);
    assert_eq!(
        row.process,
        Some(LeaseOwner {
            pid: 60,
            host: "a80487a186e4".into(),
            started_at: Some(1_064_365)
        })
    );
    // The row goes back to the release exactly as printed.
    assert!(row.raw.starts_with("{\"owner\":\"7bcf742a"));
    assert!(row.raw.ends_with("\"updated_at\":1795448901586}"));
    assert_eq!(f.coordinators.len(), 3);
    assert!(f.coordinators.iter().all(|c| !c.held));
}

#[test]
fn script_errors_and_empty_leases_parse() {
    assert_eq!(
        parse_facts(r#"{"error":"database is locked"}"#),
        Err("database is locked".into())
    );
    let f = parse_facts(
        r#"{"hostname":"h","now_ms":5,"uptime":"1.00","db":false,"table":false,"row":null,"coordinators":[]}"#,
    )
    .unwrap();
    assert_eq!(f.row, None);
    assert!(parse_facts("").is_err());
}

#[test]
fn payload_owner_follows_openclaws_parser() {
    assert_eq!(
        parse_owner(r#"{"owner":{"pid":7,"host":"h","startedAt":null}}"#),
        Some(LeaseOwner {
            pid: 7,
            host: "h".into(),
            started_at: None
        })
    );
    assert_eq!(
        parse_owner(r#"{"owner":{"pid":0,"host":"h","startedAt":1}}"#),
        None
    );
    assert_eq!(
        parse_owner(r#"{"owner":{"pid":7,"host":"","startedAt":1}}"#),
        None
    );
    assert_eq!(parse_owner(r#"{"owner":{"pid":7,"host":"h"}}"#), None);
    assert_eq!(parse_owner("not json"), None);
}
