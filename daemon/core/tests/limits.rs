//! What clients can make the core hold: contacts in total (callbacks
//! included) and each contact's context. A refusal changes nothing.

mod common;

use common::*;

use ccr_core::*;

fn harness(max_contacts: u32) -> Harness {
    let mut cfg = Harness::default_config();
    cfg.max_contacts = max_contacts;
    cfg.max_context_entries = 3;
    cfg.max_context_bytes = 20;
    Harness::new(cfg)
}

fn callback(id: u64, due: Time) -> Command {
    Command::ScheduleCallback { spec: contact(id, Q0, GOLD, &[(BILLING, 1)], &[]), due, deadline: due + secs(60) }
}

fn with_context(id: u64, context: &[(&str, &str)]) -> ContactSpec {
    let mut spec = contact(id, Q0, GOLD, &[(BILLING, 1)], &[]);
    spec.context = context.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    spec
}

#[test]
fn contacts_past_the_limit_are_refused_callbacks_included() {
    let mut h = harness(3);
    h.ok(Command::Enqueue(contact(1, Q0, GOLD, &[(BILLING, 1)], &[])));
    h.ok(Command::Enqueue(contact(2, Q0, GOLD, &[(BILLING, 1)], &[])));
    let tomorrow = h.now + secs(86_400);
    h.ok(callback(3, tomorrow));
    let before = h.router.snapshot();
    for command in [Command::Enqueue(contact(4, Q0, GOLD, &[(BILLING, 1)], &[])), callback(5, tomorrow)] {
        assert_eq!(h.cmd(command), Err(CommandError::TooManyContacts { limit: 3 }));
    }
    assert_eq!(h.router.snapshot(), before, "a refusal changes nothing");
    // One leaves: one more is taken.
    h.ok(Command::Abandon { contact: ContactId(1) });
    h.ok(Command::Enqueue(contact(4, Q0, GOLD, &[(BILLING, 1)], &[])));
    assert_eq!(h.router.contact_count(), 3);
}

#[test]
fn a_context_over_its_entries_or_bytes_is_refused() {
    let mut h = harness(10);
    h.ok(Command::Enqueue(with_context(1, &[("a", "1"), ("b", "2"), ("c", "3")])));
    let too_many = h.cmd(Command::Enqueue(with_context(2, &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")])));
    assert!(matches!(too_many, Err(CommandError::ContextTooLarge { entries: 4, .. })), "{too_many:?}");
    let too_big = h.cmd(Command::Enqueue(with_context(3, &[("call-id", "0123456789abcdefg")])));
    assert!(matches!(too_big, Err(CommandError::ContextTooLarge { bytes: 24, max_bytes: 20, .. })), "{too_big:?}");
    assert_eq!(h.router.contact_count(), 1);
}

#[test]
fn a_transfer_that_would_grow_the_context_past_its_limit_is_refused_and_changes_nothing() {
    let mut h = harness(10);
    h.ok(Command::Enqueue(with_context(1, &[("a", "1"), ("b", "2")])));
    let transfer = |context: &[(&str, &str)]| {
        Command::Transfer(TransferSpec {
            contact: ContactId(1),
            queue: Q1,
            skills: SkillReqs::from_slice(&[SkillReq { skill: BILLING, min_proficiency: 1 }]),
            languages: Languages::new(),
            tier: None,
            context: context.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        })
    };
    let before = h.router.snapshot();
    // Two new keys would make four entries.
    let refused = h.cmd(transfer(&[("c", "3"), ("d", "4")]));
    assert!(matches!(refused, Err(CommandError::ContextTooLarge { entries: 4, .. })), "{refused:?}");
    assert_eq!(h.router.snapshot(), before);
    // Replacing a value and adding one key stays within both limits.
    h.ok(transfer(&[("a", "one"), ("c", "3")]));
    let context = h.router.contact_context(ContactId(1)).unwrap().to_vec();
    let expected: Vec<(String, String)> =
        [("a", "one"), ("b", "2"), ("c", "3")].iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    assert_eq!(context, expected);
}
