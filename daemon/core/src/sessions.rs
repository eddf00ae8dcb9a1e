//! Sessions: which client connection answers for each contact and agent.
//!
//! A gateway owns the contacts it enqueued (the media is on its side); a
//! desktop owns the agents it logged in. When a connection is lost, its
//! session is *lost*: its agents stop taking offers, and everything it owns
//! waits out the grace for another session to name it and so claim it. What
//! is still unclaimed when the grace ends goes: contacts are abandoned (a
//! scheduled callback, promised to the customer, passes to the centre
//! instead), agents are logged out. Ownership moves with every accepted call
//! that names the contact or agent, so the newest session that acted for it
//! answers for it, and the loss of a session that no longer owns anything
//! changes nothing.
//!
//! Each session chains its contacts and its agents through per-slot links
//! (prev, next), so that taking ownership, giving it up and listing a lost
//! session's belongings cost no search and no hash. The links live beside
//! the records, in chunks that never move, not in them: the contact record
//! is laid out for the routing searches, which never read ownership.
//! [`SessionId::LOCAL`] keeps no chain: it is never lost.

use crate::hashing::KeyedMap;
use crate::slab::Slot;

use crate::ids::SessionId;
use crate::time::Time;

const NO_SLOT: u32 = u32::MAX;
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Whose chain: contacts and agents have slots of their own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Contact,
    Agent,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
struct Link {
    owner: SessionId,
    prev: u32,
    next: u32,
}

const UNOWNED: Link = Link { owner: SessionId::LOCAL, prev: NO_SLOT, next: NO_SLOT };

/// One link per slot, in chunks allocated whole: growing never copies.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct Links {
    chunks: Vec<Box<[Link]>>,
}

impl Links {
    fn get(&self, slot: u32) -> Link {
        let (chunk, place) = ((slot >> CHUNK_BITS) as usize, slot as usize % CHUNK);
        self.chunks.get(chunk).map_or(UNOWNED, |c| c[place])
    }

    fn get_mut(&mut self, slot: u32) -> &mut Link {
        let (chunk, place) = ((slot >> CHUNK_BITS) as usize, slot as usize % CHUNK);
        while self.chunks.len() <= chunk {
            self.chunks.push(vec![UNOWNED; CHUNK].into_boxed_slice());
        }
        &mut self.chunks[chunk][place]
    }
}

/// Whether a session's connection is there.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum SessionState {
    Live,
    /// The connection is gone; what the session still owns when `until`
    /// comes is abandoned or logged out.
    Lost {
        until: Time,
    },
}

/// Sessions by state, for health reports: after a restart, `in_grace` is
/// the gateways and desktops that have not come back yet.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SessionCounts {
    pub live: usize,
    pub in_grace: usize,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Session {
    state: SessionState,
    /// First slot of each chain ([`NO_SLOT`]: none).
    contacts: u32,
    agents: u32,
}

#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Sessions {
    /// Keyed by ids the driver hands out, not clients: a fast hash is safe.
    table: KeyedMap<SessionId, Session>,
    /// The highest id opened so far: ids are never reused.
    last_opened: SessionId,
    contact_links: Links,
    agent_links: Links,
}

/// Why a session cannot act.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Closed {
    /// Never opened, or lost and gone.
    Unknown,
    Lost,
}

impl Sessions {
    /// Whether no session but the centre's exists (then nothing is owned).
    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub(crate) fn open(&mut self, session: SessionId) -> bool {
        if session <= self.last_opened {
            return false;
        }
        self.last_opened = session;
        self.table.insert(session, Session { state: SessionState::Live, contacts: NO_SLOT, agents: NO_SLOT });
        true
    }

    /// Puts back a session as a snapshot had it (owning nothing yet: its
    /// records are adopted after), with `last` the highest id ever opened.
    pub(crate) fn restore(&mut self, session: SessionId, state: SessionState, last: SessionId) -> bool {
        if session == SessionId::LOCAL || session > last || self.table.contains_key(&session) {
            return false;
        }
        self.last_opened = last;
        self.table.insert(session, Session { state, contacts: NO_SLOT, agents: NO_SLOT });
        true
    }

    /// Sets the highest session id ever opened (a restore with no session open).
    pub(crate) fn set_last_opened(&mut self, last: SessionId) {
        self.last_opened = self.last_opened.max(last);
    }

    pub(crate) fn last_opened(&self) -> SessionId {
        self.last_opened
    }

    /// Whether `session` may act now.
    pub(crate) fn check_live(&self, session: SessionId) -> Result<(), Closed> {
        if session == SessionId::LOCAL {
            return Ok(());
        }
        match self.table.get(&session) {
            Some(Session { state: SessionState::Live, .. }) => Ok(()),
            Some(_) => Err(Closed::Lost),
            None => Err(Closed::Unknown),
        }
    }

    pub(crate) fn state(&self, session: SessionId) -> Option<SessionState> {
        self.table.get(&session).map(|s| s.state)
    }

    pub(crate) fn owns_nothing(&self, session: SessionId) -> bool {
        self.table.get(&session).is_none_or(|s| s.contacts == NO_SLOT && s.agents == NO_SLOT)
    }

    /// How many sessions are live and how many lost, within their grace.
    pub(crate) fn counts(&self) -> SessionCounts {
        let lost = self.table.values().filter(|s| matches!(s.state, SessionState::Lost { .. })).count();
        SessionCounts { live: self.table.len() - lost, in_grace: lost }
    }

