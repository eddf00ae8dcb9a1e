//! The core thread: sole owner of the router.
//!
//! Callers talk to it through a [`CoreHandle`]: commands go in over a
//! crossbeam channel with a one-shot reply, and read-only queries run as
//! closures on the router between commands. The loop sleeps until the next
//! request or the core's next deadline, whichever comes first, drains every
//! request already waiting (so a burst costs one wake-up), fires due timers
//! and pushes every event to the sink in order.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ccr_core::{Command, CommandError, Event, Reply, Router, SessionId, Time};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::journal::Journal;

/// Requests drained per wake-up before timers and events get their turn.
const MAX_BATCH: usize = 1024;

type Query = Box<dyn FnOnce(&Router) + Send>;

enum Request {
    Command(SessionId, Command, oneshot::Sender<Result<Reply, CommandError>>),
    Query(Query),
    /// Re-read the clock now (after a manual clock moved).
    Tick,
    Shutdown,
}

/// The core thread is gone: the daemon is shutting down.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the routing core has stopped")]
pub struct CoreStopped;

/// A cheap, cloneable way to reach the core thread.
#[derive(Clone)]
pub struct CoreHandle {
    tx: Sender<Request>,
}

impl CoreHandle {
    /// Sends a command in the centre's own session; the future resolves
    /// when the core has applied it.
    pub async fn command(&self, command: Command) -> Result<Result<Reply, CommandError>, CoreStopped> {
        self.command_from(SessionId::LOCAL, command).await
    }

    /// Sends a command from a client's session.
    pub async fn command_from(
        &self,
        session: SessionId,
        command: Command,
    ) -> Result<Result<Reply, CommandError>, CoreStopped> {
        self.submit(session, command)?.await.map_err(|_| CoreStopped)
    }

    /// Sends a command without waiting: the receiver yields the reply. Lets a
    /// stream pipeline many commands while keeping their order.
    pub fn submit(
        &self,
        session: SessionId,
        command: Command,
    ) -> Result<oneshot::Receiver<Result<Reply, CommandError>>, CoreStopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Request::Command(session, command, tx)).map_err(|_| CoreStopped)?;
        Ok(rx)
    }

    /// The same, blocking the calling thread (for tools and tests without a runtime).
    pub fn command_blocking(&self, command: Command) -> Result<Result<Reply, CommandError>, CoreStopped> {
        self.submit(SessionId::LOCAL, command)?.blocking_recv().map_err(|_| CoreStopped)
    }

    /// Queues `f` to run on the router between two commands.
    fn submit_query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Router) -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<T>, CoreStopped> {
        let (tx, rx) = oneshot::channel();
        let query: Query = Box::new(move |router| {
            let _ = tx.send(f(router));
        });
        self.tx.send(Request::Query(query)).map_err(|_| CoreStopped)?;
        Ok(rx)
    }

    /// Runs `f` on the router between two commands and returns its result.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Router) -> T + Send + 'static,
    ) -> Result<T, CoreStopped> {
        self.submit_query(f)?.await.map_err(|_| CoreStopped)
    }

    pub fn query_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Router) -> T + Send + 'static,
    ) -> Result<T, CoreStopped> {
        self.submit_query(f)?.blocking_recv().map_err(|_| CoreStopped)
    }

    /// Makes the core re-read its clock and fire what is due.
    pub fn tick(&self) -> Result<(), CoreStopped> {
        self.tx.send(Request::Tick).map_err(|_| CoreStopped)
    }

    /// Asks the core thread to stop after the requests already queued.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Request::Shutdown);
    }
}

/// How the core thread runs.
pub struct Options {
    /// After each batch the thread polls for more work for this long before
    /// it parks: waking a parked thread costs tens of microseconds, more than
    /// a routing decision, so under traffic this halves the round trip. It
    /// yields between polls, so the core it holds goes to any other thread
    /// that is ready to run (on a small machine, the network threads that
    /// bring it the work). Zero disables it.
    pub spin: Duration,
    /// Journal every input and hold replies and events until the records are
    /// durable. `None`: nothing survives a restart.
    pub journal: Option<Journal>,
    /// Told the time the router spent on each command (runs on the routing
    /// thread: it must not block).
    pub observe: Option<Box<dyn FnMut(Duration) + Send>>,
}

impl Options {
    pub fn new(spin: Duration) -> Self {
        Options { spin, journal: None, observe: None }
    }
}

/// Starts the core thread. It stops on [`CoreHandle::shutdown`] or when every
/// handle is dropped, and its join handle returns the router.
///
/// Each event goes through `prepare` on the routing thread, with read access
/// to the router (to attach a contact's context to its offer, say), and the
/// result through `deliver` — at once without a journal, or on the journal's
/// writer thread once the inputs that produced it are durable. Neither may
/// block.
pub fn spawn<T: Send + 'static>(
    router: Router,
    clock: impl Clock,
    options: Options,
    prepare: impl FnMut(&Router, Event) -> T + Send + 'static,
    deliver: impl Fn(T) + Send + Sync + 'static,
) -> std::io::Result<(CoreHandle, JoinHandle<Router>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let deliver: Arc<dyn Fn(T) + Send + Sync> = Arc::new(deliver);
    let thread = std::thread::Builder::new()
        .name("ccr-core".into())
        .spawn(move || run(router, clock, options, prepare, deliver, rx))?;
    Ok((CoreHandle { tx }, thread))
}

