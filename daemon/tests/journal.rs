//! The journal, driven through the real routing thread with a manual clock:
//! replay reproduces the live decisions and state bit for bit, across
//! snapshots and restarts, and every kind of damage gets its documented answer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccr_core::*;
use ccr_daemon::clock::ManualClock;
use ccr_daemon::config::{self, DEFAULT_CONFIG};
use ccr_daemon::core_thread::{self, Options};
use ccr_daemon::journal::format;
use ccr_daemon::journal::recovery::{self, Recovered};
use ccr_daemon::journal::{write_snapshot, FsyncPolicy, Journal, JournalError, JournalMetrics, JournalOptions, Names};
use proptest::prelude::*;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ccr-journal-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn setup() -> (RouterConfig, Names) {
    let mut config = config::parse(DEFAULT_CONFIG).expect("example config");
    config.router.explain = true;
    (config.router.clone(), Names::of(&config.catalog))
}

/// No snapshot but the first: the whole history stays replayable.
fn keep_everything() -> JournalOptions {
    JournalOptions {
        fsync: FsyncPolicy::Never,
        snapshot_interval: Duration::from_secs(86_400),
        snapshot_bytes: u64::MAX,
        segment_bytes: 0,
    }
}

/// Small zero-filled segments, each synced: several fill in a short history.
fn zero_filled_segments() -> JournalOptions {
    JournalOptions { fsync: FsyncPolicy::Always, segment_bytes: 16 << 10, ..keep_everything() }
}

/// A snapshot at nearly every batch, with rotation and pruning each time.
fn snapshot_often() -> JournalOptions {
    JournalOptions {
        fsync: FsyncPolicy::Always,
        snapshot_interval: Duration::ZERO,
        snapshot_bytes: 1,
        segment_bytes: 0,
    }
}

#[derive(Clone, Debug)]
enum Step {
    Command(Command),
    /// A command from a client's session.
    From(SessionId, Command),
    /// Move the clock on by this many milliseconds and let timers fire.
    Advance(u64),
}

/// One life of ccrd: opens the journal in `dir`, runs `steps` through the
/// routing thread, stops. Returns the final router and every event delivered.
/// Runs `steps` through a routing thread with a journal in `dir`, then
/// leaves the journal as a kill would: without the snapshot a polite stop
/// writes (most tests here are about what a crash leaves).
fn live(dir: &Path, options: JournalOptions, start: Time, steps: &[Step]) -> (Router, Vec<Event>, Time) {
    let lived = live_with(setup(), dir, options, start, steps);
    as_if_killed(dir);
    lived
}

/// Removes the snapshot a stop wrote: the newest, if it is of the last
/// record and that record is not the restart (which has a snapshot of its
/// own at start).
fn as_if_killed(dir: &Path) {
    let listing = recovery::list(dir).unwrap();
    let Some((seq, newest)) = listing.snapshots.last().cloned() else { return };
    let mut last = None;
    for (_, segment) in &listing.segments {
        let bytes = std::fs::read(segment).unwrap();
        let mut at = format::SEGMENT_HEADER_LEN.min(bytes.len());
        while let format::Decoded::Record(entry, len) = format::decode_record(&bytes[at..]) {
            at += len;
            last = Some(entry);
        }
    }
    let at_stop = last.is_some_and(|e| e.seq == seq && !matches!(e.input, format::Input::Restart { .. }));
    if listing.snapshots.len() >= 2 && at_stop {
        std::fs::remove_file(newest).unwrap();
    }
}

/// [`live`] with its own configuration and names.
fn live_with(
    (router_config, names): (RouterConfig, Names),
    dir: &Path,
    options: JournalOptions,
    start: Time,
    steps: &[Step],
) -> (Router, Vec<Event>, Time) {
    let opened =
        Journal::open(dir, &router_config, names, start, options, JournalMetrics::default(), Default::default())
            .expect("journal opens");
    let clock = ManualClock::default();
    let mut now = start.max(opened.router.now());
    clock.set(now);
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let sink = delivered.clone();
    let mut core_options = Options::new(Duration::ZERO);
    core_options.journal = Some(opened.journal);
    let (core, thread) =
        core_thread::spawn(opened.router, clock.clone(), core_options, |_, e| e, move |e| sink.lock().unwrap().push(e))
            .expect("core thread");
    for step in steps {
        match step {
            Step::Command(c) => {
                let _ = core.command_blocking(c.clone()).expect("core runs");
            }
            Step::From(session, c) => {
                let _ = core.submit(*session, c.clone()).expect("core runs").blocking_recv().expect("answered");
            }
            Step::Advance(ms) => {
                now = now + Duration::from_millis(*ms);
                clock.set(now);
                core.tick().expect("core runs");
            }
        }
    }
    core.shutdown();
    let router = thread.join().expect("core thread");
    let events = std::mem::take(&mut *delivered.lock().unwrap());
    (router, events, now)
}

