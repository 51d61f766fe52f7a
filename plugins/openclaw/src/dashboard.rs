//! The `dashboard` link: end to end through the host forward. HTTP answers,
//! and the gateway accepts the dashboard's Origin on a WebSocket `connect`
//! (OpenClaw checks the origin before the token, and the verdict is only
//! visible in the connect response, never in the upgrade).
//!
//! Not repairable by itself: the fixes live in `cors` and `forward`; the
//! host re-probes this link after repairing those.

use crate::config::{Config, OriginCheck};
use runner_plugin_sdk::json5::{self, Node};
use runner_plugin_sdk::poll::Backoff;
use runner_plugin_sdk::{Error, HttpRoute, Report, Sandbox, WsStep, WsTranscript};
use std::time::Duration;

pub const LINK: &str = "dashboard";

/// Longest wait, in pauses between WebSocket attempts, while the gateway
/// answers UNAVAILABLE.
const NOT_READY_WAIT: Duration = Duration::from_secs(5);

/// Longest wait for OpenClaw to hot-reload a just-patched origin list
/// (measured: 1.9 s; the fixture gateway: ≤ 0.3 s).
const RELOAD_WAIT_S: u32 = 6;

/// Retries start this soon and back off to at most this: a reload or start
/// that ends in 300 ms is seen within ~0.5 s, not after a whole second.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_millis(500);

/// The `connect` request a Control UI sends after the challenge.
/// (The challenge nonce is only signed by paired devices; a token connect
/// does not echo it.)
pub fn connect_frame(token: &str) -> String {
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!(",\"auth\":{{\"token\":{}}}", json5::quote(token))
    };
    format!(
        "{{\"type\":\"req\",\"id\":\"runner-dashboard-probe\",\"method\":\"connect\",\"params\":{{\"minProtocol\":3,\
         \"maxProtocol\":4,\"client\":{{\"id\":\"openclaw-control-ui\",\"version\":{},\"platform\":\"linux\",\
         \"mode\":\"webchat\"}},\"role\":\"operator\",\"scopes\":[\"operator.read\"]{auth}}}}}",
        json5::quote(concat!("runner-", env!("CARGO_PKG_VERSION")))
    )
}

/// The verdict on a WebSocket conversation (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsVerdict {
    /// The origin passed (`hello-ok`, or a later check such as the token
    /// failed).
    Accepted(String),
    /// The gateway rejected the origin.
    OriginRejected(String),
    /// The dashboard path does not work (no upgrade, no challenge, ...).
    Broken(String),
    /// The gateway answered that it is not ready yet (`UNAVAILABLE`).
    NotReady(String),
    /// Cannot tell whether the origin is allowed.
    Undecided(String),
}

fn error_codes(frame: &Node) -> (String, String, String) {
    let err = frame.get("error");
    let code = err
        .and_then(|e| e.get("code"))
        .and_then(Node::as_str)
        .unwrap_or_default()
        .to_string();
    let detail = err
        .and_then(|e| {
            e.get("details")
                .and_then(|d| d.get("code"))
                .or_else(|| e.get("data").and_then(|d| d.get("code")))
        })
        .and_then(Node::as_str)
        .unwrap_or_default()
        .to_string();
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Node::as_str)
        .unwrap_or_default()
        .to_string();
    (code, detail, message)
}

fn origin_words(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("origin not allowed")
        || t.contains("origin-mismatch")
        || t.contains("allowedorigins")
}

