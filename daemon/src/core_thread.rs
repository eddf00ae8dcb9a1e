//! The core thread: sole owner of the router.
//!
//! Callers talk to it through a [`CoreHandle`]: commands go in over a
//! crossbeam channel with a one-shot reply, and read-only queries run as
//! closures on the router between commands. The loop sleeps until the next
//! request or the core's next deadline, whichever comes first, drains every
//! request already waiting (so a burst costs one wake-up), fires due timers
//! and pushes every event to the sink in order.

use std::thread::JoinHandle;
use std::time::Duration;

use ccr_core::{Command, CommandError, Event, Reply, Router};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::oneshot;

use crate::clock::Clock;

/// Requests drained per wake-up before timers and events get their turn.
const MAX_BATCH: usize = 1024;

type Query = Box<dyn FnOnce(&Router) + Send>;

enum Request {
    Command(Command, oneshot::Sender<Result<Reply, CommandError>>),
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
    /// Sends a command; the future resolves when the core has applied it.
    pub async fn command(&self, command: Command) -> Result<Result<Reply, CommandError>, CoreStopped> {
        self.submit(command)?.await.map_err(|_| CoreStopped)
    }

    /// Sends a command without waiting: the receiver yields the reply. Lets a
    /// stream pipeline many commands while keeping their order.
    pub fn submit(&self, command: Command) -> Result<oneshot::Receiver<Result<Reply, CommandError>>, CoreStopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Request::Command(command, tx)).map_err(|_| CoreStopped)?;
        Ok(rx)
    }

    /// The same, blocking the calling thread (for tools and tests without a runtime).
    pub fn command_blocking(&self, command: Command) -> Result<Result<Reply, CommandError>, CoreStopped> {
        self.submit(command)?.blocking_recv().map_err(|_| CoreStopped)
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

/// Starts the core thread. It stops on [`CoreHandle::shutdown`] or when every
/// handle is dropped, and its join handle returns the router. The sink sees
/// each event with read access to the router (to attach a contact's context
/// to its offer, say); it must not block.
///
/// After each batch the thread polls for more work for `spin` before it
/// parks: waking a parked thread costs tens of microseconds, more than a
/// routing decision, so under traffic this halves the round trip, at the
/// price of up to one busy core while requests keep coming. Zero disables it.
pub fn spawn(
    router: Router,
    clock: impl Clock,
    spin: Duration,
    sink: impl FnMut(&Router, Event) + Send + 'static,
) -> std::io::Result<(CoreHandle, JoinHandle<Router>)> {
    start(router, clock, spin, sink, None::<fn(Duration)>)
}

/// [`spawn`], reporting the time the router spent on each command to
/// `observe` (which must not block: it runs on the routing thread).
pub fn spawn_observed(
    router: Router,
    clock: impl Clock,
    spin: Duration,
    sink: impl FnMut(&Router, Event) + Send + 'static,
    observe: impl FnMut(Duration) + Send + 'static,
) -> std::io::Result<(CoreHandle, JoinHandle<Router>)> {
    start(router, clock, spin, sink, Some(observe))
}

fn start<O: FnMut(Duration) + Send + 'static>(
    router: Router,
    clock: impl Clock,
    spin: Duration,
    sink: impl FnMut(&Router, Event) + Send + 'static,
    observe: Option<O>,
) -> std::io::Result<(CoreHandle, JoinHandle<Router>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let thread = std::thread::Builder::new()
        .name("ccr-core".into())
        .spawn(move || run(router, clock, spin, sink, observe, rx))?;
    Ok((CoreHandle { tx }, thread))
}

fn run(
    mut router: Router,
    clock: impl Clock,
    spin: Duration,
    mut sink: impl FnMut(&Router, Event),
    mut observe: Option<impl FnMut(Duration)>,
    rx: Receiver<Request>,
) -> Router {
    loop {
        // Busy traffic: look again for a short while before sleeping, since
        // waking a parked thread costs more than the request itself.
        let spin_until = std::time::Instant::now() + spin;
        let mut early = None;
        while std::time::Instant::now() < spin_until {
            match rx.try_recv() {
                Ok(r) => {
                    early = Some(r);
                    break;
                }
                Err(_) => std::hint::spin_loop(),
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
                        Err(RecvTimeoutError::Disconnected) => return router,
                    }
                }
                None => match rx.recv() {
                    Ok(r) => Some(r),
                    Err(_) => return router,
                },
            }
        };
        let mut stop = false;
        let mut next = first;
        let mut handled = 0;
        while let Some(request) = next.take() {
            match request {
                Request::Command(command, reply) => {
                    let result = match observe.as_mut() {
                        Some(observe) => {
                            let started = std::time::Instant::now();
                            let result = router.handle(clock.now(), command);
                            observe(started.elapsed());
                            result
                        }
                        None => router.handle(clock.now(), command),
                    };
                    let _ = reply.send(result);
                }
                Request::Query(query) => query(&router),
                Request::Tick => {}
                Request::Shutdown => stop = true,
            }
            handled += 1;
            if handled < MAX_BATCH && !stop {
                next = rx.try_recv().ok();
            }
        }
        router.handle_timeout(clock.now());
        while let Some(event) = router.poll_event() {
            sink(&router, event);
        }
        if stop {
            return router;
        }
    }
}
