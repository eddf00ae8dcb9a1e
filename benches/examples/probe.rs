use ccr_benches::{config, Generator, Shape};
use ccr_core::*;
use std::time::{Duration, Instant};
fn main() {
    let shape = Shape::LARGE;
    let mut g = Generator::new(shape, 2);
    let mut r = Router::new(config(shape)).unwrap();
    let now = Time::from_secs(1);
    for a in 0..shape.agents { let p = g.agent(); r.handle(now, Command::AgentLogin { agent: AgentId(a), profile: p, ready: false }).unwrap(); }
    for _ in 0..100_000 { r.handle(now, Command::Enqueue(g.contact())).unwrap(); }
    while r.poll_event().is_some() {}
    let mut timed = Duration::ZERO;
    let mut n = 0;
    for round in 0..200u64 {
        let mut offers = vec![];
        let agents: Vec<_> = (0..1000).map(|i| AgentId((round * 1000 + i) % shape.agents)).collect();
        let t = Instant::now();
        for &agent in &agents {
            r.handle(now, Command::AgentReady { agent }).unwrap();
            while let Some(e) = r.poll_event() { if let Event::Offered { offer, contact, agent, .. } = e { offers.push((agent, offer, contact)); } }
        }
        timed += t.elapsed(); n += 1000;
        for &agent in &agents { r.handle(now, Command::AgentNotReady { agent, reason: NotReadyReason::Break }).unwrap(); }
        for &(agent, offer, contact) in &offers {
            r.handle(now, Command::Accept { agent, offer }).unwrap();
            r.handle(now, Command::Complete { agent, contact }).unwrap();
            r.handle(now, Command::Enqueue(g.contact())).unwrap();
        }
        while r.poll_event().is_some() {}
    }
    println!("{:?} per AgentReady", timed / n);
}
