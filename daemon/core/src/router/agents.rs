//! The agents' side: log in and out, presence, accept and reject, complete and
//! wrap-up.

use super::*;

impl Router {
    pub(super) fn login(&mut self, id: AgentId, profile: AgentProfile, ready: bool) -> Result<Reply, CommandError> {
        if self.agent_slots.contains_key(&id) {
            return Err(CommandError::AgentAlreadyLoggedIn(id));
        }
        let AgentProfile { mut skills, languages, capacity } = profile;
        check_profile(&mut skills, &languages, capacity)?;
        let presence = if ready { Presence::Ready } else { Presence::NotReady(NotReadyReason::LoggedIn) };
        let slot = self.file_agent(id, skills, languages, capacity, presence);
        self.agent_gained_room(slot);
        Ok(Reply::Done)
    }

    /// Enters a new agent with a checked profile: its record, its pools'
    /// rosters, its lists, its id.
    pub(super) fn file_agent(
        &mut self,
        id: AgentId,
        skills: Vec<(SkillId, u8)>,
        languages: Vec<LanguageId>,
        capacity: [u8; Channel::COUNT],
        presence: Presence,
    ) -> AgentSlot {
        let slots = capacity.iter().map(|&c| usize::from(c)).sum();
        let slot = self.agents.insert(Agent {
            id,
            skill_set: SkillSet::of(skills.iter().map(|&(s, _)| s)),
            skills: skills.into(),
            languages,
            capacity,
            usage: [0; Channel::COUNT],
            ringing: 0,
            connected: 0,
            // Sized at login (one slot per unit of capacity) so that no
            // decision has to grow them.
            wrap_ups: Vec::with_capacity(slots),
            work: Vec::with_capacity(slots),
            presence,
            memberships: Vec::new(),
            lists: Default::default(),
            one_language_lists: 0,
            reported: None,
            reported_since: self.now,
        });
        let memberships = self.pools.memberships(&self.agents[slot]);
        let (lists, one_language_lists) = self.waiting.lists_of(&self.agents[slot]);
        self.pools.enrol(slot, &memberships);
        let agent = &mut self.agents[slot];
        agent.memberships = memberships;
        agent.lists = lists;
        agent.one_language_lists = one_language_lists;
        self.agent_slots.insert(id, slot);
        slot
    }

    pub(super) fn logout(&mut self, id: AgentId, leaving: Leaving) -> Result<Reply, CommandError> {
        let slot = self.agent_slot(id)?;
        if self.agents[slot].connected > 0 && leaving == Leaving::Asked {
            return Err(CommandError::AgentBusy(id));
        }
        // A lost desktop cannot finish its calls through us: they end here.
        let connected: Vec<ContactSlot> = self.agents[slot]
            .work
            .iter()
            .copied()
            .filter(|&c| self.contacts[c].state == (ContactState::Connected { agent: slot }))
            .collect();
        for cslot in connected {
            let c = self.remove_contact(cslot);
            self.queues[usize::from(c.queue.0)].counters.completed += 1;
            self.events.push_back(Event::Completed { contact: c.id, agent: id, queue: c.queue, hung_up: false });
            let agent = &mut self.agents[slot];
            agent.connected -= 1;
            agent.usage[c.channel.index()] -= 1;
            agent.work.retain(|&s| s != cslot);
        }
        self.sessions.release(Kind::Agent, slot);
        let agent = self.agents.remove(slot).expect("agent is live");
        self.agent_slots.remove(&id);
        self.pools.invalidate(slot);
        self.pools.withdraw(slot, &agent.memberships);
        if let Some(state) = agent.reported {
            self.agent_states[state.index()] -= 1;
        }
        for w in &agent.wrap_ups {
            self.events.push_back(Event::WrapUpEnded { contact: w.contact, agent: id });
        }
        self.events.push_back(Event::AgentStateChanged { agent: id, state: AgentState::Offline });
        // Re-route its ringing offers at once; it can no longer be chosen.
        for contact_slot in agent.work {
            if let ContactState::Offered { offer, .. } = self.contacts[contact_slot].state {
                self.offers.close(offer, OfferOutcome::Withdrawn);
                let contact = self.contacts[contact_slot].id;
                self.events.push_back(Event::OfferEnded {
                    offer,
                    contact,
                    agent: id,
                    outcome: OfferOutcome::Withdrawn,
                });
                self.return_to_queue(contact_slot);
            }
        }
        Ok(Reply::Done)
    }

    pub(super) fn restart(&mut self, now: Time) -> Reply {
        // Every client session is lost at the restart, with a whole grace from
        // now: the time ccrd was down does not count against it. Set before
        // the timers fire, so that no grace that ran out meanwhile expires.
        let until = self.now.max(now) + self.cfg.session_grace;
        for session in self.sessions.ids() {
            self.start_grace(session, until);
        }
        self.handle_timeout(now);
        // Agents first, so that no withdrawn contact is offered straight back
        // to a desktop that is gone.
        let mut slots: Vec<(AgentId, AgentSlot)> = self.agents.iter().map(|(slot, a)| (a.id, slot)).collect();
        slots.sort_unstable();
        for &(_, slot) in &slots {
            self.agents[slot].presence = Presence::NotReady(NotReadyReason::Restart);
            self.agent_lost_room(slot);
        }
        for offer in self.offers.pending_ids() {
            self.withdraw_offer(offer);
        }
        Reply::Done
    }

