//! Errors in arrays of tables name the entry by its index (`rule[1].do`), for parse
//! errors as well as for the checks made after parsing.

use super::*;

fn key_and_line(text: &str) -> (String, usize) {
    let e = Config::parse(text, "c.toml").unwrap_err();
    (e.key.clone().unwrap_or_default(), e.line.map_or(0, |l| l.0))
}

const TWO_DRIVERS: &str = "[[driver]]\nname = \"a\"\ncommand = \"/bin/cat\"\n\
    [driver.options]\nx = 1\n\n[[driver]]\nname = \"b\"\ncommand = \"/bin/cat\"\n";

#[test]
fn parse_errors_in_rules_name_the_rule() {
    let rule = |n: &str, action: &str| {
        format!("[[rule]]\nname = \"{n}\"\nwhen = {{ driver = \"a\" }}\ndo = {action}\n")
    };
    let text = format!(
        "{TWO_DRIVERS}{}{}",
        rule("r0", "{ driver = \"a\", method = \"x\" }"),
        rule("r1", "{ driver = \"a\", methd = \"x\" }")
    );
    assert_eq!(key_and_line(&text), ("rule[1].do".to_string(), 17));
}

#[test]
fn errors_in_topics_name_the_topic() {
    let ok = "[[topic]]\nname = \"ok\"\n";
    assert_eq!(
        key_and_line(&format!("{ok}[[topic]]\nname = \"bad name\"\n")),
        ("topic[1].name".to_string(), 4)
    );
    assert_eq!(
        key_and_line(&format!("{ok}[[topic]]\nname = \"b\"\npartitions = 0\n")),
        ("topic[1].partitions".to_string(), 5)
    );
    assert_eq!(
        key_and_line(&format!("{ok}[[topic]]\nname = \"b\"\nroutng = 1\n")),
        ("topic[1].routng".to_string(), 5)
    );
}

#[test]
fn errors_in_drivers_and_their_subtables_name_the_driver() {
    assert_eq!(
        key_and_line(&format!("{TWO_DRIVERS}foo = 1\n")),
        ("driver[1].foo".to_string(), 10)
    );
    let text = "[[driver]]\nname = \"a\"\ncommand = \"/bin/cat\"\nqueue_bytes = -1\n";
    assert_eq!(key_and_line(text), ("driver[0].queue_bytes".to_string(), 4));
}

#[test]
fn errors_in_chat_tables_name_the_entry() {
    let text = "[chat]\n[[chat.plugin]]\nname = \"a\"\ndriver = \"x\"\n\
        [[chat.plugin]]\nname = \"b\"\ndriver = 1\n";
    assert_eq!(key_and_line(text), ("chat.plugin[1].driver".to_string(), 7));
}

#[test]
fn plain_tables_keep_their_names() {
    let text = "[broker] # the port\nmax_connections = 0\n[[topic]]\nname = \"t\"\n";
    assert_eq!(
        key_and_line(text),
        ("broker.max_connections".to_string(), 2)
    );
}

#[test]
fn a_driver_name_with_no_drivers_configured_says_so() {
    let rule = "[[rule]]\nname = \"r\"\nwhen = { driver = \"a\" }\n\
        do = { driver = \"b\", method = \"m\" }\n";
    let e = Config::parse(rule, "c.toml").unwrap_err();
    assert!(
        e.message
            .ends_with("do.driver `b` is not a configured driver (no [[driver]] is configured)"),
        "{e}"
    );
    let chat = "[chat]\n[[chat.plugin]]\nname = \"p\"\ndriver = \"x\"\n";
    let e = Config::parse(chat, "c.toml").unwrap_err();
    assert!(
        e.message
            .ends_with("`x` is not a configured driver (no [[driver]] is configured)"),
        "{e}"
    );
}

#[test]
fn a_driver_command_that_cannot_be_run_names_key_value_and_line() {
    let text = format!("{TWO_DRIVERS}[[driver]]\nname = \"c\"\ncommand = \"no-such-driver-cmd\"\n");
    let e = Config::parse(&text, "c.toml").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("driver[2].command"));
    assert_eq!(e.line, Some((12, 1)));
    assert_eq!(
        e.message,
        "expected an executable file: `no-such-driver-cmd` is not an executable file on PATH"
    );
    let text = "[[driver]]\nname = \"a\"\ncommand = \"/no/such/driver\"\n";
    let e = Config::parse(text, "c.toml").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("driver[0].command"));
    assert!(
        e.to_string()
            .starts_with("c.toml:3:1: key `driver[0].command`: expected an executable file: cannot run `/no/such/driver`: No such file"),
        "{e}"
    );
    // A bare name is looked for on PATH, like the spawner does.
    assert!(Config::parse("[[driver]]\nname = \"a\"\ncommand = \"sh\"\n", "c.toml").is_ok());
}

#[test]
fn hash_files_fill_the_hash_and_their_errors_name_key_value_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let hash = switchyard_actors::auth::hash_secret(b"pw").unwrap();
    let file = dir.path().join("admin.hash");
    std::fs::write(&file, format!("{hash}\n")).unwrap();
    let text = |key: &str, path: &std::path::Path| {
        format!(
            "[auth]\n\n[[auth.user]]\nname = \"admin\"\nadmin = true\n{key} = \"{}\"\n",
            path.display()
        )
    };
    let c = Config::parse(&text("password_hash_file", &file), "c.toml").unwrap();
    let u = &c.auth.as_ref().unwrap().users[0];
    assert_eq!(u.password_hash.as_deref(), Some(hash.as_str()), "trimmed");
    let c = Config::parse(&text("token_hash_file", &file), "c.toml").unwrap();
    assert_eq!(
        c.auth.unwrap().users[0].token_hash.as_deref(),
        Some(hash.as_str())
    );

    let missing = dir.path().join("nope");
    let e = Config::parse(&text("password_hash_file", &missing), "c.toml").unwrap_err();
    assert_eq!(
        e.key.as_deref(),
        Some("auth.user[0].password_hash_file"),
        "{e}"
    );
    assert_eq!(e.line.map(|l| l.0), Some(6), "{e}");
    assert!(e.message.contains("cannot read `"), "{e}");
    assert!(e.message.contains("nope"), "names the value: {e}");

    let both = format!(
        "{}password_hash = \"{hash}\"\n",
        text("password_hash_file", &file)
    );
    let e = Config::parse(&both, "c.toml").unwrap_err();
    assert!(e.message.contains("both set"), "{e}");

    let e = Config::parse(
        &text("password_hash_file", std::path::Path::new("/dev/zero")),
        "c.toml",
    )
    .unwrap_err();
    assert!(e.message.contains("longer than 4096 bytes"), "{e}");

    std::fs::write(&file, "not a hash\n").unwrap();
    let e = Config::parse(&text("password_hash_file", &file), "c.toml").unwrap_err();
    assert!(e.message.contains("not a PHC hash string"), "{e}");
}
