//! ccr-sipgw's metrics (`ccr_sipgw_*`, listed in docs/SIP.md), each
//! registered once here, and its `/metrics`, `/healthz`, `/readyz` page
//! on ccrd's listener ([`ccr_daemon::metrics::exporter`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::bridge::{CallEnd, Counts, Record, RingEnd};

/// Seconds from a call's arrival to its first ring (its wait in queue
/// plus the routing), and of a ring.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
    600.0,
];

static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

const CALL_ENDS: [(CallEnd, &str); 8] = [
    (CallEnd::Completed, "completed"),
    (CallEnd::Abandoned, "abandoned"),
    (CallEnd::Refused, "refused"),
    (CallEnd::NoRoute, "no_route"),
    (CallEnd::TimedOut, "timed_out"),
    (CallEnd::EndedByCcrd, "ended_by_ccrd"),
    (CallEnd::Lost, "lost"),
    (CallEnd::TalkLimit, "talk_limit"),
];
const RING_ENDS: [(RingEnd, &str); 3] =
    [(RingEnd::Answered, "answered"), (RingEnd::RangOut, "rang_out"), (RingEnd::Declined, "declined")];

/// One of ccr-sipgw's two links, by its peer.
#[derive(Clone, Copy)]
pub enum Link {
    Ccrd = 0,
    Kamailio = 1,
}

/// Every metric's handle, and whether each link is up.
pub struct Metrics {
    handle: PrometheusHandle,
    calls_ended: [Counter; 8],
    rings: [Counter; 3],
    ringing: [Histogram; 3],
    routing: Histogram,
    offers_without_phone: Counter,
    unknown_phones: Counter,
    answered_outside: Counter,
    /// Waiting, ringing, talking.
    calls: [Gauge; 3],
    phones: Gauge,
    up: [Gauge; 2],
    connects: [Counter; 2],
    up_now: [AtomicBool; 2],
    pub bad_events: Counter,
    pub answers_dropped: Counter,
    metrics_refused: Counter,
}

fn key(name: &'static str, label: Option<(&'static str, &'static str)>) -> Key {
    match label {
        Some((k, v)) => Key::from_parts(name, vec![Label::new(k, v)]),
        None => Key::from_name(name),
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Prefix("ccr_sipgw_".into()), BUCKETS)
            .expect("bucket lists are non-empty")
            .build_recorder();
        describe(&recorder);
        let counter = |name, label| recorder.register_counter(&key(name, label), &METADATA);
        let gauge = |name, label| recorder.register_gauge(&key(name, label), &METADATA);
        let histogram = |name, label| recorder.register_histogram(&key(name, label), &METADATA);
        Arc::new(Metrics {
            handle: recorder.handle(),
            calls_ended: CALL_ENDS.map(|(_, o)| counter("ccr_sipgw_calls_total", Some(("outcome", o)))),
            rings: RING_ENDS.map(|(_, r)| counter("ccr_sipgw_rings_total", Some(("result", r)))),
            ringing: RING_ENDS.map(|(_, r)| histogram("ccr_sipgw_ringing_seconds", Some(("result", r)))),
            routing: histogram("ccr_sipgw_routing_seconds", None),
            offers_without_phone: counter("ccr_sipgw_offers_without_phone_total", None),
            unknown_phones: counter("ccr_sipgw_unknown_phones_total", None),
            answered_outside: counter("ccr_sipgw_answered_outside_ccrd_total", None),
            calls: ["waiting", "ringing", "talking"].map(|s| gauge("ccr_sipgw_calls", Some(("state", s)))),
            phones: gauge("ccr_sipgw_phones_registered", None),
            up: ["ccrd", "kamailio"].map(|p| gauge("ccr_sipgw_up", Some(("peer", p)))),
            connects: ["ccrd", "kamailio"].map(|p| counter("ccr_sipgw_connects_total", Some(("peer", p)))),
            up_now: [AtomicBool::new(false), AtomicBool::new(false)],
            bad_events: counter("ccr_sipgw_bad_events_total", None),
            answers_dropped: counter("ccr_sipgw_answers_dropped_total", None),
            metrics_refused: counter("ccr_sipgw_metrics_refused_total", None),
        })
    }

    /// A link to `peer` came up (counted) or went down.
    pub fn link(&self, peer: Link, up: bool) {
        self.up_now[peer as usize].store(up, Ordering::Relaxed);
        self.up[peer as usize].set(f64::from(u8::from(up)));
        if up {
            self.connects[peer as usize].increment(1);
        }
    }

    fn is_up(&self, peer: Link) -> bool {
        self.up_now[peer as usize].load(Ordering::Relaxed)
    }

    /// Counts one record of the bridge.
    pub fn record(&self, record: &Record) {
        match record {
            Record::CallEnded(end) => {
                let i = CALL_ENDS.iter().position(|(e, _)| e == end).expect("every end is listed");
                self.calls_ended[i].increment(1);
            }
            Record::Routed(took) => self.routing.record(took.as_secs_f64()),
            Record::Rang(took, end) => {
                let i = RING_ENDS.iter().position(|(e, _)| e == end).expect("every end is listed");
                self.rings[i].increment(1);
                self.ringing[i].record(took.as_secs_f64());
            }
            Record::OfferWithoutPhone => self.offers_without_phone.increment(1),
            Record::UnknownPhone => self.unknown_phones.increment(1),
            Record::AnsweredOutsideCcrd => self.answered_outside.increment(1),
        }
    }

    /// Sets the gauges of calls in progress and phones registered.
    pub fn gauges(&self, counts: Counts) {
        self.calls[0].set(counts.waiting as f64);
        self.calls[1].set(counts.ringing as f64);
        self.calls[2].set(counts.talking as f64);
        self.phones.set(counts.phones_registered as f64);
    }
}

