//! The `switchyard` command line: every subcommand and flag, in one place so that
//! `switchyard completions` and `switchyard man` describe exactly what `main` parses.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "switchyard", version = switchyard_actors::build_info::line(), about = "An actor-model message broker")]
pub struct Cli {
    /// The config file [default: ./config.toml, or the shipped copy if that is missing]
    #[arg(short, long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// More log output when RUST_LOG is unset: -v debug, -vv trace
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// The broker's log lines: text for people, json (one object a line) for log
    /// pipelines [default: `[log] format`, or text]
    #[arg(long, value_enum, global = true, value_name = "FORMAT")]
    pub log_format: Option<crate::config::LogFormat>,
    #[command(flatten)]
    pub login: crate::login::LoginArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a config file and print the effective config (defaults filled in)
    CheckConfig {
        /// The file to check [default: --config, or ./config.toml, or the shipped copy]
        path: Option<PathBuf>,
    },
    /// Publish MESSAGE, or every line of stdin, to a topic and wait for the acks
    Pub {
        topic: String,
        message: Option<String>,
        /// The key of every record
        #[arg(long, conflicts_with = "key_separator")]
        key: Option<String>,
        /// Every record to this partition [default: as the topic routes each record]
        #[arg(long)]
        partition: Option<u32>,
        /// Split each line (and MESSAGE) at the first SEP into key and value; a line
        /// without SEP is a value without a key
        #[arg(long, value_name = "SEP", value_parser = clap::builder::NonEmptyStringValueParser::new())]
        key_separator: Option<String>,
        /// The publish's msg_id (MESSAGE, or stdin as one batch of at most 1000 lines):
        /// sent again within the broker's topics.dedup_window_ms it is acked as a
        /// duplicate and not stored again
        #[arg(long, value_name = "ID", conflicts_with_all = ["key_separator", "msg_id_prefix"])]
        msg_id: Option<String>,
        /// Each batch of 1000 stdin lines is one publish with the msg_id PREFIX-<n> (n from
        /// 0), so the same input sent again stores nothing twice
        #[arg(long, value_name = "PREFIX", conflicts_with_all = ["key_separator", "message"])]
        msg_id_prefix: Option<String>,
        #[command(flatten)]
        conn: crate::client::ConnArgs,
    },
    /// Print a topic's records (`<partition> <offset> <value>` lines unless --format or --json)
    Sub {
        #[command(flatten)]
        options: crate::client::SubOptions,
        #[command(flatten)]
        conn: crate::client::ConnArgs,
    },
    /// List topics (partitions, offsets, sizes, group lags), create or delete one
    Topics {
        #[command(subcommand)]
        action: Option<Topics>,
        #[command(flatten)]
        conn: crate::client::ConnArgs,
    },
    /// Call a feature's RPC method (driver:<name>, svc:<name>, broker, client:<id>) and print the result
    Call {
        feature: String,
        method: String,
        /// The call's payload [default: empty]
        params: Option<String>,
        /// A Go duration for the `timeout` label, e.g. 2s
        #[arg(long)]
        timeout: Option<String>,
        #[command(flatten)]
        conn: crate::client::ConnArgs,
    },
    /// Serve a named service: register svc:<name> and run COMMAND once per call (params
    /// on stdin, result from stdout, non-zero exit: an error)
    Serve {
        /// svc:<name>
        feature: String,
        /// The service's group [default: its name]
        #[arg(long)]
        group: Option<String>,
        /// Calls run at once, at most [default: the broker's, 256]
        #[arg(long, value_name = "N")]
        max_inflight: Option<u32>,
        /// This instance's name in `switchyard services` [default: made up by the broker]
        #[arg(long)]
        id: Option<String>,
        /// Exit when the broker closes the connection instead of registering again
        #[arg(long)]
        no_reconnect: bool,
        /// The command and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
        #[command(flatten)]
        conn: crate::client::ConnArgs,
    },
    /// List the named services: instances, peers, calls in flight, counters, latency
    Services {
        #[command(flatten)]
        conn: crate::client::ConnArgs,
    },
    /// Print every event-bus message as `<driver> <payload>` lines
    Events {
        /// Exit when the broker closes the connection instead of subscribing again
        #[arg(long)]
        no_reconnect: bool,
        #[command(flatten)]
        conn: crate::client::ConnArgs,
    },
    /// Read a password or token from stdin (no echo on a terminal) and print its argon2id hash
    Passwd,
    /// Make the running broker re-read its config (sends SIGHUP to broker.pid_file's pid)
    Reload {
        /// The broker's pid [default: read from broker.pid_file]
        #[arg(long)]
        pid: Option<i32>,
    },
    /// Benchmarks that print figures
    #[command(subcommand)]
    Bench(Bench),
    /// Write a local CA, a server certificate for localhost and 127.0.0.1, and a client
    /// certificate into DIR, to try TLS and mutual TLS
    DevCerts {
        dir: PathBuf,
        /// The client certificate's name (its CN: the user it names under mutual TLS)
        #[arg(long, default_value = "dev")]
        client: String,
    },
    /// Ask a running broker's gateway for GET /healthz; exit 0 only when it is serving
    Health {
        /// The gateway's HTTP address [default: gateway.http_bind of the config]
        #[arg(long, value_name = "HOST:PORT")]
        addr: Option<String>,
        /// Give up after this long
        #[arg(long, value_name = "MS", default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Print a shell completion script: `source <(switchyard completions bash)`
    Completions {
        /// bash, zsh or fish (elvish and powershell too)
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, or write one page per command into --dir
    Man {
        /// Write switchyard.1 and a switchyard-<command>.1 for each command here
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Copy topics from a running broker into DIR (a data dir's layout, `backup.json`
    /// last), up to each partition's synced offset, while publishers go on
    Backup {
        /// The backup dir: new or empty
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// A topic to copy (repeatable) [default: every topic the login may read]
        #[arg(long = "topic", value_name = "TOPIC")]
        topics: Vec<String>,
        #[command(flatten)]
        conn: crate::client::ConnArgs,
    },
    /// Restore a backup into a stopped broker's data dir, or with --broker as new topics
    /// into a running broker
    Restore {
        /// The backup dir (with its backup.json)
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The stopped broker's data dir [default: storage.dir of the config]
        #[arg(long, value_name = "DATA_DIR")]
        dir: Option<PathBuf>,
        /// Replace topics the data dir already holds
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        conn: crate::client::ConnArgs,
    },
    /// Check a stopped broker's data dir offline: every CRC, offset and index
    Verify {
        /// The data dir [default: storage.dir of the config]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rebuild indexes and move bad byte ranges to <partition>/quarantine/
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum Topics {
    /// Each topic's options, its partitions' offsets and sizes, each group's lag (the default)
    List,
    /// Create a topic (`topic create`); what is left out takes the broker's defaults
    Create(crate::client::CreateArgs),
    /// Delete a topic, its records and its groups' offsets (`topic delete`, admin)
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Load-generate and check the follower maze against a running broker
    Maze(crate::bench::cli::MazeArgs),
    /// Publish to a topic as fast as acks allow
    Pub(crate::bench::cli::TopicArgs),
    /// Read a topic from the earliest offset
    Sub(crate::bench::cli::TopicArgs),
    /// Consumers subscribed from the latest offset, then producers: end-to-end latency
    Pubsub(crate::bench::cli::TopicArgs),
    /// RPC round trips to a feature: one call at a time, then many in flight
    Rpc(crate::bench::cli::RpcArgs),
    /// Many idle connections: the broker's memory per connection, a ping among them
    Idle(crate::bench::cli::IdleArgs),
    /// Create many topics: time, the broker's fds and RSS, publish latency among them
    Topics(crate::bench::cli::ManyArgs),
    /// The rpc, pub and pubsub measurements against a NATS server (to compare)
    Nats(crate::bench::cli::NatsArgs),
}

/// `switchyard completions SHELL`: the script for `shell`, written to `out`.
pub fn completions(
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    // Into memory first: clap_complete panics when its writer fails (`… | head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "switchyard", &mut script);
    out.write_all(&script)
}

/// `switchyard man`: the top page on `out`, or with `dir` every page into it (the paths
/// written are returned).
pub fn man(
    dir: Option<&std::path::Path>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<Vec<PathBuf>> {
    let cmd = <Cli as clap::CommandFactory>::command();
    match dir {
        None => {
            clap_mangen::Man::new(cmd).render(out)?;
            Ok(Vec::new())
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let mut written = Vec::new();
            page(&cmd, "switchyard", dir, &mut written)?;
            Ok(written)
        }
    }
}

/// `cmd`'s page as `name.1`, then its subcommands' as `name-<sub>.1`.
fn page(
    cmd: &clap::Command,
    name: &str,
    dir: &std::path::Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    let named = cmd
        .clone()
        .name(name.to_string())
        .bin_name(name.replace('-', " "));
    clap_mangen::Man::new(named).render(&mut buf)?;
    std::fs::write(&path, buf)?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        page(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
