//! A synthetic contact centre for benchmarks: agents and contacts drawn from
//! a seeded generator, shaped like a large multi-skill centre (a few popular
//! languages and skills, a long tail of rare ones).
//!
//! `cargo bench -p ccr-benches --bench routing` runs the routing benchmarks
//! (mean cost per decision, criterion); `--bench latency` prints the
//! distribution of single decisions. [`scenarios`] holds the workloads both use.

pub mod scenarios;

use ccr_core::{
    AgentProfile, Channel, ContactId, ContactSpec, LanguageId, Languages, QueueConfig, QueueId, RelaxAction, RelaxStep,
    RouterConfig, SkillId, SkillReq, SkillReqs, TierId,
};
use std::time::Duration;

/// SplitMix64: small, fast, and the same sequence on every machine.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Skewed towards small values: `0..n` with roughly Zipf-like weights.
    pub fn skewed(&mut self, n: u64) -> u64 {
        let a = self.below(n);
        let b = self.below(n);
        a.min(b)
    }
}

/// The shape of the centre.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub agents: u64,
    pub skills: u16,
    pub languages: u16,
    pub tiers: u8,
    pub queues: u16,
    pub skills_per_agent: usize,
}

impl Shape {
    /// The size named in the routing-core issue: 10k agents × 200 skills ×
    /// 20 languages × 3 tiers.
    pub const LARGE: Shape =
        Shape { agents: 10_000, skills: 200, languages: 20, tiers: 3, queues: 10, skills_per_agent: 8 };
    /// A centre ten times that: 100k agents, the same skills and languages
    /// (the benches put a million contacts in its queues).
    pub const HUGE: Shape = Shape { agents: 100_000, ..Shape::LARGE };
}

pub fn config(shape: Shape) -> RouterConfig {
    // The benches hold more contacts than ccrd's default allows.
    let mut cfg = RouterConfig { max_contacts: ccr_core::config::MAX_CONTACTS_LIMIT, ..RouterConfig::default() };
    cfg.tiers.truncate(usize::from(shape.tiers));
    cfg.queues = (0..shape.queues)
        .map(|i| {
            let mut q = QueueConfig::new(&format!("queue-{i}"));
            q.relaxation = vec![
                RelaxStep { after: Duration::from_secs(30), action: RelaxAction::MinProficiencyAtMost(3) },
                RelaxStep { after: Duration::from_secs(60), action: RelaxAction::NextLanguage },
            ];
            q
        })
        .collect();
    cfg
}

pub struct Generator {
    pub shape: Shape,
    pub rng: Rng,
    next_contact: u64,
    /// Profiles handed out so far: contacts are drawn from them.
    roster: Vec<AgentProfile>,
}

impl Generator {
    pub fn new(shape: Shape, seed: u64) -> Self {
        Generator { shape, rng: Rng::new(seed), next_contact: 1, roster: Vec::new() }
    }

    /// A voice agent with `skills_per_agent` skills and one or two languages.
    pub fn agent(&mut self) -> AgentProfile {
        let s = self.shape;
        let mut skills: Vec<(SkillId, u8)> = Vec::with_capacity(s.skills_per_agent);
        while skills.len() < s.skills_per_agent {
            let skill = SkillId(self.rng.skewed(u64::from(s.skills)) as u16);
            if !skills.iter().any(|&(k, _)| k == skill) {
                skills.push((skill, 1 + self.rng.below(10) as u8));
            }
        }
        let first = LanguageId(self.rng.skewed(u64::from(s.languages)) as u16);
        let mut languages = vec![first];
        if self.rng.below(2) == 0 {
            let second = LanguageId(self.rng.below(u64::from(s.languages)) as u16);
            if second != first {
                languages.push(second);
            }
        }
        let profile = AgentProfile { skills, languages, capacity: [1, 0, 0] };
        self.roster.push(profile.clone());
        profile
    }

    /// A voice contact that one of the agents handed out so far can serve, as IVR routing rules are written for skills the centre has:
    /// one or two skills of an agent's profile (four in five need one),
    /// a minimum proficiency up to that profile's, its language first and
    /// sometimes a common fallback.
    pub fn contact(&mut self) -> ContactSpec {
        let s = self.shape;
        let id = ContactId(self.next_contact);
        self.next_contact += 1;
        let template = match self.roster.len() {
            0 => self.agent(),
            n => self.roster[self.rng.below(n as u64) as usize].clone(),
        };
        let n = if self.rng.below(5) == 0 { 2 } else { 1 };
        let pick = self.rng.below((template.skills.len() - n + 1) as u64) as usize;
        let skills: SkillReqs = template.skills[pick..pick + n]
            .iter()
            .map(|&(skill, p)| SkillReq { skill, min_proficiency: 1 + self.rng.below(u64::from(p.min(6))) as u8 })
            .collect();
        let first = template.languages[0];
        let mut languages = Languages::from_elem(first, 1);
        let fallback = LanguageId(self.rng.below(3) as u16);
        if fallback != first {
            languages.push(fallback);
        }
        ContactSpec {
            id,
            channel: Channel::Voice,
            queue: QueueId(self.rng.below(u64::from(s.queues)) as u16),
            tier: TierId(self.rng.below(u64::from(s.tiers)) as u8),
            skills,
            languages,
            preferred_agents: Vec::new(),
            context: Vec::new(),
        }
    }
}

/// Makes ccrd's allocator (mimalloc) the benchmark binary's, so that the
/// benches measure what the daemon does. A macro, not a static here: the
/// memory test installs its own counting allocator.
#[macro_export]
macro_rules! use_ccrd_allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::MiMalloc = $crate::MiMalloc;
    };
}

#[doc(hidden)]
pub use mimalloc::MiMalloc;