impl ccr_daemon::metrics::exporter::Page for Metrics {
    fn respond(&self, path: &[u8]) -> (&'static str, String) {
        match path {
            b"/metrics" => ("200 OK", self.handle.render()),
            b"/healthz" => ("200 OK", "ok: alive\n".into()),
            b"/readyz" => match (self.is_up(Link::Ccrd), self.is_up(Link::Kamailio)) {
                (true, true) => ("200 OK", "ready: connected to ccrd and Kamailio\n".into()),
                (false, _) => ("503 Service Unavailable", "not ready: not connected to ccrd\n".into()),
                (true, false) => ("503 Service Unavailable", "not ready: not connected to Kamailio's evapi\n".into()),
            },
            _ => ("404 Not Found", "try /metrics, /healthz or /readyz\n".into()),
        }
    }

    fn refused(&self) {
        self.metrics_refused.increment(1);
    }
}

fn describe(recorder: &PrometheusRecorder) {
    let counters = [
        ("ccr_sipgw_calls_total", "Calls ended, by outcome"),
        ("ccr_sipgw_rings_total", "Agents' phones rung, by how the ring ended"),
        ("ccr_sipgw_offers_without_phone_total", "Offers rejected: the agent had no registered phone"),
        ("ccr_sipgw_unknown_phones_total", "Registrations of SIP users no [[agents]] entry names"),
        ("ccr_sipgw_answered_outside_ccrd_total", "Calls an agent answered after ccrd's offer had ended"),
        ("ccr_sipgw_connects_total", "Connections made, by peer"),
        ("ccr_sipgw_bad_events_total", "evapi events that did not parse"),
        ("ccr_sipgw_answers_dropped_total", "Answers to Kamailio dropped while it was unreachable"),
        ("ccr_sipgw_metrics_refused_total", "/metrics connections closed unanswered: too many open"),
    ];
    for (name, help) in counters {
        recorder.describe_counter(KeyName::from_const_str(name), None, help.into());
    }
    let gauges = [
        ("ccr_sipgw_calls", "Calls in progress, by state"),
        ("ccr_sipgw_phones_registered", "Agents' phones registered"),
        ("ccr_sipgw_up", "1 while connected to the peer"),
    ];
    for (name, help) in gauges {
        recorder.describe_gauge(KeyName::from_const_str(name), None, help.into());
    }
    let histograms = [
        ("ccr_sipgw_routing_seconds", "A call's arrival to its first ring: its wait in queue and the routing"),
        ("ccr_sipgw_ringing_seconds", "A ring's start to its end, by result"),
    ];
    for (name, help) in histograms {
        recorder.describe_histogram(KeyName::from_const_str(name), Some(Unit::Seconds), help.into());
    }
}
