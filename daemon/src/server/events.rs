//! `Events/Subscribe` streams and the dispatcher that fans events out to
//! them. The dispatcher alone owns the subscriber table; it never waits for
//! a subscriber (one that falls `subscriber_buffer` events behind is
//! dropped and told so), and each subscription writes whatever has queued
//! up in one batch. When the core stops, the dispatcher delivers what is
//! left and ends every subscription with UNAVAILABLE.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ccr_core::{AgentId, ContactId, Event, Router};
use ccr_proto::v1 as pb;
use ccr_proto::wire::{self, Code};
use pb::Status;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::connection::Connection;
use super::event_budget::{EventBudget, Ledger, Queued};
use super::history::{ContactHistory, Kept};
use super::rpc::{decode, finish};
use super::{Refusal, Shared};
use crate::clock::Clock;
use crate::config::Catalog;
use crate::convert::{self, Audience};
use crate::metrics::Metrics;

/// Agents one subscription may name; a desktop names one, a supervisor a
/// team, and a subscription naming none gets every event.
pub const MAX_AGENTS_PER_SUBSCRIPTION: usize = 1024;

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
    id: u64,
    agents: Vec<AgentId>,
    tx: mpsc::Sender<Queued>,
    ledger: Arc<Ledger>,
    /// Set by the dispatcher when it drops this subscriber for falling
    /// behind, so that the stream can end with the reason.
    lagged: Arc<Lagged>,
}

/// Set by the dispatcher when it drops a subscriber for falling behind:
/// the stream then frees what waits in its queue at once (even while a
/// write to a client that does not read is stuck) and ends saying why.
#[derive(Default)]
pub(super) struct Lagged {
    flag: AtomicBool,
    told: tokio::sync::Notify,
}

impl Lagged {
    fn set(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.told.notify_one();
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

/// What the dispatcher reads: the core's events (and how many are on their
/// way), and subscriptions coming and going.
pub(super) struct Inbox {
    pub events: mpsc::UnboundedReceiver<Outgoing>,
    pub backlog: Arc<std::sync::atomic::AtomicUsize>,
    pub changes: mpsc::UnboundedReceiver<Change>,
}

/// What a subscription task tells the dispatcher.
pub(super) enum Change {
    Add(Subscriber),
    /// The stream ended (the client went away, or stopped reading it).
    Remove(u64),
    /// What the dispatcher has kept of a contact's history.
    History(ContactId, tokio::sync::oneshot::Sender<Kept>),
}

/// Takes the subscriber out of the dispatcher's table when its task ends,
/// however it ends: a table entry lives no longer than its stream.
struct Unsubscribe<'a>(&'a mpsc::UnboundedSender<Change>, u64);

impl Drop for Unsubscribe<'_> {
    fn drop(&mut self) {
        let _ = self.0.send(Change::Remove(self.1));
    }
}

/// A subscription's place under `server.max_subscriptions` and
/// `server.max_subscriptions_per_connection`, given back when it ends.
struct Place<'a> {
    _total: tokio::sync::SemaphorePermit<'a>,
    connection: &'a Connection,
}

