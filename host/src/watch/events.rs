//! The engine event subscription: subscribe from the last event seen,
//! drop what a replay delivers twice, and reconnect with a bounded backoff
//! when the stream ends or fails.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::backend::events::{Discovery, EngineEvent, EventAction, EventStream};

use super::policy::Lifecycle;
use super::stopped;
use super::worker::Msg;

const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

pub(super) struct Subscription {
    engine: Arc<dyn Discovery>,
    /// The newest event time seen or, before any, the first subscription.
    since: Option<SystemTime>,
    reconnect: Duration,
    stream: Option<EventStream>,
}

impl Subscription {
    pub(super) fn new(engine: Arc<dyn Discovery>) -> Self {
        Self {
            engine,
            since: None,
            reconnect: RECONNECT_FIRST,
            stream: None,
        }
    }

    /// (Re)subscribe. Replay is from the last event seen or, before any,
    /// from the first subscription: an engine that died before sending an
    /// event (kill -9) restarts its containers before we are back, and a
    /// `since` of "now" at the reconnect would skip exactly those starts.
    pub(super) fn subscribe(&mut self) {
        let since = *self.since.get_or_insert_with(SystemTime::now);
        self.stream = Some(self.engine.events_since(since));
        tracing::info!(since = %since_text(since), "subscribed to engine events");
    }

    /// The next event not seen before; `None` once the stream ended or
    /// failed (then [`Subscription::backoff`] and subscribe again). Cancel
    /// safe: state changes only after an event is in hand.
    pub(super) async fn next(&mut self) -> Option<EngineEvent> {
        let stream = self.stream.as_mut()?;
        loop {
            match stream.next().await {
                Some(Ok(ev)) => {
                    self.reconnect = RECONNECT_FIRST;
                    if let Some(at) = ev.at {
                        if self.since.is_some_and(|last| at <= last) {
                            continue; // replayed twice
                        }
                        self.since = Some(at);
                    }
                    return Some(ev);
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "engine event stream failed; reconnecting");
                    break;
                }
                None => {
                    tracing::warn!("engine event stream ended; reconnecting");
                    break;
                }
            }
        }
        self.stream = None;
        None
    }

    /// Wait before reconnecting (doubling up to a cap), then until the
    /// engine answers. `false` when shutdown came first.
    pub(super) async fn backoff(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        tracing::info!(
            delay_ms = self.reconnect.as_millis() as u64,
            "waiting before reconnecting to the engine"
        );
        tokio::select! {
            _ = stopped(shutdown) => return false,
            _ = tokio::time::sleep(self.reconnect) => {}
        }
        self.reconnect = (self.reconnect * 2).min(RECONNECT_MAX);
        if let Err(e) = self.engine.ping().await {
            tracing::warn!("engine ping failed: {e}");
        }
        true
    }
}

fn since_text(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// What an event asks of the sandbox's worker.
pub(super) fn messages_for(action: &EventAction) -> Vec<Msg> {
    match action {
        EventAction::Restart => vec![Msg::Probe("restart")],
        EventAction::Health { healthy: false } => vec![Msg::Probe("unhealthy")],
        EventAction::Start => vec![Msg::Lifecycle(Lifecycle::Started)],
        EventAction::Die => vec![Msg::Lifecycle(Lifecycle::Died)],
        EventAction::Kill | EventAction::Stop => vec![Msg::Lifecycle(Lifecycle::StopRequested)],
        EventAction::Destroy => vec![Msg::Lifecycle(Lifecycle::Destroyed)],
        // An OOM kill is followed by its `die`.
        EventAction::Oom | EventAction::Health { healthy: true } | EventAction::Other(_) => {
            vec![]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_map_to_worker_messages() {
        let one = |a: EventAction| messages_for(&a);
        assert_eq!(
            one(EventAction::Start),
            [Msg::Lifecycle(Lifecycle::Started)]
        );
        for stop in [EventAction::Kill, EventAction::Stop] {
            assert_eq!(one(stop), [Msg::Lifecycle(Lifecycle::StopRequested)]);
        }
        assert_eq!(one(EventAction::Die), [Msg::Lifecycle(Lifecycle::Died)]);
        assert_eq!(
            one(EventAction::Destroy),
            [Msg::Lifecycle(Lifecycle::Destroyed)]
        );
        assert_eq!(one(EventAction::Restart), [Msg::Probe("restart")]);
        assert_eq!(
            one(EventAction::Health { healthy: false }),
            [Msg::Probe("unhealthy")]
        );
        assert!(one(EventAction::Health { healthy: true }).is_empty());
        assert!(one(EventAction::Oom).is_empty());
        assert!(one(EventAction::Other("exec_die".into())).is_empty());
    }
}
