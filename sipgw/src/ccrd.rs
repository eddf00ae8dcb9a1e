//! The link to ccrd: two connections (the gateway's, for the callers'
//! contacts on one `Gateway/Stream`; the agents', for their desk calls and
//! an `Events/Subscribe` of every event), connected again whenever either
//! is lost, and the bridge told ([`Input::CcrdBack`]) once subscribed so
//! that it re-syncs as docs/PROTOCOL.md says.
//!
//! Every command gets its answer back to the bridge: ccrd's, or
//! UNAVAILABLE when its connection was lost before one came. Contact
//! commands keep their order on the one gateway stream; an agent's desk
//! calls keep theirs too (one at a time per agent: a `Complete` must not
//! overtake the `Accept` before it), while different agents' go at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ccr_proto::client::{Client, GatewayCommands};
use ccr_proto::v1::Status;
use ccr_proto::v1::{self, gateway_command, gateway_reply};
use ccr_proto::wire::Code;
use tokio::sync::mpsc;

use crate::bridge::{Input, Reply, ToCcrd};
use crate::metrics::{Link, Metrics};

/// A client certificate chain and its key (DER).
pub type ClientIdentity = (Vec<Vec<u8>>, Vec<u8>);

/// Where and as whom to connect.
#[derive(Clone)]
pub struct Peer {
    pub addresses: Vec<SocketAddr>,
    pub server_name: String,
    pub roots: Vec<Vec<u8>>,
    pub gateway_identity: Option<ClientIdentity>,
    pub agent_identity: Option<ClientIdentity>,
}

/// How long to look for the active node in one attempt.
const PATIENCE: Duration = Duration::from_secs(2);
/// Waits between attempts: from the first to the most.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MOST: Duration = Duration::from_secs(5);

/// Runs the link until `commands` closes.
pub async fn run(
    peer: Peer,
    inputs: mpsc::UnboundedSender<Input>,
    mut commands: mpsc::UnboundedReceiver<ToCcrd>,
    metrics: Arc<Metrics>,
) {
    let mut generation = 0u64;
    let mut wait = RETRY_FIRST;
    loop {
        generation += 1;
        let connected = tokio::select! {
            c = connect(&peer) => c,
            // Commands meanwhile are answered UNAVAILABLE: the bridge sends
            // them again once re-synced.
            () = refuse_while(&mut commands, &inputs, generation) => return,
        };
        let (gateway, desk, mut events, stream) = match connected {
            Ok(parts) => parts,
            Err(why) => {
                tracing::warn!(%why, retry_in = ?wait, "ccrd: not connected");
                let refused = refuse_while(&mut commands, &inputs, generation);
                if tokio::time::timeout(wait, refused).await.is_ok() {
                    return;
                }
                wait = (wait * 2).min(RETRY_MOST);
                continue;
            }
        };
        wait = RETRY_FIRST;
        tracing::info!(address = %gateway.connection().remote_address(), "ccrd: connected and subscribed");
        metrics.link(Link::Ccrd, true);
        if inputs.send(Input::CcrdBack { generation }).is_err() {
            return;
        }
        let (mut sender, mut replies) = stream.split();
        let mut outstanding: HashMap<u64, ToCcrd> = HashMap::new();
        let mut next_id = 1u64;
        let mut desks = DeskCalls::default();
        let why = loop {
            tokio::select! {
                event = events.next() => match event {
                    Ok(v1::RoutingEvent { event: Some(event) }) => {
                        if inputs.send(Input::Ccrd(event)).is_err() { return; }
                    }
                    Ok(_) => {}
                    Err(status) => break format!("subscription ended: {status}"),
                },
                reply = replies.next() => match reply {
                    Ok(reply) => {
                        let Some(command) = outstanding.remove(&reply.id) else { continue };
                        let result = gateway_result(reply);
                        if let Err(status) = &result {
                            if !matches!(status.code(), Code::AlreadyExists | Code::NotFound) {
                                tracing::warn!(?command, %status, "ccrd refused a gateway command");
                            }
                        }
                        if inputs.send(Input::Replied { generation, command, result }).is_err() { return; }
                    }
                    Err(status) => break format!("gateway stream ended: {status}"),
                },
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    match gateway_command(next_id, &command) {
                        Some(wire) => {
                            outstanding.insert(next_id, command);
                            next_id += 1;
                            if let Err(status) = send(&mut sender, &wire).await {
                                break format!("gateway stream: {status}");
                            }
                        }
                        None => desks.push(&desk, command),
                    }
                }
                Some(done) = desks.running.join_next() => {
                    let Ok((command, result)) = done else { continue };
                    desks.next(&desk, &command);
                    if inputs.send(Input::Replied { generation, command, result }).is_err() { return; }
                }
            }
        };
        metrics.link(Link::Ccrd, false);
        tracing::warn!(%why, "ccrd: connection lost; reconnecting");
        gateway.close();
        desk.close();
        // Desk calls under way end at once with the connection: each is
        // answered as it ended (done, or UNAVAILABLE).
        while let Some(done) = desks.running.join_next().await {
            let Ok((command, result)) = done else { continue };
            if inputs.send(Input::Replied { generation, command, result }).is_err() {
                return;
            }
        }
        let mut lost: Vec<(u64, ToCcrd)> = outstanding.into_iter().collect();
        lost.sort_by_key(|(id, _)| *id);
        let lost = lost.into_iter().map(|(_, c)| c).chain(desks.not_sent());
        for command in lost {
            let result = Err(Status::new(Code::Unavailable, "connection lost"));
            if inputs.send(Input::Replied { generation, command, result }).is_err() {
                return;
            }
        }
    }
}

type Connected = (Client, Client, ccr_proto::client::Subscription, ccr_proto::client::GatewayStream);