    /// Withdraws a ringing offer from an agent who is still logged in (and
    /// has lost its room already): the contact goes back to its place.
    pub(super) fn withdraw_offer(&mut self, offer: OfferId) {
        let o = self.offers.close(offer, OfferOutcome::Withdrawn);
        let contact = self.contacts[o.contact_slot].id;
        self.events.push_back(Event::OfferEnded { offer, contact, agent: o.agent, outcome: OfferOutcome::Withdrawn });
        self.release_agent_slot(o.agent_slot, o.contact_slot, AfterOffer::Rest);
        self.return_to_queue(o.contact_slot);
    }

    pub(super) fn set_presence(&mut self, id: AgentId, presence: Presence) -> Result<Reply, CommandError> {
        let slot = self.agent_slot(id)?;
        use NotReadyReason::{Declined, Disconnected, Restart, Rona};
        if let Presence::NotReady(Rona | Declined | Restart | Disconnected) = presence {
            return Err(invalid(
                "reason",
                "RONA, declined, restart and disconnected are set by the router only".into(),
            ));
        }
        self.change_presence(slot, presence);
        Ok(Reply::Done)
    }

    /// Sets an agent's presence and re-files it: work for it if it gained
    /// room, its pool entries gone stale if it lost it.
    pub(super) fn change_presence(&mut self, slot: AgentSlot, presence: Presence) {
        let agent = &mut self.agents[slot];
        if agent.presence == presence {
            return;
        }
        agent.presence = presence;
        match presence {
            Presence::Ready => self.agent_gained_room(slot),
            Presence::NotReady(_) => self.agent_lost_room(slot),
        }
    }

    pub(super) fn accept(&mut self, id: AgentId, offer_id: OfferId) -> Result<Reply, CommandError> {
        let slot = self.agent_slot(id)?;
        let offer = match self.offers.pending(offer_id) {
            Some(o) if o.agent != id => {
                return Err(CommandError::OfferNotForAgent { offer: offer_id, owner: o.agent, agent: id })
            }
            Some(&o) => o,
            None => return self.answer_ended_offer(id, offer_id, OfferOutcome::Accepted),
        };
        self.offers.close(offer_id, OfferOutcome::Accepted);
        let c = &mut self.contacts[offer.contact_slot];
        c.state = ContactState::Connected { agent: slot };
        let (contact, queue, tier, arrival) = (c.id, c.queue, c.tier, c.arrival);
        let waited = self.now.since(arrival);
        let agent = &mut self.agents[slot];
        agent.ringing -= 1;
        agent.connected += 1;
        let qi = usize::from(queue.0);
        let threshold = self.cfg.queues[qi].service_level.threshold;
        let q = &mut self.queues[qi];
        q.counters.answered += 1;
        if waited <= threshold {
            q.counters.answered_in_target += 1;
        }
        self.events.push_back(Event::Connected { offer: offer_id, contact, agent: id, queue, tier, waited });
        self.sync_agent_state(slot);
        Ok(Reply::Accepted { contact, duplicate: false })
    }

    pub(super) fn reject(&mut self, id: AgentId, offer_id: OfferId) -> Result<Reply, CommandError> {
        self.agent_slot(id)?;
        match self.offers.pending(offer_id) {
            Some(o) if o.agent != id => {
                Err(CommandError::OfferNotForAgent { offer: offer_id, owner: o.agent, agent: id })
            }
            Some(_) => {
                self.end_offer(offer_id, OfferOutcome::Rejected);
                Ok(Reply::Rejected { duplicate: false })
            }
            None => self.answer_ended_offer(id, offer_id, OfferOutcome::Rejected),
        }
    }

    /// A repeated accept or reject gets the first answer again; anything else
    /// about an offer that is over is refused.
    pub(super) fn answer_ended_offer(
        &self,
        id: AgentId,
        offer: OfferId,
        asked: OfferOutcome,
    ) -> Result<Reply, CommandError> {
        match self.offers.ended(offer) {
            None => Err(CommandError::UnknownOffer(offer)),
            Some(e) if e.agent != id => Err(CommandError::OfferNotForAgent { offer, owner: e.agent, agent: id }),
            Some(e) if e.outcome == asked && asked == OfferOutcome::Accepted => {
                Ok(Reply::Accepted { contact: e.contact, duplicate: true })
            }
            Some(e) if e.outcome == asked => Ok(Reply::Rejected { duplicate: true }),
            Some(e) => Err(CommandError::OfferNotPending { offer, outcome: e.outcome }),
        }
    }

    pub(super) fn complete(&mut self, id: AgentId, contact: ContactId, by: EndedBy) -> Result<Reply, CommandError> {
        let slot = self.agent_slot(id)?;
        let cslot = self.contact_slot(contact)?;
        if self.contacts[cslot].state != (ContactState::Connected { agent: slot }) {
            return Err(CommandError::NotConnected { contact, agent: id });
        }
        let c = self.remove_contact(cslot);
        let qi = usize::from(c.queue.0);
        self.queues[qi].counters.completed += 1;
        let hung_up = by == EndedBy::Caller;
        self.events.push_back(Event::Completed { contact, agent: id, queue: c.queue, hung_up });
        let agent = &mut self.agents[slot];
        agent.connected -= 1;
        agent.work.retain(|&s| s != cslot);
        self.start_wrap_up(slot, contact, c.channel, c.queue);
        Ok(Reply::Done)
    }

    pub(super) fn end_wrap_up_command(&mut self, id: AgentId, contact: ContactId) -> Result<Reply, CommandError> {
        let slot = self.agent_slot(id)?;
        if !self.agents[slot].wrap_ups.iter().any(|w| w.contact == contact) {
            return Err(CommandError::NotInWrapUp { contact, agent: id });
        }
        self.end_wrap_up(slot, contact);
        Ok(Reply::Done)
    }
}
