//! What supervisors and operators see: agents page by page, a queue's
//! waiting contacts in the order they will be served, and why one contact
//! still waits. Reads only, each bounded, so that the routing thread
//! answers them between decisions.

use super::Router;
use crate::agent::{Agent, Presence};
use crate::command::NotReadyReason;
use crate::contact::{Contact, ContactState};
use crate::error::CommandError;
use crate::event::AgentState;
use crate::ids::{ContactId, LanguageId, QueueId, SkillId};
use crate::sessions::Kind;
use crate::slab::{AgentSlot, ContactSlot};
use crate::snapshot::{AgentView, ContactView, ContactViewState};
use crate::stats::WaitEstimate;
use crate::time::Time;

/// The most rows one call returns.
pub const MAX_PAGE: usize = 1000;
/// The most agent slots one call of [`Router::agents_page`] reads: at
/// 10,000 agents one call reads them all, at 100,000 ten calls do.
pub const AGENT_SCAN: u32 = 16_384;

/// The most distinct requirements of a queue's waiting contacts that
/// [`AgentFilter::queue`] matches agents against.
pub const QUEUE_REQUIREMENTS: usize = 64;

/// Which agents a page lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentFilter {
    /// [`AgentState::index`].
    pub state: Option<usize>,
    pub skill: Option<SkillId>,
    /// Agents who can serve a contact waiting in the queue now (its
    /// requirements in force; the first [`QUEUE_REQUIREMENTS`] distinct ones).
    pub queue: Option<QueueId>,
}

/// What a contact needs now: channel, skills, languages (`None`: any).
type Needs = (crate::ids::Channel, Vec<crate::ids::SkillReq>, Option<Vec<LanguageId>>);

/// An agent as a supervisor sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRow {
    pub agent: AgentView,
    /// When it entered its state (at most since ccrd last started).
    pub since: Time,
}

/// Agents in slot order, and where the next page starts (`None`: done).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentPage {
    pub agents: Vec<AgentRow>,
    pub next: Option<u32>,
}

/// A waiting contact as a supervisor sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct WaitingRow {
    pub contact: ContactView,
    pub estimate: WaitEstimate,
    /// Agents logged in, and not on a break or otherwise not ready, who
    /// meet its requirements in force now (on its queue's channel).
    pub staffed: usize,
}

/// Why a contact is where it is: every logged-in agent who meets its
/// requirements now, by state, and the reasons of those not ready.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnosis {
    pub row: WaitingRow,
    /// By [`AgentState::index`].
    pub qualified_by_state: [u32; 6],
    pub not_ready: Vec<(NotReadyReason, u32)>,
}

impl Router {
    /// Up to `limit` (at most [`MAX_PAGE`]) agents that pass `filter`, from
    /// slot `from` on, reading at most [`AGENT_SCAN`] slots.
    pub fn agents_page(&self, from: u32, limit: usize, filter: &AgentFilter) -> AgentPage {
        let limit = limit.clamp(1, MAX_PAGE);
        let needs = filter.queue.map(|q| self.queue_needs(q));
        let serves = |a: &Agent| {
            needs.as_ref().is_none_or(|needs| {
                needs.iter().any(|(channel, skills, languages)| a.could_serve(*channel, skills, languages.as_deref()))
            })
        };
        let mut agents = Vec::new();
        let mut next = None;
        for (slot, a) in self.agents.iter_from(AgentSlot(from)) {
            if slot.0 - from >= AGENT_SCAN || agents.len() == limit {
                next = Some(slot.0);
                break;
            }
            let state = a.reported.unwrap_or(AgentState::Offline);
            let wanted = filter.state.is_none_or(|s| s == state.index())
                && filter.skill.is_none_or(|skill| a.proficiency(skill) > 0)
                && serves(a);
            if wanted {
                agents.push(AgentRow { agent: self.agent_view_of(slot, a), since: a.reported_since });
            }
        }
        AgentPage { agents, next }
    }