fn recover(dir: &Path) -> (Recovered, Vec<Event>) {
    let mut events = Vec::new();
    let recovered = recovery::recover_observed(dir, &mut |e| events.push(e)).expect("recovers").expect("not empty");
    (recovered, events)
}

/// The full state, less the clock (which the live core also moves when no
/// timer was due, without anything to journal).
fn state(router: &Router) -> Snapshot {
    let mut s = router.snapshot();
    s.now = Time::ZERO;
    s
}

fn spec(id: u64, queue: u16, tier: u8, skill: u16, min: u8, language: Option<u16>) -> ContactSpec {
    ContactSpec {
        id: ContactId(id),
        channel: Channel::Voice,
        queue: QueueId(queue),
        tier: TierId(tier),
        skills: SkillReqs::from_slice(&[SkillReq { skill: SkillId(skill), min_proficiency: min }]),
        languages: language.map(LanguageId).into_iter().collect(),
        preferred_agents: vec![],
        context: vec![("case".into(), format!("c{id}"))],
    }
}

fn step() -> impl Strategy<Value = Step> {
    let agent = || (0u64..6).prop_map(AgentId);
    let contact = || (0u64..30).prop_map(ContactId);
    let offer = || (1u64..40).prop_map(OfferId);
    prop_oneof![
        3 => (agent(), prop::collection::vec((0u16..5, 1u8..=10), 1..4), prop::option::of(0u16..3), any::<bool>(), 1u8..3)
            .prop_map(|(agent, mut skills, language, ready, chats)| {
                skills.sort_unstable();
                skills.dedup_by_key(|s| s.0);
                let profile = AgentProfile {
                    skills: skills.into_iter().map(|(s, p)| (SkillId(s), p)).collect(),
                    languages: language.map(LanguageId).into_iter().collect(),
                    capacity: [1, chats, 0],
                };
                Step::Command(Command::AgentLogin { agent, profile, ready })
            }),
        6 => (0u64..30, 0u16..3, 0u8..3, 0u16..5, 1u8..=8, prop::option::of(0u16..3))
            .prop_map(|(id, q, t, s, m, l)| Step::Command(Command::Enqueue(spec(id, q, t, s, m, l)))),
        1 => (0u64..30, 0u16..3, 100u64..5_000).prop_map(|(id, q, due)| Step::Command(Command::ScheduleCallback {
            spec: spec(id, q, 0, 0, 1, None),
            due: Time::from_millis(due),
            deadline: Time::from_millis(due + 60_000),
        })),
        4 => (agent(), offer()).prop_map(|(agent, offer)| Step::Command(Command::Accept { agent, offer })),
        1 => (agent(), offer()).prop_map(|(agent, offer)| Step::Command(Command::Reject { agent, offer })),
        3 => (agent(), contact()).prop_map(|(agent, contact)| Step::Command(Command::Complete { agent, contact })),
        1 => (agent(), contact()).prop_map(|(agent, contact)| Step::Command(Command::EndWrapUp { agent, contact })),
        2 => contact().prop_map(|contact| Step::Command(Command::Abandon { contact })),
        1 => (contact(), 0u16..3, 0u16..5).prop_map(|(contact, q, s)| Step::Command(Command::Transfer(TransferSpec {
            contact,
            queue: QueueId(q),
            skills: SkillReqs::from_slice(&[SkillReq { skill: SkillId(s), min_proficiency: 1 }]),
            languages: Languages::new(),
            tier: None,
            context: vec![("transferred".into(), "yes".into())],
        }))),
        2 => agent().prop_map(|agent| Step::Command(Command::AgentReady { agent })),
        1 => agent().prop_map(|agent| Step::Command(Command::AgentNotReady { agent, reason: NotReadyReason::Break })),
        1 => agent().prop_map(|agent| Step::Command(Command::AgentLogout { agent })),
        1 => agent().prop_map(|agent| Step::Command(Command::AgentDisconnected { agent })),
        1 => (5u64..40).prop_map(|secs| {
            let (mut cfg, _) = setup();
            cfg.queues[0].offer_timeout = Duration::from_secs(secs);
            Step::Command(Command::Reconfigure(Box::new(cfg)))
        }),
        4 => prop_oneof![1u64..2_000, 2_000u64..90_000].prop_map(Step::Advance),
        2 => (1u64..8).prop_map(|s| Step::Command(Command::OpenSession { session: SessionId(s) })),
        1 => (1u64..8).prop_map(|s| Step::Command(Command::LoseSession { session: SessionId(s) })),
        3 => (1u64..8, 0u64..30, 0u16..3, 0u16..5).prop_map(|(s, id, q, skill)| {
            Step::From(SessionId(s), Command::Enqueue(spec(id, q, 1, skill, 1, None)))
        }),
        2 => (1u64..8, agent(), 0u16..5).prop_map(|(s, agent, skill)| {
            let profile = AgentProfile { skills: vec![(SkillId(skill), 5)], languages: vec![], capacity: [1, 0, 0] };
            Step::From(SessionId(s), Command::AgentLogin { agent, profile, ready: true })
        }),
        1 => (1u64..8, contact()).prop_map(|(s, contact)| Step::From(SessionId(s), Command::ClaimContact { contact })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Replaying the journal from the first snapshot makes the same decisions,
    /// event for event, and ends in the same state.
    #[test]
    fn replay_makes_the_same_decisions_as_the_live_core(steps in prop::collection::vec(step(), 1..120)) {
        let dir = temp_dir();
        let (router, delivered, _) = live(&dir, keep_everything(), Time::ZERO, &steps);
        let (recovered, replayed) = recover(&dir);
        prop_assert_eq!(&replayed, &delivered);
        prop_assert_eq!(state(&recovered.router), state(&router));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// With snapshots, rotation and pruning at nearly every batch, recovery
    /// from the newest snapshot and the tail ends in the same state.
    #[test]
    fn recovery_from_a_snapshot_and_the_tail_ends_in_the_live_state(steps in prop::collection::vec(step(), 1..120)) {
        let dir = temp_dir();
        let (router, _, _) = live(&dir, snapshot_often(), Time::ZERO, &steps);
        let (recovered, _) = recover(&dir);
        prop_assert_eq!(state(&recovered.router), state(&router));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A restart in the middle (ringing offers withdrawn, agents not ready)
    /// is journaled like any input: a later recovery goes through it again.
    #[test]
    fn recovery_replays_through_a_restart(
        first in prop::collection::vec(step(), 1..60),
        second in prop::collection::vec(step(), 1..60),
    ) {
        let dir = temp_dir();
        let (_, _, now) = live(&dir, keep_everything(), Time::ZERO, &first);
        let (router, delivered, _) = live(&dir, keep_everything(), now, &second);
        let (recovered, _) = recover(&dir);
        prop_assert_eq!(state(&recovered.router), state(&router));
        // Without the restart's snapshot, recovery goes through the restart record.
        for newer in &snapshots(&dir)[1..] {
            std::fs::remove_file(newer).unwrap();
        }
        let (recovered, replayed) = recover(&dir);
        prop_assert_eq!(state(&recovered.router), state(&router));
        prop_assert!(replayed.ends_with(&delivered), "the second life's decisions are replayed as they were made");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A short, fixed history: agents, contacts, offers, timers.
fn history() -> Vec<Step> {
    let profile = |s: u16| AgentProfile { skills: vec![(SkillId(s), 7)], languages: vec![], capacity: [1, 0, 0] };
    let mut steps = Vec::new();
    for a in 0..4 {
        steps.push(Step::Command(Command::AgentLogin {
            agent: AgentId(a),
            profile: profile(a as u16 % 2),
            ready: true,
        }));
    }
    for c in 0..40 {
        steps.push(Step::Command(Command::Enqueue(spec(c, (c % 3) as u16, (c % 3) as u8, (c % 2) as u16, 1, None))));
        steps.push(Step::Advance(300));
    }
    steps
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    recovery::list(dir).unwrap().segments.into_iter().map(|(_, p)| p).collect()
}

fn snapshots(dir: &Path) -> Vec<PathBuf> {
    recovery::list(dir).unwrap().snapshots.into_iter().map(|(_, p)| p).collect()
}

fn expect_err(dir: &Path) -> JournalError {
    match recovery::recover(dir) {
        Err(e) => e,
        Ok(_) => panic!("recovery should refuse {}", dir.display()),
    }
}

#[test]
fn a_torn_tail_is_cut_off_and_reported() {
    let dir = temp_dir();
    let (router, ..) = live(&dir, keep_everything(), Time::ZERO, &history());
    let last = segments(&dir).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    // Append half of a record, as a crash in the middle of a write leaves it.
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[42, 0, 0, 0, 1, 2, 3, 4, 5]);
    std::fs::write(&last, &bytes).unwrap();
    let (recovered, _) = recover(&dir);
    let (path, offset, why) = recovered.report.truncated.clone().expect("the tail is reported");
    assert_eq!((path, offset), (last.clone(), len));
    assert!(why.contains("ends inside a record"), "{why}");
    assert_eq!(std::fs::metadata(&last).unwrap().len(), len, "cut back to the last whole record");
    assert_eq!(state(&recovered.router), state(&router));
    // A second start finds nothing more to cut.
    let (again, _) = recover(&dir);
    assert!(again.report.truncated.is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_torn_last_record_is_dropped_and_the_rest_recovered() {
    let dir = temp_dir();
    let (_, delivered, _) = live(&dir, keep_everything(), Time::ZERO, &history());
    let (whole, _) = recover(&dir);
    let last = segments(&dir).pop().unwrap();
    let bytes = std::fs::read(&last).unwrap();
    std::fs::write(&last, &bytes[..bytes.len() - 3]).unwrap();
    let (recovered, replayed) = recover(&dir);
    assert!(recovered.report.truncated.is_some());
    assert_eq!(recovered.last_seq, whole.last_seq - 1, "only the torn record is lost");
    assert!(delivered.starts_with(&replayed), "what is left replays as it was");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_flipped_bit_in_the_middle_stops_start_up_naming_file_and_offset() {
    let dir = temp_dir();
    live(&dir, keep_everything(), Time::ZERO, &history());
    let last = segments(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&last, &bytes).unwrap();
    let error = expect_err(&dir);
    assert!(matches!(error, JournalError::Corrupt { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains(&last.display().to_string()) && message.contains("not at the end"), "{message}");
    assert_eq!(std::fs::read(&last).unwrap(), bytes, "nothing was cut");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Enough commands to fill several 16 KiB segments.
fn long_history() -> Vec<Step> {
    let mut steps = history();
    for c in 100..1_600 {
        steps.push(Step::Command(Command::Enqueue(spec(c, 0, 0, 0, 1, None))));
        steps.push(Step::Command(Command::Abandon { contact: ContactId(c) }));
    }
    steps
}

/// A segment written into zero-filled space is exactly that space's size.
fn zero_filled(path: &Path) -> bool {
    std::fs::metadata(path).unwrap().len() == 16 << 10
}

#[test]
fn zero_filled_segments_are_written_into_and_recover_whole() {
    let dir = temp_dir();
    let (router, delivered, _) = live(&dir, zero_filled_segments(), Time::ZERO, &long_history());
    let all = segments(&dir);
    assert!(all.len() >= 3, "segments rotate as they fill: {all:?}");
    assert!(all.iter().filter(|p| zero_filled(p)).count() >= 2, "records went into zero-filled space: {all:?}");
    assert!(!dir.join("next-segment.tmp").exists(), "the unused spare is removed at shutdown");
    let (recovered, replayed) = recover(&dir);
    assert!(recovered.report.truncated.is_none(), "the zeros are not mistaken for a torn tail");
    let report = ccr_daemon::journal::inspect::inspect(&dir).unwrap().text;
    assert!(report.contains("zero-filled, not yet written") && !report.contains("damaged"), "{report}");
    assert_eq!(replayed, delivered);
    assert_eq!(state(&recovered.router), state(&router));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_record_zeroed_in_a_zero_filled_segment_stops_start_up() {
    let dir = temp_dir();
    live(&dir, zero_filled_segments(), Time::ZERO, &long_history());
    let full = segments(&dir).into_iter().find(|p| zero_filled(p)).expect("a zero-filled segment");
    let mut bytes = std::fs::read(&full).unwrap();
    // Zero the second record: the records after it are still there.
    let first_len = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    let second = 16 + 8 + first_len;
    bytes[second..second + 8].fill(0);
    std::fs::write(&full, &bytes).unwrap();
    let error = expect_err(&dir);
    assert!(matches!(error, JournalError::Corrupt { offset, .. } if offset == second as u64), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_torn_record_in_a_zero_filled_segment_is_cut_off() {
    let dir = temp_dir();
    let (_, delivered, _) = live(&dir, zero_filled_segments(), Time::ZERO, &long_history());
    let (whole, _) = recover(&dir);
    // Cut the last record short, as a crash in the middle of its write would.
    let last = segments(&dir).pop().unwrap();
    assert!(zero_filled(&last));
    let mut bytes = std::fs::read(&last).unwrap();
    let end = bytes.len() - bytes.iter().rev().take_while(|&&b| b == 0).count();
    bytes[end - 5..end].fill(0);
    std::fs::write(&last, &bytes).unwrap();
    let (recovered, replayed) = recover(&dir);
    assert!(recovered.report.truncated.is_some(), "the torn record is reported");
    assert!(recovered.last_seq < whole.last_seq);
    assert!(delivered.starts_with(&replayed), "what is left replays as it was");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Power lost before a sync: in the last segment, a sector of the records
/// never reached the disk while later ones did. None of them was
/// acknowledged (no sync covering them completed), so this is a torn tail.
#[test]
fn a_sector_lost_with_the_power_in_the_last_segment_is_cut_off_as_never_acknowledged() {
    let dir = temp_dir();
    let (_, delivered, _) = live(&dir, zero_filled_segments(), Time::ZERO, &long_history());
    // Make a full zero-filled segment the journal's last, as if the power
    // went while it was written.
    let all = segments(&dir);
    let at = all.iter().rposition(|p| zero_filled(p)).expect("a zero-filled segment") - 1;
    assert!(zero_filled(&all[at]), "two zero-filled segments: {all:?}");
    for later in &all[at + 1..] {
        std::fs::remove_file(later).unwrap();
    }
    let last = &all[at];
    let mut bytes = std::fs::read(last).unwrap();
    let sector = (bytes.len() / 2).next_multiple_of(512);
    bytes[sector..sector + 512].fill(0);
    std::fs::write(last, &bytes).unwrap();
    let (recovered, replayed) = recover(&dir);
    let (path, offset, why) = recovered.report.truncated.clone().expect("the lost sector ends the journal");
    assert_eq!(&path, last);
    assert!(offset <= sector as u64 && offset + 200 > sector as u64, "cut at the record the sector hit: {offset}");
    assert!(why.contains("never acknowledged"), "{why}");
    assert_eq!(std::fs::metadata(last).unwrap().len(), offset);
    assert!(delivered.starts_with(&replayed), "what is left replays as it was");
    // The same sector blanked in a segment that is not the last is damage.
    let dir2 = temp_dir();
    live(&dir2, zero_filled_segments(), Time::ZERO, &long_history());
    let all = segments(&dir2);
    let middle = all[..all.len() - 1].iter().find(|p| zero_filled(p)).expect("a zero-filled segment before the last");
    let mut bytes = std::fs::read(middle).unwrap();
    bytes[sector..sector + 512].fill(0);
    std::fs::write(middle, &bytes).unwrap();
    assert!(matches!(expect_err(&dir2), JournalError::Corrupt { .. }));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

#[test]
fn an_empty_segment_left_by_a_crash_is_removed() {
    let dir = temp_dir();
    let (router, ..) = live(&dir, keep_everything(), Time::ZERO, &history());
    let empty = dir.join(format!("journal-{:020}.wal", 1_000_000));
    std::fs::write(&empty, b"").unwrap();
    let (recovered, _) = recover(&dir);
    assert_eq!(recovered.report.removed_empty, vec![empty.clone()]);
    assert!(!empty.exists());
    assert_eq!(state(&recovered.router), state(&router));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_empty_directory_starts_fresh() {
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    assert!(recovery::recover(&dir).unwrap().is_none());
    let (router, ..) = live(&dir, keep_everything(), Time::ZERO, &[]);
    assert_eq!(router.contact_count(), 0);
    assert_eq!(snapshots(&dir).len(), 1, "a fresh journal starts with the snapshot of the empty router");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_snapshot_stops_start_up() {
    let dir = temp_dir();
    live(&dir, keep_everything(), Time::ZERO, &history());
    for s in snapshots(&dir) {
        std::fs::remove_file(s).unwrap();
    }
    let error = expect_err(&dir);
    assert!(matches!(error, JournalError::NoSnapshot { .. }), "{error}");
    assert!(error.to_string().contains("no usable snapshot"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_snapshot_of_an_earlier_version_is_named_as_such_and_not_used() {
    let dir = temp_dir();
    let (_, _, now) = live(&dir, keep_everything(), Time::ZERO, &history());
    let (router, ..) = live(&dir, keep_everything(), now, &history()[..4]);
    let all = snapshots(&dir);
    let newest = all.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    bytes[..8].copy_from_slice(b"CCRSNP01");
    std::fs::write(newest, &bytes).unwrap();
    let (recovered, _) = recover(&dir);
    let unusable = &recovered.report.unusable_snapshots;
    assert_eq!(unusable.len(), 1);
    assert!(unusable[0].1.contains("earlier ccrd version"), "{unusable:?}");
    assert_eq!(state(&recovered.router), state(&router), "recovered from the older snapshot and the journal");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_the_older_one() {
    let dir = temp_dir();
    // Two lives: the restart takes a second snapshot in the background.
    let (_, _, now) = live(&dir, keep_everything(), Time::ZERO, &history());
    let (router, ..) = live(&dir, keep_everything(), now, &history()[..4]);
    let all = snapshots(&dir);
    assert_eq!(all.len(), 2, "the restart snapshot was written: {all:?}");
    let newest = all.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 1;
    std::fs::write(newest, &bytes).unwrap();
    let (recovered, _) = recover(&dir);
    assert_eq!(recovered.report.unusable_snapshots.len(), 1);
    assert!(recovered.report.unusable_snapshots[0].1.contains("checksum"), "{:?}", recovered.report.unusable_snapshots);
    assert_eq!(recovered.report.snapshot.as_ref().map(|(seq, _)| *seq), Some(0));
    assert_eq!(state(&recovered.router), state(&router));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_restart_withdraws_ringing_offers_and_waits_for_the_desktops() {
    let dir = temp_dir();
    let profile = AgentProfile { skills: vec![(SkillId(0), 7)], languages: vec![], capacity: [1, 0, 0] };
    let steps = vec![
        Step::Command(Command::AgentLogin { agent: AgentId(1), profile, ready: true }),
        Step::Command(Command::Enqueue(spec(5, 0, 0, 0, 1, None))),
    ];
    let (before, delivered, now) = live(&dir, keep_everything(), Time::from_secs(1_000), &steps);
    assert!(delivered.iter().any(|e| matches!(e, Event::Offered { contact: ContactId(5), .. })));
    assert_eq!(before.pending_offers(), 1);
    let (after, delivered, _) = live(&dir, keep_everything(), now + Duration::from_secs(5), &[]);
    assert_eq!(after.pending_offers(), 0, "the offer rang on a desktop that is gone");
    assert_eq!(after.agent_state(AgentId(1)), AgentState::NotReady(NotReadyReason::Restart));
    assert!(delivered.is_empty(), "nothing is offered until the desktop comes back");
    let contact = after.snapshot().contacts.into_iter().find(|c| c.id == ContactId(5)).expect("contact kept");
    assert_eq!(contact.arrival, Time::from_secs(1_000), "the original arrival time is kept");
    assert!(matches!(contact.state, ContactViewState::Waiting { .. }), "{:?}", contact.state);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_configuration_that_renumbers_skills_is_refused() {
    let dir = temp_dir();
    live(&dir, keep_everything(), Time::ZERO, &history()[..2]);
    let (router_config, mut names) = setup();
    names.skills.swap(0, 1);
    let error = match Journal::open(
        &dir,
        &router_config,
        names,
        Time::ZERO,
        keep_everything(),
        JournalMetrics::default(),
        Default::default(),
    ) {
        Err(e) => e,
        Ok(_) => panic!("renumbered skills must be refused"),
    };
    assert!(error.to_string().contains("skills[0]"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_tells_what_the_journal_holds_and_changes_nothing() {
    let dir = temp_dir();
    live(&dir, keep_everything(), Time::from_secs(1_700_000_000), &history());
    let last = segments(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[9, 0, 0, 0, 1]);
    std::fs::write(&last, &bytes).unwrap();
    let inspection = ccr_daemon::journal::inspect::inspect(&dir).unwrap();
    assert!(inspection.damage.is_empty(), "a torn tail of the last segment is no damage: {:?}", inspection.damage);
    let report = inspection.text;
    assert!(report.contains("snapshots (1):") && report.contains("ok: 0 agents, 0 contacts"), "{report}");
    assert!(report.contains("44 records  records 1..=44"), "{report}");
    assert!(report.contains("enqueue              40"), "{report}");
    assert!(report.contains("agent_login          4"), "{report}");
    assert!(report.contains("last sequence number 44"), "{report}");
    assert!(report.contains("torn tail"), "{report}");
    assert!(report.contains("2023-11-14T22:13:20"), "times are shown as UTC: {report}");
    assert_eq!(std::fs::read(&last).unwrap(), bytes, "inspect cuts nothing");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Collects what ccrd logs while `f` runs.
fn logs_of(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn start_up_logs_each_repair_it_makes() {
    let dir = temp_dir();
    let (_, _, now) = live(&dir, keep_everything(), Time::ZERO, &history());
    live(&dir, keep_everything(), now, &[]);
    // A torn tail, an empty segment left by a crash, a damaged newest snapshot.
    let last = segments(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[7, 0, 0, 0]);
    std::fs::write(&last, &bytes).unwrap();
    std::fs::write(dir.join(format!("journal-{:020}.wal", 1_000_000)), b"").unwrap();
    let newest = snapshots(&dir).pop().unwrap();
    let mut snapshot = std::fs::read(&newest).unwrap();
    let at = snapshot.len() - 1;
    snapshot[at] ^= 0x40;
    std::fs::write(&newest, &snapshot).unwrap();
    let (router_config, names) = setup();
    let logs = logs_of(|| {
        Journal::open(
            &dir,
            &router_config,
            names,
            now,
            keep_everything(),
            JournalMetrics::default(),
            Default::default(),
        )
        .expect("recovers")
        .journal
        .close();
    });
    let line =
        |needle: &str| logs.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in\n{logs}"));
    assert!(line("snapshot unusable").contains("WARN") && line("snapshot unusable").contains("checksum"), "{logs}");
    assert!(line("removed an empty journal segment").contains(&format!("{:020}", 1_000_000)), "{logs}");
    assert!(line("journal tail torn by a crash").contains("ends inside a record"), "{logs}");
    assert!(line("state recovered from the journal").contains("replayed="), "{logs}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two writers on one directory leave overlapping segments: the start
/// refuses them instead of silently dropping one history, and `journal
/// inspect` names the overlap.
#[test]
fn overlapping_segments_from_two_writers_are_refused_and_inspect_says_forked() {
    use ccr_daemon::journal::format::{encode_record, segment_header, segment_path, InputRef};
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let (router_config, names) = setup();
    let router = Router::new(router_config).unwrap();
    ccr_daemon::journal::write_snapshot(&dir, 0, Time::ZERO, &names, &router).unwrap();
    let segment = |first: u64, seqs: std::ops::RangeInclusive<u64>| {
        let mut bytes = segment_header(first).to_vec();
        for seq in seqs {
            encode_record(&mut bytes, seq, Time::from_secs(seq), InputRef::Timers);
        }
        std::fs::write(segment_path(&dir, first), bytes).unwrap();
    };
    segment(1, 1..=3);
    segment(2, 2..=4);
    match recovery::recover(&dir) {
        Err(JournalError::Forked { seq: 2, .. }) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a forked journal recovered"),
    }
    let inspection = ccr_daemon::journal::inspect::inspect(&dir).unwrap();
    assert!(inspection.text.contains("FORKED"), "{}", inspection.text);
    assert_eq!(inspection.damage, vec!["segments overlap (forked)".to_owned()]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ccrd journal inspect` exits non-zero on a path that is not there and
/// on a damaged journal (a record altered in place), after its report.
#[test]
fn journal_inspect_exits_non_zero_on_a_missing_or_damaged_journal() {
    let inspect = |dir: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ccrd")).args(["journal", "inspect"]).arg(dir).output();
        let out = out.unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let dir = temp_dir();
    let (code, _, stderr) = inspect(&dir.join("nowhere"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no such directory"), "{stderr}");
    live(&dir, keep_everything(), Time::from_secs(1_700_000_000), &history());
    assert_eq!(inspect(&dir).0, Some(0), "a sound journal");
    let last = segments(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&last, &bytes).unwrap();
    let (code, stdout, stderr) = inspect(&dir);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("damaged record at byte"), "the report first: {stdout}");
    assert!(stderr.contains("the journal is damaged: segment"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Snapshots come from the replica, which applies every durable record
/// after the routing thread: with a snapshot due after every batch, the
/// newest holds the state after the last record, and recovery from it alone
/// (nothing left to replay) is the live state.
#[test]
fn the_replica_snapshots_the_state_after_the_last_record() {
    let dir = temp_dir();
    let (router, _, _) = live_with(setup(), &dir, snapshot_often(), Time::ZERO, &history());
    let (recovered, replayed) = recover(&dir);
    let (seq, _) = recovered.report.snapshot.clone().expect("from a snapshot");
    assert!(seq > 40, "a snapshot after the history's records, not the first one: {seq}");
    assert_eq!((seq, recovered.report.replayed), (recovered.last_seq, 0), "nothing left to replay");
    assert!(replayed.is_empty());
    assert_eq!(state(&recovered.router), state(&router));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The configuration of the checked-in journal: its own, so that a change
/// to the example configuration does not touch it.
const FIXTURE_CONFIG: &str = r#"
skills = ["billing", "repair"]
languages = ["en", "zh"]
[routing]
explain = true
[[queues]]
name = "sales"
offer_timeout = "20s"
[[queues.relaxation]]
after = "10s"
next_language = true
[[queues]]
name = "support"
wrap_up = "5s"
"#;

/// Where this version's journal is checked in, named by its formats.
fn fixture_dir() -> PathBuf {
    let magic = |m: &[u8; 8]| String::from_utf8_lossy(m).to_lowercase();
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!(
        "{}-{}",
        magic(format::SEGMENT_MAGIC),
        magic(format::SNAPSHOT_MAGIC)
    ))
}

fn fixture_setup() -> (RouterConfig, Names) {
    let config = config::parse(FIXTURE_CONFIG).expect("fixture config");
    (config.router.clone(), Names::of(&config.catalog))
}

/// Logins from two sessions, contacts, offers accepted and ringing out, a
/// callback, a transfer, a session lost and its grace running, timers.
fn fixture_history() -> Vec<Step> {
    let profile = |s: u16, l: u16| AgentProfile {
        skills: vec![(SkillId(s), 7)],
        languages: vec![LanguageId(l)],
        capacity: [1, 2, 0],
    };
    let mut steps = vec![
        Step::Command(Command::OpenSession { session: SessionId(1) }),
        Step::Command(Command::OpenSession { session: SessionId(2) }),
    ];
    for a in 1..=4u64 {
        let login =
            Command::AgentLogin { agent: AgentId(a), profile: profile((a % 2) as u16, (a % 2) as u16), ready: true };
        steps.push(Step::From(SessionId(1 + a % 2), login));
    }
    for c in 1..=12u64 {
        let mut spec = spec(c, (c % 2) as u16, 0, (c % 2) as u16, 1, Some((c % 3) as u16 % 2));
        spec.context = vec![("call-id".into(), format!("a84b4c76e66710@pc33.example.com-{c}"))];
        steps.push(Step::From(SessionId(1), Command::Enqueue(spec)));
        steps.push(Step::Advance(700));
    }
    steps.push(Step::Command(Command::Accept { agent: AgentId(1), offer: OfferId(1) }));
    steps.push(Step::Command(Command::ScheduleCallback {
        spec: spec(40, 1, 0, 1, 1, None),
        due: Time::from_secs(60),
        deadline: Time::from_secs(120),
    }));
    steps.push(Step::Command(Command::Transfer(TransferSpec {
        contact: ContactId(12),
        queue: QueueId(1),
        skills: SkillReqs::from_slice(&[SkillReq { skill: SkillId(0), min_proficiency: 1 }]),
        languages: Languages::new(),
        tier: None,
        context: vec![("transferred".into(), "yes".into())],
    })));
    steps.push(Step::Command(Command::LoseSession { session: SessionId(2) }));
    steps.push(Step::Advance(25_000));
    steps
}

/// A journal and snapshot written by each format version are checked in
/// under `tests/fixtures/<segment format>-<snapshot format>`; every later
/// build must read each of them back to the state the same history gives
/// live: a new version starts on an old version's data directory.
#[test]
fn every_checked_in_journal_recovers_to_the_live_state() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(&fixtures).unwrap().map(|e| e.unwrap().path()).collect();
    versions.sort();
    assert!(versions.contains(&fixture_dir()), "no fixture for this version's formats: write it (see below)");
    assert!(versions.len() >= 2, "the fixtures of earlier versions are kept: {versions:?}");
    let scratch = temp_dir();
    let (router, _, _) = live_with(fixture_setup(), &scratch, keep_everything(), Time::ZERO, &fixture_history());
    for fixture in &versions {
        // From the newest snapshot (the state after the history), then from
        // the first (empty) one and every record.
        for from_the_start in [false, true] {
            let dir = temp_dir();
            std::fs::create_dir_all(&dir).unwrap();
            let files: Vec<PathBuf> = std::fs::read_dir(fixture).unwrap().map(|e| e.unwrap().path()).collect();
            let newest = snapshots(fixture).pop().unwrap();
            for path in files.iter().filter(|p| !(from_the_start && **p == newest)) {
                std::fs::copy(path, dir.join(path.file_name().unwrap())).unwrap();
            }
            let (recovered, _) = recover(&dir);
            let replayed = recovered.report.replayed;
            assert_eq!(
                replayed > 20,
                from_the_start,
                "{}: replayed {replayed} records; {:?}",
                fixture.display(),
                recovered.report.unusable_snapshots
            );
            assert_eq!(
                state(&recovered.router),
                state(&router),
                "{}, recovered from the start: {from_the_start}",
                fixture.display()
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// This build writes, for the fixture's history, exactly the bytes checked
/// in for its format versions: an encoding that changes without a new
/// version number fails here. (A new version adds a module in
/// `journal/formats`, bumps the magic and writes its fixture beside the old
/// ones with `write_this_versions_fixture`.)
#[test]
fn this_version_writes_the_checked_in_bytes() {
    let dir = temp_dir();
    write_fixture(&dir);
    let fixture = fixture_dir();
    let mut names: Vec<_> = std::fs::read_dir(&fixture).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    let mut written: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    written.sort();
    assert_eq!(written, names, "the files written");
    for name in names {
        let expected = std::fs::read(fixture.join(&name)).unwrap();
        let actual = std::fs::read(dir.join(&name)).unwrap();
        assert!(
            actual == expected,
            "{name:?} differs from the checked-in one ({} bytes written, {} checked in): \
             an encoding changed without a new format version",
            actual.len(),
            expected.len()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn write_fixture(dir: &Path) {
    let (router, _, now) = live_with(fixture_setup(), dir, keep_everything(), Time::ZERO, &fixture_history());
    as_if_killed(dir);
    let last = recovery::recover(dir).unwrap().unwrap().last_seq;
    write_snapshot(dir, last, now, &fixture_setup().1, &router).unwrap();
}

/// Writes this version's fixture (run by hand when a format version
/// changes: `cargo test -p ccr-daemon --test journal -- --ignored`).
#[test]
#[ignore]
fn write_this_versions_fixture() {
    let fixture = fixture_dir();
    let _ = std::fs::remove_dir_all(&fixture);
    std::fs::create_dir_all(&fixture).unwrap();
    write_fixture(&fixture);
}

/// A polite stop leaves a snapshot of everything: the next start, of this
/// version or a later one with other rules, replays nothing.
#[test]
fn a_polite_stop_leaves_a_snapshot_and_nothing_to_replay() {
    let dir = temp_dir();
    let (router, ..) = live_with(setup(), &dir, keep_everything(), Time::ZERO, &history());
    let (recovered, replayed) = recover(&dir);
    assert_eq!(recovered.report.replayed, 0, "replayed {:?}", recovered.report);
    assert!(replayed.is_empty());
    assert_eq!(recovered.report.snapshot.as_ref().map(|(seq, _)| *seq), Some(recovered.last_seq));
    assert_eq!(state(&recovered.router), state(&router));
    std::fs::remove_dir_all(&dir).unwrap();
}
