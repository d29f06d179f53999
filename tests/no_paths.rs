//! No answer on any front end shows where the server keeps its files: a record the
//! log refuses is reported with its topic and partition, a driver that cannot start
//! with its reason, and the full paths go to the log only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::gateway::{gateway_config, grpc};
use common::http;
use common::topic_env;
use common::topics::{label, Client};
use common::Log;
use switchyard_actors::gateway::pb::PublishRequest;

/// Fails if `text` shows the data dir, or any of its components past the root.
fn assert_no_path(text: &str, dir: &std::path::Path) {
    let d = dir.display().to_string();
    let first = d.split('/').find(|c| !c.is_empty()).unwrap();
    assert!(
        !text.contains(&d) && !text.contains(&format!("/{first}/")),
        "a server path in the answer: {text}"
    );
}

#[actix::test]
async fn a_refused_record_is_reported_without_the_storage_path() {
    let (log, _g) = Log::capture();
    let dir = tempfile::tempdir().unwrap();
    // A driver whose command is there when the config is read, and gone when it runs.
    let ghost = dir.path().join("no-such-driver");
    std::fs::write(&ghost, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&ghost, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let extra = format!(
        "[[driver]]\nname = \"ghost\"\ncommand = \"{}\"\n",
        ghost.display()
    );
    let config = gateway_config(dir.path(), &extra);
    std::fs::remove_file(&ghost).unwrap();
    let b = switchyard::start(&config).await.unwrap();
    let h = b.gateway().http.unwrap();

    // HTTP: a 15 MiB body is one record, over the log's record limit.
    let body = vec![b'x'; 15 << 20];
    let reply = http::request(
        h,
        "POST",
        "/v1/topics/big/messages",
        &[("content-type", "application/octet-stream")],
        &body,
    )
    .await;
    let text = reply.text();
    assert!(reply.status >= 400, "{} {text}", reply.status);
    assert_no_path(&text, dir.path());
    assert!(text.contains("big/0") && text.contains("at most"), "{text}");

    // gRPC: a 3 MiB value, under tonic's message limit, over the record limit.
    let mut g = grpc(&b).await;
    let e = g
        .publish(PublishRequest {
            topic: "big".into(),
            values: vec![vec![b'y'; 3 << 20]],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_no_path(e.message(), dir.path());
    assert!(e.message().contains("big/0"), "{e:?}");

    // Broker port: a record over the frame limit is refused before the log sees it.
    let mut c = Client::connect(b.local_addr()).await;
    c.send(&topic_env(
        "publish",
        &[("topic", "big"), ("id", "1")],
        &vec![b'z'; 2 << 20],
    ))
    .await;
    let e = c.next().await;
    assert!(e.is("topic", "error"), "{e:?}");
    assert_no_path(&label(&e, "error"), dir.path());

    // A driver whose command cannot be started: its status says why, not where.
    let st = common::drivers::wait_driver(&b, "ghost", 10, |s| s.last_error.is_some()).await;
    let listing = http::get(h, "/v1/drivers").await.text();
    assert!(listing.contains("cannot start its command"), "{listing}");
    assert_no_path(&listing, dir.path());
    assert_no_path(st.last_error.as_deref().unwrap(), dir.path());

    // The log has the whole story: the partition and the limit (a refused record has
    // no file to name; storage faults that do log their paths, see storage tests).
    let line = log.wait_for(&["storage error", "big/0"]).await;
    assert!(line.contains("at most"), "{line}");
    let line = log.wait_for(&["driver command cannot be started"]).await;
    assert!(line.contains(&ghost.display().to_string()), "{line}");
    b.run_until(async {}).await;
}
