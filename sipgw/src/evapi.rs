//! Kamailio's evapi as ccr-sipgw speaks it: JSON messages in netstrings
//! (`len:json,`, `netstring_format` on), the events Kamailio relays
//! (deploy/kamailio/kamailio.cfg) and the answers it takes.
//!
//! Kamailio writes every value as a string (its pseudo-variables print so);
//! numbers are parsed here, and an event that does not parse is refused
//! whole, naming why.

use serde::{Deserialize, Serialize};

/// The longest message either side sends: an event is a few hundred bytes
/// (a Call-ID and two URIs); anything longer is not Kamailio's.
pub const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EvapiError {
    #[error("malformed netstring: {0}")]
    Framing(&'static str),
    #[error("netstring of {0} bytes, over the {MAX_MESSAGE}-byte limit")]
    TooLong(usize),
    #[error("unreadable event: {0}")]
    Event(String),
}

/// Takes one netstring off the front of `buf`: its payload and the bytes
/// used, `None` while it is incomplete.
pub fn take_netstring(buf: &[u8]) -> Result<Option<(&[u8], usize)>, EvapiError> {
    let Some(colon) = buf.iter().take(8).position(|&b| b == b':') else {
        return match buf.len() {
            0..8 if buf.iter().all(u8::is_ascii_digit) => Ok(None),
            _ => Err(EvapiError::Framing("no length")),
        };
    };
    let digits = &buf[..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(EvapiError::Framing("length is not a number"));
    }
    let len: usize =
        std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or(EvapiError::Framing("length"))?;
    if len > MAX_MESSAGE {
        return Err(EvapiError::TooLong(len));
    }
    let end = colon + 1 + len;
    if buf.len() <= end {
        return Ok(None);
    }
    if buf[end] != b',' {
        return Err(EvapiError::Framing("no ',' after the payload"));
    }
    Ok(Some((&buf[colon + 1..end], end + 1)))
}

/// `payload` as a netstring.
pub fn netstring(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b',');
    out
}

/// A suspended INVITE transaction, as `t_continue` names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transaction {
    pub tindex: u32,
    pub tlabel: u32,
}

/// What Kamailio relays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new evapi connection; `started` names this Kamailio's run.
    Hello,
    /// An agent's phone registered for `expires` seconds (0: unregistered).
    Register { user: String, expires: u32 },
    /// A caller is held on `transaction`.
    Call(NewCall),
    /// The ringing agent's phone answered.
    Answered { call_id: String },
    /// The ringing agent's phone did not answer (`status`: 408 when it rang
    /// out); the call is held again on `transaction`.
    NoAnswer { call_id: String, status: u16, transaction: Transaction },
    /// The caller hung up before an answer.
    Cancel { call_id: String },
    /// Either side hung up after the answer.
    Bye { call_id: String },
    /// An answer named a transaction that no longer waits.
    Gone { call_id: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCall {
    pub call_id: String,
    pub from: String,
    pub to: String,
    /// The dialled user part (the request URI's).
    pub number: String,
    /// X-Tier, X-Language, X-Skill as an upstream SBC set them ("" when not).
    pub tier: String,
    pub language: String,
    pub skill: String,
    pub transaction: Transaction,
}

/// One event and the Kamailio run it came from (`$Tb`, its start time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relayed {
    pub started: String,
    pub event: Event,
}

/// The wire form: every field a string, most of them optional.
#[derive(Deserialize)]
struct Raw {
    event: String,
    #[serde(default)]
    started: String,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    number: Option<String>,
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    skill: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    tindex: Option<String>,
    #[serde(default)]
    tlabel: Option<String>,
}

/// Reads one event's JSON.
pub fn parse_event(json: &[u8]) -> Result<Relayed, EvapiError> {
    let raw: Raw = serde_json::from_slice(json).map_err(|e| EvapiError::Event(e.to_string()))?;
    let field = |name: &str, v: &Option<String>| -> Result<String, EvapiError> {
        v.clone().ok_or_else(|| EvapiError::Event(format!("{} event without {name}", raw.event)))
    };
    let number = |name: &str, v: &Option<String>| -> Result<u32, EvapiError> {
        let text = field(name, v)?;
        text.trim()
            .parse()
            .map_err(|_| EvapiError::Event(format!("{} event: {name} {text:?} is not a number", raw.event)))
    };
    let transaction = || -> Result<Transaction, EvapiError> {
        Ok(Transaction { tindex: number("tindex", &raw.tindex)?, tlabel: number("tlabel", &raw.tlabel)? })
    };
    let call_id = || field("call_id", &raw.call_id);
    let event = match raw.event.as_str() {
        "hello" => Event::Hello,
        "register" => {
            // A REGISTER without Expires or a Contact expiry: the
            // registrar's default applies (RFC 3261 suggests 3600 s).
            let expires = match raw.expires.as_deref().map(str::trim) {
                None | Some("") => 3600,
                Some(_) => number("expires", &raw.expires)?,
            };
            Event::Register { user: field("user", &raw.user)?, expires }
        }
        "call" => Event::Call(NewCall {
            call_id: call_id()?,
            from: field("from", &raw.from)?,
            to: field("to", &raw.to)?,
            number: field("number", &raw.number)?,
            tier: raw.tier.clone().unwrap_or_default(),
            language: raw.language.clone().unwrap_or_default(),
            skill: raw.skill.clone().unwrap_or_default(),
            transaction: transaction()?,
        }),
        "answered" => Event::Answered { call_id: call_id()? },
        "no_answer" => {
            let status = number("status", &raw.status)?;
            let status = u16::try_from(status).map_err(|_| EvapiError::Event(format!("status {status}")))?;
            Event::NoAnswer { call_id: call_id()?, status, transaction: transaction()? }
        }
        "cancel" => Event::Cancel { call_id: call_id()? },
        "bye" => Event::Bye { call_id: call_id()? },
        "gone" => Event::Gone { call_id: call_id()? },
        other => return Err(EvapiError::Event(format!("unknown event {other:?}"))),
    };
    Ok(Relayed { started: raw.started, event })
}

