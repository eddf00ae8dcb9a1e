//! Who answers for each contact and agent: sessions opened, lost and expired,
//! an agent taken over by a newer desktop, a drain.

use super::*;

impl Router {
    pub(super) fn open_session(&mut self, session: SessionId) -> Result<Reply, CommandError> {
        if !self.sessions.open(session) {
            let last = self.sessions.last_opened();
            return Err(invalid("session", format!("{session} is not above the last session opened, {last}")));
        }
        Ok(Reply::Done)
    }

    pub(super) fn lose_session(&mut self, session: SessionId) -> Result<Reply, CommandError> {
        match self.sessions.state(session) {
            _ if session == SessionId::LOCAL => {
                return Err(invalid("session", "the centre's own is never lost".into()))
            }
            None => return Err(CommandError::UnknownSession(session)),
            Some(SessionState::Lost { .. }) => return Err(CommandError::SessionLost(session)),
            Some(SessionState::Live) => {}
        }
        self.start_grace(session, self.now + self.cfg.session_grace);
        for slot in self.sessions.owned(Kind::Agent, session) {
            self.agent_gone(slot, NotReadyReason::Disconnected);
        }
        Ok(Reply::Done)
    }

    /// A session owning nothing goes at once; any other waits out the grace.
    pub(super) fn start_grace(&mut self, session: SessionId, until: Time) {
        if self.sessions.owns_nothing(session) {
            self.sessions.remove(session);
            return;
        }
        self.sessions.set_state(session, SessionState::Lost { until });
        self.timers.schedule(until, Timer::SessionGrace { session });
    }

    /// An agent whose desktop is gone takes no new offer: not ready, its
    /// ringing offers withdrawn and re-routed. Its connected contacts and
    /// wrap-ups carry on (the call is on the phone, not the desktop).
    pub(super) fn agent_gone(&mut self, slot: AgentSlot, reason: NotReadyReason) {
        self.agents[slot].presence = Presence::NotReady(reason);
        self.agent_lost_room(slot);
        let ringing: Vec<OfferId> = self.agents[slot]
            .work
            .iter()
            .filter_map(|&c| match self.contacts[c].state {
                ContactState::Offered { offer, .. } => Some(offer),
                _ => None,
            })
            .collect();
        for offer in ringing {
            self.withdraw_offer(offer);
        }
    }

    /// The grace is over: what the session still owns goes. Agents first, so
    /// that their connected contacts end as completions.
    pub(super) fn expire_session(&mut self, session: SessionId) {
        let (mut contacts_ended, mut callbacks_kept, mut agents_logged_out) = (0, 0, 0);
        while let Some(slot) = self.sessions.first(Kind::Agent, session) {
            let id = self.agents[slot].id;
            self.logout(id, Leaving::Forced).expect("an owned agent is logged in");
            agents_logged_out += 1;
        }
        while let Some(slot) = self.sessions.first(Kind::Contact, session) {
            let c = &self.contacts[slot];
            if let ContactState::Scheduled { .. } = c.state {
                // A callback was promised to the customer: the centre keeps it.
                self.sessions.adopt(Kind::Contact, slot, SessionId::LOCAL);
                callbacks_kept += 1;
            } else {
                let id = c.id;
                self.abandon(id).expect("an owned contact is known");
                contacts_ended += 1;
            }
        }
        self.sessions.remove(session);
        self.events.push_back(Event::SessionExpired { session, contacts_ended, callbacks_kept, agents_logged_out });
    }

    /// A login from another session than the agent's: the newest desktop
    /// takes the agent over as it is (profile and work unchanged), and the
    /// old session's loss no longer touches it.
    pub(super) fn take_over_agent(&mut self, slot: AgentSlot, session: SessionId, ready: bool) -> Reply {
        self.sessions.adopt(Kind::Agent, slot, session);
        let presence = match (ready, self.agents[slot].presence) {
            (true, _) => Presence::Ready,
            (false, Presence::Ready) => Presence::NotReady(NotReadyReason::LoggedIn),
            (false, kept) => kept,
        };
        self.change_presence(slot, presence);
        Reply::Done
    }

    /// After an accepted command: `session` answers for what it named.
    pub(super) fn claim(&mut self, named: Named, session: SessionId) {
        match named {
            Named::Agent(id) => {
                if let Some(&slot) = self.agent_slots.get(&id) {
                    self.sessions.adopt(Kind::Agent, slot, session);
                }
            }
            Named::Contact(id) => {
                if let Some(&slot) = self.contact_slots.get(&id) {
                    self.sessions.adopt(Kind::Contact, slot, session);
                }
            }
            Named::Nothing => {}
        }
    }

    pub(super) fn drain(&mut self) -> Reply {
        // In id order: no decision depends on where records sit.
        let mut ids: Vec<AgentId> = self.agents.iter().map(|(_, a)| a.id).collect();
        ids.sort_unstable();
        for &id in &ids {
            self.logout(id, Leaving::Forced).expect("a listed agent is logged in");
        }
        Reply::Drained { agents: ids.len() as u32 }
    }

    /// Who answers for a contact, if the router has it.
    pub fn contact_owner(&self, contact: ContactId) -> Option<SessionId> {
        let &slot = self.contact_slots.get(&contact)?;
        Some(self.sessions.owner(Kind::Contact, slot))
    }

    /// Who answers for a logged-in agent.
    pub fn agent_owner(&self, agent: AgentId) -> Option<SessionId> {
        let &slot = self.agent_slots.get(&agent)?;
        Some(self.sessions.owner(Kind::Agent, slot))
    }

    /// The highest session id opened so far: a restarted driver numbers its
    /// sessions from the one after it.
    pub fn last_session(&self) -> SessionId {
        self.sessions.last_opened()
    }

    /// Sessions live and lost within their grace (the centre's not counted).
    pub fn session_counts(&self) -> SessionCounts {
        self.sessions.counts()
    }
}
