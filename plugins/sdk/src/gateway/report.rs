//! The `gateway` link's probe: observe, assess, and turn the verdict into a
//! report with the evidence the host and operators read.

use super::{GatewaySpec, Observation, Owner, Verdict, assess, gateways, listener_owner, observe};
use crate::checks::HttpProbe;
use crate::process;
use crate::{Report, Sandbox};

/// Turn a verdict into the link report.
pub fn report(link: &str, spec: &GatewaySpec<'_>, obs: &Observation, verdict: &Verdict) -> Report {
    let r = match verdict {
        Verdict::Healthy { pid, code, .. } => Report::healthy(
            link,
            format!(
                "gateway pid {pid} listens on port {} and {} answers {code}",
                spec.port, spec.health_path
            ),
        ),
        Verdict::NotRunning => Report::broken(
            link,
            match &obs.exit_log {
                Some(tail) => format!(
                    "no gateway process and nothing listens on port {}; the gateway log was written {tail}",
                    spec.port
                ),
                None => format!(
                    "no gateway process and nothing listens on port {}",
                    spec.port
                ),
            },
        )
        .repairable()
        // The host's verification stops on this after "starting" (a
        // launched gateway exited) instead of polling to its deadline.
        .evidence("gone", "true")
        .evidence_opt("deterministic", obs.launch_refusal.as_deref()),
        Verdict::Foreign { owner } => Report::broken(
            link,
            format!(
                "port {} is held by {owner}, which is not the gateway; refusing to touch it",
                spec.port
            ),
        ),
        Verdict::Starting { pid, age_secs } if obs.not_ready => Report::unknown(
            link,
            format!(
                "gateway pid {pid} started {age_secs} s ago; {} answers but {} says it is not ready yet",
                spec.health_path,
                spec.ready_path.unwrap_or("readiness")
            ),
        )
        .evidence("starting", "true")
        .evidence("retry-after-s", spec.start_grace_secs.saturating_sub(*age_secs).max(1)),
        Verdict::Starting { pid, age_secs } => Report::unknown(
            link,
            format!(
                "gateway pid {pid} started {age_secs} s ago and does not listen on port {} yet",
                spec.port
            ),
        )
        .evidence("starting", "true")
        .evidence(
            "retry-after-s",
            spec.start_grace_secs.saturating_sub(*age_secs).max(1),
        ),
        Verdict::NotServing { why, .. } => Report::broken(link, why.clone()).repairable(),
        Verdict::Undecided { why } => Report::unknown(link, why.clone()),
    };
    evidence(r, spec, obs)
}

fn evidence(mut r: Report, spec: &GatewaySpec<'_>, obs: &Observation) -> Report {
    r = r.evidence("port", spec.port);
    for gw in gateways(&obs.procs, spec.is_gateway) {
        r = r
            .evidence("pid", gw.id.pid)
            .evidence("start-time", gw.id.start_time)
            .evidence("state", &gw.state)
            .evidence("cmdline", process::display(gw));
        if let Some(u) = obs.uptime {
            r = r.evidence("age-s", process::age_secs(gw.id.start_time, u));
        }
    }
    for l in &obs.listeners {
        let owner = match listener_owner(l, &obs.procs, spec.is_gateway) {
            Owner::Gateway(p) => format!("gateway pid {}", p.id.pid),
            Owner::Other(d) => d,
            Owner::Unknown => "unknown".into(),
        };
        r = r.evidence(
            "listener",
            format!("{}:{} owner {owner}", l.address, l.port),
        );
    }
    match &obs.http {
        Some(HttpProbe::Accepted(c)) | Some(HttpProbe::Rejected(c)) => r = r.evidence("http", c),
        Some(HttpProbe::NoAnswer(e)) => {
            r = r
                .evidence(
                    "http",
                    if obs.http_timed_out {
                        "timeout"
                    } else {
                        "error"
                    },
                )
                .evidence("http-error", e)
        }
        None => {}
    }
    r
}

/// The `gateway` link's probe.
pub fn probe(link: &str, sandbox: &Sandbox, spec: &GatewaySpec<'_>) -> Report {
    match observe(sandbox, spec) {
        Ok(obs) => {
            let v = assess(spec, &obs);
            report(link, spec, &obs, &v)
        }
        Err(e) => Report::unknown(link, e),
    }
}
