//! config.toml parsing, validation and the wording of its errors.

use super::*;

#[test]
fn shipped_config_is_valid_and_loopback_only() {
    let c = Config::parse(SHIPPED, "config.toml").unwrap();
    assert!(c.broker.bind.ip().is_loopback());
    let maze = c
        .maze
        .as_ref()
        .expect("the maze is on in the shipped config");
    assert!(maze.event_bind.ip().is_loopback() && maze.client_bind.ip().is_loopback());
    let g = c.gateway.as_ref().unwrap();
    assert!(g.http_bind.unwrap().ip().is_loopback() && g.grpc_bind.unwrap().ip().is_loopback());
    // The shipped file spells out the defaults.
    assert_eq!(
        c,
        Config {
            maze: Some(MazeConfig::default()),
            gateway: Some(GatewayConfig {
                http_bind: Some("127.0.0.1:7480".parse().unwrap()),
                grpc_bind: Some("127.0.0.1:7481".parse().unwrap()),
                token: None,
                request_timeout_ms: Ranged::new(10_000),
                stream_buffer_bytes: Ranged::new(4 << 20),
                stream_keepalive_ms: Ranged::new(15_000),
                tls: false,
            }),
            ..Config::default()
        }
    );
}

#[test]
fn every_section_is_optional() {
    assert_eq!(Config::parse("", "x").unwrap(), Config::default());
    assert_eq!(
        Config::parse("[maze]\n", "x").unwrap().maze,
        Some(MazeConfig::default())
    );
    let c = Config::parse("[broker]\nmax_connections = 3\n", "x").unwrap();
    assert_eq!(c.broker.max_connections.get(), 3);
    assert_eq!(c.supervisor, SupervisorConfig::default());
}

#[test]
fn unknown_key_names_key_line_and_expected() {
    let e = Config::parse(
        "[broker]\nbind = \"127.0.0.1:1\"\nmax_conections = 3\n",
        "c.toml",
    )
    .unwrap_err();
    assert_eq!(e.line, Some((3, 1)));
    assert_eq!(e.key.as_deref(), Some("broker.max_conections"));
    assert!(e.message.contains("unknown field `max_conections`"), "{e}");
    assert!(
        e.message.contains("`max_connections`"),
        "lists what is expected: {e}"
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with("c.toml:3:1: key `broker.max_conections`: unknown field"),
        "{shown}"
    );
}

#[test]
fn unknown_section_is_refused() {
    let e = Config::parse("[brokr]\nbind = \"127.0.0.1:1\"\n", "c.toml").unwrap_err();
    assert_eq!(e.line.map(|l| l.0), Some(1));
    assert!(e.message.contains("unknown field `brokr`"), "{e}");
}

#[test]
fn bad_values_name_key_line_and_expected() {
    let cases = [
        (
            "[broker]\nmax_connections = 0\n",
            "broker.max_connections",
            "expected a number from 1 to 1000000, got 0",
        ),
        (
            "[broker]\nbind = \"localhost\"\n",
            "broker.bind",
            "expected host:port, got `localhost`",
        ),
        (
            "[broker]\nslow_consumer = \"drop\"\n",
            "broker.slow_consumer",
            "expected `disconnect` or `block`",
        ),
        (
            "[shutdown]\ngrace_ms = \"5s\"\n",
            "shutdown.grace_ms",
            "expected u64",
        ),
        (
            "[broker]\noutput_buffer_bytes = 2048\n",
            "broker.output_buffer_bytes",
            "expected at least broker.max_frame_bytes",
        ),
        (
            "[broker]\nmemory_limit_bytes = 1024\n",
            "broker.memory_limit_bytes",
            "expected a number from 1048576",
        ),
        (
            "[broker]\nmemory_limit_bytes = 2097152\nmax_frame_bytes = 4194304\noutput_buffer_bytes = 4194304\n",
            "broker.memory_limit_bytes",
            "expected at least broker.max_frame_bytes (4194304), got 2097152",
        ),
        (
            "[gateway]\nstream_buffer_bytes = 10\n",
            "gateway.stream_buffer_bytes",
            "expected a number from 65536",
        ),
    ];
    for (text, key, expected) in cases {
        let e = Config::parse(text, "c.toml").unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert_eq!(e.line.map(|l| l.0), Some(2), "{e}");
        assert!(e.message.contains(expected), "{e}");
    }
}

#[test]
fn effective_config_round_trips() {
    let c = Config::parse("[broker]\nidle_timeout_ms = 5\n", "x").unwrap();
    let again = Config::parse(&c.to_toml(), "y").unwrap();
    assert_eq!(c, again);
}

