//! Matching: a waiting contact filed in (and taken out of) the index agents
//! search, and the two searches — an agent for a contact, a contact for an
//! agent — with their explanations when `explain` is on.

use super::*;

impl Router {
    /// Enters a waiting contact in the index (or in its preferred agents'
    /// holds) and counts it as waiting.
    pub(super) fn index_waiting(&mut self, slot: ContactSlot) {
        let mut skills = std::mem::take(&mut self.scratch);
        let c = &self.contacts[slot];
        let ContactState::Waiting { filed, hold_until } = c.state else {
            unreachable!("only waiting contacts are indexed")
        };
        debug_assert!(filed.is_none());
        let (queue, tier, rank, arrival) = (c.queue, c.tier, c.rank, c.arrival);
        let filed = if hold_until.is_some() {
            for agent in &c.preferred {
                self.holds.entry(*agent).or_default().insert((rank, slot));
            }
            Filed::Held
        } else {
            let languages = c.effective(&mut skills);
            let reqs = Requirements { channel: c.channel, skills: &skills, languages };
            self.waiting.insert(reqs, rank, slot)
        };
        self.scratch = skills;
        let just_arrived = self.contacts[slot].entered_queue == self.now;
        let q = &mut self.queues[usize::from(queue.0)];
        if just_arrived {
            q.note_arrival(self.now, self.cfg.ewt_window, usize::from(tier.0));
        } else if q.waiting() == 0 {
            q.advance(self.now, self.cfg.ewt_window);
        }
        let place = q.positions.insert(tier, rank);
        let stamp = self.waiting_stamps.start(slot);
        q.oldest.started(WaitingSince { arrival, slot, stamp }, q.waiting(), &self.waiting_stamps);
        let c = &mut self.contacts[slot];
        c.state = ContactState::Waiting { filed: Some(filed), hold_until };
        c.place = place;
    }

    /// Takes a waiting contact out of the index and the waiting count; a no-op
    /// for a contact not yet indexed. Its requirements and rank must be those
    /// it was filed with: they change only while it is not indexed.
    pub(super) fn unindex(&mut self, slot: ContactSlot) {
        let c = &self.contacts[slot];
        let ContactState::Waiting { filed: Some(filed), hold_until } = c.state else { return };
        let (queue, tier, rank, place) = (c.queue, c.tier, c.rank, c.place);
        match filed {
            Filed::Held => {
                for agent in &c.preferred {
                    if let Some(set) = self.holds.get_mut(agent) {
                        set.remove(&(rank, slot));
                        if set.is_empty() {
                            self.holds.remove(agent);
                        }
                    }
                }
            }
            Filed::Level { .. } | Filed::Bucket(_) => {
                let lists =
                    || Lists { channel: c.channel, skill: c.skills[0].skill, languages: c.effective_languages() };
                self.waiting.remove(filed, lists, rank, slot);
            }
        }
        let q = &mut self.queues[usize::from(queue.0)];
        if q.waiting() == 1 {
            q.advance(self.now, self.cfg.ewt_window);
        }
        let filed = q.positions.remove(tier, rank, place);
        debug_assert!(filed, "a waiting contact is in its queue's order");
        self.waiting_stamps.stop(slot);
        q.oldest.stopped(slot, &self.waiting_stamps);
        self.contacts[slot].state = ContactState::Waiting { filed: None, hold_until };
    }

    // ----- Matching -----------------------------------------------------------

    /// Contact side: offers a waiting contact that is not held to the best
    /// agent with room, if there is one.
    pub(super) fn route_contact(&mut self, slot: ContactSlot, trigger: Trigger) -> bool {
        let c = &self.contacts[slot];
        if !matches!(c.state, ContactState::Waiting { hold_until: None, .. }) {
            return false;
        }
        let policy = self.cfg.queues[usize::from(c.queue.0)].agent_policy;
        let mut skills = std::mem::take(&mut self.scratch);
        let languages = c.effective(&mut skills);
        let mut weighed = self.cfg.explain.then(Vec::new);
        let found = self.pools.find(&self.agents, c.channel, &skills, languages, policy, weighed.as_mut());
        self.scratch = skills;
        let Some(best) = found else { return false };
        let explanation = weighed.map(|w| {
            let (contact, rank) = (c.id, c.rank.value);
            let candidate = |a: &AgentCandidate| Candidate {
                contact,
                agent: self.agents[a.slot].id,
                rank,
                proficiency: a.proficiency,
                occupancy: a.occupancy,
                idle_order: a.order,
            };
            let mut candidates = vec![candidate(&best)];
            candidates.extend(w.iter().filter(|a| **a != best).map(candidate));
            Box::new(Explanation { trigger, rule: Rule::Agent(policy), candidates })
        });
        self.make_offer(slot, best.slot, trigger, explanation);
        self.agent_after_offer(best.slot);
        true
    }

