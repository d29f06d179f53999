//! The client library from outside the crate, as any Rust program would use it (and as
//! the CLI does): `serve` a service with a closure, `Client::call` it, see the
//! registration confirmed, and the serve loop end when the broker goes away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::mpsc;
use std::time::Duration;

use switchyard::client::{serve, Client, Request, ServiceOptions, Target};

#[actix::test]
async fn a_program_serves_and_calls_through_the_public_api() {
    let b = common::start("").await;
    let to = Target::from(b.local_addr());
    let (registered, confirmed) = mpsc::channel();
    let server = {
        let to = to.clone();
        std::thread::spawn(move || {
            let opts = ServiceOptions {
                id: Some("lib-1".into()),
                max_inflight: Some(2),
                ..ServiceOptions::new("svc:rev")
            };
            serve(
                to,
                &opts,
                false,
                |r: Request| match r.method.as_str() {
                    "rev" => Ok(r.params.iter().rev().copied().collect()),
                    other => Err(format!("no method {other}")),
                },
                move |reg| registered.send(reg.clone()).unwrap(),
            )
        })
    };
    let reg = tokio::task::spawn_blocking(move || confirmed.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            reg.feature.as_str(),
            reg.group.as_str(),
            reg.id.as_str(),
            reg.max_inflight
        ),
        ("svc:rev", "svc:rev", "lib-1", 2)
    );

    let answers = tokio::task::spawn_blocking(move || {
        let mut c = Client::connect(to).unwrap();
        let ok = c.call("svc:rev", "rev", b"abc", Some("5s")).unwrap();
        let err = c.call("svc:rev", "nope", b"", None).unwrap_err();
        (ok, err.to_string())
    })
    .await
    .unwrap();
    assert_eq!(&answers.0[..], b"cba");
    assert_eq!(answers.1, "the broker answered: no method nope");

    // Without reconnect, the loop ends when the broker closes the connection.
    b.run_until(async {}).await;
    let ended = tokio::task::spawn_blocking(move || server.join().unwrap())
        .await
        .unwrap();
    assert!(matches!(&ended, Err(e) if e.is_transient()), "{ended:?}");
}
