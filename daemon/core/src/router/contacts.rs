//! The contacts' side: enqueue, abandon, transfer, a new configuration; then a
//! contact's life in the queue — arrival, relaxation steps and their wake-ups,
//! leaving.

use super::*;

impl Router {
    pub(super) fn enqueue(&mut self, spec: ContactSpec, callback: Option<(Time, Time)>) -> Result<Reply, CommandError> {
        if self.contact_slots.contains_key(&spec.id) {
            return Err(CommandError::DuplicateContact(spec.id));
        }
        let ContactSpec { id, channel, queue, tier, skills, languages, preferred_agents, context } = spec;
        self.check_queue_and_tier(queue, tier)?;
        check_requirements(&skills, &languages)?;
        if preferred_agents.len() > MAX_PREFERRED_AGENTS {
            return Err(invalid("preferred_agents", format!("at most {MAX_PREFERRED_AGENTS}")));
        }
        self.check_context(&context)?;
        if let Some((due, deadline)) = callback {
            if deadline < due {
                return Err(invalid("deadline", "a callback's deadline cannot precede its due time".into()));
            }
            let horizon = self.now + MAX_CALLBACK_AHEAD;
            if deadline > horizon {
                let days = MAX_CALLBACK_AHEAD.as_secs() / 86_400;
                return Err(invalid("deadline", format!("a callback is due and answered within {days} days")));
            }
        }
        if self.contacts.len() >= self.cfg.max_contacts as usize {
            return Err(CommandError::TooManyContacts { limit: self.cfg.max_contacts });
        }
        // Callbacks were promised: they skip the waiting limit when they come due.
        let admitted = if callback.is_some() { queue } else { self.admit(queue)? };
        let gen = self.next_gen();
        let seq = self.next_rank_seq;
        self.next_rank_seq += 1;
        let (state, arrival, deadline) = match callback {
            None => (ContactState::Waiting { filed: None, hold_until: None }, self.now, None),
            Some((due, deadline)) => (ContactState::Scheduled { due }, due.max(self.now), Some(deadline)),
        };
        let slot = self.contacts.insert(Contact {
            id,
            channel,
            queue: admitted,
            tier,
            skills,
            languages,
            preferred: preferred_agents.into(),
            context: context.into(),
            arrival,
            entered_queue: arrival,
            deadline,
            rank: Rank { value: rank_value(&self.cfg, admitted, tier, arrival, deadline), seq },
            relax: Relaxation::NONE,
            place: Place::UNKNOWN,
            state,
            next_wake: None,
            gen,
        });
        self.contact_slots.insert(id, slot);
        if admitted != queue {
            self.queues[usize::from(queue.0)].counters.overflowed_out += 1;
            self.queues[usize::from(admitted.0)].counters.overflowed_in += 1;
            let reason = OverflowReason::QueueFull;
            self.events.push_back(Event::Overflowed { contact: id, from: queue, to: admitted, reason });
        }
        match callback {
            Some((due, _)) if due > self.now => self.schedule_wake(slot),
            Some(_) => self.callback_due(slot),
            None => {
                self.queues[usize::from(admitted.0)].counters.arrived += 1;
                self.arrive(slot);
            }
        }
        Ok(Reply::Enqueued { queue: admitted })
    }

