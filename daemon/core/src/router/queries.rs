//! Read-only queries: counts, a queue's statistics, a contact's estimated wait,
//! the snapshot.

use super::*;

impl Router {
    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    /// The last `now` the router has seen.
    pub fn now(&self) -> Time {
        self.now
    }

    pub fn agent_state(&self, agent: AgentId) -> AgentState {
        self.agent_slots.get(&agent).map_or(AgentState::Offline, |&s| self.agents[s].state())
    }

    /// Logged-in agents by [`AgentState::index`].
    pub fn agent_state_counts(&self) -> [u32; 6] {
        self.agent_states
    }

    /// The opaque key/values a contact carries (for the offer sent to a desktop).
    pub fn contact_context(&self, contact: ContactId) -> Option<&[(String, String)]> {
        let &slot = self.contact_slots.get(&contact)?;
        Some(&self.contacts[slot].context)
    }

    pub fn contact_count(&self) -> usize {
        self.contacts.len()
    }

    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    pub fn pending_offers(&self) -> usize {
        self.offers.pending_count()
    }

    /// Timer entries held for future wake-ups, including some of those
    /// cancelled (dropped a few at a time, see `timers.rs`): for tests and
    /// memory monitoring.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    pub fn queue_id(&self, name: &str) -> Option<QueueId> {
        self.cfg.queues.iter().position(|q| q.name == name).map(|i| QueueId(i as u16))
    }

    /// Operator's view of one queue, in O(tiers): no scan of the contacts.
    pub fn queue_stats(&self, queue: QueueId) -> Result<QueueStats, CommandError> {
        self.queues.get(usize::from(queue.0)).ok_or(CommandError::UnknownQueue(queue))?;
        Ok(self.stats_of(queue))
    }

    /// [`Router::queue_stats`] of every queue, in queue order: what a metrics
    /// sampler asks for every second, on the routing thread.
    pub fn all_queue_stats(&self) -> Vec<QueueStats> {
        (0..self.queues.len()).map(|q| self.stats_of(QueueId(q as u16))).collect()
    }

    pub(super) fn stats_of(&self, queue: QueueId) -> QueueStats {
        let q = &self.queues[usize::from(queue.0)];
        QueueStats {
            name: self.cfg.queues[usize::from(queue.0)].name.clone(),
            waiting_by_tier: q.positions.waiting_by_tier().collect(),
            waiting: q.waiting(),
            oldest_wait: q.oldest.oldest().map(|a| self.now.since(a)),
            counters: q.counters,
            service_level: q.service_level(),
            service_level_target: self.cfg.queues[usize::from(queue.0)].service_level.target,
            agents_by_state: self.agent_states,
        }
    }

    /// Position in queue and estimated wait of a contact (see [`crate::stats`]
    /// and [`crate::ewt`]). O(tiers) beside the position and the count of
    /// the agents who qualify.
    pub fn estimate_wait(&self, contact: ContactId) -> Result<WaitEstimate, CommandError> {
        let &slot = self.contact_slots.get(&contact).ok_or(CommandError::UnknownContact(contact))?;
        let c = &self.contacts[slot];
        if !c.is_waiting() {
            let (zero, method) = (Duration::ZERO, EwtMethod::NotWaiting);
            return Ok(WaitEstimate { position: 0, estimated_wait: zero, low: zero, high: zero, method });
        }
        let qi = usize::from(c.queue.0);
        let (q, qc) = (&self.queues[qi], &self.cfg.queues[qi]);
        let position = q.positions.ahead_of(c.rank) + 1;
        let rates = q.rates(self.now, self.cfg.ewt_window);
        let mut skills = Vec::new();
        let languages = c.effective(&mut skills);
        let staffed = self.pools.staffed(&self.agents, c.channel, &skills, languages);
        // The staffing's rate: every agent who qualifies on this queue alone.
        let service = (qc.expected_handle_time + qc.wrap_up).as_secs_f64();
        let staffing_rate = staffed as f64 / service;
        let prior = WARM_UP_DEPARTURES as f64;
        // History and staffing, weighed by how many departures history has
        // seen against `prior` imagined ones.
        let measured = (rates.departures > 0.0 && rates.busy > 0.0).then(|| rates.departures / rates.busy);
        let drain = match (measured, staffing_rate > 0.0) {
            (Some(m), true) => {
                let weight = rates.departures / (rates.departures + prior);
                weight * m + (1.0 - weight) * staffing_rate
            }
            (Some(m), false) => m,
            (None, true) => staffing_rate,
            (None, false) => 0.0,
        };
        let mut method = if rates.departures >= prior { EwtMethod::QueueLength } else { EwtMethod::Staffing };
        let stalled_for = rates.stalled_for.unwrap_or(0.0);
        if drain <= 0.0 || stalled_for > 0.0 {
            method = EwtMethod::Stalled;
        }
        // Nothing to go by: as if one agent served the queue.
        let drain = if drain > 0.0 { drain } else { 1.0 / service };
        let overtakers = self.overtakers(c.queue, c.tier);
        let w = ewt::answered_wait(f64::from(position - 1), drain, rates.abandonment, &overtakers);
        if w.unbounded {
            method = EwtMethod::Stalled;
        }
        // A stall is assumed to last as long again (an exponential stage of
        // that mean), which an answered caller's patience outlasts: tilted
        // by θ like every other stage.
        let stall = if stalled_for > 0.0 { stalled_for / (1.0 + rates.abandonment * stalled_for) } else { 0.0 };
        // No wait is given as longer than a day (nor a figure that is not one).
        let secs = |s: f64| Duration::from_secs_f64(if s.is_nan() { 86_400.0 } else { s.clamp(0.0, 86_400.0) });
        Ok(WaitEstimate {
            position,
            estimated_wait: secs(w.mean + stall),
            low: secs(w.low),
            high: secs(w.high + 2.3 * stall),
            method,
        })
    }

    /// The tiers whose later arrivals rank before a waiting contact of
    /// `tier` in `queue`, at their measured rates.
    pub(super) fn overtakers(&self, queue: QueueId, tier: TierId) -> SmallVec<[ewt::Overtaking; 4]> {
        let q = &self.queues[usize::from(queue.0)];
        let offset = |t: usize| rank_value(&self.cfg, queue, TierId(t as u8), Time::ZERO, None);
        let own = offset(usize::from(tier.0));
        (0..self.cfg.tiers.len())
            .filter_map(|t| {
                let head_start = own.checked_sub(offset(t)).filter(|&d| d > 0)?;
                let rate = q.arrival_rate(t);
                // Strict tiers: years apart, so always before.
                let within = if head_start >= 1 << 47 { f64::INFINITY } else { head_start as f64 / 1e6 };
                (rate > 0.0).then_some(ewt::Overtaking { rate, within })
            })
            .collect()
    }

    /// Everything the router holds, in a plain form: for tests, debugging and
    /// the journal. O(n); never on the hot path.
    pub fn snapshot(&self) -> Snapshot {
        let mut scratch = Vec::new();
        let mut contacts: Vec<ContactView> =
            self.contacts.iter().map(|(slot, c)| self.contact_view_of(slot, c, &mut scratch)).collect();
        let mut agents: Vec<AgentView> = self.agents.iter().map(|(slot, a)| self.agent_view_of(slot, a)).collect();
        // By id: where records sit in memory is not state.
        contacts.sort_unstable_by_key(|c| c.id);
        agents.sort_unstable_by_key(|a| a.id);
        let sessions = self
            .sessions
            .ids()
            .into_iter()
            .map(|id| {
                let mut contacts: Vec<ContactId> =
                    self.sessions.owned(Kind::Contact, id).into_iter().map(|s| self.contacts[s].id).collect();
                let mut agents: Vec<AgentId> =
                    self.sessions.owned(Kind::Agent, id).into_iter().map(|s| self.agents[s].id).collect();
                contacts.sort_unstable();
                agents.sort_unstable();
                let state = self.sessions.state(id).expect("listed");
                SessionView { id, state, contacts, agents }
            })
            .collect();
        Snapshot { now: self.now, contacts, agents, sessions }
    }
}