impl<'a> Place<'a> {
    fn take(shared: &'a Shared, connection: &'a Connection) -> Result<Self, Status> {
        let refuse = |what: &str| {
            shared.refused(Refusal::SubscriptionLimit);
            Status::new(Code::ResourceExhausted, format!("too many subscriptions open {what}"))
        };
        let total = shared.subscriptions.try_acquire().map_err(|_| refuse("(server.max_subscriptions)"))?;
        let limit = shared.max_subscriptions_per_connection;
        if connection.subscriptions.fetch_add(1, Ordering::AcqRel) >= limit {
            connection.subscriptions.fetch_sub(1, Ordering::AcqRel);
            return Err(refuse(&format!("on this connection (limit {limit})")));
        }
        Ok(Place { _total: total, connection })
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.connection.subscriptions.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Server streaming: events for the named agents (or all, for a gateway)
/// until the client goes away or the daemon stops.
pub(super) async fn subscribe(mut send: quinn::SendStream, body: &[u8], shared: &Shared, connection: &Connection) {
    let request: pb::SubscribeRequest = match decode(body) {
        Ok(r) => r,
        Err(status) => return finish(&mut send, None, status).await,
    };
    if request.agent_ids.len() > MAX_AGENTS_PER_SUBSCRIPTION {
        shared.refused(Refusal::SubscriptionLimit);
        let message = format!("at most {MAX_AGENTS_PER_SUBSCRIPTION} agents in one subscription (none: every event)");
        return finish(&mut send, None, Status::new(Code::ResourceExhausted, message)).await;
    }
    let _place = match Place::take(shared, connection) {
        Ok(place) => place,
        Err(status) => return finish(&mut send, None, status).await,
    };
    let (tx, mut rx) = mpsc::channel(shared.subscriber_buffer);
    let mut agents: Vec<AgentId> = request.agent_ids.into_iter().map(AgentId).collect();
    agents.sort_unstable();
    agents.dedup();
    let lagged = Arc::new(Lagged::default());
    let id = shared.next_subscriber.fetch_add(1, Ordering::Relaxed);
    if shared
        .subscribe
        .send(Change::Add(Subscriber { id, agents, tx, ledger: Arc::default(), lagged: lagged.clone() }))
        .is_err()
    {
        return finish(&mut send, None, Status::new(Code::Unavailable, "shutting down")).await;
    }
    let _unsubscribe = Unsubscribe(&shared.subscribe, id);
    // Whatever has queued up goes out in one write: under load a subscriber
    // keeps up by writing batches, not one QUIC write per event.
    const BATCH_BYTES: usize = 64 * 1024;
    let mut out = Vec::new();
    loop {
        // A client that stops reading (or whose connection is gone) ends
        // the subscription now, not at the next event for its agents.
        let event = tokio::select! {
            event = rx.recv() => event,
            _ = send.stopped() => return,
        };
        let Some(event) = event else { break };
        out.clear();
        out.extend_from_slice(&event.framed);
        drop(event);
        while out.len() < BATCH_BYTES {
            let Ok(event) = rx.try_recv() else { break };
            out.extend_from_slice(&event.framed);
        }
        let write = send.write_all(&out);
        tokio::pin!(write);
        loop {
            tokio::select! {
                written = &mut write => match written {
                    Ok(()) => break,
                    Err(_) => return,
                },
                () = lagged.told.notified() => while rx.try_recv().is_ok() {},
            }
        }
    }
    let status = if lagged.is_set() {
        let behind = shared.subscriber_buffer;
        Status::new(
            Code::ResourceExhausted,
            format!(
                "fell more than {behind} events behind (server.subscriber_buffer), or the events waiting for \
                 subscribers reached server.max_queued_event_bytes: dropped"
            ),
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
    inbox: Inbox,
    budget: EventBudget,
    clock: Arc<dyn Clock>,
) {
    let Inbox { mut events, backlog, mut changes } = inbox;
    let mut history = ContactHistory::default();
    let subscribed = {
        let mut out = Vec::new();
        let event = pb::RoutingEvent { event: Some(pb::routing_event::Event::Subscribed(pb::Subscribed {})) };
        wire::encode_message(&event, &mut out);
        Bytes::from(out)
    };
    let mut table = Table::default();
    let mut audience: Vec<u64> = Vec::new();
    loop {
        tokio::select! {
            Some(change) = changes.recv() => match change {
                Change::Add(sub) => {
                    // Its first message: events from here on reach it.
                    let id = sub.id;
                    table.add(sub);
                    deliver(&mut table, &budget, id, &subscribed);
                }
                Change::Remove(id) => {
                    table.remove(id);
                }
                Change::History(contact, reply) => {
                    let _ = reply.send(history.of(&catalog, contact));
                }
            },
            outgoing = events.recv() => {
                let Some((event, context)) = outgoing else { return };
                backlog.fetch_sub(1, Ordering::Relaxed);
                record(&metrics, &event);
                history.note(clock.now(), &event);
                let Some((to, message)) = convert::event(&catalog, &event, context.as_deref()) else { continue };
                let agent_subs = match to {
                    Audience::Agent(agent) => table.by_agent.get(&agent).map_or(&[][..], Vec::as_slice),
                    Audience::Gateways => &[],
                };
                audience.clear();
                audience.extend(table.gateways.iter().chain(agent_subs));
                if audience.is_empty() {
                    continue;
                }
                let mut out = Vec::new();
                wire::encode_message(&message, &mut out);
                let framed = Bytes::from(out);
                for &id in &audience {
                    deliver(&mut table, &budget, id, &framed);
                }
            }
        }
    }
}

/// Queues `framed` for subscriber `id`. One that is `subscriber_buffer`
/// events behind is dropped; when the events waiting in all queues would go
/// over their limit, the subscriber holding the most of them is dropped
/// (then this one is tried again, unless it was that one).
fn deliver(table: &mut Table, budget: &EventBudget, id: u64, framed: &Bytes) {
    let Some(sub) = table.all.get(&id) else { return };
    let queued = match budget.reserve(&sub.ledger, framed) {
        Some(queued) => queued,
        None => {
            let Some(laggard) = table.all.values().max_by_key(|s| s.ledger.queued()).map(|s| s.id) else { return };
            drop_lagging(table, budget, laggard, "its events took the most of server.max_queued_event_bytes");
            if laggard == id {
                return;
            }
            let Some(sub) = table.all.get(&id) else { return };
            match budget.reserve(&sub.ledger, framed) {
                Some(queued) => queued,
                None => return drop_lagging(table, budget, id, "server.max_queued_event_bytes reached"),
            }
        }
    };
    let Some(sub) = table.all.get(&id) else { return };
    if sub.tx.try_send(queued).is_err() {
        drop_lagging(table, budget, id, "server.subscriber_buffer events behind");
    }
}

fn drop_lagging(table: &mut Table, budget: &EventBudget, id: u64, why: &str) {
    if let Some(sub) = table.remove(id) {
        warn!(subscriber = id, why, "event subscriber too slow: dropped");
        sub.lagged.set();
        budget.write_off(&sub.ledger);
    }
}

/// The dispatcher's subscribers: each in `all`, and listed under every agent
/// it follows or among the gateways (following everything).
#[derive(Default)]
struct Table {
    all: HashMap<u64, Subscriber>,
    by_agent: HashMap<AgentId, Vec<u64>>,
    gateways: Vec<u64>,
}

impl Table {
    fn add(&mut self, sub: Subscriber) {
        if sub.agents.is_empty() {
            self.gateways.push(sub.id);
        }
        for agent in &sub.agents {
            self.by_agent.entry(*agent).or_default().push(sub.id);
        }
        self.all.insert(sub.id, sub);
    }

    /// Takes a subscriber out everywhere (no empty per-agent list is left).
    fn remove(&mut self, id: u64) -> Option<Subscriber> {
        let sub = self.all.remove(&id)?;
        if sub.agents.is_empty() {
            self.gateways.retain(|g| *g != id);
        }
        for agent in &sub.agents {
            if let Some(list) = self.by_agent.get_mut(agent) {
                list.retain(|s| *s != id);
                if list.is_empty() {
                    self.by_agent.remove(agent);
                }
            }
        }
        Some(sub)
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

    fn subscriber(buffer: usize) -> (Subscriber, mpsc::Receiver<Queued>, Arc<Lagged>) {
        let (tx, rx) = mpsc::channel(buffer);
        let lagged = Arc::new(Lagged::default());
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        (Subscriber { id, agents: Vec::new(), tx, ledger: Arc::default(), lagged: lagged.clone() }, rx, lagged)
    }

    async fn drain(mut rx: mpsc::Receiver<Queued>) -> usize {
        let mut n = 0;
        while rx.recv().await.is_some() {
            n += 1;
        }
        n
    }

    /// A subscription that ends leaves nothing behind in the table, not even
    /// an empty list under an agent nobody follows any more.
    #[test]
    fn a_removed_subscriber_leaves_no_entry() {
        let mut table = Table::default();
        let (mut one, _rx1, _) = subscriber(1);
        let (mut two, _rx2, _) = subscriber(1);
        let (gateway, _rx3, _) = subscriber(1);
        one.agents = vec![AgentId(1), AgentId(2)];
        two.agents = vec![AgentId(2)];
        let ids = [one.id, two.id, gateway.id];
        table.add(one);
        table.add(two);
        table.add(gateway);
        assert_eq!((table.all.len(), table.by_agent.len(), table.gateways.len()), (3, 2, 1));
        assert!(table.remove(ids[0]).is_some());
        assert_eq!(table.by_agent.get(&AgentId(2)).map(Vec::as_slice), Some(&[ids[1]][..]));
        assert!(!table.by_agent.contains_key(&AgentId(1)));
        for id in ids {
            table.remove(id);
        }
        assert!(table.all.is_empty() && table.by_agent.is_empty() && table.gateways.is_empty());
        assert!(table.remove(ids[0]).is_none(), "removing twice is harmless");
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
        let inbox = Inbox { events: events_rx, backlog: Arc::default(), changes: subscribe_rx };
        let dispatcher = tokio::spawn(dispatch(
            catalog,
            metrics,
            inbox,
            EventBudget::new(1 << 20),
            Arc::new(crate::clock::SystemClock::new()),
        ));
        let (slow, slow_rx, slow_lagged) = subscriber(2);
        let (roomy, roomy_rx, roomy_lagged) = subscriber(16);
        subscribe.send(Change::Add(slow)).expect("dispatcher runs");
        subscribe.send(Change::Add(roomy)).expect("dispatcher runs");
        // One runtime thread: the dispatcher registers both before any event.
        tokio::task::yield_now().await;
        for agent in 0..5 {
            let event = Event::AgentStateChanged { agent: AgentId(agent), state: ccr_core::AgentState::Available };
            events.send((event, None)).expect("dispatcher runs");
        }
        drop(events);
        dispatcher.await.expect("dispatcher ends when the core's events end");
        drop(subscribe);
        // Each got `Subscribed` first; the slow one then one event.
        assert_eq!(drain(slow_rx).await, 2, "the slow subscriber keeps what was buffered");
        assert!(slow_lagged.is_set());
        assert_eq!(drain(roomy_rx).await, 1 + 5);
        assert!(!roomy_lagged.is_set());
    }
}
