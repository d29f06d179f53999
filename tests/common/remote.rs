//! Helpers for the remote-driver tests: a config with a spawned and a declared remote
//! driver and rules between them, and a TCP client that becomes a driver.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_actors::drivers::DriverState;
use switchyard_codecs::Envelope;

use super::drivers::{driver, wait_alive, wait_driver, Tcp};

/// A spawned conformance driver `conf`, a declared remote driver `edge`, and rules
/// both ways between them.
pub fn body() -> String {
    format!(
        "{}[[driver]]\nname = \"edge\"\nremote = true\n[driver.options]\ngreeting = \"hi\"\n\
         [[rule]]\nname = \"edge-to-conf\"\nwhen = {{ driver = \"edge\", event = \"ping\" }}\n\
         do = {{ driver = \"conf\", method = \"echo\", params = {{ n = \"${{data.n}}\" }} }}\n\
         [[rule]]\nname = \"conf-to-edge\"\nwhen = {{ driver = \"conf\", event = \"go\" }}\n\
         do = {{ driver = \"edge\", method = \"log\", params = {{ x = \"${{data.x}}\" }} }}\n",
        driver("conf", "conformance", "")
    )
}

/// The next frame on `c` for which `f` holds (others are skipped), within 10 s.
pub async fn expect(c: &mut Tcp, what: &str, f: impl Fn(&Envelope) -> bool) -> Envelope {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(e) = c.next(Duration::from_millis(200)).await {
            if f(&e) {
                return e;
            }
        }
    }
    panic!("no {what} within 10 s");
}

pub fn hello(name: &str) -> Envelope {
    Envelope::new("driver", "hello")
        .with_label("name", name.to_string())
        .with_label("service", "receiver")
}

/// Says hello as `name`, checks options and start, answers alive; returns the options.
pub async fn become_driver(b: &switchyard::Broker, d: &mut Tcp, name: &str) -> Value {
    d.send(&hello(name)).await;
    let options = expect(d, "command options", |e| e.is("command", "options")).await;
    expect(d, "command start", |e| e.is("command", "start")).await;
    assert_eq!(
        wait_driver(b, name, 5, |_| true).await.state,
        DriverState::Starting
    );
    d.send(&Envelope::new("state", "alive")).await;
    wait_alive(b, name).await;
    serde_json::from_slice(&options.payload).unwrap()
}

pub fn call(id: &str, feature: &str, method: &str, payload: &[u8]) -> Envelope {
    Envelope::new("rpc", "call")
        .with_label("rpcID", id.to_string())
        .with_label("feature", feature.to_string())
        .with_label("method", method.to_string())
        .with_payload(payload.to_vec())
}
