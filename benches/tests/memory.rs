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
    let per_contact = measure(Shape::LARGE, 100_000);
    assert!(per_contact <= 512.0, "{per_contact:.0} bytes per waiting contact");
}

/// At ten times the agents and a million contacts waiting: within 400 bytes.
/// Seconds in a release build, minutes in a debug one:
/// `cargo test --release -p ccr-benches --test memory -- --ignored --nocapture`.
#[test]
#[ignore]
fn memory_per_waiting_contact_at_a_million_is_within_400_bytes() {
    let per_contact = measure(Shape::HUGE, 1_000_000);
    assert!(per_contact <= 400.0, "{per_contact:.0} bytes per waiting contact");
}

/// Bytes of core memory per waiting contact, `waiting` of them, with every
/// agent of `shape` logged in.
fn measure(shape: Shape, waiting: usize) -> f64 {
    // One at a time: the count of live bytes is the whole process's.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());

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
    let specs: Vec<_> = (0..waiting).map(|_| generator.contact()).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let spec_vectors: isize =
        specs.iter().map(|s| (s.skills.capacity() * 4 + s.languages.capacity() * 2) as isize).sum();
    for spec in specs {
        router.handle(now, Command::Enqueue(spec)).expect("enqueue");
    }
    while router.poll_event().is_some() {}
    let after = LIVE.load(Ordering::Relaxed);
    // The specs' own skill and language vectors moved into the router: count them as its memory.
    let per_contact = (after - before + spec_vectors) as f64 / waiting as f64;
    println!("core memory per waiting contact: {per_contact:.0} bytes ({waiting} waiting, {} agents)", shape.agents);
    assert_eq!(router.contact_count(), waiting);
    per_contact
}
