//! `Events/Subscribe` streams and the dispatcher that fans events out to
//! them. The dispatcher alone owns the subscriber table; it never waits for
//! a subscriber (one that falls `subscriber_buffer` events behind is
//! dropped and told so), and each subscription writes whatever has queued
//! up in one batch. When the core stops, the dispatcher delivers what is
//! left and ends every subscription with UNAVAILABLE.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ccr_core::{AgentId, Event, Router};
use ccr_proto::v1 as pb;
use ccr_proto::wire::{self, Code};
use pb::Status;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::rpc::{decode, finish};
use super::Shared;
use crate::config::Catalog;
use crate::convert::{self, Audience};
use crate::metrics::Metrics;

/// An event leaving the core thread, with the contact's context for offers.
pub type Outgoing = (Event, Option<Vec<(String, String)>>);

/// Runs on the routing thread for each event: attaches what the wire needs
/// from the router (an offer's context).
pub(super) fn prepare(router: &Router, event: Event) -> Outgoing {
    let context = match &event {
        Event::Offered { contact, .. } => router.contact_context(*contact).map(<[_]>::to_vec),
        _ => None,
    };
    (event, context)
}

pub(super) struct Subscriber {
    agents: Vec<AgentId>,
    tx: mpsc::Sender<pb::RoutingEvent>,
    /// Set by the dispatcher when it drops this subscriber for falling
    /// behind, so that the stream can end with the reason.
    lagged: Arc<AtomicBool>,
}

/// Server streaming: events for the named agents (or all, for a gateway)
/// until the client goes away or the daemon stops.
pub(super) async fn subscribe(mut send: quinn::SendStream, body: &[u8], shared: &Shared) {
    let request: pb::SubscribeRequest = match decode(body) {
        Ok(r) => r,
        Err(status) => return finish(&mut send, None, status).await,
    };
    let (tx, mut rx) = mpsc::channel(shared.subscriber_buffer);
    let agents = request.agent_ids.into_iter().map(AgentId).collect();
    let lagged = Arc::new(AtomicBool::new(false));
    if shared.subscribe.send(Subscriber { agents, tx, lagged: lagged.clone() }).is_err() {
        return finish(&mut send, None, Status::new(Code::Unavailable, "shutting down")).await;
    }
    // Whatever has queued up goes out in one write: under load a subscriber
    // keeps up by writing batches, not one QUIC write per event.
    const BATCH_BYTES: usize = 64 * 1024;
    let mut out = Vec::new();
    while let Some(event) = rx.recv().await {
        out.clear();
        wire::encode_message(&event, &mut out);
        while out.len() < BATCH_BYTES {
            let Ok(event) = rx.try_recv() else { break };
            wire::encode_message(&event, &mut out);
        }
        if send.write_all(&out).await.is_err() {
            return;
        }
    }
    let status = if lagged.load(Ordering::Relaxed) {
        let behind = shared.subscriber_buffer;
        Status::new(
            Code::ResourceExhausted,
            format!("fell more than {behind} events behind: dropped (server.subscriber_buffer)"),
        )
    } else {
        Status::new(Code::Unavailable, "shutting down: the event stream ended")
    };
    finish(&mut send, None, status).await;
}

