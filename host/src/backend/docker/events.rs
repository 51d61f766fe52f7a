//! [`Discovery`] for Docker: container list, inspect and the Engine API's
//! event stream, mapped to host-owned types.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use futures_util::StreamExt;

use super::{DockerBackend, errors, sandbox_info};
use crate::backend::BackendError;
use crate::backend::events::{
    Discovery, EngineEvent, EventAction, EventStream, ListedSandbox, SandboxDetail,
};

/// The container events a supervisor acts on; the engine filters the rest.
const EVENTS: [&str; 8] = [
    "start",
    "die",
    "destroy",
    "oom",
    "health_status",
    "restart",
    "kill",
    "stop",
];
/// A list waits on containers being stopped: longer than other calls.
const LIST_DEADLINE: Duration = Duration::from_secs(15);
const PING_DEADLINE: Duration = Duration::from_secs(5);

#[async_trait::async_trait]
impl Discovery for DockerBackend {
    async fn list(&self, label: Option<&str>) -> Result<Vec<ListedSandbox>, BackendError> {
        let filters = label.map(|l| HashMap::from([("label".to_string(), vec![l.to_string()])]));
        let opts = ListContainersOptions {
            all: true,
            filters,
            ..Default::default()
        };
        let listed = tokio::time::timeout(LIST_DEADLINE, self.docker.list_containers(Some(opts)))
            .await
            .map_err(|_| {
                BackendError::Timeout(format!(
                    "listing containers took longer than {LIST_DEADLINE:?}"
                ))
            })?
            .map_err(errors::engine_error)?;
        Ok(listed
            .into_iter()
            .filter_map(|c| {
                let name = c
                    .names
                    .as_ref()?
                    .first()?
                    .trim_start_matches('/')
                    .to_string();
                Some(ListedSandbox {
                    name,
                    labels: c.labels.unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn inspect_detail(&self, sandbox: &str) -> Result<SandboxDetail, BackendError> {
        let resp = self.inspect_raw(sandbox).await?;
        let info = sandbox_info(&resp, sandbox);
        let init_pid = resp
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0);
        Ok(SandboxDetail {
            info,
            image: resp.config.and_then(|c| c.image),
            init_pid,
        })
    }

    fn events_since(&self, since: SystemTime) -> EventStream {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "event".to_string(),
                EVENTS.iter().map(|e| e.to_string()).collect(),
            ),
        ]);
        self.docker
            .events(Some(EventsOptions {
                since: Some(since_arg(since)),
                until: None,
                filters: Some(filters),
            }))
            .filter_map(|item| async move {
                match item {
                    Ok(ev) => event_of(ev).map(Ok),
                    Err(e) => Some(Err(errors::engine_error(e))),
                }
            })
            .boxed()
    }

    async fn ping(&self) -> Result<(), BackendError> {
        match tokio::time::timeout(PING_DEADLINE, self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(errors::engine_error(e)),
            Err(_) => Err(BackendError::Timeout(format!(
                "the engine did not answer a ping within {PING_DEADLINE:?}"
            ))),
        }
    }
}

/// `since` as the Engine API takes it: seconds and nanoseconds.
fn since_arg(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

fn action_of(action: &str) -> EventAction {
    match action {
        "start" => EventAction::Start,
        "die" => EventAction::Die,
        "kill" => EventAction::Kill,
        "stop" => EventAction::Stop,
        "destroy" => EventAction::Destroy,
        "oom" => EventAction::Oom,
        "restart" => EventAction::Restart,
        // `health_status: healthy` / `health_status: unhealthy`.
        a if a.starts_with("health_status") => EventAction::Health {
            healthy: !a.contains("unhealthy"),
        },
        a => EventAction::Other(a.to_string()),
    }
}

/// A container event naming its container; anything else is dropped.
fn event_of(ev: EventMessage) -> Option<EngineEvent> {
    if ev.typ != Some(EventMessageTypeEnum::CONTAINER) {
        return None;
    }
    let attributes = ev.actor?.attributes.unwrap_or_default();
    let sandbox = attributes.get("name")?.clone();
    let at = ev
        .time_nano
        .and_then(|n| u64::try_from(n).ok())
        .map(|n| UNIX_EPOCH + Duration::from_nanos(n));
    Some(EngineEvent {
        at,
        sandbox,
        action: action_of(ev.action.as_deref().unwrap_or("")),
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use bollard::models::EventActor;

    use super::*;

    #[test]
    fn docker_actions_map_to_engine_neutral_ones() {
        assert_eq!(action_of("start"), EventAction::Start);
        assert_eq!(action_of("kill"), EventAction::Kill);
        assert_eq!(action_of("stop"), EventAction::Stop);
        assert_eq!(action_of("die"), EventAction::Die);
        assert_eq!(action_of("destroy"), EventAction::Destroy);
        assert_eq!(
            action_of("health_status: unhealthy"),
            EventAction::Health { healthy: false }
        );
        assert_eq!(
            action_of("health_status: healthy"),
            EventAction::Health { healthy: true }
        );
        assert_eq!(action_of("exec_die"), EventAction::Other("exec_die".into()));
    }

    #[test]
    fn since_keeps_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 42);
        assert_eq!(since_arg(t), "1700000000.000000042");
    }

    #[test]
    fn only_container_events_with_a_name_are_kept() {
        let named = EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some("die".into()),
            actor: Some(EventActor {
                id: None,
                attributes: Some(HashMap::from([
                    ("name".to_string(), "sb".to_string()),
                    ("exitCode".to_string(), "137".to_string()),
                ])),
            }),
            time: Some(1_700_000_000),
            time_nano: Some(1_700_000_000_000_000_007),
            ..Default::default()
        };
        let ev = event_of(named.clone()).unwrap();
        assert_eq!(ev.sandbox, "sb");
        assert_eq!(ev.action, EventAction::Die);
        assert_eq!(ev.at, Some(UNIX_EPOCH + Duration::new(1_700_000_000, 7)));
        let network = EventMessage {
            typ: Some(EventMessageTypeEnum::NETWORK),
            ..named.clone()
        };
        assert_eq!(event_of(network), None);
        let anonymous = EventMessage {
            actor: Some(EventActor::default()),
            ..named
        };
        assert_eq!(event_of(anonymous), None);
    }
}