    /// The contacts waiting in `queue` in the order they will be served,
    /// from the first ranked after `after` ((value, seq) of a rank, as
    /// [`ContactView::rank`]), at most `limit` (≤ [`MAX_PAGE`]). One pass
    /// over the queue's waiting contacts (its entries by arrival), not over
    /// every contact.
    pub fn waiting_in_queue(
        &self,
        queue: QueueId,
        after: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<Vec<WaitingRow>, CommandError> {
        let q = self.queues.get(usize::from(queue.0)).ok_or(CommandError::UnknownQueue(queue))?;
        let limit = limit.clamp(1, MAX_PAGE);
        let after = after.map(|(value, seq)| (u128::from(value) << 64) | u128::from(seq));
        // The `limit` best ranks past `after`, the worst of them on top.
        let mut best = std::collections::BinaryHeap::with_capacity(limit + 1);
        for slot in q.oldest.waiting_slots(&self.waiting_stamps) {
            let key = self.contacts[slot].rank.key();
            if after.is_some_and(|a| key <= a) {
                continue;
            }
            best.push((key, slot));
            if best.len() > limit {
                best.pop();
            }
        }
        let mut scratch = Vec::new();
        let rows = best.into_sorted_vec().into_iter().map(|(_, slot)| self.waiting_row(slot, &mut scratch));
        rows.collect()
    }

    /// The distinct requirements in force of the contacts waiting in
    /// `queue`, the first [`QUEUE_REQUIREMENTS`] of them.
    fn queue_needs(&self, queue: QueueId) -> Vec<Needs> {
        let mut needs: Vec<Needs> = Vec::new();
        let Some(q) = self.queues.get(usize::from(queue.0)) else { return needs };
        let mut skills = Vec::new();
        for slot in q.oldest.waiting_slots(&self.waiting_stamps) {
            let c = &self.contacts[slot];
            let languages = c.effective(&mut skills).map(<[LanguageId]>::to_vec);
            let need = (c.channel, skills.clone(), languages);
            if !needs.contains(&need) {
                needs.push(need);
                if needs.len() == QUEUE_REQUIREMENTS {
                    break;
                }
            }
        }
        needs
    }

    /// Agents on duty (logged in, not "not ready") who can serve the
    /// queue's longest-waiting contact; `None` when nobody waits.
    pub fn staffed_for_oldest(&self, queue: QueueId) -> Option<usize> {
        let slot = self.queues.get(usize::from(queue.0))?.oldest.oldest_slot()?;
        let c = &self.contacts[slot];
        let mut skills = Vec::new();
        let languages = c.effective(&mut skills);
        Some(if skills.is_empty() { 0 } else { self.pools.staffed(&self.agents, c.channel, &skills, languages) })
    }

    /// Logged-in agents by skill (a row per skill id, `skills` rows) and
    /// state ([`AgentState::index`]): what the metrics sample once a second.
    /// One pass over the agents.
    pub fn agent_states_by_skill(&self, skills: usize) -> Vec<[u32; 6]> {
        let mut rows = vec![[0u32; 6]; skills];
        for (_, a) in self.agents.iter() {
            let state = a.reported.unwrap_or(AgentState::Offline).index();
            for &(skill, _) in &a.skills {
                if let Some(row) = rows.get_mut(usize::from(skill.0)) {
                    row[state] += 1;
                }
            }
        }
        rows
    }

    /// One contact's plain copy.
    pub fn contact_view(&self, contact: ContactId) -> Result<ContactView, CommandError> {
        let &slot = self.contact_slots.get(&contact).ok_or(CommandError::UnknownContact(contact))?;
        Ok(self.contact_view_of(slot, &self.contacts[slot], &mut Vec::new()))
    }

    /// One contact, and why it is still waiting.
    pub fn diagnose(&self, contact: ContactId) -> Result<Diagnosis, CommandError> {
        let &slot = self.contact_slots.get(&contact).ok_or(CommandError::UnknownContact(contact))?;
        let mut scratch = Vec::new();
        let row = self.waiting_row(slot, &mut scratch)?;
        let c = &self.contacts[slot];
        let languages = c.effective(&mut scratch);
        let mut qualified_by_state = [0u32; 6];
        let mut not_ready: Vec<(NotReadyReason, u32)> = Vec::new();
        for (_, a) in self.agents.iter() {
            if !a.could_serve(c.channel, &scratch, languages) {
                continue;
            }
            let state = a.reported.unwrap_or(AgentState::Offline);
            qualified_by_state[state.index()] += 1;
            if let Presence::NotReady(reason) = a.presence {
                match not_ready.iter_mut().find(|(r, _)| *r == reason) {
                    Some((_, n)) => *n += 1,
                    None => not_ready.push((reason, 1)),
                }
            }
        }
        Ok(Diagnosis { row, qualified_by_state, not_ready })
    }

    fn waiting_row(
        &self,
        slot: ContactSlot,
        scratch: &mut Vec<crate::ids::SkillReq>,
    ) -> Result<WaitingRow, CommandError> {
        let c = &self.contacts[slot];
        let estimate = self.estimate_wait(c.id)?;
        let contact = self.contact_view_of(slot, c, scratch);
        let languages: Option<&[LanguageId]> = contact.effective_languages.as_deref();
        let staffed = if contact.effective_skills.is_empty() {
            0
        } else {
            self.pools.staffed(&self.agents, c.channel, &contact.effective_skills, languages)
        };
        Ok(WaitingRow { contact, estimate, staffed })
    }

    /// A contact's plain copy ([`Router::snapshot`]'s).
    pub(super) fn contact_view_of(
        &self,
        slot: ContactSlot,
        c: &Contact,
        scratch: &mut Vec<crate::ids::SkillReq>,
    ) -> ContactView {
        let languages = c.effective(scratch).map(<[LanguageId]>::to_vec);
        let state = match c.state {
            ContactState::Scheduled { due } => ContactViewState::Scheduled { due },
            ContactState::Waiting { hold_until, .. } => ContactViewState::Waiting { held_until: hold_until },
            ContactState::Offered { offer, agent } => ContactViewState::Offered { offer, agent: self.agents[agent].id },
            ContactState::Connected { agent } => ContactViewState::Connected { agent: self.agents[agent].id },
        };
        ContactView {
            id: c.id,
            channel: c.channel,
            queue: c.queue,
            tier: c.tier,
            skills: c.skills.to_vec(),
            languages: c.languages.to_vec(),
            preferred: c.preferred.to_vec(),
            context: c.context.to_vec(),
            arrival: c.arrival,
            entered_queue: c.entered_queue,
            deadline: c.deadline,
            rank: (c.rank.value, c.rank.seq),
            effective_skills: scratch.clone(),
            effective_languages: languages,
            relaxation_steps_applied: c.relax.next_step,
            state,
            owner: self.sessions.owner(Kind::Contact, slot),
        }
    }

    /// An agent's plain copy ([`Router::snapshot`]'s).
    pub(super) fn agent_view_of(&self, slot: AgentSlot, a: &Agent) -> AgentView {
        AgentView {
            id: a.id,
            skills: a.skills.to_vec(),
            languages: a.languages.clone(),
            capacity: a.capacity,
            usage: a.usage,
            presence: match a.presence {
                Presence::Ready => None,
                Presence::NotReady(r) => Some(r),
            },
            state: a.state(),
            idle_order: self.pools.order(slot),
            wrap_ups: a.wrap_ups.iter().map(|w| (w.contact, w.channel, w.ends_at)).collect(),
            owner: self.sessions.owner(Kind::Agent, slot),
        }
    }
}