#[test]
fn drivers_and_rules_parse_with_defaults() {
    let c = Config::parse(
        "[[driver]]\nname = \"webhook\"\ncommand = \"/bin/cat\"\n[driver.options]\nAddr = \"127.0.0.1:8080\"\n\
         [[driver]]\nname = \"deployer\"\ncommand = \"/bin/sh\"\nservice = \"operator\"\nargs = [\"-v\"]\nrequired = true\n\
         [[rule]]\nname = \"hook-to-deploy\"\n\
         when = { driver = \"webhook\", match = { url = \"/hook\", form = { token = \":regex:^s3cr\" } } }\n\
         do = { driver = \"deployer\", method = \"deploy\", params = { env = \"prod\" }, retry = 2 }\n",
        "x",
    )
    .unwrap();
    let h = c.host_settings();
    assert_eq!(h.drivers[0].service, "operator");
    assert_eq!(
        h.drivers[0].start_timeout,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(h.drivers[0].options["Addr"], "127.0.0.1:8080");
    assert!(h.drivers[1].required);
    assert_eq!(h.rules[0].retry, 2);
    assert_eq!((h.rules[0].backoff_ms, h.rules[0].timeout_s), (1000, 30));
    assert_eq!(h.rules[0].event_key(), "webhook.");
    assert_eq!(h.eventbus_topic.as_deref(), Some("eventbus"));
    assert_eq!(
        h.dynamic_data("webhook")["collapsedEvents"]["webhook."][0]["match"]["url"],
        "/hook"
    );
    assert!(h.dynamic_data("deployer").is_null());
}

#[test]
fn driver_and_rule_errors_name_the_entry_key_and_line() {
    let text = "[[driver]]\nname = \"a\"\ncommand = \"/bin/true\"\n\n[[driver]]\nname = \"a\"\ncommand = \"/bin/false\"\n";
    let e = Config::parse(text, "c.toml").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("driver[1].name"));
    assert_eq!(e.line, Some((6, 1)));
    assert!(e.message.contains("configured twice"), "{e}");

    let text = "[[driver]]\nname = \"a\"\ncommand = \"/bin/true\"\ncolour = 1\n";
    let e = Config::parse(text, "c.toml").unwrap_err();
    assert!(e.to_string().contains("colour"), "{e}");
    assert_eq!(e.line.map(|l| l.0), Some(4));

    let text = "[[driver]]\nname = \"a\"\ncommand = \"/bin/true\"\n[[rule]]\nname = \"r\"\n\
                when = { driver = \"a\" }\ndo = { driver = \"b\", method = \"m\" }\n";
    let e = Config::parse(text, "c.toml").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("rule[0].do"));
    assert_eq!(e.line, Some((7, 1)));
    assert!(
        e.message
            .contains("do.driver `b` is not a configured driver (known: a)"),
        "{e}"
    );

    let text = "[[driver]]\nname = \"a\"\ncommand = \"/bin/true\"\n[[rule]]\nname = \"r\"\n\
                when = { driver = \"a\", match = { x = \":regex:((\" } }\ndo = { driver = \"a\", method = \"m\" }\n";
    let e = Config::parse(text, "c.toml").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("rule[0].when"));
    assert!(e.message.contains("`:regex:((` does not compile"), "{e}");

    let e = Config::parse("[drivers]\nrpc_timeout_ms = 0\n", "c.toml").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("drivers.rpc_timeout_ms"));
    let e = Config::parse("[[driver]]\nname = \"a b\"\ncommand = \"x\"\n", "c.toml").unwrap_err();
    assert!(e.message.contains("`a b`"), "{e}");
}

#[test]
fn gateway_keys_are_checked_not_ignored() {
    let c = Config::parse("[gateway]\nhttp_bind = \"127.0.0.1:7480\"\n", "x").unwrap();
    // The old shared token is refused at its line, naming what replaces it.
    let e = Config::parse(
        "[gateway]\nhttp_bind = \"127.0.0.1:7480\"\ntoken = \"t\"\n",
        "c.toml",
    )
    .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("gateway.token"));
    assert_eq!(e.line, Some((3, 1)));
    assert!(e.message.contains("[auth]"), "{e}");
    let g = c.gateway.as_ref().unwrap();
    assert_eq!(g.http_bind, Some("127.0.0.1:7480".parse().unwrap()));
    assert_eq!(g.grpc_bind, None);
    assert_eq!(g.request_timeout_ms.get(), 10_000);
    // go-ms silently ignored keys it did not know; switchyard names them.
    let e = Config::parse(
        "[gateway]\nhttp_bind = \"127.0.0.1:7480\"\nhttp_port = 8080\n",
        "c.toml",
    )
    .unwrap_err();
    assert_eq!(e.line, Some((3, 1)));
    assert!(e.to_string().contains("http_port"), "{e}");
    assert!(e.to_string().contains("grpc_bind"), "{e}");
    let e = Config::parse("[gateway]\ngrpc_bind = \"nowhere\"\n", "c.toml").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("gateway.grpc_bind"));
}