type Replies = Vec<(oneshot::Sender<Result<Reply, CommandError>>, Result<Reply, CommandError>)>;

fn run<T: Send + 'static>(
    mut router: Router,
    clock: impl Clock,
    mut options: Options,
    mut prepare: impl FnMut(&Router, Event) -> T,
    deliver: Arc<dyn Fn(T) + Send + Sync>,
    rx: Receiver<Request>,
) -> Router {
    let mut replies: Replies = Vec::new();
    let mut events: Vec<T> = Vec::new();
    loop {
        // Busy traffic: look again for a short while before sleeping, since
        // waking a parked thread costs more than the request itself. Yield,
        // not spin: a busy spin held a core the QUIC and journal threads
        // needed (at 50k contacts/s, p50 arrival → offer 1.1 → 0.6 ms).
        let spin_until = std::time::Instant::now() + options.spin;
        let mut early = None;
        while std::time::Instant::now() < spin_until {
            match rx.try_recv() {
                Ok(r) => {
                    early = Some(r);
                    break;
                }
                Err(_) => std::thread::yield_now(),
            }
        }
        let first = if early.is_some() {
            early
        } else {
            match router.poll_timeout() {
                Some(deadline) => {
                    let wait = Duration::from_micros(deadline.as_micros().saturating_sub(clock.now().as_micros()));
                    match rx.recv_timeout(wait) {
                        Ok(r) => Some(r),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match rx.recv() {
                    Ok(r) => Some(r),
                    Err(_) => break,
                },
            }
        };
        let mut stop = false;
        let mut next = first;
        let mut handled = 0;
        while let Some(request) = next.take() {
            match request {
                Request::Command(session, command, reply) => {
                    let result = handle(&mut router, clock.now(), session, command, &mut options);
                    match options.journal {
                        Some(_) => replies.push((reply, result)),
                        None => {
                            let _ = reply.send(result);
                        }
                    }
                }
                Request::Query(query) => query(&router),
                // At once, so that a query behind it sees what fired.
                Request::Tick => fire_due_timers(&mut router, clock.now(), &mut options),
                Request::Shutdown => stop = true,
            }
            handled += 1;
            if handled < MAX_BATCH && !stop {
                next = rx.try_recv().ok();
            }
        }
        fire_due_timers(&mut router, clock.now(), &mut options);
        while let Some(event) = router.poll_event() {
            let item = prepare(&router, event);
            match options.journal {
                Some(_) => events.push(item),
                None => deliver(item),
            }
        }
        if let Some(journal) = options.journal.as_mut() {
            if !replies.is_empty() || !events.is_empty() || journal.has_pending() {
                let (replies, events, deliver) =
                    (std::mem::take(&mut replies), std::mem::take(&mut events), deliver.clone());
                journal.commit(Box::new(move || {
                    for (tx, result) in replies {
                        let _ = tx.send(result);
                    }
                    for item in events {
                        deliver(item);
                    }
                }));
            }
        }
        if stop {
            break;
        }
    }
    // Let the writer make everything durable and release it before we return.
    if let Some(journal) = options.journal.take() {
        journal.close();
    }
    router
}

/// Fires every timer due by `now`, journaled first.
fn fire_due_timers(router: &mut Router, now: Time, options: &mut Options) {
    if let Some(journal) = options.journal.as_mut() {
        if router.poll_timeout().is_some_and(|t| t <= now) {
            journal.append_timers(now);
        }
    }
    router.handle_timeout(now);
}

/// Applies one command, journaling it first when there is a journal: a
/// refused command changes nothing and is taken back out, except that the
/// timers it let fire are recorded.
fn handle(
    router: &mut Router,
    now: Time,
    session: SessionId,
    command: Command,
    options: &mut Options,
) -> Result<Reply, CommandError> {
    let journaled = options.journal.as_mut().map(|journal| {
        let timers_due = router.poll_timeout().is_some_and(|t| t <= now);
        (journal.append_command(now, session, &command), timers_due)
    });
    let result = match options.observe.as_mut() {
        Some(observe) => {
            let started = std::time::Instant::now();
            let result = router.handle_from(now, session, command);
            observe(started.elapsed());
            result
        }
        None => router.handle_from(now, session, command),
    };
    if let (Err(_), Some((mark, timers_due)), Some(journal)) = (&result, journaled, options.journal.as_mut()) {
        journal.retract(mark);
        if timers_due {
            journal.append_timers(now);
        }
    }
    result
}
