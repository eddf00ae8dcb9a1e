//! Core memory per waiting contact, measured with a counting allocator at
//! the benchmark's size: 10k agents logged in, 100k contacts waiting. Budget:
//! 512 bytes per waiting contact, its opaque context aside (the contacts here
//! carry none). Run with `--nocapture` to see the figure.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use ccr_benches::{config, Generator, Shape};
use ccr_core::{AgentId, Command, Router, Time};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn memory_per_waiting_contact_is_within_512_bytes() {
    const WAITING: usize = 100_000;
    let shape = Shape::LARGE;
    let mut generator = Generator::new(shape, 7);
    let now = Time::from_secs(1);
    let mut router = Router::new(config(shape)).expect("config");
    let before_logins = LIVE.load(Ordering::Relaxed);
    for a in 0..shape.agents {
        // Generated here, so that the profile's vectors the router keeps are counted.
        let profile = generator.agent();
        router.handle(now, Command::AgentLogin { agent: AgentId(a), profile, ready: false }).expect("login");
    }
    while router.poll_event().is_some() {}
    // For sizing, not budgeted.
    let per_agent = (LIVE.load(Ordering::Relaxed) - before_logins) as f64 / shape.agents as f64;
    println!("core memory per logged-in agent: {per_agent:.0} bytes ({} agents, none waiting)", shape.agents);
    // Generate first, so that only what the router keeps is counted.
    let specs: Vec<_> = (0..WAITING).map(|_| generator.contact()).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let spec_vectors: isize =
        specs.iter().map(|s| (s.skills.capacity() * 4 + s.languages.capacity() * 2) as isize).sum();
    for spec in specs {
        router.handle(now, Command::Enqueue(spec)).expect("enqueue");
    }
    while router.poll_event().is_some() {}
    let after = LIVE.load(Ordering::Relaxed);
    // The specs' own skill and language vectors moved into the router: count them as its memory.
    let per_contact = (after - before + spec_vectors) as f64 / WAITING as f64;
    println!("core memory per waiting contact: {per_contact:.0} bytes ({WAITING} waiting, {} agents)", shape.agents);
    assert_eq!(router.contact_count(), WAITING);
    assert!(per_contact <= 512.0, "{per_contact:.0} bytes per waiting contact");
}
