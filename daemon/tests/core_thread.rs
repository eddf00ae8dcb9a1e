//! The core thread, driven with a manual clock: no sleeping on timers.

use std::sync::mpsc;
use std::time::Duration;

use ccr_core::*;
use ccr_daemon::clock::ManualClock;
use ccr_daemon::core_thread::{spawn, CoreStopped, Options};

fn config() -> RouterConfig {
    let mut cfg = RouterConfig::default();
    cfg.queues[0].offer_timeout = Duration::from_secs(10);
    cfg
}

fn next_event(rx: &mpsc::Receiver<Event>, want: impl Fn(&Event) -> bool) -> Event {
    loop {
        let e = rx.recv_timeout(Duration::from_secs(5)).expect("event within 5 s");
        if want(&e) {
            return e;
        }
    }
}

#[test]
fn commands_are_applied_and_events_delivered_in_order() {
    let clock = ManualClock::default();
    let (events, rx) = mpsc::channel();
    let (core, thread) = spawn(
        Router::new(config()).unwrap(),
        clock.clone(),
        Options::new(Duration::ZERO),
        |_, e| e,
        move |e| {
            let _ = events.send(e);
        },
    )
    .unwrap();
    let profile = AgentProfile { skills: vec![(SkillId(1), 5)], languages: vec![], capacity: [1, 0, 0] };
    core.command_blocking(Command::AgentLogin { agent: AgentId(1), profile, ready: true }).unwrap().unwrap();
    let spec = ContactSpec {
        id: ContactId(9),
        channel: Channel::Voice,
        queue: QueueId(0),
        tier: TierId(0),
        skills: SkillReqs::from_slice(&[SkillReq { skill: SkillId(1), min_proficiency: 1 }]),
        languages: Languages::new(),
        preferred_agents: vec![],
        context: vec![],
    };
    let reply = core.command_blocking(Command::Enqueue(spec.clone())).unwrap();
    assert_eq!(reply, Ok(Reply::Enqueued { queue: QueueId(0) }));
    let duplicate = core.command_blocking(Command::Enqueue(spec)).unwrap();
    assert_eq!(duplicate, Err(CommandError::DuplicateContact(ContactId(9))));
    let offered = next_event(&rx, |e| matches!(e, Event::Offered { .. }));
    let Event::Offered { contact, agent, .. } = offered else { unreachable!() };
    assert_eq!((contact, agent), (ContactId(9), AgentId(1)));
    let pending = core.query_blocking(|r| r.pending_offers()).unwrap();
    assert_eq!(pending, 1);

    // The offer rings out when the clock passes its timeout, on a tick.
    clock.set(Time::from_secs(10));
    core.tick().unwrap();
    let ended = next_event(&rx, |e| matches!(e, Event::OfferEnded { .. }));
    assert!(matches!(ended, Event::OfferEnded { outcome: OfferOutcome::Expired, .. }));
    // A query queued right behind a tick sees what the tick fired: a test
    // that moves the clock and asks reads the state after the timers.
    for step in 1..=200u64 {
        clock.set(Time::from_secs(10 + step * 10));
        core.tick().unwrap();
        let ringing = core.query_blocking(|r| r.pending_offers()).unwrap();
        assert_eq!(ringing, 0, "step {step}: the re-offer rang out on the tick before the query");
        // Back to ready: offered again, ringing until the next tick.
        core.command_blocking(Command::AgentReady { agent: AgentId(1) }).unwrap().unwrap();
    }

    core.shutdown();
    let router = thread.join().unwrap();
    assert_eq!(router.contact_count(), 1, "the contact is back in line, not lost");
    assert_eq!(core.command_blocking(Command::AgentReady { agent: AgentId(1) }), Err(CoreStopped));
}