    pub(super) fn abandon(&mut self, contact: ContactId) -> Result<Reply, CommandError> {
        let cslot = self.contact_slot(contact)?;
        let c = &self.contacts[cslot];
        let (queue, tier, waited) = (c.queue, c.tier, self.now.since(c.arrival));
        match c.state {
            ContactState::Connected { agent } => {
                let agent_id = self.agents[agent].id;
                return self.complete(agent_id, contact, EndedBy::Caller);
            }
            ContactState::Scheduled { .. } => {
                self.remove_contact(cslot);
                self.events.push_back(Event::CallbackCancelled { contact, queue });
                return Ok(Reply::Done);
            }
            ContactState::Offered { offer, .. } => {
                let o = self.offers.close(offer, OfferOutcome::Abandoned);
                let agent = o.agent;
                self.events.push_back(Event::OfferEnded { offer, contact, agent, outcome: OfferOutcome::Abandoned });
                self.release_agent_slot(o.agent_slot, cslot, AfterOffer::LookForWork);
            }
            ContactState::Waiting { .. } => {
                self.unindex(cslot);
                let in_queue = self.now.since(self.contacts[cslot].entered_queue);
                self.queues[usize::from(queue.0)].note_abandon(self.now, self.cfg.ewt_window, in_queue);
            }
        }
        self.remove_contact(cslot);
        let short = waited < self.cfg.short_abandon;
        let counters = &mut self.queues[usize::from(queue.0)].counters;
        if short {
            counters.short_abandoned += 1;
        } else {
            counters.abandoned += 1;
        }
        self.events.push_back(Event::Abandoned { contact, queue, tier, waited, short });
        Ok(Reply::Done)
    }

    pub(super) fn transfer(&mut self, spec: TransferSpec) -> Result<Reply, CommandError> {
        let TransferSpec { contact, queue, skills, languages, tier, context } = spec;
        let cslot = self.contact_slot(contact)?;
        let tier = tier.unwrap_or(self.contacts[cslot].tier);
        self.check_queue_and_tier(queue, tier)?;
        check_requirements(&skills, &languages)?;
        let from = self.contacts[cslot].queue;
        if let ContactState::Scheduled { .. } = self.contacts[cslot].state {
            return Err(CommandError::NotYetDue(contact));
        }
        let merged = merge_context(&self.contacts[cslot].context, context);
        self.check_context(&merged)?;
        let was_waiting_here = self.contacts[cslot].is_waiting() && from == queue;
        let admitted = if was_waiting_here { queue } else { self.admit(queue)? };
        // Checks done: from here on nothing fails.
        let mut freed_agent = None;
        match self.contacts[cslot].state {
            ContactState::Waiting { .. } => self.unindex(cslot),
            ContactState::Offered { offer, .. } => {
                let o = self.offers.close(offer, OfferOutcome::Withdrawn);
                let agent = o.agent;
                self.events.push_back(Event::OfferEnded { offer, contact, agent, outcome: OfferOutcome::Withdrawn });
                freed_agent = Some(o.agent_slot);
            }
            ContactState::Connected { agent } => {
                let channel = self.contacts[cslot].channel;
                let a = &mut self.agents[agent];
                a.connected -= 1;
                a.work.retain(|&s| s != cslot);
                self.start_wrap_up(agent, contact, channel, from);
            }
            ContactState::Scheduled { .. } => unreachable!("refused above"),
        }
        let now = self.now;
        let c = &mut self.contacts[cslot];
        c.queue = admitted;
        c.tier = tier;
        c.skills = skills;
        c.languages = languages;
        c.preferred = Box::default();
        c.context = merged.into();
        c.entered_queue = now;
        c.relax = Relaxation::NONE;
        c.rank.value = rank_value(&self.cfg, admitted, tier, c.arrival, c.deadline);
        c.state = ContactState::Waiting { filed: None, hold_until: None };
        self.queues[usize::from(admitted.0)].counters.transferred_in += 1;
        self.events.push_back(Event::Transferred { contact, from, to: admitted });
        if admitted != queue {
            self.events.push_back(Event::Overflowed {
                contact,
                from: queue,
                to: admitted,
                reason: OverflowReason::QueueFull,
            });
        }
        self.settle(cslot, Trigger::ContactWaiting);
        if let Some(agent_slot) = freed_agent {
            self.release_agent_slot(agent_slot, cslot, AfterOffer::LookForWork);
        }
        Ok(Reply::Enqueued { queue: admitted })
    }

