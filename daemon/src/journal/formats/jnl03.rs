//! Journal records of segment format 3 (`CCRJNL03`): one [`Entry`] per
//! record, postcard-encoded.
//!
//! The routing thread encodes each accepted command as it comes, so the
//! types borrow what they can from the core's command ([`Cow`]): encoding
//! one copies no string and allocates nothing for the common sizes.
//! Decoding gives owned values.

use std::borrow::Cow;

use ccr_core::{
    AgentId, AgentProfile, Channel, Command, ContactId, ContactSpec, LanguageId, NotReadyReason, OfferId, QueueId,
    SessionId, SkillId, SkillReq, TierId, Time, TransferSpec,
};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::config::Config;
use crate::journal::format::Names;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry<'a> {
    pub seq: u64,
    pub now: Time,
    pub input: Input<'a>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Input<'a> {
    Command { session: SessionId, command: CommandV<'a> },
    Timers,
    Restart { names: Cow<'a, Names>, config: Box<Config> },
}

/// `ccr_core::Command` as this format writes it; the variants' order is
/// the format's, whatever the core's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CommandV<'a> {
    AgentLogin {
        agent: AgentId,
        profile: Profile<'a>,
        ready: bool,
    },
    AgentLogout {
        agent: AgentId,
    },
    AgentDisconnected {
        agent: AgentId,
    },
    AgentReady {
        agent: AgentId,
    },
    AgentNotReady {
        agent: AgentId,
        reason: Reason,
    },
    Accept {
        agent: AgentId,
        offer: OfferId,
    },
    Reject {
        agent: AgentId,
        offer: OfferId,
    },
    Complete {
        agent: AgentId,
        contact: ContactId,
    },
    EndWrapUp {
        agent: AgentId,
        contact: ContactId,
    },
    Enqueue(Spec<'a>),
    Abandon {
        contact: ContactId,
    },
    Transfer(Transfer<'a>),
    Reconfigure(Box<Config>),
    Restart,
    ScheduleCallback {
        spec: Spec<'a>,
        due: Time,
        deadline: Time,
    },
    OpenSession {
        session: SessionId,
    },
    LoseSession {
        session: SessionId,
    },
    ClaimContact {
        contact: ContactId,
    },
    Drain,
    /// Added after the format's first release, at the end, so that earlier
    /// records read as before; a ccrd older than it refuses a journal that
    /// holds one (an unknown variant).
    Supervise(Box<CommandV<'a>>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile<'a> {
    pub skills: Cow<'a, [(SkillId, u8)]>,
    pub languages: Cow<'a, [LanguageId]>,
    pub capacity: [u8; 3],
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec<'a> {
    pub id: ContactId,
    pub channel: ChannelV,
    pub queue: QueueId,
    pub tier: u8,
    pub skills: Skills,
    pub languages: Cow<'a, [LanguageId]>,
    pub preferred_agents: Cow<'a, [AgentId]>,
    pub context: Cow<'a, [(String, String)]>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transfer<'a> {
    pub contact: ContactId,
    pub queue: QueueId,
    pub skills: Skills,
    pub languages: Cow<'a, [LanguageId]>,
    pub tier: Option<u8>,
    pub context: Cow<'a, [(String, String)]>,
}

/// A contact's skill requirements, inline up to the common count.
pub type Skills = SmallVec<[Requirement; 4]>;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Requirement {
    pub skill: SkillId,
    pub min_proficiency: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ChannelV {
    Voice,
    Chat,
    Email,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reason {
    LoggedIn,
    Break,
    Lunch,
    Training,
    Meeting,
    Away,
    Rona,
    Declined,
    Restart,
    Disconnected,
    Other,
}

impl<'a> From<&'a Command> for CommandV<'a> {
    fn from(command: &'a Command) -> CommandV<'a> {
        match command {
            Command::AgentLogin { agent, profile, ready } => CommandV::AgentLogin {
                agent: *agent,
                profile: Profile {
                    skills: Cow::Borrowed(&profile.skills),
                    languages: Cow::Borrowed(&profile.languages),
                    capacity: profile.capacity,
                },
                ready: *ready,
            },
            &Command::AgentLogout { agent } => CommandV::AgentLogout { agent },
            &Command::AgentDisconnected { agent } => CommandV::AgentDisconnected { agent },
            &Command::AgentReady { agent } => CommandV::AgentReady { agent },
            &Command::AgentNotReady { agent, reason } => CommandV::AgentNotReady { agent, reason: reason.into() },
            &Command::Accept { agent, offer } => CommandV::Accept { agent, offer },
            &Command::Reject { agent, offer } => CommandV::Reject { agent, offer },
            &Command::Complete { agent, contact } => CommandV::Complete { agent, contact },
            &Command::EndWrapUp { agent, contact } => CommandV::EndWrapUp { agent, contact },
            Command::Enqueue(spec) => CommandV::Enqueue(spec.into()),
            &Command::Abandon { contact } => CommandV::Abandon { contact },
            Command::Transfer(t) => CommandV::Transfer(Transfer {
                contact: t.contact,
                queue: t.queue,
                skills: skills_of(&t.skills),
                languages: Cow::Borrowed(&t.languages),
                tier: t.tier.map(|t| t.0),
                context: Cow::Borrowed(&t.context),
            }),
            Command::Reconfigure(config) => CommandV::Reconfigure(Box::new(Config::from(&**config))),
            Command::Restart => CommandV::Restart,
            Command::ScheduleCallback { spec, due, deadline } => {
                CommandV::ScheduleCallback { spec: spec.into(), due: *due, deadline: *deadline }
            }
            &Command::OpenSession { session } => CommandV::OpenSession { session },
            &Command::LoseSession { session } => CommandV::LoseSession { session },
            &Command::ClaimContact { contact } => CommandV::ClaimContact { contact },
            Command::Drain => CommandV::Drain,
            Command::Supervise(action) => CommandV::Supervise(Box::new(CommandV::from(&**action))),
        }
    }
}

impl From<CommandV<'_>> for Command {
    fn from(command: CommandV<'_>) -> Command {
        match command {
            CommandV::AgentLogin { agent, profile, ready } => Command::AgentLogin {
                agent,
                profile: AgentProfile {
                    skills: profile.skills.into_owned(),
                    languages: profile.languages.into_owned(),
                    capacity: profile.capacity,
                },
                ready,
            },
            CommandV::AgentLogout { agent } => Command::AgentLogout { agent },
            CommandV::AgentDisconnected { agent } => Command::AgentDisconnected { agent },
            CommandV::AgentReady { agent } => Command::AgentReady { agent },
            CommandV::AgentNotReady { agent, reason } => Command::AgentNotReady { agent, reason: reason.into() },
            CommandV::Accept { agent, offer } => Command::Accept { agent, offer },
            CommandV::Reject { agent, offer } => Command::Reject { agent, offer },
            CommandV::Complete { agent, contact } => Command::Complete { agent, contact },
            CommandV::EndWrapUp { agent, contact } => Command::EndWrapUp { agent, contact },
            CommandV::Enqueue(spec) => Command::Enqueue(spec.into()),
            CommandV::Abandon { contact } => Command::Abandon { contact },
            CommandV::Transfer(t) => Command::Transfer(TransferSpec {
                contact: t.contact,
                queue: t.queue,
                skills: core_skills(&t.skills),
                languages: t.languages.iter().copied().collect(),
                tier: t.tier.map(TierId),
                context: t.context.into_owned(),
            }),
            CommandV::Reconfigure(config) => Command::Reconfigure(Box::new((*config).into())),
            CommandV::Restart => Command::Restart,
            CommandV::ScheduleCallback { spec, due, deadline } => {
                Command::ScheduleCallback { spec: spec.into(), due, deadline }
            }
            CommandV::OpenSession { session } => Command::OpenSession { session },
            CommandV::LoseSession { session } => Command::LoseSession { session },
            CommandV::ClaimContact { contact } => Command::ClaimContact { contact },
            CommandV::Drain => Command::Drain,
            CommandV::Supervise(action) => Command::Supervise(Box::new(Command::from(*action))),
        }
    }
}

impl<'a> From<&'a ContactSpec> for Spec<'a> {
    fn from(s: &'a ContactSpec) -> Spec<'a> {
        Spec {
            id: s.id,
            channel: s.channel.into(),
            queue: s.queue,
            tier: s.tier.0,
            skills: skills_of(&s.skills),
            languages: Cow::Borrowed(&s.languages),
            preferred_agents: Cow::Borrowed(&s.preferred_agents),
            context: Cow::Borrowed(&s.context),
        }
    }
}

impl From<Spec<'_>> for ContactSpec {
    fn from(s: Spec<'_>) -> ContactSpec {
        ContactSpec {
            id: s.id,
            channel: s.channel.into(),
            queue: s.queue,
            tier: TierId(s.tier),
            skills: core_skills(&s.skills),
            languages: s.languages.iter().copied().collect(),
            preferred_agents: s.preferred_agents.into_owned(),
            context: s.context.into_owned(),
        }
    }
}

fn skills_of(skills: &[SkillReq]) -> Skills {
    skills.iter().map(|r| Requirement { skill: r.skill, min_proficiency: r.min_proficiency }).collect()
}

fn core_skills(skills: &[Requirement]) -> ccr_core::SkillReqs {
    skills.iter().map(|r| SkillReq { skill: r.skill, min_proficiency: r.min_proficiency }).collect()
}

impl From<Channel> for ChannelV {
    fn from(c: Channel) -> ChannelV {
        match c {
            Channel::Voice => ChannelV::Voice,
            Channel::Chat => ChannelV::Chat,
            Channel::Email => ChannelV::Email,
        }
    }
}

impl From<ChannelV> for Channel {
    fn from(c: ChannelV) -> Channel {
        match c {
            ChannelV::Voice => Channel::Voice,
            ChannelV::Chat => Channel::Chat,
            ChannelV::Email => Channel::Email,
        }
    }
}

impl From<NotReadyReason> for Reason {
    fn from(r: NotReadyReason) -> Reason {
        match r {
            NotReadyReason::LoggedIn => Reason::LoggedIn,
            NotReadyReason::Break => Reason::Break,
            NotReadyReason::Lunch => Reason::Lunch,
            NotReadyReason::Training => Reason::Training,
            NotReadyReason::Meeting => Reason::Meeting,
            NotReadyReason::Away => Reason::Away,
            NotReadyReason::Rona => Reason::Rona,
            NotReadyReason::Declined => Reason::Declined,
            NotReadyReason::Restart => Reason::Restart,
            NotReadyReason::Disconnected => Reason::Disconnected,
            NotReadyReason::Other => Reason::Other,
        }
    }
}

impl From<Reason> for NotReadyReason {
    fn from(r: Reason) -> NotReadyReason {
        match r {
            Reason::LoggedIn => NotReadyReason::LoggedIn,
            Reason::Break => NotReadyReason::Break,
            Reason::Lunch => NotReadyReason::Lunch,
            Reason::Training => NotReadyReason::Training,
            Reason::Meeting => NotReadyReason::Meeting,
            Reason::Away => NotReadyReason::Away,
            Reason::Rona => NotReadyReason::Rona,
            Reason::Declined => NotReadyReason::Declined,
            Reason::Restart => NotReadyReason::Restart,
            Reason::Disconnected => NotReadyReason::Disconnected,
            Reason::Other => NotReadyReason::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ccr_core::{
        AgentPolicy, ContactPolicy, QueueConfig, RelaxAction, RelaxStep, RouterConfig, SessionId, WhenFull,
    };

    use super::*;

    /// Every command, with every variant of what it carries, reads back as
    /// written (the bytes are pinned by the checked-in fixtures).
    #[test]
    fn every_command_reads_back_as_written() {
        let mut config = RouterConfig::default();
        config.queues.push(QueueConfig::new("b"));
        config.queues[0].relaxation = vec![
            RelaxStep { after: Duration::from_millis(1500), action: RelaxAction::MinProficiencyAtMost(3) },
            RelaxStep { after: Duration::from_secs(2), action: RelaxAction::NextLanguage },
            RelaxStep { after: Duration::from_secs(3), action: RelaxAction::AnyLanguage },
            RelaxStep { after: Duration::from_secs(4), action: RelaxAction::OverflowTo(QueueId(1)) },
        ];
        config.queues[0].when_full = WhenFull::OverflowTo(QueueId(1));
        config.queues[0].max_waiting = Some(300);
        config.queues[1].contact_policy = ContactPolicy::EarliestDeadline;
        config.queues[1].agent_policy = AgentPolicy::LeastOccupied;
        config.tiers[0].answer_target = Some(Duration::from_secs(9));
        let spec = ContactSpec {
            id: ContactId(300),
            channel: Channel::Email,
            queue: QueueId(1),
            tier: TierId(2),
            skills: [SkillReq { skill: SkillId(400), min_proficiency: 5 }; 5].into_iter().collect(),
            languages: [LanguageId(3), LanguageId(200)].into_iter().collect(),
            preferred_agents: vec![AgentId(1 << 40)],
            context: vec![("k".into(), "v".into())],
        };
        let (agent, contact) = (AgentId(5), ContactId(7));
        let mut commands = vec![
            Command::AgentLogin {
                agent,
                profile: AgentProfile {
                    skills: vec![(SkillId(300), 9)],
                    languages: vec![LanguageId(1)],
                    capacity: [1, 2, 3],
                },
                ready: true,
            },
            Command::AgentLogout { agent },
            Command::AgentDisconnected { agent },
            Command::AgentReady { agent },
            Command::Accept { agent, offer: OfferId(999_999) },
            Command::Reject { agent, offer: OfferId(6) },
            Command::Complete { agent, contact },
            Command::EndWrapUp { agent, contact },
            Command::Enqueue(spec.clone()),
            Command::Abandon { contact },
            Command::Transfer(TransferSpec {
                contact,
                queue: QueueId(1),
                skills: spec.skills.clone(),
                languages: spec.languages.clone(),
                tier: Some(TierId(1)),
                context: vec![("a".into(), "b".into())],
            }),
            Command::Reconfigure(Box::new(config)),
            Command::Restart,
            Command::ScheduleCallback { spec, due: Time::from_secs(5), deadline: Time::from_secs(6) },
            Command::OpenSession { session: SessionId(11) },
            Command::LoseSession { session: SessionId(12) },
            Command::ClaimContact { contact },
            Command::Drain,
            Command::Supervise(Box::new(Command::AgentNotReady { agent, reason: NotReadyReason::Meeting })),
            Command::Supervise(Box::new(Command::Abandon { contact })),
        ];
        use NotReadyReason::*;
        for reason in [LoggedIn, Break, Lunch, Training, Meeting, Away, Rona, Declined, Restart, Disconnected, Other] {
            commands.push(Command::AgentNotReady { agent, reason });
        }
        for command in commands {
            let bytes = postcard::to_stdvec(&CommandV::from(&command)).unwrap();
            let back: CommandV<'_> = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(Command::from(back), command);
        }
    }
}
