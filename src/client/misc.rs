//! `switchyard call` (one RPC call) and `switchyard events` (the event bus).

use std::io::Write;

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
    let mut c = Client::connect(to)?;
    let mut env = Envelope::new("rpc", "call")
        .with_label("rpcID", "1")
        .with_label("feature", feature.to_string())
        .with_label("method", method.to_string())
        .with_label("caller", "-")
        .with_payload(bytes::Bytes::copy_from_slice(params));
    if let Some(t) = timeout {
        env = env.with_label("timeout", t.to_string());
    }
    c.send(&env)?;
    loop {
        let ret = c.recv()?;
        if !ret.is("rpc", "return") || ret.labels.get_str("rpcID") != Some("1") {
            continue;
        }
        return match ret.labels.get_str("error") {
            Some(e) => Err(ClientError::Broker(e.to_string())),
            None => Ok(ret.payload),
        };
    }
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
