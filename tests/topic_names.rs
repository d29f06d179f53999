//! A topic name with a leading dot is refused everywhere a name comes in: a topic is a
//! folder, and a hidden folder is one that `ls`, globs and backups pass over.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::topic_env;
use common::topics::{config, label, Client};

#[actix::test]
async fn a_leading_dot_is_refused_on_the_broker_port_and_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    let mut c = Client::connect(b.local_addr()).await;
    for (i, name) in [".hidden", ".", "..", "..x"].iter().enumerate() {
        let id = format!("p{i}");
        c.send(&topic_env("publish", &[("topic", name), ("id", &id)], b"v"))
            .await;
        let e = c.next().await;
        assert!(e.is("topic", "error"), "{name}: {e:?}");
        assert_eq!(label(&e, "id"), id);
        assert!(
            label(&e, "error").contains("not starting with `.`"),
            "{name}: {e:?}"
        );
        c.send(&topic_env("create", &[("topic", name), ("id", &id)], b""))
            .await;
        assert!(c.next().await.is("topic", "error"), "{name}");
    }
    // Dots elsewhere are fine.
    c.send(&topic_env(
        "publish",
        &[("topic", "a.b."), ("id", "ok")],
        b"v",
    ))
    .await;
    assert!(c.next().await.is("topic", "ack"));
    assert!(!dir.path().join(".hidden").exists() && dir.path().join("a.b.").is_dir());
    b.run_until(async {}).await;

    let text = format!(
        "[broker]\nbind = \"127.0.0.1:0\"\n[storage]\ndir = \"{}\"\n[[topic]]\nname = \".hidden\"\n",
        dir.path().display()
    );
    let err = switchyard::Config::parse(&text, "test.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not starting with `.`") && err.contains("test.toml:6:"),
        "{err}"
    );
}

/// A restart reads the data dir: its `.lock` file is no topic and says nothing, a
/// folder with a leading dot is named in a warning as not served.
#[actix::test]
async fn a_restart_warns_of_dotted_folders_and_not_of_the_lock_file() {
    let (log, _g) = common::Log::capture();
    let dir = tempfile::tempdir().unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    b.run_until(async {}).await;
    assert!(
        dir.path().join(".lock").is_file(),
        "the running broker's lock"
    );
    std::fs::create_dir(dir.path().join(".old")).unwrap();
    let b = switchyard::start(&config(dir.path(), "")).await.unwrap();
    log.wait_for(&["not a topic, not served", "folder=.old"])
        .await;
    b.run_until(async {}).await;
    assert!(
        log.line_with(&["not a topic", ".lock"]).is_none(),
        "{}",
        log.text()
    );
}
