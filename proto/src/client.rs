//! A Rust client for ccrd: one QUIC connection, one stream per call.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ccr_proto::client::Client;
//! use ccr_proto::v1::HealthRequest;
//! let ca = std::fs::read("ccrd-data/cert.der")?;
//! let client = Client::connect("127.0.0.1:4433".parse()?, "localhost", &[ca]).await?;
//! let health = client.health(HealthRequest {}).await?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use prost::Message;
use rustls::pki_types::CertificateDer;

use crate::v1::*;
use crate::wire::{self, Code, Frame};
use crate::Method;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("QUIC configuration: {0}")]
    Config(String),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// None of a cluster's nodes is the active (yet): each was unreachable
    /// or a standby that knows of no active. Try again shortly.
    #[error("no active node among {tried}: {why}")]
    NoActive { tried: String, why: String },
}

/// What a node said it is.
enum Probe {
    Active(Client),
    /// A standby, and the active it names.
    Standby(Option<String>),
    Failed(String),
}

/// The active a standby's refusal names (`standby; active=<address>`,
/// docs/PROTOCOL.md): `Some(Some(address))`, `Some(None)` while no node
/// leads, `None` if `message` is not a standby's refusal.
pub fn active_named_in(message: &str) -> Option<Option<&str>> {
    let active = message.strip_prefix("standby; active=")?;
    Some((active != "none" && !active.is_empty()).then_some(active))
}

/// A connection to ccrd. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct Client {
    connection: quinn::Connection,
    _endpoint: quinn::Endpoint,
    max_message: usize,
}

fn unavailable<E: std::error::Error + 'static>(e: E) -> Status {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if let Some(lost) = c.downcast_ref::<quinn::ConnectionError>() {
            return Status::new(Code::Unavailable, why_closed(lost));
        }
        cause = c.source();
    }
    Status::new(Code::Unavailable, e.to_string())
}

/// Why ccrd closed the connection, in words the user can act on: with TLS
/// 1.3 a client learns that its certificate was refused only at its first
/// call, as the connection lost with the server's TLS alert.
pub fn why_closed(e: &quinn::ConnectionError) -> String {
    use wire::alert;
    match e {
        quinn::ConnectionError::ConnectionClosed(close) => match wire::tls_alert(close.error_code.into()) {
            Some(alert::CERTIFICATE_REQUIRED) => "ccrd requires a client certificate (its tls.client_ca is set)".into(),
            Some(alert::UNKNOWN_CA) => "ccrd does not trust the CA that issued this client's certificate".into(),
            Some(alert::CERTIFICATE_EXPIRED) => {
                "ccrd refused this client's certificate: expired, or not valid yet".into()
            }
            Some(alert) => format!("ccrd refused this client's certificate (TLS alert {alert})"),
            None => e.to_string(),
        },
        quinn::ConnectionError::ApplicationClosed(close) => {
            format!("ccrd closed the connection: {}", String::from_utf8_lossy(&close.reason))
        }
        other => other.to_string(),
    }
}

/// Where the client's socket binds to reach `target`: the unspecified
/// address of its family, on any port, so that the system routes to any
/// host (a loopback bind could reach only this one).
pub fn bind_address(target: SocketAddr) -> SocketAddr {
    use std::net::{Ipv4Addr, Ipv6Addr};
    match target {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    }
}

impl Client {
    /// Connects to `addr`, trusting the given DER certificates as roots.
    pub async fn connect(addr: SocketAddr, server_name: &str, roots: &[Vec<u8>]) -> Result<Client, ConnectError> {
        Self::connect_with_identity(addr, server_name, roots, None).await
    }