    pub(super) fn reconfigure(&mut self, cfg: RouterConfig) -> Result<Reply, CommandError> {
        cfg.validate().map_err(|e| invalid("config", e.to_string()))?;
        let names = |c: &RouterConfig| -> (Vec<String>, Vec<String>) {
            (c.queues.iter().map(|q| q.name.clone()).collect(), c.tiers.iter().map(|t| t.name.clone()).collect())
        };
        if names(&cfg) != names(&self.cfg) {
            return Err(invalid("config", "queues and tiers must keep their names and order on reload".into()));
        }
        self.cfg = cfg;
        self.offers.set_history(self.cfg.offer_history);
        // Ranks depend on policies and tier parameters: re-rank and re-check
        // every waiting contact under the new rules, in their order in line
        // (never in the order records sit in memory, which a snapshot does
        // not keep).
        let mut waiting: Vec<(Rank, ContactSlot)> =
            self.contacts.iter().filter(|(_, c)| c.is_waiting()).map(|(s, c)| (c.rank, s)).collect();
        waiting.sort_unstable();
        for (_, slot) in waiting {
            self.unindex(slot);
            let c = &mut self.contacts[slot];
            c.rank.value = rank_value(&self.cfg, c.queue, c.tier, c.arrival, c.deadline);
            c.next_wake = None;
            self.settle(slot, Trigger::ContactWaiting);
        }
        Ok(Reply::Done)
    }

    // ----- Contact lifecycle --------------------------------------------------

    /// A new contact enters its queue: preferred agents first, else the index.
    pub(super) fn arrive(&mut self, slot: ContactSlot) {
        let window = self.cfg.queues[usize::from(self.contacts[slot].queue.0)].preferred_agent_window;
        if !self.contacts[slot].preferred.is_empty() && !window.is_zero() {
            if let Some(agent_slot) = self.free_preferred_agent(slot) {
                self.make_offer(slot, agent_slot, Trigger::PreferredAgent, None);
                self.agent_after_offer(agent_slot);
                return;
            }
            if let ContactState::Waiting { hold_until, .. } = &mut self.contacts[slot].state {
                *hold_until = Some(self.now + window);
            }
        }
        self.settle(slot, Trigger::ContactWaiting);
    }

    pub(super) fn callback_due(&mut self, slot: ContactSlot) {
        let now = self.now;
        let c = &mut self.contacts[slot];
        let ContactState::Scheduled { due } = c.state else { return };
        let arrival = due.max(c.arrival);
        c.arrival = arrival;
        c.entered_queue = now;
        c.rank.value = rank_value(&self.cfg, c.queue, c.tier, arrival, c.deadline);
        c.state = ContactState::Waiting { filed: None, hold_until: None };
        let (contact, queue) = (c.id, c.queue);
        self.queues[usize::from(queue.0)].counters.arrived += 1;
        self.events.push_back(Event::CallbackDue { contact, queue });
        self.arrive(slot);
    }

    /// The first preferred agent, in the contact's order, who could take it now.
    pub(super) fn free_preferred_agent(&mut self, slot: ContactSlot) -> Option<AgentSlot> {
        let mut skills = std::mem::take(&mut self.scratch);
        let c = &self.contacts[slot];
        let languages = c.effective(&mut skills);
        let found = c.preferred.iter().filter_map(|id| self.agent_slots.get(id).copied()).find(|&a| {
            let agent = &self.agents[a];
            agent.has_room(c.channel) && agent.qualifies(&skills) && agent.speaks_any(languages)
        });
        self.scratch = skills;
        found
    }

    /// Brings a waiting contact up to date: applies due relaxation steps, ends
    /// an expired hold, re-indexes it, looks for an agent, and schedules its
    /// next wake-up.
    pub(super) fn settle(&mut self, slot: ContactSlot, trigger: Trigger) {
        debug_assert!(self.contacts[slot].is_waiting());
        self.unindex(slot);
        self.apply_due_steps(slot);
        let now = self.now;
        if let ContactState::Waiting { hold_until, .. } = &mut self.contacts[slot].state {
            if hold_until.is_some_and(|h| h <= now) {
                *hold_until = None;
            }
        }
        // Look for an agent before filing the contact: most contacts that
        // find one at once never touch the index.
        if self.route_contact(slot, trigger) {
            return;
        }
        self.index_waiting(slot);
        self.schedule_wake(slot);
    }