    /// Agent side: the best waiting contact this agent qualifies for and has
    /// room for, by rank: (rank, contact slot). Held contacts count for their
    /// preferred agents. With `weighed`, every candidate the search weighs is
    /// listed there too, for an explanation.
    pub(super) fn best_contact_for(
        &mut self,
        agent_slot: AgentSlot,
        weighed: Option<&mut Vec<(Rank, ContactSlot)>>,
    ) -> Option<(Rank, ContactSlot)> {
        let a = &self.agents[agent_slot];
        // The best single-skill contact usually wins: its record, read
        // first when it is taken, loads while the search goes on.
        let contacts = &self.contacts;
        let mut best = self.waiting.best_for(a, |slot| contacts.prefetch(slot));
        let mut held_best = None;
        if !self.holds.is_empty() {
            if let Some(held) = self.holds.get(&a.id) {
                let mut skills = std::mem::take(&mut self.scratch);
                // Held contacts in rank order: the first that fits is this
                // agent's best of them.
                held_best = held.iter().copied().find(|&(_, slot)| {
                    let c = &self.contacts[slot];
                    let languages = c.effective(&mut skills);
                    a.has_room(c.channel) && a.qualifies(&skills) && a.speaks_any(languages)
                });
                self.scratch = skills;
            }
        }
        if let Some(held) = held_best {
            best = Some(best.map_or(held, |b| b.min(held)));
        }
        if let Some(weighed) = weighed {
            self.waiting.weigh_for(a, weighed);
            weighed.extend(held_best);
        }
        best
    }

    /// An agent gained room: give it work while it has room and something
    /// qualifies, then file it in the pools.
    pub(super) fn agent_gained_room(&mut self, slot: AgentSlot) {
        loop {
            if !self.agents[slot].has_room_anywhere() {
                break;
            }
            let mut weighed = self.cfg.explain.then(Vec::new);
            let Some((_, contact_slot)) = self.best_contact_for(slot, weighed.as_mut()) else { break };
            let explanation = weighed.map(|mut w| {
                w.sort_unstable();
                let agent = self.agents[slot].id;
                let proficiency = |c: &Contact| self.agents[slot].proficiency(c.skills[0].skill);
                let candidates = w
                    .iter()
                    .map(|&(rank, s)| {
                        let c = &self.contacts[s];
                        Candidate {
                            contact: c.id,
                            agent,
                            rank: rank.value,
                            proficiency: proficiency(c),
                            occupancy: self.agents[slot].usage[c.channel.index()],
                            idle_order: self.pools.order(slot),
                        }
                    })
                    .collect();
                let policy = self.cfg.queues[usize::from(self.contacts[contact_slot].queue.0)].contact_policy;
                Box::new(Explanation { trigger: Trigger::AgentAvailable, rule: Rule::Contact(policy), candidates })
            });
            self.make_offer(contact_slot, slot, Trigger::AgentAvailable, explanation);
        }
        self.repool(slot);
        self.sync_agent_state(slot);
    }

    /// An agent lost room (not ready): its pool entries become stale.
    pub(super) fn agent_lost_room(&mut self, slot: AgentSlot) {
        self.repool(slot);
        self.sync_agent_state(slot);
    }

    /// After an offer from the contact side: the agent's workload changed.
    pub(super) fn agent_after_offer(&mut self, slot: AgentSlot) {
        self.repool(slot);
        self.sync_agent_state(slot);
    }

    /// Invalidates the agent's pool entries and files it again if it has room.
    pub(super) fn repool(&mut self, slot: AgentSlot) {
        if self.agents[slot].has_room_anywhere() {
            let order = self.next_idle_order;
            self.next_idle_order += 1;
            self.pools.push(&self.agents, slot, order);
        } else {
            self.pools.invalidate(slot);
        }
    }
}
