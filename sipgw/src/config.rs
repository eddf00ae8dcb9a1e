//! ccr-sipgw's configuration: TOML, validated at start with every problem,
//! its field and its line (the reading is ccrd's own,
//! [`ccr_daemon::config::document`]). `deploy/sipgw.example.toml` has
//! every option.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ccr_daemon::config::document::{Checker, Document, Problem};
/// Everything wrong with a configuration file (ccrd's kind: each problem
/// with its field and line).
pub use ccr_daemon::config::ConfigError;
use serde::Deserialize;
use toml::Spanned;

/// A dialled number's routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Number {
    /// The request URI's user part; `*` for every number not listed.
    pub number: String,
    pub queue: String,
    /// Empty: ccrd's lowest tier.
    pub tier: String,
    /// Skill → minimum proficiency.
    pub skills: Vec<(String, u32)>,
    pub languages: Vec<String>,
}

/// An agent whose phone is a SIP user agent registered with Kamailio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    pub id: u64,
    /// The user part the phone registers (Kamailio's location table is
    /// keyed by it: usrloc's `use_domain` off).
    pub sip_user: String,
    /// Skill → proficiency.
    pub skills: Vec<(String, u32)>,
    pub languages: Vec<String>,
}

/// What the bridge decides with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routing {
    pub numbers: Vec<Number>,
    pub agents: Vec<Agent>,
    /// A caller is ended (480) after waiting this long unanswered; keep it
    /// under Kamailio's `fr_inv_timer`, which ends the transaction.
    pub max_wait: Duration,
    /// An answered call with no BYE after this long is completed in ccrd
    /// and forgotten (a lost BYE would keep its agent busy for ever).
    pub max_talk: Duration,
    /// An agent's phone stops ringing this long before ccrd's offer
    /// expires, so that an answer reaches ccrd while the offer stands.
    pub answer_margin: Duration,
}

