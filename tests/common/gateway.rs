//! A broker with the gateway on port 0 (HTTP and gRPC) and the conformance driver,
//! and clients for it.

use switchyard::Broker;
use switchyard_actors::gateway::pb::broker_client::BrokerClient;
use tonic::transport::Channel;

use super::drivers::{config, driver};
use super::{Log, LogGuard};

pub fn gateway_config(dir: &std::path::Path, extra: &str) -> switchyard::Config {
    let body = format!(
        "[gateway]\nhttp_bind = \"127.0.0.1:0\"\ngrpc_bind = \"127.0.0.1:0\"\n{extra}\n{}",
        driver("conf", "conformance", "")
    );
    config(dir, &body)
}

/// A broker with the gateway on port 0 and the conformance driver; the log is captured.
pub async fn start(extra: &str) -> (Broker, tempfile::TempDir, LogGuard) {
    let (_log, guard) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&gateway_config(dir.path(), extra))
        .await
        .unwrap();
    (b, dir, guard)
}

pub async fn health_client(b: &Broker) -> tonic_health::pb::health_client::HealthClient<Channel> {
    let ch = Channel::from_shared(format!("http://{}", b.gateway().grpc.unwrap()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic_health::pb::health_client::HealthClient::new(ch)
}

pub async fn grpc(b: &Broker) -> BrokerClient<Channel> {
    BrokerClient::connect(format!("http://{}", b.gateway().grpc.unwrap()))
        .await
        .unwrap()
}
