//! The built-in first link: is the sandbox there and running?
//!
//! running → healthy. exited → `recover` starts it (a repair, audited),
//! `status` reports it broken. paused → broken with an unpause hint, never
//! unpaused silently. missing or engine unreachable → unknown (exit 3).

use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::report::{Action, LinkEntry, Mode, Outcome, State, evidence_map};
use super::{Engine, RunRequest, remaining};
use crate::audit::AuditRecord;
use crate::backend::{BackendError, SandboxInfo, SandboxState};
use crate::capabilities::Mutation;

pub const LINK: &str = "sandbox";

pub enum SandboxCheck {
    /// Running (possibly after a start): go on with the plugin.
    Ready {
        entry: LinkEntry,
        labels: Vec<(String, String)>,
    },
    /// The run ends here.
    Stop {
        entry: LinkEntry,
        outcome: Outcome,
        message: String,
        plan: Option<Vec<String>>,
    },
}

fn entry(
    before: State,
    action: Action,
    after: State,
    summary: String,
    evidence: Vec<(String, String)>,
    ms: u64,
) -> LinkEntry {
    LinkEntry {
        id: LINK.into(),
        before,
        action,
        after,
        summary,
        evidence: evidence_map(evidence),
        ms,
    }
}

fn describe(info: &SandboxInfo) -> Vec<(String, String)> {
    let mut ev = vec![
        (
            "container".to_string(),
            info.id.get(..12).unwrap_or(&info.id).to_string(),
        ),
        ("state".to_string(), state_name(&info.state)),
    ];
    if let Some(at) = &info.started_at {
        ev.push(("started-at".into(), at.clone()));
    }
    ev
}

fn state_name(state: &SandboxState) -> String {
    match state {
        SandboxState::Running => "running".into(),
        SandboxState::Paused => "paused".into(),
        SandboxState::Restarting => "restarting".into(),
        SandboxState::Exited { exit_code } => format!("exited ({exit_code})"),
        SandboxState::Other(s) => s.clone(),
    }
}

pub async fn check(
    engine: &Engine<'_>,
    req: &RunRequest<'_>,
    deadline: Instant,
    mutations: &mut Vec<Mutation>,
) -> SandboxCheck {
    let started = Instant::now();
    let unknown = |message: String| SandboxCheck::Stop {
        entry: entry(
            State::Unknown,
            Action::None,
            State::Unknown,
            message.clone(),
            vec![],
            0,
        ),
        outcome: Outcome::Unknown,
        message,
        plan: None,
    };
    // Every engine call of the run ends by the run's deadline.
    let inspect = || async {
        match tokio::time::timeout(remaining(deadline), engine.backend.inspect(req.sandbox)).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::Timeout(format!(
                "the engine did not answer the inspect of {} before the run's deadline",
                req.sandbox
            ))),
        }
    };
    let mut info = match inspect().await {
        Ok(info) => info,
        Err(e @ (BackendError::SandboxMissing(_) | BackendError::EngineUnreachable { .. })) => {
            return unknown(e.to_string());
        }
        Err(e) => return unknown(format!("cannot inspect sandbox: {e}")),
    };
    // A restart in progress settles by itself; wait for it (bounded).
    let mut backoff = Backoff::new(Duration::from_millis(100), 1.5, Duration::from_secs(1));
    while info.state == SandboxState::Restarting {
        let Some(delay) = backoff.next_delay(
            remaining(deadline).min(Duration::from_secs(15).saturating_sub(started.elapsed())),
        ) else {
            return unknown(format!("sandbox {} is still restarting", req.sandbox));
        };
        tokio::time::sleep(delay).await;
        info = match inspect().await {
            Ok(i) => i,
            Err(e) => return unknown(e.to_string()),
        };
    }
    let ms = || started.elapsed().as_millis() as u64;
    match &info.state {
        SandboxState::Running => SandboxCheck::Ready {
            entry: entry(
                State::Healthy,
                Action::None,
                State::Healthy,
                "container running".into(),
                describe(&info),
                ms(),
            ),
            labels: info.labels.clone(),
        },
        SandboxState::Paused => {
            let message = format!(
                "sandbox {} is paused; runner never unpauses on its own — run `docker unpause {}` if the pause was not intended",
                req.sandbox, req.sandbox
            );
            SandboxCheck::Stop {
                entry: entry(
                    State::Broken,
                    Action::None,
                    State::Broken,
                    "container paused".into(),
                    describe(&info),
                    ms(),
                ),
                outcome: Outcome::Broken,
                message,
                plan: (req.mode == Mode::DryRun).then(Vec::new),
            }
        }
        _ if req.mode != Mode::Recover => {
            let summary = format!("container {}", state_name(&info.state));
            let message = match req.mode {
                Mode::DryRun => format!(
                    "recover would start sandbox {} and then probe it",
                    req.sandbox
                ),
                _ => format!(
                    "sandbox {} is not running; `runner recover` starts it",
                    req.sandbox
                ),
            };
            SandboxCheck::Stop {
                entry: entry(
                    State::Broken,
                    Action::None,
                    State::Broken,
                    summary,
                    describe(&info),
                    ms(),
                ),
                outcome: Outcome::Broken,
                message,
                plan: (req.mode == Mode::DryRun).then(|| vec![LINK.to_string()]),
            }
        }
        _ => {
            engine.progress.phase("starting sandbox");
            let detail = format!("{} ({})", req.sandbox, state_name(&info.state));
            let audit = |result: &str| {
                if let Some(audit) = &engine.audit {
                    audit.append(&AuditRecord {
                        sandbox: req.sandbox,
                        plugin: &req.plugin.info.name,
                        link: LINK,
                        action: "sandbox.start",
                        detail: &detail,
                        result,
                    });
                }
            };
            // Announced before it is made, like every capability's change.
            audit(crate::capabilities::PENDING);
            let result = engine.backend.start(req.sandbox).await;
            let mutation = Mutation {
                capability: "sandbox",
                action: "start".into(),
                detail: detail.clone(),
                result: match &result {
                    Ok(()) => "started".into(),
                    Err(e) => format!("error: {e}"),
                },
            };
            audit(&mutation.result);
            mutations.push(mutation);
            let after = match result {
                Ok(()) => inspect().await,
                Err(e) => Err(e),
            };
            match after {
                Ok(now) if now.state == SandboxState::Running => SandboxCheck::Ready {
                    entry: entry(
                        State::Broken,
                        Action::Repaired,
                        State::Healthy,
                        "container started".into(),
                        describe(&now),
                        ms(),
                    ),
                    labels: now.labels.clone(),
                },
                Ok(now) => {
                    let message = format!(
                        "started sandbox {} but it is {}",
                        req.sandbox,
                        state_name(&now.state)
                    );
                    SandboxCheck::Stop {
                        entry: entry(
                            State::Broken,
                            Action::Failed,
                            State::Broken,
                            message.clone(),
                            describe(&now),
                            ms(),
                        ),
                        outcome: Outcome::Broken,
                        message,
                        plan: None,
                    }
                }
                Err(e) => {
                    let message = format!("could not start sandbox {}: {e}", req.sandbox);
                    SandboxCheck::Stop {
                        entry: entry(
                            State::Broken,
                            Action::Failed,
                            State::Broken,
                            message.clone(),
                            describe(&info),
                            ms(),
                        ),
                        outcome: Outcome::Broken,
                        message,
                        plan: None,
                    }
                }
            }
        }
    }
}
