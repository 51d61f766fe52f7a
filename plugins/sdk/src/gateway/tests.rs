//! Verdict scenarios: what the probe concludes from what it saw.

use super::*;
use crate::process;
use crate::process::tests::{listener, proc_};
use crate::{Listener, ProcessInfo};

fn is_gw(p: &ProcessInfo) -> bool {
    process::program_is(p, &["openclaw-gateway"])
        || process::invocation(p, &["openclaw"], &["gateway", "run"]).is_some()
}

fn spec() -> GatewaySpec<'static> {
    GatewaySpec {
        port: 18789,
        health_path: "/health",
        ok_codes: &[200, 401],
        ready_path: Some("/readyz"),
        health_timeout_ms: 3000,
        start_grace_secs: 30,
        is_gateway: &is_gw,
        log_file: Some("/tmp/gateway.log"),
        wedge_markers: &["Process will stay alive"],
    }
}

fn obs(procs: Vec<ProcessInfo>, listeners: Vec<Listener>, http: Option<HttpProbe>) -> Observation {
    Observation {
        procs,
        listeners,
        http,
        http_timed_out: false,
        not_ready: false,
        uptime: Some(100_000),
        wedge_line: None,
        exit_log: None,
        launch_refusal: None,
    }
}

fn gateway_proc() -> ProcessInfo {
    // Started at 500 s after boot: 500 s old at uptime 1000.
    proc_(40, 50_000, 1, "S", &["openclaw-gateway"])
}

#[test]
fn gateway_with_listener_and_health_200_is_healthy() {
    let o = obs(
        vec![gateway_proc()],
        vec![listener(40, 50_000)],
        Some(HttpProbe::Accepted(200)),
    );
    assert_eq!(
        assess(&spec(), &o),
        Verdict::Healthy {
            pid: 40,
            start_time: 50_000,
            code: 200
        }
    );
    let r = report("gateway", &spec(), &o, &assess(&spec(), &o)).build();
    assert!(
        r.evidence
            .iter()
            .any(|kv| kv.key == "http" && kv.value == "200")
    );
    assert!(
        r.evidence
            .iter()
            .any(|kv| kv.key == "start-time" && kv.value == "50000")
    );
}

#[test]
fn young_live_gateway_that_is_not_ready_is_starting() {
    let young = proc_(40, 99_000, 1, "S", &["openclaw-gateway"]);
    let mut o = obs(
        vec![young],
        vec![listener(40, 99_000)],
        Some(HttpProbe::Accepted(200)),
    );
    o.not_ready = true;
    let v = assess(&spec(), &o);
    assert!(
        matches!(
            v,
            Verdict::Starting {
                pid: 40,
                age_secs: 10
            }
        ),
        "{v:?}"
    );
    let r = report("gateway", &spec(), &o, &v).build();
    assert_eq!(r.health, crate::Health::Unknown);
    assert!(r.summary.contains("/readyz"), "{}", r.summary);
}

#[test]
fn health_401_counts_as_alive() {
    let o = obs(
        vec![gateway_proc()],
        vec![listener(40, 50_000)],
        Some(HttpProbe::Accepted(401)),
    );
    assert!(assess(&spec(), &o).is_healthy());
}

#[test]
fn nothing_running_is_broken_and_repairable() {
    let o = obs(vec![proc_(1, 1, 0, "S", &["sandbox-entry"])], vec![], None);
    assert_eq!(assess(&spec(), &o), Verdict::NotRunning);
    let r = report("gateway", &spec(), &o, &Verdict::NotRunning).build();
    assert!(r.repairable);
}

#[test]
fn alive_without_listener_past_grace_is_wedged() {
    let o = obs(vec![gateway_proc()], vec![], None);
    match assess(&spec(), &o) {
        Verdict::NotServing { pid: 40, why } => assert!(why.contains("wedged"), "{why}"),
        v => panic!("{v:?}"),
    }
}

#[test]
fn young_gateway_without_listener_is_starting_not_broken() {
    let young = proc_(
        40,
        99_000,
        1,
        "S",
        &[
            "node",
            "/usr/lib/node_modules/openclaw/openclaw.mjs",
            "gateway",
            "run",
        ],
    );
    let o = obs(vec![young], vec![], None);
    assert!(matches!(
        assess(&spec(), &o),
        Verdict::Starting { pid: 40, .. }
    ));
    let r = report("gateway", &spec(), &o, &assess(&spec(), &o)).build();
    assert_eq!(r.health, crate::Health::Unknown);
}

