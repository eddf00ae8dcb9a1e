use ccr_benches::{config, Generator, Shape};
use ccr_core::*;
use std::time::Instant;
fn main() {
    let shape = Shape::LARGE;
    let mut g = Generator::new(shape, 2);
    let mut r = Router::new(config(shape)).unwrap();
    let now = Time::from_secs(1);
    for a in 0..shape.agents {
        let p = g.agent();
        r.handle(now, Command::AgentLogin { agent: AgentId(a), profile: p, ready: false }).unwrap();
    }
    for _ in 0..100_000 {
        r.handle(now, Command::Enqueue(g.contact())).unwrap();
    }
    while r.poll_event().is_some() {}
    let t = Instant::now();
    let mut offered = 0;
    for round in 0..5 {
        let t = Instant::now();
        for a in 0..2000u64 {
            let agent = AgentId((a + round * 2000) % shape.agents);
            r.handle(now, Command::AgentReady { agent }).unwrap();
            let mut off = None;
            while let Some(e) = r.poll_event() {
                if let Event::Offered { offer, contact, .. } = e {
                    off = Some((offer, contact));
                }
            }
            r.handle(now, Command::AgentNotReady { agent, reason: NotReadyReason::Break }).unwrap();
            if let Some((offer, contact)) = off {
                offered += 1;
                r.handle(now, Command::Accept { agent, offer }).unwrap();
                r.handle(now, Command::Complete { agent, contact }).unwrap();
                r.handle(now, Command::Enqueue(g.contact())).unwrap();
            }
            while r.poll_event().is_some() {}
        }
        println!("round {round}: {:?} per agent cycle, offered {offered}", t.elapsed() / 2000);
    }
    println!("{:?}", t.elapsed());
}