/// A client certificate and its key (PEM or DER).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ccrd {
    /// Every node of the centre (one for a single ccrd).
    pub addresses: Vec<SocketAddr>,
    pub server_name: String,
    /// The certificate(s) ccrd's is checked against: ccrd's own
    /// (`data_dir/cert.der`) or the CA that issued it.
    pub ca: PathBuf,
    /// For a ccrd that requires client certificates: the gateway
    /// connection's (OU `gateway`) and the agents' (OU `agent`).
    pub gateway_identity: Option<Identity>,
    pub agent_identity: Option<Identity>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub ccrd: Ccrd,
    /// Kamailio's evapi `bind_addr`.
    pub evapi: SocketAddr,
    /// `/metrics`, `/healthz`, `/readyz`; none without it.
    pub metrics_listen: Option<SocketAddr>,
    pub routing: Routing,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    ccrd: RawCcrd,
    kamailio: RawKamailio,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    calls: RawCalls,
    #[serde(default)]
    numbers: Vec<RawNumber>,
    #[serde(default)]
    agents: Vec<RawAgent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCcrd {
    addresses: Vec<Spanned<String>>,
    #[serde(default)]
    server_name: Option<String>,
    ca: Spanned<String>,
    gateway_cert: Option<Spanned<String>>,
    gateway_key: Option<Spanned<String>>,
    agent_cert: Option<Spanned<String>>,
    agent_key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKamailio {
    evapi: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCalls {
    max_wait: Option<Spanned<String>>,
    max_talk: Option<Spanned<String>>,
    answer_margin: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNumber {
    number: Spanned<String>,
    queue: Spanned<String>,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    skills: BTreeMap<String, Spanned<i64>>,
    #[serde(default)]
    languages: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    id: Spanned<i64>,
    sip_user: Spanned<String>,
    #[serde(default)]
    skills: BTreeMap<String, Spanned<i64>>,
    #[serde(default)]
    languages: Vec<String>,
}

/// A certificate file (PEM or DER), or with `key`, a private key's.
fn file(c: &mut Checker<'_>, field: &str, value: &Spanned<String>, key: bool) -> PathBuf {
    let path = PathBuf::from(value.get_ref());
    let read = match key {
        false => ccr_proto::pki::certificates(&path).map(drop),
        true => ccr_proto::pki::private_key(&path).map(drop),
    };
    if let Err(e) = read {
        c.problem(field.into(), Some(value), e.to_string());
    }
    path
}

fn identity(
    c: &mut Checker<'_>,
    role: &str,
    cert: Option<&Spanned<String>>,
    key: Option<&Spanned<String>>,
) -> Option<Identity> {
    match (cert, key) {
        (Some(cert), Some(key)) => Some(Identity {
            cert: file(c, &format!("ccrd.{role}_cert"), cert, false),
            key: file(c, &format!("ccrd.{role}_key"), key, true),
        }),
        (None, None) => None,
        (Some(at), None) | (None, Some(at)) => {
            c.problem(format!("ccrd.{role}_cert"), Some(at), format!("{role}_cert and {role}_key go together"));
            None
        }
    }
}

/// Skill = proficiency (or minimum proficiency) tables.
fn skills(c: &mut Checker<'_>, field: &str, raw: &BTreeMap<String, Spanned<i64>>) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for (skill, level) in raw {
        match u32::try_from(*level.get_ref()) {
            Ok(l) if l <= 10 => out.push((skill.clone(), l)),
            _ => c.problem(
                format!("{field}.{skill}"),
                Some(level),
                format!("{} is not a proficiency 0..=10", level.get_ref()),
            ),
        }
    }
    out
}

/// The stand-in for an address that is required (its absence is a
/// problem of shape, reported already).
const UNSET: &str = "127.0.0.1:0";

/// Parses and validates a configuration file's text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let mut document = Document::parse(text).map_err(|p| ConfigError(vec![p]))?;
    let (raw, shape) = document.read::<RawConfig>();
    let Some(raw) = raw else { return Err(ConfigError(shape)) };
    let mut c = Checker::new(text);
    c.problems = shape;

    let rc = &raw.ccrd;
    let addresses: Vec<SocketAddr> = rc
        .addresses
        .iter()
        .enumerate()
        .map(|(i, a)| c.address(format!("ccrd.addresses[{i}]"), Some(a), UNSET))
        .collect();
    if addresses.is_empty() {
        c.problems.push(Problem {
            field: "ccrd.addresses".into(),
            line: document.line("ccrd.addresses"),
            message: "name at least one ccrd".into(),
        });
    }
    let ccrd = Ccrd {
        addresses,
        server_name: rc.server_name.clone().unwrap_or_else(|| "localhost".into()),
        ca: file(&mut c, "ccrd.ca", &rc.ca, false),
        gateway_identity: identity(&mut c, "gateway", rc.gateway_cert.as_ref(), rc.gateway_key.as_ref()),
        agent_identity: identity(&mut c, "agent", rc.agent_cert.as_ref(), rc.agent_key.as_ref()),
    };
    let evapi = c.address("kamailio.evapi".into(), Some(&raw.kamailio.evapi), UNSET);
    let metrics_listen = raw.metrics.listen.as_ref().map(|l| c.address("metrics.listen".into(), Some(l), UNSET));
    let max_wait = c.duration("calls.max_wait".into(), raw.calls.max_wait.as_ref(), Duration::from_secs(540));
    let max_talk = c.duration("calls.max_talk".into(), raw.calls.max_talk.as_ref(), Duration::from_secs(4 * 3600));
    let answer_margin =
        c.duration("calls.answer_margin".into(), raw.calls.answer_margin.as_ref(), Duration::from_secs(1));

    let mut numbers = Vec::new();
    let mut seen_numbers: HashMap<String, usize> = HashMap::new();
    for (i, n) in raw.numbers.iter().enumerate() {
        let field = format!("numbers[{i}]");
        let number = n.number.get_ref().trim().to_owned();
        if number.is_empty() {
            c.problem(format!("{field}.number"), Some(&n.number), "a number is the dialled user part, or \"*\"".into());
        } else if let Some(first) = seen_numbers.insert(number.clone(), i) {
            c.problem(format!("{field}.number"), Some(&n.number), format!("{number:?} is also numbers[{first}]"));
        }
        if n.queue.get_ref().trim().is_empty() {
            c.problem(format!("{field}.queue"), Some(&n.queue), "name the ccrd queue this number reaches".into());
        }
        let skills = skills(&mut c, &format!("{field}.skills"), &n.skills);
        if n.skills.is_empty() {
            let message = "a call needs at least one skill in ccrd: e.g. skills = { billing = 1 }".into();
            c.problem(format!("{field}.skills"), Some(&n.queue), message);
        }
        numbers.push(Number {
            number,
            queue: n.queue.get_ref().clone(),
            tier: n.tier.clone(),
            skills,
            languages: n.languages.clone(),
        });
    }
    if numbers.is_empty() {
        c.problems.push(Problem {
            field: "numbers".into(),
            line: None,
            message: "no [[numbers]]: every call would be refused; route at least \"*\" to a queue".into(),
        });
    }

    let mut agents = Vec::new();
    let mut seen_ids: HashMap<u64, usize> = HashMap::new();
    let mut seen_users: HashMap<String, usize> = HashMap::new();
    for (i, a) in raw.agents.iter().enumerate() {
        let field = format!("agents[{i}]");
        let id = match u64::try_from(*a.id.get_ref()) {
            Ok(id) if id >= 1 => id,
            _ => {
                c.problem(
                    format!("{field}.id"),
                    Some(&a.id),
                    format!("{} is not an agent id (1 ..= 2^63 - 1)", a.id.get_ref()),
                );
                0
            }
        };
        if id != 0 {
            if let Some(first) = seen_ids.insert(id, i) {
                c.problem(format!("{field}.id"), Some(&a.id), format!("agent {id} is also agents[{first}]"));
            }
        }
        let user = a.sip_user.get_ref().trim().to_owned();
        if user.is_empty() || user.contains(['@', ':', ' ']) {
            c.problem(
                format!("{field}.sip_user"),
                Some(&a.sip_user),
                format!("{user:?} is not a SIP user name (no '@', ':' or spaces)"),
            );
        } else if let Some(first) = seen_users.insert(user.clone(), i) {
            c.problem(format!("{field}.sip_user"), Some(&a.sip_user), format!("{user:?} is also agents[{first}]'s"));
        }
        let skills = skills(&mut c, &format!("{field}.skills"), &a.skills);
        agents.push(Agent { id, sip_user: user, skills, languages: a.languages.clone() });
    }

    if !c.problems.is_empty() {
        let mut problems = c.problems;
        problems.sort_by_key(|p| p.line);
        return Err(ConfigError(problems));
    }
    Ok(Config { ccrd, evapi, metrics_listen, routing: Routing { numbers, agents, max_wait, max_talk, answer_margin } })
}

/// Reads and validates the file at `path`.
pub fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` with "CA" naming a certificate file.
    fn with_ca(text: &str) -> (tempfile::NamedTempFile, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca.path(), cert.cert.pem()).unwrap();
        let text = text.replace("CA", &ca.path().display().to_string());
        (ca, text)
    }

    #[test]
    fn the_example_configuration_reads() {
        let (_ca, text) =
            with_ca(&include_str!("../../deploy/sipgw.example.toml").replace("/var/lib/ccrd/cert.der", "CA"));
        let config = parse(&text).unwrap();
        assert!(!config.routing.numbers.is_empty() && !config.routing.agents.is_empty());
        assert_eq!(config.routing.max_wait, Duration::from_secs(540));
    }

    #[test]
    fn every_problem_is_reported_with_its_field_and_line() {
        let (_ca, text) = with_ca(
            r#"
[ccrd]
addresses = ["127.0.0.1:4433", "nowhere"]
ca = "CA"
gateway_cert = "/no/such/file.pem"

[kamailio]
evapi = "127.0.0.1:8448"

[calls]
max_wait = "forever"

[[numbers]]
number = "1000"
queue = "billing"
skills = { billing = 11 }

[[numbers]]
number = "1000"
queue = ""
skills = { billing = 1 }

[[agents]]
id = 0
sip_user = "alice@example.com"

[[agents]]
id = 7
sip_user = "bob"
langauges = ["en"]
"#,
        );
        let problems = parse(&text).unwrap_err().0;
        let got: Vec<(&str, Option<usize>)> = problems.iter().map(|p| (p.field.as_str(), p.line)).collect();
        assert_eq!(
            got,
            vec![
                ("ccrd.addresses[1]", Some(3)),
                ("ccrd.gateway_cert", Some(5)),
                ("calls.max_wait", Some(11)),
                ("numbers[0].skills.billing", Some(16)),
                ("numbers[1].number", Some(19)),
                ("numbers[1].queue", Some(20)),
                ("agents[0].id", Some(24)),
                ("agents[0].sip_user", Some(25)),
                ("agents[1].langauges", Some(30)),
            ],
            "{problems:#?}"
        );
        assert!(problems[8].message.contains("did you mean `languages`?"), "{}", problems[8].message);
    }

    #[test]
    fn a_number_without_a_skill_is_refused_since_ccrd_would_refuse_its_calls() {
        let (_ca, text) = with_ca(
            "[ccrd]\naddresses = [\"127.0.0.1:4433\"]\nca = \"CA\"\n[kamailio]\nevapi = \"127.0.0.1:8448\"\n\n[[numbers]]\nnumber = \"1000\"\nqueue = \"billing\"\n",
        );
        let problems = parse(&text).unwrap_err().0;
        assert_eq!((problems[0].field.as_str(), problems[0].line), ("numbers[0].skills", Some(9)), "{problems:?}");
    }

    #[test]
    fn a_missing_section_and_a_syntax_error_are_reported() {
        let problems = parse("[ccrd]\naddresses = []\nca = \"x\"\n").unwrap_err().0;
        assert!(problems.iter().any(|p| p.message.contains("missing field `kamailio`")), "{problems:?}");
        let syntax = parse("[ccrd\n").unwrap_err().0;
        assert_eq!((syntax[0].field.as_str(), syntax[0].line), ("(syntax)", Some(1)));
    }
}
