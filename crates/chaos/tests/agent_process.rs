//! The `drover-chaos agent` subcommand as the harness uses it, without a cluster (and without
//! root). Its being an integration test of this package also makes every `cargo test` and
//! `cargo nextest run` of the workspace build the `drover-chaos` binary, which the chaos suite
//! (`tests/chaos.rs`) starts as its agents.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn agent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drover-chaos"));
    c.arg("agent");
    c
}

/// Waits for the child to exit, up to `deadline`.
fn exit_within(child: &mut std::process::Child, deadline: Duration) -> Option<i32> {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

/// An agent process whose harness went away (its stdin closed) exits at once, even while it
/// is still trying to register: a harness that dies leaves no agent behind heartbeating.
#[test]
fn an_agent_exits_when_its_stdin_closes() {
    let mut child = agent()
        .args(["--endpoints", "127.0.0.1:9", "--id", "t-1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start drover-chaos agent");
    // A command before it registered is ignored; then the end of stdin ends it.
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "drain").expect("write");
    drop(stdin);
    assert_eq!(exit_within(&mut child, Duration::from_secs(10)), Some(0));
}

/// A malformed command line is refused with exit code 2 before anything starts.
#[test]
fn an_agent_without_endpoints_is_refused() {
    let mut child = agent()
        .args(["--id", "t-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start drover-chaos agent");
    assert_eq!(exit_within(&mut child, Duration::from_secs(10)), Some(2));
}