    /// The same, presenting a client certificate chain and its key (DER:
    /// PKCS#8, SEC1 or PKCS#1; [`crate::pki::identity`] reads them from
    /// PEM or DER files), for a daemon that requires client certificates.
    pub async fn connect_with_identity(
        addr: SocketAddr,
        server_name: &str,
        roots: &[Vec<u8>],
        identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
    ) -> Result<Client, ConnectError> {
        let mut store = rustls::RootCertStore::empty();
        for der in roots {
            store.add(CertificateDer::from(der.clone()))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(store);
        let mut crypto = match identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                let chain = chain.into_iter().map(CertificateDer::from).collect();
                let key = rustls::pki_types::PrivateKeyDer::try_from(key)
                    .map_err(|why| ConnectError::Config(format!("client key: {why}")))?;
                builder.with_client_auth_cert(chain, key)?
            }
        };
        crypto.alpn_protocols = vec![wire::ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto)
            .map_err(|e| ConnectError::Config(e.to_string()))?;
        let mut endpoint = quinn::Endpoint::client(bind_address(addr))?;
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        let connection = endpoint.connect(addr, server_name)?.await?;
        Ok(Client { connection, _endpoint: endpoint, max_message: wire::DEFAULT_MAX_MESSAGE })
    }

    /// Connects to the active node of a cluster given its nodes' addresses
    /// (one address: a single ccrd). Every node is asked at once; a
    /// standby's answer names the active, which is asked too if it was not.
    /// For up to `patience`, a node that is not the active (a standby, or
    /// no answer) is asked again every 20 ms, so that the new active is
    /// found as soon as it takes over, while a dead node still holds its
    /// probe. [`ConnectError::NoActive`] when none became the active.
    pub async fn connect_active(
        addrs: &[SocketAddr],
        server_name: &str,
        roots: &[Vec<u8>],
        identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
        patience: std::time::Duration,
    ) -> Result<Client, ConnectError> {
        const AGAIN: std::time::Duration = std::time::Duration::from_millis(20);
        let deadline = tokio::time::Instant::now() + patience;
        let mut probes = tokio::task::JoinSet::new();
        let mut known: Vec<SocketAddr> = Vec::new();
        let probe = |probes: &mut tokio::task::JoinSet<_>, addr: SocketAddr, after: std::time::Duration| {
            let (name, roots, identity) = (server_name.to_owned(), roots.to_vec(), identity.clone());
            probes.spawn(async move {
                tokio::time::sleep(after).await;
                (addr, Self::probe(addr, &name, &roots, identity).await)
            });
        };
        for &addr in addrs {
            if !known.contains(&addr) {
                known.push(addr);
                probe(&mut probes, addr, std::time::Duration::ZERO);
            }
        }
        let mut why = String::from("no address given");
        while let Some(done) = probes.join_next().await {
            let Ok((addr, outcome)) = done else { continue };
            match outcome {
                Probe::Active(client) => return Ok(client),
                Probe::Standby(Some(active)) => match active.parse::<SocketAddr>() {
                    Ok(active) if !known.contains(&active) => {
                        known.push(active);
                        probe(&mut probes, active, std::time::Duration::ZERO);
                        why = format!("{addr} is a standby");
                    }
                    Ok(_) => why = format!("{addr} is a standby; the active it names did not answer as one"),
                    Err(_) => why = format!("{addr} names an active it cannot parse: {active:?}"),
                },
                Probe::Standby(None) => why = format!("{addr} is a standby and knows of no active yet"),
                Probe::Failed(e) => why = format!("{addr}: {e}"),
            }
            if tokio::time::Instant::now() + AGAIN < deadline {
                probe(&mut probes, addr, AGAIN);
            }
        }
        let tried = known.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        Err(ConnectError::NoActive { tried, why })
    }

    /// What one node is: connected and asked (bounded: 500 ms; a node
    /// that does not answer is asked again, not waited for).
    async fn probe(
        addr: SocketAddr,
        server_name: &str,
        roots: &[Vec<u8>],
        identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
    ) -> Probe {
        let asked = async {
            let client = Self::connect_with_identity(addr, server_name, roots, identity).await?;
            // A standby answers Health to anyone; the active only to its
            // admins, so a refusal of the role means the active.
            let named = match client.health(HealthRequest {}).await {
                Ok(h) if h.role != "standby" => return Ok(Probe::Active(client)),
                Ok(h) => (!h.active_address.is_empty()).then_some(h.active_address),
                Err(s) if s.code() == Code::PermissionDenied => return Ok(Probe::Active(client)),
                Err(s) => match active_named_in(&s.message) {
                    Some(active) => active.map(str::to_owned),
                    None => return Ok(Probe::Failed(s.message)),
                },
            };
            client.close();
            Ok::<_, ConnectError>(Probe::Standby(named))
        };
        match tokio::time::timeout(std::time::Duration::from_millis(500), asked).await {
            Ok(Ok(probe)) => probe,
            Ok(Err(e)) => Probe::Failed(e.to_string()),
            Err(_) => Probe::Failed("no answer within 500 ms".into()),
        }
    }

    /// Closes the connection at once (the server treats it like a lost one).
    pub fn close(&self) {
        self.connection.close(0u32.into(), b"bye");
    }

    /// Closes the connection and waits (up to a second) until the peer has
    /// been told: what a short-lived tool does before it exits, so that
    /// ccrd does not keep its connection open until it idles out.
    pub async fn close_and_wait(self) {
        self.connection.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self._endpoint.wait_idle()).await;
    }

    /// The underlying connection (to open raw streams, e.g. in tests).
    pub fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// One unary call: the method's full path, a request, its response.
    pub async fn call<Resp: Message + Default>(&self, method: Method, request: &impl Message) -> Result<Resp, Status> {
        let (mut send, mut recv) = self.connection.open_bi().await.map_err(unavailable)?;
        let mut out = Vec::new();
        wire::encode_header(method.path(), &mut out);
        wire::encode_message(request, &mut out);
        send.write_all(&out).await.map_err(unavailable)?;
        send.finish().map_err(unavailable)?;
        let bytes = recv.read_to_end(self.max_message + 1024).await.map_err(unavailable)?;
        let mut at = 0;
        let mut response = None;
        loop {
            match wire::decode_frame(&bytes[at..], self.max_message) {
                Ok(Some((Frame::Message(body), used))) => {
                    response =
                        Some(Resp::decode(body.as_slice()).map_err(|e| Status::new(Code::Internal, e.to_string()))?);
                    at += used;
                }
                Ok(Some((Frame::Trailer(status), _))) => {
                    return match status.code() {
                        Code::Ok => response.ok_or_else(|| Status::new(Code::Internal, "OK without a response")),
                        _ => Err(status),
                    };
                }
                Ok(None) => return Err(Status::new(Code::Internal, "response ended without a trailer")),
                Err(e) => return Err(Status::new(Code::Internal, e.to_string())),
            }
        }
    }

    /// Routing events for `agent_ids` (all events with none: a gateway).
    pub async fn subscribe(&self, agent_ids: Vec<u64>) -> Result<Subscription, Status> {
        let (mut send, recv) = self.connection.open_bi().await.map_err(unavailable)?;
        let mut out = Vec::new();
        wire::encode_header(Method::Subscribe.path(), &mut out);
        wire::encode_message(&SubscribeRequest { agent_ids }, &mut out);
        send.write_all(&out).await.map_err(unavailable)?;
        send.finish().map_err(unavailable)?;
        let mut subscription =
            Subscription { recv, buf: wire::ReadBuf::default(), max_message: self.max_message, early: None };
        // Returns once ccrd has registered it (or refused it): no event
        // after this call is missed.
        match subscription.next().await? {
            RoutingEvent { event: Some(routing_event::Event::Subscribed(_)) } => {}
            other => subscription.early = Some(other),
        }
        Ok(subscription)
    }

    /// Opens the bidirectional gateway stream: many commands, replies in order.
    pub async fn gateway_stream(&self) -> Result<GatewayStream, Status> {
        let (mut send, recv) = self.connection.open_bi().await.map_err(unavailable)?;
        let mut out = Vec::new();
        wire::encode_header(Method::GatewayStream.path(), &mut out);
        send.write_all(&out).await.map_err(unavailable)?;
        Ok(GatewayStream {
            commands: GatewayCommands { send, out: Vec::new() },
            replies: GatewayReplies(Subscription {
                recv,
                buf: wire::ReadBuf::default(),
                max_message: self.max_message,
                early: None,
            }),
        })
    }

    pub async fn enqueue(&self, r: EnqueueRequest) -> Result<EnqueueResponse, Status> {
        self.call(Method::Enqueue, &r).await
    }
    pub async fn abandon(&self, r: AbandonRequest) -> Result<AbandonResponse, Status> {
        self.call(Method::Abandon, &r).await
    }
    pub async fn transfer(&self, r: TransferRequest) -> Result<TransferResponse, Status> {
        self.call(Method::Transfer, &r).await
    }
    pub async fn schedule_callback(&self, r: ScheduleCallbackRequest) -> Result<ScheduleCallbackResponse, Status> {
        self.call(Method::ScheduleCallback, &r).await
    }
    pub async fn position(&self, r: PositionRequest) -> Result<PositionResponse, Status> {
        self.call(Method::Position, &r).await
    }
    pub async fn login(&self, r: LoginRequest) -> Result<LoginResponse, Status> {
        self.call(Method::Login, &r).await
    }
    pub async fn logout(&self, r: LogoutRequest) -> Result<LogoutResponse, Status> {
        self.call(Method::Logout, &r).await
    }
    pub async fn set_state(&self, r: SetStateRequest) -> Result<SetStateResponse, Status> {
        self.call(Method::SetState, &r).await
    }
    pub async fn accept(&self, r: AcceptRequest) -> Result<AcceptResponse, Status> {
        self.call(Method::Accept, &r).await
    }
    pub async fn reject(&self, r: RejectRequest) -> Result<RejectResponse, Status> {
        self.call(Method::Reject, &r).await
    }
    pub async fn complete(&self, r: CompleteRequest) -> Result<CompleteResponse, Status> {
        self.call(Method::Complete, &r).await
    }
    pub async fn end_wrap_up(&self, r: EndWrapUpRequest) -> Result<EndWrapUpResponse, Status> {
        self.call(Method::EndWrapUp, &r).await
    }
    pub async fn queue_stats(&self, r: QueueStatsRequest) -> Result<QueueStatsResponse, Status> {
        self.call(Method::QueueStats, &r).await
    }
    pub async fn reload_config(&self, r: ReloadConfigRequest) -> Result<ReloadConfigResponse, Status> {
        self.call(Method::ReloadConfig, &r).await
    }
    pub async fn health(&self, r: HealthRequest) -> Result<HealthResponse, Status> {
        self.call(Method::Health, &r).await
    }
    pub async fn queues(&self, r: QueuesRequest) -> Result<QueuesResponse, Status> {
        self.call(Method::Queues, &r).await
    }
    pub async fn agents(&self, r: AgentsRequest) -> Result<AgentsResponse, Status> {
        self.call(Method::Agents, &r).await
    }
    pub async fn contacts(&self, r: ContactsRequest) -> Result<ContactsResponse, Status> {
        self.call(Method::Contacts, &r).await
    }
    pub async fn contact(&self, r: ContactRequest) -> Result<ContactResponse, Status> {
        self.call(Method::Contact, &r).await
    }
    pub async fn supervise_agent(&self, r: SuperviseAgentRequest) -> Result<SuperviseAgentResponse, Status> {
        self.call(Method::SuperviseAgent, &r).await
    }
    pub async fn supervise_contact(&self, r: SuperviseContactRequest) -> Result<SuperviseContactResponse, Status> {
        self.call(Method::SuperviseContact, &r).await
    }
    pub async fn drain(&self, r: DrainRequest) -> Result<DrainResponse, Status> {
        self.call(Method::Drain, &r).await
    }
}