/// Delivers each event to its subscribers until the core's event channel
/// closes (the core stopped); dropping the table then ends every stream.
pub(super) async fn dispatch(
    catalog: Arc<Catalog>,
    metrics: Arc<Metrics>,
    mut events: mpsc::UnboundedReceiver<Outgoing>,
    mut subscribers: mpsc::UnboundedReceiver<Subscriber>,
) {
    let mut next_id = 0u64;
    let mut all: HashMap<u64, Subscriber> = HashMap::new();
    let mut by_agent: HashMap<AgentId, Vec<u64>> = HashMap::new();
    let mut gateways: Vec<u64> = Vec::new();
    let mut dropped: Vec<u64> = Vec::new();
    loop {
        tokio::select! {
            Some(sub) = subscribers.recv() => {
                next_id += 1;
                if sub.agents.is_empty() {
                    gateways.push(next_id);
                }
                for agent in &sub.agents {
                    by_agent.entry(*agent).or_default().push(next_id);
                }
                all.insert(next_id, sub);
            }
            outgoing = events.recv() => {
                let Some((event, context)) = outgoing else { return };
                record(&metrics, &event);
                let Some((audience, message)) = convert::event(&catalog, &event, context.as_deref()) else { continue };
                let agent_subs = match audience {
                    Audience::Agent(agent) => by_agent.get(&agent).map_or(&[][..], Vec::as_slice),
                    Audience::Gateways => &[],
                };
                dropped.clear();
                for &id in gateways.iter().chain(agent_subs) {
                    if all.get(&id).is_some_and(|sub| sub.tx.try_send(message.clone()).is_err()) {
                        dropped.push(id);
                    }
                }
                for &id in &dropped {
                    warn!(subscriber = id, "event subscriber too slow or gone: dropped");
                    if let Some(sub) = all.remove(&id) {
                        sub.lagged.store(true, Ordering::Relaxed);
                        gateways.retain(|g| *g != id);
                        for agent in sub.agents {
                            if let Some(list) = by_agent.get_mut(&agent) {
                                list.retain(|s| *s != id);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What the dispatcher measures and logs of an event.
fn record(metrics: &Metrics, event: &Event) {
    match event {
        Event::Offered { queue, tier, waited, .. } => {
            if let Some(h) =
                metrics.queues.get(usize::from(queue.0)).and_then(|q| q.wait_routed.get(usize::from(tier.0)))
            {
                h.record(waited.as_secs_f64());
            }
        }
        Event::Abandoned { queue, tier, waited, .. } => {
            if let Some(h) =
                metrics.queues.get(usize::from(queue.0)).and_then(|q| q.wait_abandoned.get(usize::from(tier.0)))
            {
                h.record(waited.as_secs_f64());
            }
        }
        Event::SessionExpired { session, contacts_ended, callbacks_kept, agents_logged_out } => info!(
            session = session.0,
            contacts_ended, callbacks_kept, agents_logged_out, "session grace ended: what it still owned is gone"
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn subscriber(buffer: usize) -> (Subscriber, mpsc::Receiver<pb::RoutingEvent>, Arc<AtomicBool>) {
        let (tx, rx) = mpsc::channel(buffer);
        let lagged = Arc::new(AtomicBool::new(false));
        (Subscriber { agents: Vec::new(), tx, lagged: lagged.clone() }, rx, lagged)
    }

    async fn drain(mut rx: mpsc::Receiver<pb::RoutingEvent>) -> usize {
        let mut n = 0;
        while rx.recv().await.is_some() {
            n += 1;
        }
        n
    }

    /// The dispatcher never waits for a subscriber: one whose buffer is full
    /// is dropped and marked, so that its stream ends saying why, while the
    /// others get every event.
    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped_and_marked() {
        let config = config::parse(config::DEFAULT_CONFIG).expect("example config");
        let catalog = Arc::new(config.catalog.clone());
        let metrics = Metrics::new(&catalog);
        let (events, events_rx) = mpsc::unbounded_channel();
        let (subscribe, subscribe_rx) = mpsc::unbounded_channel();
        let dispatcher = tokio::spawn(dispatch(catalog, metrics, events_rx, subscribe_rx));
        let (slow, slow_rx, slow_lagged) = subscriber(2);
        let (roomy, roomy_rx, roomy_lagged) = subscriber(16);
        subscribe.send(slow).expect("dispatcher runs");
        subscribe.send(roomy).expect("dispatcher runs");
        // One runtime thread: the dispatcher registers both before any event.
        tokio::task::yield_now().await;
        for agent in 0..5 {
            let event = Event::AgentStateChanged { agent: AgentId(agent), state: ccr_core::AgentState::Available };
            events.send((event, None)).expect("dispatcher runs");
        }
        drop(events);
        dispatcher.await.expect("dispatcher ends when the core's events end");
        drop(subscribe);
        assert_eq!(drain(slow_rx).await, 2, "the slow subscriber keeps what was buffered");
        assert!(slow_lagged.load(Ordering::Relaxed));
        assert_eq!(drain(roomy_rx).await, 5);
        assert!(!roomy_lagged.load(Ordering::Relaxed));
    }
}
