//! The gateway with `[auth]`: HTTP `Authorization: Basic`/`Bearer` and gRPC metadata name
//! the broker port's users, each operation is held to their permissions (401/403,
//! `UNAUTHENTICATED`/`PERMISSION_DENIED`), and the page asks for a login.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::auth::{hash, section};
use common::gateway::{grpc, health_client, start};
use common::http::{get, request, Reply};
use serde_json::json;
use switchyard_actors::gateway::pb::*;

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        switchyard_actors::gateway::base64::encode(raw.as_bytes())
    )
}

fn config() -> String {
    let mut s = section(
        "login_delay_ms = 20",
        &[
            (
                "ops",
                "ops-pw",
                "admin = true\npublish = [\">\"]\nsubscribe = [\">\"]",
            ),
            ("reader", "reader-pw", "subscribe = [\"orders\"]"),
            (
                "writer",
                "writer-pw",
                "publish = [\"orders\"]\ncall = [\"driver:conf\"]",
            ),
        ],
    );
    s += &format!(
        "[[auth.user]]\nname = \"robot\"\ntoken_hash = \"{}\"\nsubscribe = [\"audit.*\"]\n",
        hash("robot-token")
    );
    s
}

async fn as_user(
    h: std::net::SocketAddr,
    who: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Reply {
    request(
        h,
        method,
        path,
        &[("authorization", who), ("content-type", "application/json")],
        body,
    )
    .await
}

#[actix::test]
async fn http_names_users_and_holds_them_to_their_permissions() {
    let (b, _dir, _g) = start(&config()).await;
    let h = b.gateway().http.unwrap();
    let ops = basic("ops", "ops-pw");
    let reader = basic("reader", "reader-pw");
    let writer = basic("writer", "writer-pw");

    // Without credentials: 401 everywhere but health and the page.
    for path in [
        "/v1/topics",
        "/v1/tree",
        "/metrics",
        "/v1/drivers",
        "/v1/services",
    ] {
        let r = get(h, path).await;
        assert_eq!(r.status, 401, "{path}");
        assert!(r.header("www-authenticate").is_some(), "{path}");
    }
    assert_eq!(get(h, "/healthz").await.status, 200);
    let page = get(h, "/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("id=\"login\""),
        "the page has a login form"
    );

    // Bad credentials: the same answer for a wrong password and an unknown user.
    let wrong = as_user(h, &basic("ops", "nope"), "GET", "/v1/topics", b"").await;
    let unknown = as_user(h, &basic("nobody", "nope"), "GET", "/v1/topics", b"").await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.json()["error"], "bad credentials");
    assert_eq!(wrong.json(), unknown.json());
    let garbled = as_user(h, "Basic !!!!", "GET", "/v1/topics", b"").await;
    assert_eq!(garbled.status, 401);

    // The admin creates topics and sees the tree.
    for name in ["orders", "secret"] {
        let body = json!({"name": name}).to_string();
        let r = as_user(h, &ops, "POST", "/v1/topics", body.as_bytes()).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    assert_eq!(as_user(h, &ops, "GET", "/v1/tree", b"").await.status, 200);
    let services = as_user(h, &ops, "GET", "/v1/services", b"").await;
    assert_eq!(
        (services.status, services.text()),
        (200, "{\"services\":[]}".into())
    );

    // A reader: lists and reads only what it may, and may not write or administer.
    let r = as_user(h, &reader, "GET", "/v1/topics", b"").await;
    let names: Vec<String> = r.json()["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["orders"]);
    let r = as_user(
        h,
        &reader,
        "POST",
        "/v1/topics/orders/messages",
        br#"{"value":"x"}"#,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "permission denied: publish orders");
    assert_eq!(r.json()["kind"], "permission_denied");
    assert_eq!(
        as_user(h, &reader, "GET", "/v1/topics/secret/messages", b"")
            .await
            .status,
        403
    );
    assert_eq!(
        as_user(h, &reader, "GET", "/v1/topics/secret/stream", b"")
            .await
            .status,
        403
    );
    for (method, path) in [
        ("GET", "/v1/tree"),
        ("GET", "/v1/drivers"),
        ("GET", "/v1/services"),
        ("GET", "/metrics"),
    ] {
        assert_eq!(
            as_user(h, &reader, method, path, b"").await.status,
            403,
            "{path}"
        );
    }
    let r = as_user(h, &reader, "POST", "/v1/topics", br#"{"name":"mine"}"#).await;
    assert_eq!(r.status, 403);
    let r = as_user(h, &reader, "POST", "/v1/drivers/conf/rpc/echo", b"{}").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "permission denied: call driver:conf");

    // A writer publishes what the reader then reads, and calls the driver it may.
    let r = as_user(
        h,
        &writer,
        "POST",
        "/v1/topics/orders/messages",
        br#"{"value":"hello"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = as_user(h, &reader, "GET", "/v1/topics/orders/messages?from=0", b"").await;
    assert_eq!(r.json()["records"][0]["value"], "hello");
    let r = as_user(h, &writer, "POST", "/v1/drivers/conf/rpc/echo", b"{}").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        as_user(
            h,
            &writer,
            "POST",
            "/v1/topics/secret/messages",
            br#"{"value":"x"}"#
        )
        .await
        .status,
        403
    );

    // A token user, by `Authorization: Bearer`.
    let r = as_user(h, "Bearer robot-token", "GET", "/v1/topics", b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["topics"], json!([]));
    assert_eq!(
        as_user(h, "Bearer wrong-token", "GET", "/v1/topics", b"")
            .await
            .status,
        401
    );

    // Refusals and failures are counted.
    let m = as_user(h, &ops, "GET", "/metrics", b"").await.text();
    assert!(
        m.contains("switchyard_permission_denied_total{op=\"publish\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("switchyard_permission_denied_total{op=\"services\"} 1"),
        "{m}"
    );
    assert!(m.contains("switchyard_auth_failures_total{port=\"http\",reason=\"missing\"}"));
    assert!(m.contains("switchyard_auth_failures_total{port=\"http\",reason=\"bad_credentials\"}"));
}

fn with<T>(who: &str, body: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(body);
    r.metadata_mut()
        .insert("authorization", who.parse().unwrap());
    r
}

#[actix::test]
async fn grpc_names_users_in_metadata() {
    let (b, _dir, _g) = start(&config()).await;
    let mut c = grpc(&b).await;
    let e = c.list_topics(ListTopicsRequest {}).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    // Health needs no credentials.
    let mut health = health_client(&b).await;
    assert!(health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new()
        })
        .await
        .is_ok());

    let ops = basic("ops", "ops-pw");
    let reader = basic("reader", "reader-pw");
    for name in ["orders", "secret"] {
        let t = CreateTopicRequest {
            name: name.into(),
            ..Default::default()
        };
        c.create_topic(with(&ops, t)).await.unwrap();
    }
    let e = c
        .create_topic(with(
            &reader,
            CreateTopicRequest {
                name: "mine".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert_eq!(e.message(), "permission denied: create mine");
    let topics = c
        .list_topics(with(&reader, ListTopicsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .topics;
    let names: Vec<_> = topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["orders"]);
    let e = c
        .publish(with(
            &reader,
            PublishRequest {
                topic: "orders".into(),
                values: vec![b"x".to_vec()],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let e = c
        .tree(with(&basic("ops", "wrong"), TreeRequest {}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(c.tree(with(&ops, TreeRequest {})).await.is_ok());
    let e = c
        .call_driver(with(
            &reader,
            CallDriverRequest {
                driver: "conf".into(),
                method: "echo".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
}