pub fn classify(t: &WsTranscript) -> WsVerdict {
    if t.upgrade_status != 101 {
        return WsVerdict::Broken(format!(
            "WebSocket upgrade answered HTTP {}",
            t.upgrade_status
        ));
    }
    let frames: Vec<Node> = t
        .received
        .iter()
        .filter_map(|f| json5::parse(f).ok())
        .collect();
    for f in &frames {
        if f.get("type").and_then(Node::as_str) != Some("res") {
            continue;
        }
        if f.get("ok")
            .is_some_and(|ok| ok.value == json5::Value::Bool(true))
        {
            let kind = f
                .get_path(&["payload", "type"])
                .and_then(Node::as_str)
                .unwrap_or("ok");
            return WsVerdict::Accepted(format!("connect answered {kind}"));
        }
        let (code, detail, message) = error_codes(f);
        if detail == "CONTROL_UI_ORIGIN_NOT_ALLOWED"
            || code == "CONTROL_UI_ORIGIN_NOT_ALLOWED"
            || origin_words(&message)
        {
            return WsVerdict::OriginRejected(format!(
                "connect rejected: {} {}",
                if detail.is_empty() { &code } else { &detail },
                message
            ));
        }
        let later_check = |c: &str| {
            c.starts_with("AUTH_")
                || c.contains("PAIRING")
                || c.contains("DEVICE")
                || c.contains("TOKEN")
        };
        let lower = message.to_ascii_lowercase();
        if later_check(&detail)
            || later_check(&code)
            || lower.contains("unauthorized")
            || lower.contains("pairing required")
            || lower.contains("device identity")
        {
            // The origin check runs first: failing a later check means it passed.
            return WsVerdict::Accepted(format!(
                "origin accepted; connect then failed a later check ({})",
                if detail.is_empty() { &code } else { &detail }
            ));
        }
        if code == "UNAVAILABLE" || detail == "UNAVAILABLE" {
            return WsVerdict::NotReady(format!("connect answered UNAVAILABLE: {message}"));
        }
        return WsVerdict::Undecided(format!(
            "connect rejected with {code} {detail} {message}; cannot tell whether the origin passed"
        ));
    }
    if let Some(code) = t.close_code {
        if origin_words(&t.close_reason) {
            return WsVerdict::OriginRejected(format!("closed {code}: {}", t.close_reason));
        }
        if code == 1008 && t.close_reason.to_ascii_lowercase().contains("unauthorized") {
            return WsVerdict::Accepted(format!(
                "origin accepted; closed {code}: {}",
                t.close_reason
            ));
        }
        if frames.is_empty() {
            return WsVerdict::Broken(format!(
                "closed {code} before the connect challenge: {}",
                t.close_reason
            ));
        }
        return WsVerdict::Undecided(format!(
            "closed {code} without a connect answer: {}",
            t.close_reason
        ));
    }
    let challenged = frames
        .iter()
        .any(|f| f.get("event").and_then(Node::as_str) == Some("connect.challenge"));
    if !challenged {
        return WsVerdict::Broken("no connect.challenge from the gateway".into());
    }
    WsVerdict::Broken("no answer to connect".into())
}

/// GET `path` with the Origin header: 2xx allowed, 403 rejected (pure).
pub fn classify_http_origin(status: u16) -> WsVerdict {
    match status {
        200..=299 => WsVerdict::Accepted(format!("origin check answered {status}")),
        403 => WsVerdict::OriginRejected("origin check answered 403".into()),
        other => WsVerdict::Broken(format!("origin check answered HTTP {other}")),
    }
}

