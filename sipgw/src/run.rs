//! ccr-sipgw running: the two links, the metrics page, and one task that
//! owns the [`Bridge`], feeding it the links' inputs and the clock, and
//! handing its outputs to the links.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::sync::mpsc;

use crate::bridge::{Bridge, Input, Output};
use crate::config::{Config, Identity};
use crate::metrics::Metrics;
use crate::{ccrd, kamailio};

/// How often the bridge looks for calls waiting too long and lapsed
/// registrations.
const TICK: Duration = Duration::from_secs(1);

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

fn identity(i: &Option<Identity>) -> anyhow::Result<Option<ccrd::ClientIdentity>> {
    i.as_ref().map(|i| ccr_proto::pki::identity(&i.cert, &i.key).map_err(anyhow::Error::from)).transpose()
}

/// Runs until `stop` completes, then ends the calls still waiting (503:
/// no other ccr-sipgw knows them) and gives the links a moment to say so.
pub async fn run(config: Config, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    if let Some(addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("metrics.listen {addr}"))?;
        tracing::info!(%addr, "metrics: /metrics, /healthz, /readyz");
        tokio::spawn(ccr_daemon::metrics::exporter::run(listener, metrics.clone(), 16));
    }
    let peer = ccrd::Peer {
        addresses: config.ccrd.addresses.clone(),
        server_name: config.ccrd.server_name.clone(),
        roots: ccr_proto::pki::certificates(&config.ccrd.ca)?,
        gateway_identity: identity(&config.ccrd.gateway_identity)?,
        agent_identity: identity(&config.ccrd.agent_identity)?,
    };
    let (inputs_tx, mut inputs) = mpsc::unbounded_channel();
    let (to_ccrd, ccrd_commands) = mpsc::unbounded_channel();
    let (to_kamailio, answers) = mpsc::unbounded_channel();
    let ccrd_link = tokio::spawn(ccrd::run(peer, inputs_tx.clone(), ccrd_commands, metrics.clone()));
    let kamailio_link = tokio::spawn(kamailio::run(config.evapi, inputs_tx.clone(), answers, metrics.clone()));
    drop(inputs_tx);

    let mut bridge = Bridge::new(config.routing, now_micros());
    let dispatch = |outputs: Vec<Output>| {
        for output in outputs {
            tracing::debug!(?output);
            match output {
                Output::Ccrd(command) => {
                    let _ = to_ccrd.send(command);
                }
                Output::Kamailio(answer) => {
                    let _ = to_kamailio.send(answer);
                }
                Output::Record(record) => metrics.record(&record),
            }
        }
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        let input = tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => input,
                None => break,
            },
            _ = tick.tick() => Input::Tick,
            () = &mut stop => break,
        };
        // The gauges count every call: once a tick, not once an event.
        let tick = matches!(input, Input::Tick);
        if !tick {
            tracing::debug!(?input);
        }
        dispatch(bridge.step(now_micros(), input));
        if tick {
            metrics.gauges(bridge.counts());
        }
    }
    dispatch(bridge.stop());
    drop((to_ccrd, to_kamailio));
    let links = async {
        let _ = kamailio_link.await;
        let _ = ccrd_link.await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), links).await;
    Ok(())
}