/// A stream of routing events.
pub struct Subscription {
    recv: quinn::RecvStream,
    buf: wire::ReadBuf,
    max_message: usize,
    /// An event read while waiting for `Subscribed` (a ccrd that sends none).
    early: Option<RoutingEvent>,
}

impl Subscription {
    /// The next event; `Err` with the closing status when the stream ends.
    pub async fn next(&mut self) -> Result<RoutingEvent, Status> {
        if let Some(event) = self.early.take() {
            return Ok(event);
        }
        self.next_message("event stream closed").await
    }

    /// The next framed message; `Err` with the trailer's status, or
    /// `closed` if the stream ends without one.
    async fn next_message<M: Message + Default>(&mut self, closed: &str) -> Result<M, Status> {
        loop {
            match wire::decode_frame(self.buf.pending(), self.max_message) {
                Ok(Some((frame, used))) => {
                    self.buf.consume(used);
                    return match frame {
                        Frame::Message(body) => {
                            M::decode(body.as_slice()).map_err(|e| Status::new(Code::Internal, e.to_string()))
                        }
                        Frame::Trailer(status) => Err(status),
                    };
                }
                Ok(None) => {}
                Err(e) => return Err(Status::new(Code::Internal, e.to_string())),
            }
            match self.recv.read_chunk(usize::MAX, true).await {
                Ok(Some(chunk)) => self.buf.extend(&chunk.bytes),
                Ok(None) => return Err(Status::new(Code::Unavailable, closed)),
                Err(e) => return Err(unavailable(e)),
            }
        }
    }
}

