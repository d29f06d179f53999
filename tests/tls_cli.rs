//! TLS through the built binary: `switchyard dev-certs`, a broker with mutual TLS, the
//! client commands and `bench pub` with `--tls --ca --cert --cert-key`, and SIGHUP
//! swapping the server certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dev_certs(dir: &Path, client: &str) -> String {
    ok(&run(&[
        "dev-certs",
        dir.to_str().unwrap(),
        "--client",
        client,
    ]))
}

/// The broker binary on port 0 with mutual TLS over `certs`; its log lines as they come.
fn spawn_broker(
    dir: &Path,
    certs: &Path,
) -> (std::process::Child, String, Arc<Mutex<Vec<String>>>) {
    let cfg = dir.join("config.toml");
    let c = certs.display();
    std::fs::write(
        &cfg,
        format!(
            "[broker]\nbind = \"127.0.0.1:0\"\ntls = true\n[storage]\ndir = \"{}\"\nfsync = \"never\"\n\
             [tls]\ncert = \"{c}/server.pem\"\nkey = \"{c}/server.key\"\nclient_ca = \"{c}/ca.pem\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "the broker exited");
        if let Some(rest) = line.split("listening listener=broker addr=").nth(1) {
            break rest.trim().to_string();
        }
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    (child, addr, log)
}

fn wait_log(log: &Mutex<Vec<String>>, part: &str) {
    for _ in 0..500 {
        if log.lock().unwrap().iter().any(|l| l.contains(part)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no log line with {part:?}: {:?}", log.lock().unwrap());
}

#[test]
fn dev_certs_then_the_clients_over_mutual_tls_and_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let said = dev_certs(&certs, "ops");
    for f in [
        "ca.pem",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ] {
        assert!(
            said.contains(&format!("{}", certs.join(f).display())),
            "{said}"
        );
    }
    assert!(
        said.contains("[tls]") && said.contains("client_ca"),
        "{said}"
    );
    for key in ["ca.key", "server.key", "client.key"] {
        let mode = std::fs::metadata(certs.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let (mut broker, addr, log) = spawn_broker(dir.path(), &certs);
    let p = |f: &str| certs.join(f).to_str().unwrap().to_string();
    let (ca, cert, key) = (p("ca.pem"), p("client.pem"), p("client.key"));
    let tls = |ca: &str| -> Vec<String> {
        [
            "--broker",
            &addr,
            "--tls",
            "--ca",
            ca,
            "--cert",
            &cert,
            "--cert-key",
            &key,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let with = |head: &[&str], ca: &str| -> Output {
        let mut args: Vec<String> = head.iter().map(|s| s.to_string()).collect();
        args.extend(tls(ca));
        Command::new(BIN).args(&args).output().unwrap()
    };

    ok(&with(&["pub", "secure", "over tls"], &ca));
    let out = ok(&with(
        &["sub", "secure", "--from", "earliest", "--max", "1"],
        &ca,
    ));
    assert_eq!(out, "0 0 over tls\n");
    assert!(ok(&with(&["topics"], &ca)).contains("secure"));
    // A host name is what the certificate is checked against (it names localhost).
    let port = addr.rsplit(':').next().unwrap();
    let host = format!("localhost:{port}");
    let by_name = run(&[
        "topics",
        "--broker",
        &host,
        "--tls",
        "--ca",
        &ca,
        "--cert",
        &cert,
        "--cert-key",
        &key,
    ]);
    assert!(ok(&by_name).contains("secure"));
    let bench = ok(&with(&["bench", "pub", "--count", "20000", "--quiet"], &ca));
    assert!(bench.contains("published"), "{bench}");

    // Refusals the client can tell apart.
    let out = run(&["topics", "--broker", &addr, "--tls"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls needs --ca"));
    let out = run(&["topics", "--broker", &addr, "--tls", "--ca", &ca]);
    assert!(!out.status.success());
    let out = run(&["topics", "--broker", &addr]);
    assert!(!out.status.success());
    wait_log(&log, "plaintext client on a TLS port");

    // SIGHUP: a new server certificate from another CA, same paths.
    let next = dir.path().join("next");
    dev_certs(&next, "other");
    for f in ["server.pem", "server.key"] {
        std::fs::copy(next.join(f), certs.join(f)).unwrap();
    }
    let pid = broker.id().to_string();
    ok(&run(&["reload", "--pid", &pid]));
    wait_log(&log, "tls certificates reloaded");
    let new_ca = next.join("ca.pem").to_str().unwrap().to_string();
    assert!(ok(&with(&["topics"], &new_ca)).contains("secure"));
    assert!(!with(&["topics"], &ca).status.success());

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(broker.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(broker.wait().unwrap().success());
}
