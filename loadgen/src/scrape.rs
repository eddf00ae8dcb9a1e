//! ccrd's own decision latency, read from its `/metrics`
//! (`ccr_routing_decision_seconds`, a histogram): shown beside the
//! client's arrival→offer, which also holds the network, the journal and
//! the wait in queue.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

const METRIC: &str = "ccr_routing_decision_seconds_bucket{le=\"";

/// A histogram's cumulative counts by upper bound (seconds), as scraped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets(Vec<(f64, u64)>);

impl Buckets {
    /// Parses the decision histogram out of a Prometheus text page.
    pub fn parse(page: &str) -> Buckets {
        let mut buckets = Vec::new();
        for line in page.lines() {
            let Some(rest) = line.strip_prefix(METRIC) else { continue };
            let Some((le, count)) = rest.split_once("\"}") else { continue };
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
            if let (false, Ok(count)) = (le.is_nan(), count.trim().parse::<f64>()) {
                buckets.push((le, count as u64));
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Buckets(buckets)
    }

    /// The decisions counted since `before` (the same ccrd, scraped earlier).
    pub fn since(&self, before: &Buckets) -> Buckets {
        let earlier = |le: f64| before.0.iter().find(|b| b.0 == le).map_or(0, |b| b.1);
        Buckets(self.0.iter().map(|&(le, n)| (le, n.saturating_sub(earlier(le)))).collect())
    }

    pub fn count(&self) -> u64 {
        self.0.last().map_or(0, |b| b.1)
    }

    /// The upper bound of the bucket that holds quantile `q`: the
    /// histogram says no more.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let rank = (q * self.count() as f64).ceil().max(1.0) as u64;
        self.0.iter().find(|b| b.1 >= rank).map(|b| b.0)
    }

    /// "p50 ≤ 1 µs, p99 ≤ 2.5 µs (n decisions)".
    pub fn summary(&self) -> String {
        let bound = |q| match self.quantile_bound(q) {
            Some(s) if s.is_finite() => format!("≤ {}", humantime::format_duration(Duration::from_secs_f64(s))),
            Some(_) => "beyond the last bucket".to_owned(),
            None => "-".to_owned(),
        };
        format!("p50 {}, p99 {} ({} commands)", bound(0.5), bound(0.99), self.count())
    }
}

/// Scrapes `addr`'s `/metrics` (bounded: 2 s).
pub fn scrape(addr: SocketAddr) -> anyhow::Result<Buckets> {
    let limit = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, limit).with_context(|| format!("metrics at {addr}"))?;
    stream.set_read_timeout(Some(limit))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut page = String::new();
    stream.read_to_string(&mut page).with_context(|| format!("metrics at {addr}"))?;
    let buckets = Buckets::parse(&page);
    if buckets.0.is_empty() {
        bail!("{addr}/metrics has no ccr_routing_decision_seconds: is it ccrd's metrics address?");
    }
    Ok(buckets)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# TYPE ccr_routing_decision_seconds histogram\n\
        ccr_routing_decision_seconds_bucket{le=\"0.0000001\"} 0\n\
        ccr_routing_decision_seconds_bucket{le=\"0.000001\"} 60\n\
        ccr_routing_decision_seconds_bucket{le=\"0.0000025\"} 99\n\
        ccr_routing_decision_seconds_bucket{le=\"+Inf\"} 100\n\
        ccr_routing_decision_seconds_sum 0.0001\n";

    #[test]
    fn quantiles_are_the_bounds_of_the_buckets_that_hold_them() {
        let b = Buckets::parse(PAGE);
        assert_eq!(b.count(), 100);
        assert_eq!(b.quantile_bound(0.5), Some(0.000001));
        assert_eq!(b.quantile_bound(0.99), Some(0.0000025));
        assert_eq!(b.quantile_bound(1.0), Some(f64::INFINITY));
        let earlier = Buckets::parse(&PAGE.replace("} 60", "} 50").replace("} 99", "} 50").replace("} 100", "} 50"));
        let since = b.since(&earlier);
        assert_eq!(since.count(), 50);
        assert_eq!(since.quantile_bound(0.2), Some(0.000001), "10 of the 50 new ones within 1 µs");
        assert_eq!(since.quantile_bound(0.5), Some(0.0000025));
        assert!(Buckets::parse("other_metric 1\n").0.is_empty());
    }
}
