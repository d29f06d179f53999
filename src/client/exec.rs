//! `switchyard serve ... -- COMMAND ARGS...`: a handler that runs a command once per
//! call, so a shell one-liner becomes a service.

use std::io::Write;
use std::process::{Command, Stdio};

use super::serve::{Reply, Request};

/// A handler that runs `argv` for each call: the params on its stdin, the result from
/// its stdout (every byte, as written), the method and the caller in its environment
/// (`SWITCHYARD_METHOD`, `SWITCHYARD_CALLER`). A non-zero exit (or a signal) is an
/// error return whose text is the first line of its stderr, or `COMMAND exited with
/// <status>` when it wrote none.
pub fn command_handler(argv: Vec<String>) -> impl Fn(Request) -> Reply + Send + Sync + 'static {
    move |r: Request| run(&argv, r)
}

fn run(argv: &[String], r: Request) -> Reply {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| "no command to run".to_string())?;
    let mut child = Command::new(program)
        .args(args)
        .env("SWITCHYARD_METHOD", &r.method)
        .env("SWITCHYARD_CALLER", &r.caller)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    // Written on its own thread: a command that answers before it has read everything
    // would otherwise block us both on full pipes.
    let stdin = child.stdin.take();
    let params = r.params.clone();
    let feeder = std::thread::spawn(move || {
        if let Some(mut i) = stdin {
            // A command that ignores its stdin closes it early; that is its business.
            let _ = i.write_all(&params);
        }
    });
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    let _ = feeder.join();
    if out.status.success() {
        return Ok(out.stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    match stderr.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(first) => Err(first.to_string()),
        None => Err(format!("{program} exited with {}", out.status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(params: &str) -> Request {
        Request {
            method: "m".into(),
            caller: "client:1".into(),
            params: bytes::Bytes::from(params.to_string()),
        }
    }

    #[test]
    fn stdout_is_the_result_and_stderr_the_error() {
        let sh = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];
        let upper = command_handler(sh("tr a-z A-Z"));
        assert_eq!(upper(req("hello")).unwrap(), b"HELLO");
        let method = command_handler(sh("printf %s \"$SWITCHYARD_METHOD\""));
        assert_eq!(method(req("")).unwrap(), b"m");
        let fails = command_handler(sh("echo; echo 'bad input' >&2; echo more >&2; exit 3"));
        assert_eq!(fails(req("x")).unwrap_err(), "bad input");
        let silent = command_handler(sh("exit 2"));
        assert_eq!(
            silent(req("")).unwrap_err(),
            "sh exited with exit status: 2"
        );
        let missing = command_handler(vec!["/no/such/command".into()]);
        assert!(missing(req(""))
            .unwrap_err()
            .starts_with("cannot run /no/such/command"));
    }
}
