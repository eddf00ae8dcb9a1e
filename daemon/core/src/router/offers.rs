//! Offers: made, ended (accepted, rejected, rung out, withdrawn), and the agent
//! released after them.

use super::*;

impl Router {
    pub(super) fn make_offer(
        &mut self,
        contact_slot: ContactSlot,
        agent_slot: AgentSlot,
        trigger: Trigger,
        explanation: Option<Box<Explanation>>,
    ) {
        let filed = matches!(self.contacts[contact_slot].state, ContactState::Waiting { filed: Some(_), .. });
        self.unindex(contact_slot);
        let c = &self.contacts[contact_slot];
        let q = &mut self.queues[usize::from(c.queue.0)];
        if self.now > c.entered_queue {
            // It waited: its place in line is freed for those behind.
            q.note_departure(self.now, self.cfg.ewt_window, self.now.since(c.entered_queue));
        } else if !filed {
            // Offered as it arrived: an arrival all the same (those filed
            // were counted as they were).
            q.note_arrival(self.now, self.cfg.ewt_window, usize::from(c.tier.0));
        }
        let agent = &mut self.agents[agent_slot];
        let c = &self.contacts[contact_slot];
        let expires_at = self.now + self.cfg.queues[usize::from(c.queue.0)].offer_timeout;
        let offer = self.offers.open(Offer { contact_slot, contact: c.id, agent_slot, agent: agent.id, expires_at });
        agent.usage[c.channel.index()] += 1;
        agent.ringing += 1;
        agent.work.push(contact_slot);
        let agent_id = agent.id;
        // Stale pool entries until the caller re-pools the agent.
        self.pools.invalidate(agent_slot);
        self.queues[usize::from(c.queue.0)].counters.offered += 1;
        self.timers.schedule_in_lane(
            lane(LANE_OFFER, c.queue.0, 0),
            expires_at,
            Timer::OfferExpiry { offer },
            dead_timers(&self.contacts, &self.agents, &self.offers),
        );
        self.events.push_back(Event::Offered {
            offer,
            contact: c.id,
            agent: agent_id,
            queue: c.queue,
            tier: c.tier,
            channel: c.channel,
            waited: self.now.since(c.arrival),
            expires_at,
            trigger,
            explanation,
        });
        self.contacts[contact_slot].state = ContactState::Offered { offer, agent: agent_slot };
    }

    /// Ends a pending offer that was not accepted: rejected or rang out sends
    /// the agent not ready (RONA) and the contact back to its place.
    pub(super) fn end_offer(&mut self, offer: OfferId, outcome: OfferOutcome) {
        let o = self.offers.close(offer, outcome);
        let contact = self.contacts[o.contact_slot].id;
        self.events.push_back(Event::OfferEnded { offer, contact, agent: o.agent, outcome });
        let reason = match outcome {
            OfferOutcome::Expired => NotReadyReason::Rona,
            _ => NotReadyReason::Declined,
        };
        if outcome == OfferOutcome::Expired {
            let queue = self.contacts[o.contact_slot].queue;
            self.queues[usize::from(queue.0)].counters.rona += 1;
        }
        // The contact takes its place in line back, if the offer took it
        // from the line (offered later than it entered the queue).
        let c = &self.contacts[o.contact_slot];
        let qi = usize::from(c.queue.0);
        let offered_at = Time::from_micros(
            o.expires_at.as_micros().saturating_sub(self.cfg.queues[qi].offer_timeout.as_micros() as u64),
        );
        if offered_at > c.entered_queue {
            self.queues[qi].note_return(self.now, self.cfg.ewt_window);
        }
        // Not ready first, so the contact cannot be offered straight back.
        self.agents[o.agent_slot].presence = Presence::NotReady(reason);
        self.release_agent_slot(o.agent_slot, o.contact_slot, AfterOffer::Rest);
        self.return_to_queue(o.contact_slot);
    }

    /// Frees the channel slot an offered contact held on an agent.
    pub(super) fn release_agent_slot(&mut self, agent_slot: AgentSlot, contact_slot: ContactSlot, then: AfterOffer) {
        let channel = self.contacts.get(contact_slot).map(|c| c.channel);
        let agent = &mut self.agents[agent_slot];
        if let Some(pos) = agent.work.iter().position(|&s| s == contact_slot) {
            agent.work.swap_remove(pos);
            agent.ringing -= 1;
            agent.usage[channel.expect("offered contact is live").index()] -= 1;
        }
        match then {
            AfterOffer::Rest => self.agent_lost_room(agent_slot),
            AfterOffer::LookForWork => self.agent_gained_room(agent_slot),
        }
    }

    pub(super) fn start_wrap_up(&mut self, slot: AgentSlot, contact: ContactId, channel: Channel, queue: QueueId) {
        let wrap_up = self.cfg.queues[usize::from(queue.0)].wrap_up;
        if wrap_up.is_zero() {
            self.agents[slot].usage[channel.index()] -= 1;
            self.agent_gained_room(slot);
        } else {
            let ends_at = self.now + wrap_up;
            self.agents[slot].wrap_ups.push(WrapUp { contact, channel, queue, ends_at });
            let timer = Timer::WrapUpEnd { agent_slot: slot, contact };
            let dead = dead_timers(&self.contacts, &self.agents, &self.offers);
            self.timers.schedule_in_lane(lane(LANE_WRAP_UP, queue.0, 0), ends_at, timer, dead);
            self.sync_agent_state(slot);
        }
    }

    pub(super) fn end_wrap_up(&mut self, slot: AgentSlot, contact: ContactId) {
        let agent = &mut self.agents[slot];
        let pos = agent.wrap_ups.iter().position(|w| w.contact == contact).expect("wrap-up exists");
        let w = agent.wrap_ups.swap_remove(pos);
        agent.usage[w.channel.index()] -= 1;
        let id = agent.id;
        self.events.push_back(Event::WrapUpEnded { contact, agent: id });
        self.agent_gained_room(slot);
    }
}