/// ccr-sipgw's answer for a held call: ring an agent, or end the call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub call_id: String,
    #[serde(flatten)]
    pub transaction: Transaction,
    #[serde(flatten)]
    pub to: AnswerTo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AnswerTo {
    /// Ring the phone registered as `user` for `ring_ms`.
    Agent { user: String, ring_ms: u64 },
    /// End the call with this final response.
    End { code: u16, reason: String },
}

impl Answer {
    /// The JSON Kamailio's event route reads.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an answer always serialises")
    }

    /// The answer as written to evapi: its JSON in a netstring.
    pub fn framed(&self) -> Vec<u8> {
        netstring(&self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_call_event_as_kamailio_writes_it_reads() {
        let json = br#"{"event":"call","started":"1765065600","call_id":"a\"b@h","from":"sip:c1@127.0.0.1","to":"sip:1000@127.0.0.1","number":"1000","tier":"gold","language":"fr","skill":"","tindex":"1234","tlabel":"5678"}"#;
        let relayed = parse_event(json).unwrap();
        assert_eq!(relayed.started, "1765065600");
        let Event::Call(call) = relayed.event else { panic!("not a call: {relayed:?}") };
        assert_eq!(call.call_id, "a\"b@h");
        assert_eq!(call.transaction, Transaction { tindex: 1234, tlabel: 5678 });
        assert_eq!((call.tier.as_str(), call.language.as_str(), call.skill.as_str()), ("gold", "fr", ""));
    }

    #[test]
    fn events_missing_a_field_or_with_a_bad_number_are_refused_naming_it() {
        let no_label = br#"{"event":"no_answer","call_id":"x","status":"408","tindex":"1"}"#;
        assert_eq!(parse_event(no_label), Err(EvapiError::Event("no_answer event without tlabel".into())));
        let bad = br#"{"event":"register","user":"alice","expires":"soon"}"#;
        assert_eq!(parse_event(bad), Err(EvapiError::Event("register event: expires \"soon\" is not a number".into())));
        assert!(
            matches!(parse_event(b"{\"event\":\"dance\"}"), Err(EvapiError::Event(m)) if m.contains("unknown event"))
        );
        assert!(parse_event(b"not json").is_err());
    }

    #[test]
    fn a_register_without_an_expiry_gets_the_registrars_default() {
        let e = parse_event(br#"{"event":"register","user":"bob","expires":""}"#).unwrap();
        assert_eq!(e.event, Event::Register { user: "bob".into(), expires: 3600 });
    }

    #[test]
    fn answers_are_the_json_the_event_route_reads() {
        let ring = Answer {
            call_id: "c".into(),
            transaction: Transaction { tindex: 1, tlabel: 2 },
            to: AnswerTo::Agent { user: "alice".into(), ring_ms: 14000 },
        };
        assert_eq!(ring.to_json(), br#"{"call_id":"c","tindex":1,"tlabel":2,"user":"alice","ring_ms":14000}"#);
        let end = Answer {
            call_id: "c".into(),
            transaction: Transaction { tindex: 1, tlabel: 2 },
            to: AnswerTo::End { code: 503, reason: "Queue Full".into() },
        };
        assert_eq!(end.to_json(), br#"{"call_id":"c","tindex":1,"tlabel":2,"code":503,"reason":"Queue Full"}"#);
    }

    #[test]
    fn netstrings_frame_and_reject_what_is_malformed() {
        let mut stream = netstring(b"{\"a\":1}");
        stream.extend(netstring(b""));
        let (first, used) = take_netstring(&stream).unwrap().unwrap();
        assert_eq!(first, b"{\"a\":1}");
        let (second, used2) = take_netstring(&stream[used..]).unwrap().unwrap();
        assert_eq!((second, used + used2), (&b""[..], stream.len()));
        assert_eq!(take_netstring(b"12:abc"), Ok(None), "incomplete");
        assert_eq!(take_netstring(b"123"), Ok(None), "length still arriving");
        assert_eq!(take_netstring(b"3:abc;"), Err(EvapiError::Framing("no ',' after the payload")));
        assert_eq!(take_netstring(b"x:"), Err(EvapiError::Framing("length is not a number")));
        assert_eq!(take_netstring(b"999999:"), Err(EvapiError::TooLong(999_999)));
        assert_eq!(take_netstring(b"123456789"), Err(EvapiError::Framing("no length")));
    }

    proptest! {
        /// Any payloads, framed and cut anywhere, come back whole and in order.
        #[test]
        fn framed_payloads_come_back_whatever_the_cuts(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let stream: Vec<u8> = payloads.iter().flat_map(|p| netstring(p)).collect();
            let cut = cut.index(stream.len() + 1);
            let mut buf = stream[..cut].to_vec();
            let mut got = Vec::new();
            let mut rest = &stream[cut..];
            loop {
                while let Some((payload, used)) = take_netstring(&buf).unwrap() {
                    got.push(payload.to_vec());
                    buf.drain(..used);
                }
                if rest.is_empty() { break; }
                let n = rest.len().min(7);
                buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            prop_assert_eq!(got, payloads);
        }

        /// No input makes the reader panic.
        #[test]
        fn any_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = take_netstring(&bytes);
            let _ = parse_event(&bytes);
        }
    }
}
