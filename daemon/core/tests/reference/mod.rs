//! A slow, obviously-correct reference for the router's decisions.
//!
//! It works on a [`Snapshot`] with plain scans: which agents have room, who
//! qualifies, which contact or agent is best. Nothing here shares code with
//! the router's indexes, and the effective requirements are recomputed from
//! the contact's request, its queue's relaxation steps and the clock.
#![allow(dead_code)]

use ccr_core::*;

/// Requirements in force at `now`: every non-overflow step whose time has come.
pub fn effective(cfg: &RouterConfig, c: &ContactView, now: Time) -> (Vec<SkillReq>, Option<Vec<LanguageId>>) {
    let mut cap = 10u8;
    let mut languages = 1usize;
    let mut any = false;
    for step in &cfg.queues[usize::from(c.queue.0)].relaxation {
        if c.entered_queue + step.after > now {
            break;
        }
        match step.action {
            RelaxAction::MinProficiencyAtMost(p) => cap = cap.min(p),
            RelaxAction::NextLanguage => languages += 1,
            RelaxAction::AnyLanguage => any = true,
            RelaxAction::OverflowTo(_) => {}
        }
    }
    let skills =
        c.skills.iter().map(|r| SkillReq { skill: r.skill, min_proficiency: r.min_proficiency.min(cap) }).collect();
    let langs = if any || c.languages.is_empty() {
        None
    } else {
        Some(c.languages[..languages.min(c.languages.len())].to_vec())
    };
    (skills, langs)
}

pub fn proficiency(a: &AgentView, skill: SkillId) -> u8 {
    a.skills.iter().find(|(s, _)| *s == skill).map_or(0, |&(_, p)| p)
}

pub fn qualifies(a: &AgentView, skills: &[SkillReq], languages: &Option<Vec<LanguageId>>) -> bool {
    skills.iter().all(|r| proficiency(a, r.skill) >= r.min_proficiency)
        && languages.as_ref().is_none_or(|ls| ls.iter().any(|l| a.languages.contains(l)))
}

/// Room for one more contact on `channel`: ready, under capacity, and voice
/// only when entirely free, nothing else during voice.
pub fn has_room(a: &AgentView, channel: Channel) -> bool {
    if a.presence.is_some() {
        return false;
    }
    let ch = channel.index();
    match channel {
        Channel::Voice => a.capacity[0] > 0 && a.usage.iter().all(|&u| u == 0),
        _ => a.usage[0] == 0 && a.usage[ch] < a.capacity[ch],
    }
}

/// The agent a contact should get under `policy`, among `agents`.
pub fn best_agent<'a>(
    agents: impl Iterator<Item = &'a AgentView>,
    channel: Channel,
    skills: &[SkillReq],
    languages: &Option<Vec<LanguageId>>,
    policy: AgentPolicy,
) -> Option<AgentId> {
    let primary = skills[0].skill;
    agents
        .filter(|a| has_room(a, channel) && qualifies(a, skills, languages))
        .min_by_key(|a| {
            let first = match policy {
                AgentPolicy::LongestIdle => 0,
                AgentPolicy::MostProficient => 10 - proficiency(a, primary),
                AgentPolicy::LeastOccupied => a.usage[channel.index()],
            };
            (first, a.idle_order)
        })
        .map(|a| a.id)
}

/// The contact an agent should get: the lowest rank among waiting contacts it
/// has room for and qualifies for, held ones only if it is preferred.
pub fn best_contact<'a>(
    cfg: &RouterConfig,
    now: Time,
    agent: &AgentView,
    contacts: impl Iterator<Item = &'a ContactView>,
) -> Option<ContactId> {
    contacts
        .filter(|c| match c.state {
            ContactViewState::Waiting { held_until: None } => true,
            ContactViewState::Waiting { held_until: Some(_) } => c.preferred.contains(&agent.id),
            _ => false,
        })
        .filter(|c| {
            let (skills, languages) = effective(cfg, c, now);
            has_room(agent, c.channel) && qualifies(agent, &skills, &languages)
        })
        .min_by_key(|c| c.rank)
        .map(|c| c.id)
}