/// The client side of `Gateway/Stream`. Queue commands with [`Self::push`],
/// send them with [`Self::flush`], read replies with [`Self::next_reply`];
/// or [`Self::split`] it to write and read from different tasks.
pub struct GatewayStream {
    commands: GatewayCommands,
    replies: GatewayReplies,
}

/// The sending half of a gateway stream.
pub struct GatewayCommands {
    send: quinn::SendStream,
    out: Vec<u8>,
}

/// The receiving half of a gateway stream.
pub struct GatewayReplies(Subscription);

impl GatewayStream {
    /// Buffers one command (sent on the next flush).
    pub fn push(&mut self, command: &GatewayCommand) {
        self.commands.push(command);
    }

    pub async fn flush(&mut self) -> Result<(), Status> {
        self.commands.flush().await
    }

    /// Ends the command side; replies keep coming until the trailer.
    pub async fn finish(&mut self) -> Result<(), Status> {
        self.commands.finish().await
    }

    /// The next reply; `Err` with the trailer's status once the stream ends
    /// (code OK after a clean finish).
    pub async fn next_reply(&mut self) -> Result<GatewayReply, Status> {
        self.replies.next().await
    }

    pub fn split(self) -> (GatewayCommands, GatewayReplies) {
        (self.commands, self.replies)
    }
}