/// The token for the connect: the setting, else `gateway.auth.token` from
/// the config (best effort; the origin check does not need it).
fn token(sandbox: &Sandbox, cfg: &Config) -> String {
    if !cfg.gateway_token.is_empty() {
        return cfg.gateway_token.clone();
    }
    sandbox
        .read(&cfg.config, 1024 * 1024)
        .ok()
        .and_then(|d| json5::parse(&String::from_utf8_lossy(&d)).ok())
        .and_then(|doc| {
            doc.get_path(&["gateway", "auth", "token"])
                .and_then(Node::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn cap_is_undecidable(e: &Error) -> bool {
    matches!(e, Error::Denied(_) | Error::Unavailable(_))
}

fn check_origin(sandbox: &Sandbox, cfg: &Config) -> WsVerdict {
    let route = || HttpRoute::HostForward(cfg.gateway.host_port);
    let headers = [("Origin", cfg.dashboard_origin.as_str())];
    match &cfg.origin_check {
        OriginCheck::WebSocket => {
            let frame = connect_frame(&token(sandbox, cfg));
            // A gateway that just started answers UNAVAILABLE for a few
            // seconds: a short, bounded retry.
            let mut pauses = Backoff::new(RETRY_FIRST, RETRY_MAX, NOT_READY_WAIT);
            loop {
                let steps = vec![
                    WsStep::Receive,
                    WsStep::Send(frame.clone()),
                    WsStep::Receive,
                ];
                let v = match sandbox.websocket(route(), "/", &headers, steps, cfg.ws_timeout_ms) {
                    Ok(t) => classify(&t),
                    Err(e) if cap_is_undecidable(&e) => {
                        WsVerdict::Undecided(format!("WebSocket through the forward: {e}"))
                    }
                    Err(e) => {
                        WsVerdict::Broken(format!("WebSocket through the forward failed: {e}"))
                    }
                };
                if !matches!(v, WsVerdict::NotReady(_)) || !pauses.pause() {
                    break v;
                }
            }
        }
        OriginCheck::Http(path) => {
            match sandbox.http(
                route(),
                "GET",
                path,
                &headers,
                cfg.gateway.health_timeout_ms,
            ) {
                Ok(resp) => classify_http_origin(resp.status),
                Err(e) if cap_is_undecidable(&e) => {
                    WsVerdict::Undecided(format!("origin check through the forward: {e}"))
                }
                Err(e) => {
                    WsVerdict::Broken(format!("origin check through the forward failed: {e}"))
                }
            }
        }
    }
}

/// Did the config change in the last [`RELOAD_WAIT_S`]·2 seconds, and does
/// it already allow the origin (a hot reload is pending)?
fn reload_pending(sandbox: &Sandbox, cfg: &Config) -> bool {
    let fresh = sandbox.stat(&cfg.config).ok().flatten().is_some_and(|st| {
        runner_plugin_sdk::locks::now_secs() - st.mtime <= i64::from(RELOAD_WAIT_S) * 2
    });
    fresh
        && sandbox.read(&cfg.config, 1024 * 1024).is_ok_and(|d| {
            crate::cors::check(&String::from_utf8_lossy(&d), &cfg.dashboard_origin)
                == crate::cors::State::Allowed
        })
}

/// `forward` = the forward link's health summary when it is not healthy:
/// then nothing is reachable and no request is made.
pub fn probe(sandbox: &Sandbox, cfg: &Config, forward: Option<&str>) -> Report {
    if let Some(why) = forward {
        return Report::broken(
            LINK,
            format!("not reachable from the host: the forward is not up ({why})"),
        )
        .evidence("url", format!("http://127.0.0.1:{}", cfg.gateway.host_port));
    }
    let route = || HttpRoute::HostForward(cfg.gateway.host_port);
    let via = format!("http://127.0.0.1:{}", cfg.gateway.host_port);
    let base = |r: Report| {
        r.evidence("url", &via)
            .evidence("origin", &cfg.dashboard_origin)
    };

    let http_code = match sandbox.http(
        route(),
        "GET",
        &cfg.gateway.health_path,
        &[],
        cfg.gateway.health_timeout_ms,
    ) {
        Ok(resp) if resp.status == 200 || resp.status == 401 => resp.status,
        Ok(resp) => {
            return base(Report::broken(
                LINK,
                format!(
                    "GET {via}{} through the forward answered HTTP {}",
                    cfg.gateway.health_path, resp.status
                ),
            ))
            .evidence("http", resp.status);
        }
        Err(e) if cap_is_undecidable(&e) => {
            return base(Report::unknown(
                LINK,
                format!("cannot reach {via} through the forward: {e}"),
            ));
        }
        Err(e) => {
            return base(Report::broken(
                LINK,
                format!(
                    "GET {via}{} through the forward failed: {e}",
                    cfg.gateway.health_path
                ),
            ))
            .evidence("http", e.kind());
        }
    };

    // Right after a cors repair OpenClaw needs ~2 s to hot-reload the list:
    // while the config already allows the origin and changed moments ago,
    // retry (bounded) instead of reporting a rejection that is about to end.
    let mut verdict = check_origin(sandbox, cfg);
    let mut pauses = Backoff::new(
        RETRY_FIRST,
        RETRY_MAX,
        Duration::from_secs(RELOAD_WAIT_S.into()),
    );
    while matches!(verdict, WsVerdict::OriginRejected(_))
        && reload_pending(sandbox, cfg)
        && pauses.pause()
    {
        verdict = check_origin(sandbox, cfg);
    }
    let r = match verdict {
        WsVerdict::Accepted(how) => Report::healthy(
            LINK,
            format!("{via} answers ({http_code}) and the gateway accepts origin {} ({how})", cfg.dashboard_origin),
        )
        .evidence("origin-check", how),
        WsVerdict::OriginRejected(how) => Report::broken(
            LINK,
            format!(
                "the gateway rejects origin {} ({how}); add it to gateway.controlUi.allowedOrigins (the cors link)",
                cfg.dashboard_origin
            ),
        )
        .evidence("origin-check", how),
        WsVerdict::Broken(why) => Report::broken(LINK, format!("{via} answers ({http_code}) but the dashboard does not work: {why}"))
            .evidence("origin-check", why),
        WsVerdict::NotReady(why) => Report::unknown(LINK, format!("the gateway is not ready yet: {why}"))
            .evidence("origin-check", why),
        WsVerdict::Undecided(why) => Report::unknown(LINK, why.clone()).evidence("origin-check", why),
    };
    base(r).evidence("http", http_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(status: u16, frames: &[&str], close: Option<(u16, &str)>) -> WsTranscript {
        WsTranscript {
            upgrade_status: status,
            received: frames.iter().map(|s| s.to_string()).collect(),
            close_code: close.map(|c| c.0),
            close_reason: close.map(|c| c.1.to_string()).unwrap_or_default(),
        }
    }

    const CHALLENGE: &str =
        r#"{"type":"event","event":"connect.challenge","payload":{"nonce":"n1","ts":1}}"#;

    #[test]
    fn connect_frame_is_valid_json_with_token() {
        let f = json5::parse(&connect_frame("tok\"en")).unwrap();
        assert_eq!(f.get("method").unwrap().as_str(), Some("connect"));
        assert_eq!(
            f.get_path(&["params", "auth", "token"]).unwrap().as_str(),
            Some("tok\"en")
        );
        assert_eq!(
            f.get_path(&["params", "client", "id"]).unwrap().as_str(),
            Some("openclaw-control-ui")
        );
        assert_eq!(
            f.get_path(&["params", "role"]).unwrap().as_str(),
            Some("operator")
        );
        let no_token = json5::parse(&connect_frame("")).unwrap();
        assert!(no_token.get_path(&["params", "auth"]).is_none());
    }

    #[test]
    fn hello_ok_is_accepted() {
        let t = transcript(
            101,
            &[
                CHALLENGE,
                r#"{"type":"res","id":"x","ok":true,"payload":{"type":"hello-ok","protocol":4}}"#,
            ],
            None,
        );
        assert_eq!(
            classify(&t),
            WsVerdict::Accepted("connect answered hello-ok".into())
        );
    }

    #[test]
    fn origin_not_allowed_is_rejected() {
        let t = transcript(
            101,
            &[
                CHALLENGE,
                r#"{"type":"res","id":"x","ok":false,"error":{"code":"INVALID_REQUEST","message":"origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)","details":{"code":"CONTROL_UI_ORIGIN_NOT_ALLOWED"}}}"#,
            ],
            Some((1008, "origin not allowed")),
        );
        assert!(
            matches!(classify(&t), WsVerdict::OriginRejected(m) if m.contains("CONTROL_UI_ORIGIN_NOT_ALLOWED"))
        );
    }

    #[test]
    fn close_1008_origin_without_response_is_rejected() {
        let t = transcript(
            101,
            &[CHALLENGE],
            Some((
                1008,
                "origin not allowed (gateway.controlUi.allowedOrigins)",
            )),
        );
        assert!(matches!(classify(&t), WsVerdict::OriginRejected(_)));
    }

    #[test]
    fn token_mismatch_means_the_origin_passed() {
        let t = transcript(
            101,
            &[
                CHALLENGE,
                r#"{"type":"res","id":"x","ok":false,"error":{"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch","details":{"code":"AUTH_TOKEN_MISMATCH"}}}"#,
            ],
            Some((1008, "unauthorized: gateway token mismatch")),
        );
        assert!(
            matches!(classify(&t), WsVerdict::Accepted(m) if m.contains("AUTH_TOKEN_MISMATCH"))
        );
    }

    #[test]
    fn device_identity_required_means_the_origin_passed() {
        // Recorded from OpenClaw 2026.9.6 for an allowed origin.
        let t = transcript(
            101,
            &[
                CHALLENGE,
                r#"{"type":"res","id":"x","ok":false,"error":{"code":"INVALID_REQUEST","message":"control ui requires device identity (use HTTPS or localhost secure context)","details":{"code":"CONTROL_UI_DEVICE_IDENTITY_REQUIRED"}}}"#,
            ],
            Some((
                1008,
                "control ui requires device identity (use HTTPS or localhost secure context)",
            )),
        );
        assert!(
            matches!(classify(&t), WsVerdict::Accepted(m) if m.contains("CONTROL_UI_DEVICE_IDENTITY_REQUIRED"))
        );
    }

    #[test]
    fn failed_upgrade_or_silence_is_broken() {
        assert!(
            matches!(classify(&transcript(404, &[], None)), WsVerdict::Broken(m) if m.contains("404"))
        );
        assert!(
            matches!(classify(&transcript(101, &[], None)), WsVerdict::Broken(m) if m.contains("challenge"))
        );
        assert!(
            matches!(classify(&transcript(101, &[CHALLENGE], None)), WsVerdict::Broken(m) if m.contains("no answer"))
        );
        assert!(matches!(
            classify(&transcript(101, &[], Some((1006, "")))),
            WsVerdict::Broken(_)
        ));
    }

    #[test]
    fn unavailable_while_starting_is_not_ready() {
        // Recorded from OpenClaw 2026.9.6 right after /health turned 200.
        let t = transcript(
            101,
            &[
                CHALLENGE,
                r#"{"type":"res","id":"x","ok":false,"error":{"code":"UNAVAILABLE","message":"gateway starting; retry shortly"}}"#,
            ],
            None,
        );
        assert!(matches!(classify(&t), WsVerdict::NotReady(_)));
    }

    #[test]
    fn unexplained_rejection_is_undecided() {
        let t = transcript(
            101,
            &[
                CHALLENGE,
                r#"{"type":"res","ok":false,"error":{"code":"INVALID_REQUEST","message":"bad frame"}}"#,
            ],
            None,
        );
        assert!(matches!(classify(&t), WsVerdict::Undecided(_)));
    }

    #[test]
    fn http_origin_check_maps_403_to_rejected() {
        assert!(matches!(classify_http_origin(200), WsVerdict::Accepted(_)));
        assert!(matches!(
            classify_http_origin(403),
            WsVerdict::OriginRejected(_)
        ));
        assert!(matches!(classify_http_origin(404), WsVerdict::Broken(_)));
    }
}
