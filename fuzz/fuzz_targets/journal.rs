//! Arbitrary bytes as what ccrd reads back from disk: a journal segment, a
//! record whose checksum is right (so that the payload reaches the
//! decoder), and a snapshot file, raw and with a right checksum. Nothing
//! panics, and no decode allocates more than a bounded multiple of what it
//! was given (a length field cannot make ccrd allocate what is not there).
//!
//! Seeded with the checked-in fixtures (a segment, and snapshot payloads of
//! formats 12 and 13, `fuzz/seeds/journal`), so that mutations reach the
//! state's restore and not only the framing:
//!
//! cargo fuzz run -s none -O journal fuzz/corpus/journal fuzz/seeds/journal -- -max_total_time=600
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ccr_daemon::journal::format::{self, Decoded, RECORD_HEADER_LEN, SNAPSHOT_HEADER_LEN, SNAPSHOT_MAGIC};
use ccr_daemon::journal::recovery;
use libfuzzer_sys::fuzz_target;

/// Counts the bytes allocated and not yet freed, and the peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `decode` and checks what it allocated beyond what was live before
/// against `limit`.
fn bounded(what: &str, limit: usize, decode: impl FnOnce()) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    decode();
    let grew = PEAK.load(Ordering::Relaxed) - base;
    assert!(grew <= limit, "{what}: decoding allocated {grew} bytes, over {limit}");
}

/// A router is built with room it allocates whatever it holds (its offer
/// ring, its chunk tables): the fixed part of a decode's allowance.
const FIXED: usize = 64 << 20;

fn record(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn snapshot(magic: &[u8; 8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&1u64.to_le_bytes());
    out.extend_from_slice(&1u64.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn decode_segment(bytes: &[u8]) {
    let mut at = 0;
    while at < bytes.len() {
        match format::decode_record(&bytes[at..]) {
            Decoded::Record(_, len) => {
                assert!(len > RECORD_HEADER_LEN && at + len <= bytes.len());
                at += len;
            }
            _ => break,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let limit = FIXED + 64 * data.len();
    bounded("a segment", limit, || decode_segment(data));
    let framed = record(data);
    bounded("a record", limit, || decode_segment(&framed));
    let dir = std::env::temp_dir().join(format!("ccr-fuzz-journal-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("snapshot-00000000000000000001.snap");
    for file in [data.to_vec(), snapshot(SNAPSHOT_MAGIC, data), snapshot(b"CCRSNP12", data)] {
        std::fs::write(&path, &file).unwrap();
        bounded("a snapshot", limit + file.len(), || {
            let _ = recovery::read_snapshot(&path);
        });
    }
});