    pub(crate) fn set_state(&mut self, session: SessionId, state: SessionState) {
        if let Some(s) = self.table.get_mut(&session) {
            s.state = state;
        }
    }

    /// Forgets a session; it must own nothing.
    pub(crate) fn remove(&mut self, session: SessionId) {
        debug_assert!(self.owns_nothing(session));
        self.table.remove(&session);
    }

    /// Every session id, in order (for decisions over all of them).
    pub(crate) fn ids(&self) -> Vec<SessionId> {
        let mut ids: Vec<SessionId> = self.table.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub(crate) fn owner(&self, kind: Kind, slot: impl Slot) -> SessionId {
        self.links(kind).get(slot.index()).owner
    }

    /// The first slot `session` owns of `kind`, if any.
    pub(crate) fn first<S: Slot>(&self, kind: Kind, session: SessionId) -> Option<S> {
        let s = self.table.get(&session)?;
        let head = match kind {
            Kind::Contact => s.contacts,
            Kind::Agent => s.agents,
        };
        (head != NO_SLOT).then_some(S::from_index(head))
    }

    /// Every slot `session` owns of `kind`, newest first.
    pub(crate) fn owned<S: Slot>(&self, kind: Kind, session: SessionId) -> Vec<S> {
        let mut slots = Vec::new();
        let mut at = self.first::<u32>(kind, session);
        while let Some(slot) = at {
            slots.push(S::from_index(slot));
            let next = self.links(kind).get(slot).next;
            at = (next != NO_SLOT).then_some(next);
        }
        slots
    }

    /// Makes `session` the owner of the record in `slot` (a no-op if it is).
    pub(crate) fn adopt(&mut self, kind: Kind, slot: impl Slot, session: SessionId) {
        let slot = slot.index();
        if self.owner(kind, slot) == session {
            return;
        }
        self.release(kind, slot);
        if session == SessionId::LOCAL {
            return;
        }
        let Some(s) = self.table.get_mut(&session) else { return };
        let head = match kind {
            Kind::Contact => &mut s.contacts,
            Kind::Agent => &mut s.agents,
        };
        let next = std::mem::replace(head, slot);
        let links = match kind {
            Kind::Contact => &mut self.contact_links,
            Kind::Agent => &mut self.agent_links,
        };
        if next != NO_SLOT {
            links.get_mut(next).prev = slot;
        }
        *links.get_mut(slot) = Link { owner: session, prev: NO_SLOT, next };
    }

    /// Takes the record in `slot` out of its owner's chain (it is leaving,
    /// or changing hands); a lost session left owning nothing is forgotten.
    /// Costs one read when sessions are not in use.
    pub(crate) fn release(&mut self, kind: Kind, slot: impl Slot) {
        let slot = slot.index();
        let link = self.links(kind).get(slot);
        if link.owner == SessionId::LOCAL {
            return;
        }
        let links = match kind {
            Kind::Contact => &mut self.contact_links,
            Kind::Agent => &mut self.agent_links,
        };
        *links.get_mut(slot) = UNOWNED;
        if link.next != NO_SLOT {
            links.get_mut(link.next).prev = link.prev;
        }
        if link.prev != NO_SLOT {
            links.get_mut(link.prev).next = link.next;
        } else if let Some(s) = self.table.get_mut(&link.owner) {
            match kind {
                Kind::Contact => s.contacts = link.next,
                Kind::Agent => s.agents = link.next,
            }
        }
        if matches!(self.state(link.owner), Some(SessionState::Lost { .. })) && self.owns_nothing(link.owner) {
            self.table.remove(&link.owner);
        }
    }

    fn links(&self, kind: Kind) -> &Links {
        match kind {
            Kind::Contact => &self.contact_links,
            Kind::Agent => &self.agent_links,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// The chains against a plain map of owners, through random adoptions
        /// and releases: each session lists exactly the slots it owns.
        #[test]
        fn chains_list_exactly_what_each_session_owns(
            ops in prop::collection::vec((0u32..40, 0u64..4, any::<bool>()), 1..300),
        ) {
            let mut sessions = Sessions::default();
            for s in 1..4 {
                prop_assert!(sessions.open(SessionId(s)));
            }
            prop_assert!(!sessions.open(SessionId(2)), "ids are never reused");
            let mut owners: BTreeMap<u32, u64> = BTreeMap::new();
            for (slot, session, release) in ops {
                // Slots far apart: the links span several chunks.
                let slot = slot * 97;
                if release {
                    sessions.release(Kind::Contact, slot);
                    owners.remove(&slot);
                } else {
                    sessions.adopt(Kind::Contact, slot, SessionId(session));
                    if session == 0 { owners.remove(&slot); } else { owners.insert(slot, session); }
                }
                for s in 1..4 {
                    let mut listed = sessions.owned::<u32>(Kind::Contact, SessionId(s));
                    listed.sort_unstable();
                    let expected: Vec<u32> = owners.iter().filter(|(_, o)| **o == s).map(|(slot, _)| *slot).collect();
                    prop_assert_eq!(listed, expected, "session {}", s);
                }
                for (&slot, &o) in &owners {
                    prop_assert_eq!(sessions.owner(Kind::Contact, slot), SessionId(o));
                }
                prop_assert!(sessions.owned::<u32>(Kind::Agent, SessionId(1)).is_empty(), "agents chain apart");
            }
        }
    }
}