#[test]
fn young_gateway_whose_log_says_it_gave_up_is_wedged() {
    let young = proc_(40, 99_000, 1, "S", &["openclaw-gateway"]);
    let mut o = obs(vec![young], vec![], None);
    o.wedge_line = Some(
        "2026-09-20T10:00:05Z [gateway] gateway startup failed: x. Process will stay alive".into(),
    );
    assert!(
        matches!(assess(&spec(), &o), Verdict::NotServing { why, .. } if why.contains("gave up"))
    );
}

#[test]
fn unknown_age_without_listener_is_undecided() {
    let mut o = obs(vec![gateway_proc()], vec![], None);
    o.uptime = None;
    assert!(matches!(assess(&spec(), &o), Verdict::Undecided { .. }));
}

#[test]
fn http_5xx_is_broken() {
    let o = obs(
        vec![gateway_proc()],
        vec![listener(40, 50_000)],
        Some(HttpProbe::Rejected(500)),
    );
    assert!(matches!(assess(&spec(), &o), Verdict::NotServing { why, .. } if why.contains("500")));
}

#[test]
fn frozen_gateway_that_times_out_is_broken_with_evidence() {
    let mut o = obs(
        vec![gateway_proc()],
        vec![listener(40, 50_000)],
        Some(HttpProbe::NoAnswer("timed out".into())),
    );
    o.http_timed_out = true;
    let v = assess(&spec(), &o);
    assert!(
        matches!(&v, Verdict::NotServing { why, .. } if why.contains("frozen")),
        "{v:?}"
    );
    let r = report("gateway", &spec(), &o, &v).build();
    assert!(r.repairable);
    assert!(
        r.evidence
            .iter()
            .any(|kv| kv.key == "http" && kv.value == "timeout")
    );
}

#[test]
fn sigstopped_gateway_is_broken_even_before_http() {
    let stopped = proc_(40, 50_000, 1, "T", &["openclaw-gateway"]);
    let o = obs(vec![stopped], vec![listener(40, 50_000)], None);
    assert!(
        matches!(assess(&spec(), &o), Verdict::NotServing { why, .. } if why.contains("stopped"))
    );
}

#[test]
fn other_http_errors_are_undecided() {
    let o = obs(
        vec![gateway_proc()],
        vec![listener(40, 50_000)],
        Some(HttpProbe::NoAnswer("unavailable".into())),
    );
    assert!(matches!(assess(&spec(), &o), Verdict::Undecided { .. }));
}

#[test]
fn foreign_listener_is_named_and_not_repairable() {
    let o = obs(
        vec![proc_(
            77,
            5,
            1,
            "S",
            &["python3", "-m", "http.server", "18789"],
        )],
        vec![listener(77, 5)],
        None,
    );
    let v = assess(&spec(), &o);
    assert!(
        matches!(&v, Verdict::Foreign { owner } if owner.contains("pid 77") && owner.contains("http.server"))
    );
    let r = report("gateway", &spec(), &o, &v).build();
    assert!(!r.repairable);
    assert_eq!(r.health, crate::Health::Broken);
}

#[test]
fn listener_held_by_gateway_child_counts_as_gateway() {
    let child = proc_(41, 50_100, 40, "S", &["node", "/x/spawn-broker/worker.js"]);
    let o = obs(
        vec![gateway_proc(), child],
        vec![listener(41, 50_100)],
        Some(HttpProbe::Accepted(200)),
    );
    assert!(matches!(
        assess(&spec(), &o),
        Verdict::Healthy { pid: 40, .. }
    ));
}

#[test]
fn listener_with_unknown_owner_is_undecided() {
    let l = Listener {
        address: "127.0.0.1".into(),
        port: 18789,
        owner: None,
    };
    let o = obs(vec![gateway_proc()], vec![l], None);
    assert!(matches!(assess(&spec(), &o), Verdict::Undecided { .. }));
}

#[test]
fn listener_owned_by_reused_pid_is_not_the_gateway() {
    // The listener's identity is pid 40 with another start time: not our gateway.
    let o = obs(vec![gateway_proc()], vec![listener(40, 1)], None);
    assert!(matches!(assess(&spec(), &o), Verdict::Foreign { .. }));
}

#[test]
fn gateway_that_just_exited_shows_its_log_in_the_summary() {
    let mut o = obs(vec![proc_(1, 1, 0, "S", &["sandbox-entry"])], vec![], None);
    o.exit_log = Some(
        "2 s ago; last lines of /tmp/gateway.log: Another gateway owner lease is still active"
            .into(),
    );
    let r = report("gateway", &spec(), &o, &assess(&spec(), &o)).build();
    assert_eq!(r.health, crate::Health::Broken);
    assert!(r.repairable);
    assert!(r.summary.contains("lease is still active"), "{}", r.summary);
    assert!(
        r.evidence
            .iter()
            .any(|kv| kv.key == "gone" && kv.value == "true")
    );
}