impl GatewayCommands {
    /// Buffers one command (sent on the next flush).
    pub fn push(&mut self, command: &GatewayCommand) {
        wire::encode_message(command, &mut self.out);
    }

    pub async fn flush(&mut self) -> Result<(), Status> {
        self.send.write_all(&self.out).await.map_err(unavailable)?;
        self.out.clear();
        Ok(())
    }

    /// Ends the command side; replies keep coming until the trailer.
    pub async fn finish(&mut self) -> Result<(), Status> {
        self.flush().await?;
        self.send.finish().map_err(unavailable)
    }
}

impl GatewayReplies {
    /// The next reply; `Err` with the trailer's status once the stream ends.
    pub async fn next(&mut self) -> Result<GatewayReply, Status> {
        self.0.next_message("stream closed").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_binds_the_unspecified_address_of_the_targets_family() {
        let v4: SocketAddr = "192.0.2.10:4433".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::10]:4433".parse().unwrap();
        assert_eq!(bind_address(v4), "0.0.0.0:0".parse().unwrap());
        assert_eq!(bind_address(v6), "[::]:0".parse().unwrap());
        assert_eq!(bind_address("127.0.0.1:1".parse().unwrap()), "0.0.0.0:0".parse().unwrap(), "loopback too");
    }
}