async fn connect(peer: &Peer) -> Result<Connected, String> {
    let connect = |identity: Option<ClientIdentity>| {
        Client::connect_active(&peer.addresses, &peer.server_name, &peer.roots, identity, PATIENCE)
    };
    let gateway = connect(peer.gateway_identity.clone()).await.map_err(|e| format!("gateway connection: {e}"))?;
    let desk = connect(peer.agent_identity.clone()).await.map_err(|e| format!("agent connection: {e}"))?;
    // Subscribed before anything else: no offer is missed.
    let events = desk.subscribe(Vec::new()).await.map_err(|s| format!("subscribe: {s}"))?;
    let stream = gateway.gateway_stream().await.map_err(|s| format!("gateway stream: {s}"))?;
    Ok((gateway, desk, events, stream))
}

/// Answers every command UNAVAILABLE until `commands` closes.
async fn refuse_while(
    commands: &mut mpsc::UnboundedReceiver<ToCcrd>,
    inputs: &mpsc::UnboundedSender<Input>,
    generation: u64,
) {
    while let Some(command) = commands.recv().await {
        let result = Err(Status::new(Code::Unavailable, "not connected to ccrd"));
        if inputs.send(Input::Replied { generation, command, result }).is_err() {
            return;
        }
    }
}

async fn send(sender: &mut GatewayCommands, command: &v1::GatewayCommand) -> Result<(), Status> {
    sender.push(command);
    sender.flush().await
}

/// The gateway stream's form of a contact command; `None` for desk calls.
fn gateway_command(id: u64, command: &ToCcrd) -> Option<v1::GatewayCommand> {
    use gateway_command::Command as C;
    let command = match command {
        ToCcrd::Enqueue(r) => C::Enqueue(r.clone()),
        ToCcrd::Abandon { contact } => C::Abandon(v1::AbandonRequest { contact_id: *contact }),
        ToCcrd::Position { contact } => C::Position(v1::PositionRequest { contact_id: *contact }),
        _ => return None,
    };
    Some(v1::GatewayCommand { id, command: Some(command) })
}

fn gateway_result(reply: v1::GatewayReply) -> Result<Reply, Status> {
    let status = reply.status.unwrap_or_else(Status::ok);
    if status.code() != Code::Ok {
        return Err(status);
    }
    Ok(match reply.response {
        Some(gateway_reply::Response::Position(p)) => Reply::Position(p.position),
        _ => Reply::Done,
    })
}

/// The agents' desk calls: one running per agent, the rest waiting their
/// turn in order.
#[derive(Default)]
struct DeskCalls {
    running: tokio::task::JoinSet<(ToCcrd, Result<Reply, Status>)>,
    /// Per agent with a call running: the calls waiting behind it.
    waiting: HashMap<u64, std::collections::VecDeque<ToCcrd>>,
}

impl DeskCalls {
    fn push(&mut self, desk: &Client, command: ToCcrd) {
        match self.waiting.get_mut(&agent_of(&command)) {
            Some(queue) => queue.push_back(command),
            None => {
                self.waiting.insert(agent_of(&command), Default::default());
                self.running.spawn(desk_call(desk.clone(), command));
            }
        }
    }

    /// `done` returned: its agent's next call, if any, goes.
    fn next(&mut self, desk: &Client, done: &ToCcrd) {
        let agent = agent_of(done);
        match self.waiting.get_mut(&agent).and_then(|q| q.pop_front()) {
            Some(command) => {
                self.running.spawn(desk_call(desk.clone(), command));
            }
            None => {
                self.waiting.remove(&agent);
            }
        }
    }

    /// The calls still waiting their turn, in each agent's order.
    fn not_sent(&mut self) -> Vec<ToCcrd> {
        let mut agents: Vec<u64> = self.waiting.keys().copied().collect();
        agents.sort_unstable();
        agents.into_iter().flat_map(|a| self.waiting.remove(&a).unwrap_or_default()).collect()
    }
}

fn agent_of(command: &ToCcrd) -> u64 {
    match command {
        ToCcrd::Login(r) => r.agent_id,
        ToCcrd::Logout { agent }
        | ToCcrd::Accept { agent, .. }
        | ToCcrd::Reject { agent, .. }
        | ToCcrd::Complete { agent, .. } => *agent,
        ToCcrd::Enqueue(_) | ToCcrd::Abandon { .. } | ToCcrd::Position { .. } => 0,
    }
}

/// One unary agent call and its answer.
async fn desk_call(desk: Client, command: ToCcrd) -> (ToCcrd, Result<Reply, Status>) {
    let result = match &command {
        ToCcrd::Login(r) => desk.login(r.clone()).await.map(|_| Reply::Done),
        ToCcrd::Logout { agent } => desk.logout(v1::LogoutRequest { agent_id: *agent }).await.map(|_| Reply::Done),
        ToCcrd::Accept { agent, offer } => {
            desk.accept(v1::AcceptRequest { agent_id: *agent, offer_id: *offer }).await.map(|_| Reply::Done)
        }
        ToCcrd::Reject { agent, offer } => {
            desk.reject(v1::RejectRequest { agent_id: *agent, offer_id: *offer }).await.map(|_| Reply::Done)
        }
        ToCcrd::Complete { agent, contact } => {
            desk.complete(v1::CompleteRequest { agent_id: *agent, contact_id: *contact }).await.map(|_| Reply::Done)
        }
        ToCcrd::Enqueue(_) | ToCcrd::Abandon { .. } | ToCcrd::Position { .. } => {
            Err(Status::new(Code::Internal, "a gateway command is not a desk call"))
        }
    };
    if let Err(status) = &result {
        if status.code() != Code::Unavailable {
            tracing::info!(?command, %status, "ccrd refused a desk call");
        }
    }
    (command, result)
}