    pub(super) fn apply_due_steps(&mut self, slot: ContactSlot) {
        loop {
            let c = &self.contacts[slot];
            let queue = &self.cfg.queues[usize::from(c.queue.0)];
            let Some(&step) = queue.relaxation.get(usize::from(c.relax.next_step)) else { return };
            if c.entered_queue + step.after > self.now {
                return;
            }
            let (contact, from, index) = (c.id, c.queue, c.relax.next_step);
            match step.action {
                RelaxAction::OverflowTo(to) if self.has_room(to) => {
                    let c = &mut self.contacts[slot];
                    c.queue = to;
                    c.entered_queue = self.now;
                    c.relax = Relaxation::NONE;
                    c.rank.value = rank_value(&self.cfg, to, c.tier, c.arrival, c.deadline);
                    self.queues[usize::from(from.0)].counters.overflowed_out += 1;
                    self.queues[usize::from(to.0)].counters.overflowed_in += 1;
                    let reason = OverflowReason::Relaxation;
                    self.events.push_back(Event::Overflowed { contact, from, to, reason });
                }
                // A full target: the contact stays where it is, nothing is lost.
                RelaxAction::OverflowTo(_) => self.contacts[slot].relax.next_step += 1,
                action => {
                    let c = &mut self.contacts[slot];
                    c.relax.apply(action);
                    c.relax.next_step += 1;
                    self.events.push_back(Event::Relaxed { contact, queue: from, step: index });
                }
            }
        }
    }

    pub(super) fn schedule_wake(&mut self, slot: ContactSlot) {
        let c = &self.contacts[slot];
        let Some((at, lane)) = self.next_wake_of(c) else { return };
        if Some(at) == c.next_wake {
            return;
        }
        // A new generation: an earlier timer of this contact set for the
        // same instant stays dead, so the one that fires is always the one
        // set last, which a rebuilt router holds too.
        let gen = self.next_gen();
        let timer = Timer::ContactWake { slot, gen };
        let c = &mut self.contacts[slot];
        c.gen = gen;
        c.next_wake = Some(at);
        match lane {
            Some(lane) => {
                self.timers.schedule_in_lane(lane, at, timer, dead_timers(&self.contacts, &self.agents, &self.offers))
            }
            None => self.timers.schedule(at, timer),
        }
    }

    /// When a contact should next wake up, and the timer lane for it:
    /// callbacks have none, everything else one per queue and kind.
    pub(super) fn next_wake_of(&self, c: &Contact) -> Option<(Time, Option<u64>)> {
        let step = self.cfg.queues[usize::from(c.queue.0)].relaxation.get(usize::from(c.relax.next_step));
        let next_step = step.map(|s| c.entered_queue + s.after);
        let relax_lane = lane(LANE_RELAX, c.queue.0, c.relax.next_step);
        match c.state {
            ContactState::Scheduled { due } => Some((due, None)),
            ContactState::Waiting { hold_until, .. } => match (hold_until, next_step) {
                (Some(h), Some(s)) if s < h => Some((s, Some(relax_lane))),
                (Some(h), _) => Some((h, Some(lane(LANE_HOLD, c.queue.0, 0)))),
                (None, Some(s)) => Some((s, Some(relax_lane))),
                (None, None) => None,
            },
            _ => None,
        }
    }

    /// Puts a contact whose offer ended back in line, at its old rank.
    pub(super) fn return_to_queue(&mut self, slot: ContactSlot) {
        self.contacts[slot].state = ContactState::Waiting { filed: None, hold_until: None };
        self.settle(slot, Trigger::ContactWaiting);
    }

    pub(super) fn remove_contact(&mut self, slot: ContactSlot) -> Contact {
        self.sessions.release(Kind::Contact, slot);
        let c = self.contacts.remove(slot).expect("contact is live");
        self.contact_slots.remove(&c.id);
        c
    }
}
