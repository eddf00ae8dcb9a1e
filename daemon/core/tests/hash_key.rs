//! The hash key changes where entries sit in the core's tables, never what
//! the core decides: the same commands under other keys (each in its own
//! process, since the key is set once per process) give the same events and
//! the same final state, event for event.

mod common;

use std::hash::{DefaultHasher, Hasher};
use std::process::Command as Process;

use common::*;

use ccr_core::*;

const KEY: &str = "CCR_TEST_HASH_KEY";

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Logins, arrivals with ids spread over the whole range, accepts,
/// completions, abandons and state changes; returns a digest of every reply
/// and event and of the final state, and how many events there were.
fn run() -> (u64, usize) {
    let mut cfg = Harness::default_config();
    cfg.session_grace = secs(5);
    let mut router = Router::new(cfg).unwrap();
    let mut rng = Rng(7);
    let mut digest = DefaultHasher::new();
    let mut now = Time::from_secs(1_000);
    let mut waiting: Vec<u64> = Vec::new();
    let mut offers: Vec<(AgentId, OfferId, ContactId)> = Vec::new();
    let mut connected: Vec<(AgentId, ContactId)> = Vec::new();
    let mut events = 0;
    let skills = [BILLING, REPAIR];
    let mut agents = Vec::new();
    for agent in 0..300u64 {
        let id = (rng.next() >> 1) | 1;
        agents.push(AgentId(id));
        let skill = skills[rng.below(2) as usize];
        let reply = router.handle(now, login(id, &[(skill, 1 + rng.below(9) as u8)], &[EN, ZH], [1, 2, 0]));
        digest.write(format!("{agent} {reply:?}").as_bytes());
    }
    for _ in 0..20_000 {
        now = now + std::time::Duration::from_millis(rng.below(400));
        let command = match rng.below(10) {
            0..=3 => {
                let id = rng.next() >> 1;
                waiting.push(id);
                let skill = skills[rng.below(2) as usize];
                let mut spec =
                    contact(id, QueueId(rng.below(2) as u16), TierId(rng.below(3) as u8), &[(skill, 1)], &[]);
                spec.channel = if rng.below(3) == 0 { Channel::Chat } else { Channel::Voice };
                Command::Enqueue(spec)
            }
            4 | 5 if !offers.is_empty() => {
                let (agent, offer, contact) = offers.swap_remove(rng.below(offers.len() as u64) as usize);
                connected.push((agent, contact));
                Command::Accept { agent, offer }
            }
            6 if !connected.is_empty() => {
                let (agent, contact) = connected.swap_remove(rng.below(connected.len() as u64) as usize);
                Command::Complete { agent, contact }
            }
            7 if !waiting.is_empty() => {
                let id = waiting.swap_remove(rng.below(waiting.len() as u64) as usize);
                Command::Abandon { contact: ContactId(id) }
            }
            _ => {
                let agent = agents[rng.below(agents.len() as u64) as usize];
                if rng.below(2) == 0 {
                    Command::AgentReady { agent }
                } else {
                    Command::EndWrapUp { agent, contact: ContactId(0) }
                }
            }
        };
        let reply = router.handle(now, command);
        digest.write(format!("{reply:?}").as_bytes());
        while let Some(event) = router.poll_event() {
            events += 1;
            if let Event::Offered { agent, offer, contact, .. } = &event {
                offers.push((*agent, *offer, *contact));
            }
            digest.write(format!("{event:?}").as_bytes());
        }
        router.handle_timeout(now);
        while let Some(event) = router.poll_event() {
            events += 1;
            digest.write(format!("{event:?}").as_bytes());
        }
    }
    digest.write(format!("{:?}", router.snapshot()).as_bytes());
    (digest.finish(), events)
}

#[test]
fn decisions_do_not_depend_on_the_hash_key() {
    if let Ok(key) = std::env::var(KEY) {
        let key: u64 = key.parse().unwrap();
        assert!(key_hash_tables([key, key.rotate_left(17) ^ 0xabcdef]), "the first key of the process");
        let (digest, events) = run();
        println!("DIGEST {digest} {events}");
        return;
    }
    let (here, events) = run();
    assert!(events > 10_000, "the workload decides things: {events} events");
    for key in ["1", "12345678901234567"] {
        let out = Process::new(std::env::current_exe().unwrap())
            .args(["--exact", "decisions_do_not_depend_on_the_hash_key", "--nocapture", "--test-threads=1"])
            .env(KEY, key)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let at = stdout.find("DIGEST ").unwrap_or_else(|| panic!("no digest:\n{stdout}"));
        let line = stdout[at..].lines().next().unwrap();
        assert_eq!(line, format!("DIGEST {here} {events}"), "under key {key}");
    }
}
