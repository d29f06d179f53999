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
    // The shipped file spells out the defaults.
    assert_eq!(
        c,
        Config {
            maze: Some(MazeConfig::default()),
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
            "socket address",
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