#[test]
fn connection_limits_have_defaults_and_ranges() {
    let c = Config::parse("", "x").unwrap();
    assert_eq!(c.broker.max_connections_per_ip.get(), 256);
    assert_eq!(c.broker.first_frame_timeout_ms, 10_000);
    assert_eq!(c.broker.listen_backlog.get(), 1024);
    let l = c.broker_listener();
    assert_eq!(l.max_connections_per_ip, 256);
    assert_eq!(
        l.connection.first_frame_timeout,
        Some(std::time::Duration::from_secs(10))
    );
    let off = Config::parse("[broker]\nfirst_frame_timeout_ms = 0\n", "x").unwrap();
    assert_eq!(off.broker_listener().connection.first_frame_timeout, None);
    for (text, key) in [
        (
            "[broker]\nmax_connections_per_ip = 0\n",
            "broker.max_connections_per_ip",
        ),
        (
            "[broker]\nlisten_backlog = 70000\n",
            "broker.listen_backlog",
        ),
        (
            "[maze]\nmax_clients_per_ip = 0\n",
            "maze.max_clients_per_ip",
        ),
    ] {
        let e = Config::parse(text, "x").unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert_eq!(e.line.map(|l| l.0), Some(2), "{e}");
    }
}

#[test]
fn max_fetch_bytes_has_a_default_and_a_range() {
    let c = Config::parse("", "x").unwrap();
    assert_eq!(c.topic_settings().max_fetch_bytes, 4 << 20);
    let e = Config::parse("[topics]\nmax_fetch_bytes = 100\n", "x").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("topics.max_fetch_bytes"), "{e}");
    assert!(e.message.contains("from 1024 to 67108864"), "{e}");
}

#[test]
fn driver_queue_and_log_limits_parse_and_are_checked() {
    let c = Config::parse(
        "[drivers]\nqueue_bytes = 8192\nlog_lines_per_sec = 5\nlog_burst = 7\nlog_line_bytes = 100\n\
         [[driver]]\nname = \"a\"\ncommand = \"/bin/true\"\n[[driver]]\nname = \"b\"\ncommand = \"/bin/false\"\nqueue_bytes = 65536\n",
        "x",
    )
    .unwrap();
    let h = c.host_settings();
    assert_eq!(
        (h.drivers[0].queue_bytes, h.drivers[1].queue_bytes),
        (8192, 65536)
    );
    assert_eq!(
        (h.log.lines_per_sec, h.log.burst, h.log.line_bytes),
        (5, 7, 100)
    );
    let d = Config::parse("", "x").unwrap().host_settings();
    assert_eq!(
        d.log,
        switchyard_actors::drivers::DriverLogLimits::default()
    );
    for (text, key) in [
        ("[drivers]\nqueue_bytes = 10\n", "drivers.queue_bytes"),
        (
            "[drivers]\nlog_lines_per_sec = 0\n",
            "drivers.log_lines_per_sec",
        ),
        ("[drivers]\nlog_burst = 0\n", "drivers.log_burst"),
        ("[drivers]\nlog_line_bytes = 8\n", "drivers.log_line_bytes"),
    ] {
        let e = Config::parse(text, "c.toml").unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert_eq!(e.line.map(|l| l.0), Some(2), "{e}");
        assert!(e.message.contains("expected a number from"), "{e}");
    }
    let e = Config::parse(
        "[[driver]]\nname = \"a\"\ncommand = \"/bin/true\"\nqueue_bytes = 1\n",
        "c.toml",
    )
    .unwrap_err();
    assert!(e.to_string().contains("expected a number from 4096"), "{e}");
    assert_eq!(e.line.map(|l| l.0), Some(4), "{e}");
}

#[test]
fn buffer_release_ms_reaches_the_connections_and_zero_is_refused() {
    let c = Config::parse("[broker]\nbuffer_release_ms = 250\n", "x").unwrap();
    let conn = c.broker_listener().connection;
    assert_eq!(conn.buffer_release, std::time::Duration::from_millis(250));
    let default = Config::parse("", "x").unwrap().broker_listener().connection;
    assert_eq!(default.buffer_release, std::time::Duration::from_secs(1));
    let e = Config::parse("[broker]\nbuffer_release_ms = 0\n", "c.toml").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("broker.buffer_release_ms"), "{e}");
}

#[test]
fn dedup_keys_have_defaults_and_ranges() {
    let d = Config::default().topic_settings().dedup;
    assert_eq!((d.window_ms, d.max_ids), (120_000, 200_000));
    let c = Config::parse("[topics]\ndedup_window_ms = 0\n", "x").unwrap();
    assert!(!c.topic_settings().dedup.enabled());
    let e = Config::parse("[topics]\ndedup_max_ids = 0\n", "x").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("topics.dedup_max_ids"), "{e}");
    let e = Config::parse("[topics]\ndedup_window_ms = 86400001\n", "x").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("topics.dedup_window_ms"), "{e}");
}
