//! `switchyard call` (one RPC call), `switchyard services` (the named services) and
//! `switchyard events` (the event bus).

use std::io::Write;

use switchyard_actors::drivers::ServiceView;
use switchyard_codecs::Envelope;

use super::retry::with_reconnect;
use super::{Client, ClientError, Target};

/// `switchyard call <feature> <method> [PARAMS]`: one RPC call from this client
/// (feature `client:<id>`); returns the result payload, or the `error` label.
pub fn call(
    to: impl Into<Target>,
    feature: &str,
    method: &str,
    params: &[u8],
    timeout: Option<&str>,
) -> Result<bytes::Bytes, ClientError> {
    Client::connect(to)?.call(feature, method, params, timeout)
}

/// `switchyard services`: the broker's named services (`broker` method `services`,
/// admin), as a table: a line per service, and an indented line per instance.
pub fn services(to: impl Into<Target>, out: &mut impl Write) -> Result<(), ClientError> {
    let json = Client::connect(to)?.call("broker", "services", b"", None)?;
    let list: Vec<ServiceView> =
        serde_json::from_slice(&json).map_err(|e| ClientError::Frame(e.to_string()))?;
    let mut text = String::new();
    if list.is_empty() {
        text.push_str("no services\n");
    } else {
        text.push_str(&format!(
            "{:<24} {:<16} {:>9} {:>9} {:>10} {:>8} {:>8} {:>9} {:>9} {:>9}\n",
            "SERVICE",
            "GROUP",
            "INSTANCES",
            "IN_FLIGHT",
            "CALLS",
            "ERRORS",
            "RETRIES",
            "P50_US",
            "P99_US",
            "P999_US"
        ));
    }
    for s in &list {
        let q = s.latency_us;
        text.push_str(&format!(
            "{:<24} {:<16} {:>9} {:>9} {:>10} {:>8} {:>8} {:>9} {:>9} {:>9}\n",
            s.name,
            s.group,
            s.instances.len(),
            s.in_flight,
            s.calls,
            s.errors,
            s.retries,
            q.p50,
            q.p99,
            q.p999
        ));
        for i in &s.instances {
            text.push_str(&format!(
                "  instance {} {} peer {} in_flight {}/{} calls {}\n",
                i.id, i.feature, i.peer, i.in_flight, i.max_inflight, i.calls
            ));
        }
    }
    out.write_all(text.as_bytes())
        .map_err(ClientError::Output)?;
    out.flush().map_err(ClientError::Output)
}

/// `switchyard events`: subscribes to the event bus and prints each event as
/// `<driver> <payload>`; when the broker closes the connection, subscribes again (with
/// back-off) unless `reconnect` is off. Events sent while it was away are not replayed:
/// the event bus keeps none.
pub fn events(
    to: impl Into<Target>,
    reconnect: bool,
    out: &mut impl Write,
) -> Result<(), ClientError> {
    let to = to.into();
    with_reconnect(reconnect, "events", |backoff| {
        let mut c = Client::connect(to.clone())?;
        c.send(&Envelope::new("eventbus", "subscribe"))?;
        loop {
            let env = c.recv()?;
            if env.is("eventbus", "subscribed") {
                backoff.reset();
            } else if env.is("eventbus", "message") {
                let mut line = Vec::with_capacity(env.payload.len() + 32);
                line.extend_from_slice(env.labels.get_str("driver").unwrap_or("-").as_bytes());
                line.push(b' ');
                line.extend_from_slice(&env.payload);
                line.push(b'\n');
                out.write_all(&line).map_err(ClientError::Output)?;
                out.flush().map_err(ClientError::Output)?;
            }
        }
    })
}
