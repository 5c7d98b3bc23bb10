//! `droverctl` against a real three-node cluster: output and exit codes for success, 404, 409
//! and unreachable endpoints.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::Cluster;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ctl(endpoints: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_droverctl"))
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .env_remove("DROVER_TOKEN")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[track_caller]
fn ok(r: &Run) -> &str {
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    &r.stdout
}

#[tokio::test]
async fn commands_print_and_exit_as_documented() {
    let c = Cluster::start(3, &[]);
    let leader = c.leader_among(&[1, 2, 3]).await;
    let eps: Vec<String> = (1..=3).map(|id| c.node(id).addr.to_string()).collect();
    let eps = eps.join(",");

    // status: a table, and JSON that names the leader.
    let out = ctl(&eps, &["status"]);
    assert!(ok(&out).contains("leader"), "{}", out.stdout);
    let out = ctl(&eps, &["-o", "json", "status"]);
    let status: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(status["leader"], leader);
    let out = ctl(&eps, &["members", "list"]);
    assert_eq!(ok(&out).lines().count(), 4, "{}", out.stdout);

    // KV: put, get, a create-only put on an existing key is a 409 (exit 4), delete, 404 (exit 3).
    ok(&ctl(&eps, &["kv", "put", "app/color", "blue"]));
    let out = ctl(&eps, &["-o", "json", "kv", "get", "app/color"]);
    let item: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(item["value"], "blue");
    let out = ctl(
        &eps,
        &["kv", "put", "app/color", "red", "--expected-version", "0"],
    );
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("version_conflict"), "{}", out.stderr);
    let out = ctl(&eps, &["kv", "list", "--prefix", "app/"]);
    assert!(ok(&out).contains("app/color"), "{}", out.stdout);
    ok(&ctl(&eps, &["kv", "delete", "app/color"]));
    let out = ctl(&eps, &["kv", "get", "app/color"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);

    // Workers: an unknown one is 404; a registered one activates, drains (dry run shows the
    // verdict), and an illegal transition is 409.
    let out = ctl(&eps, &["workers", "show", "nobody"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("no worker nobody"), "{}", out.stderr);
    let r = c
        .http
        .put(c.url(leader, "/v1/workers/w1"))
        .json(&json!({"incarnation": 1, "address": "10.0.0.1:9000", "zone": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    ok(&ctl(&eps, &["workers", "activate", "w1"]));
    let out = ctl(&eps, &["workers", "list"]);
    let row = ok(&out)
        .lines()
        .find(|l| l.contains("w1"))
        .unwrap()
        .to_owned();
    assert!(row.contains("active"), "{}", out.stdout);
    ok(&ctl(
        &eps,
        &["partitions", "create", "--count", "4", "--rf", "1"],
    ));
    let out = ctl(&eps, &["-o", "json", "partitions", "list"]);
    let parts: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(parts.as_array().unwrap().len(), 4);
    let out = ctl(&eps, &["partitions", "locate", "42"]);
    ok(&out);
    let out = ctl(&eps, &["drain", "w1", "--dry-run"]);
    assert!(ok(&out).contains("dry run"), "{}", out.stdout);
    let out = ctl(&eps, &["workers", "remove", "w1"]);
    assert_eq!(out.code, 4, "removing an active worker: {}", out.stderr);

    // Events, backups, completions.
    let out = ctl(&eps, &["-o", "json", "events", "--limit", "1000"]);
    let page: Value = serde_json::from_str(ok(&out)).unwrap();
    assert!(!page["events"].as_array().unwrap().is_empty());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.bin");
    ok(&ctl(&eps, &["snapshot", "save", file.to_str().unwrap()]));
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
    let out = ctl(&eps, &["completions", "bash"]);
    assert!(ok(&out).contains("droverctl"));

    // Nothing reachable: exit 5, naming what was tried and what to do.
    let dead = format!("{}:1", c.ip);
    let out = ctl(&dead, &["--timeout", "1", "status"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("no endpoint reachable: tried") && out.stderr.contains("hint:"),
        "{}",
        out.stderr
    );
    // A usage error is clap's 2.
    assert_eq!(ctl(&eps, &["workers", "frobnicate"]).code, 2);
}

/// Runs droverctl with its stdout a pipe whose reading end is already closed, as when `head`
/// has read what it wanted and exited.
fn ctl_into_closed_pipe(endpoints: &str, args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_droverctl"))
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .env_remove("DROVER_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The regression (a CI flake: the demo pipes `partitions list` into `head -9`): droverctl
/// panicked with exit 101 and a backtrace when its reader went away, which under `set -o
/// pipefail` failed the whole run. A closed stdout now ends it quietly, with status 0.
#[tokio::test]
async fn a_closed_stdout_ends_quietly() {
    let out = ctl_into_closed_pipe("127.0.0.1:1", &["completions", "bash"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "completions");
    let c = Cluster::start(1, &[]);
    c.leader_among(&[1]).await;
    let eps = c.node(1).addr.to_string();
    ok(&ctl(
        &eps,
        &["partitions", "create", "--count", "64", "--rf", "1"],
    ));
    for args in [
        &["partitions", "list"][..],
        &["-o", "json", "partitions", "list"],
        &["events", "--limit", "50"],
        &["status"],
    ] {
        let out = ctl_into_closed_pipe(&eps, args);
        assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{args:?}");
    }
}

/// `droverctl settings`: get shows every setting with durations in human form; set takes
/// `KEY=VALUE` with units, changes the cluster, and a bad key or value is a usage error (2) or
/// a refusal (6) that changes nothing.
#[tokio::test]
async fn settings_get_and_set() {
    let c = Cluster::start(1, &[]);
    c.leader_among(&[1]).await;
    let eps = c.node(1).addr.to_string();
    let out = ctl(&eps, &["settings", "get"]);
    assert!(ok(&out).contains("dead-after"), "{}", out.stdout);
    assert!(out.stdout.contains("30s"), "{}", out.stdout);
    let out = ctl(
        &eps,
        &[
            "-o",
            "json",
            "settings",
            "set",
            "dead-after=45s",
            "max_moves_per_worker=2",
        ],
    );
    let s: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(
        (
            s["dead_after_ms"].as_u64(),
            s["max_moves_per_worker"].as_u64()
        ),
        (Some(45_000), Some(2))
    );
    let version = s["version"].clone();
    for (args, code) in [
        (&["settings", "set", "nope=1"][..], 2),
        (&["settings", "set", "dead-after=soon"], 2),
        (&["settings", "set", "dead-after"], 2),
        // Below suspect-after (5 s): refused by the cluster.
        (&["settings", "set", "dead-after=1s"], 6),
    ] {
        let out = ctl(&eps, args);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
    }
    let out = ctl(&eps, &["-o", "json", "settings", "get"]);
    let after: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(
        after["version"], version,
        "a refused change changed the settings"
    );
}

/// Two agents holding every replica of an RF 2 table: draining one cannot finish.
async fn two_workers_holding_rf2(eps: &str) -> Vec<drover_agent::Agent> {
    let mut agents = Vec::new();
    for (id, zone) in [("w1", "a"), ("w2", "b")] {
        let mut cfg = drover_agent::AgentConfig::new(eps.split(','), id, "10.0.0.1:9000");
        cfg.zone = Some(zone.into());
        let mut agent = drover_agent::Agent::start(cfg).await.unwrap();
        let mut tasks = agent.take_tasks().unwrap();
        let h = agent.handle();
        tokio::spawn(async move {
            while let Some(t) = tasks.recv().await {
                let _ = h.ack(&t).await;
            }
        });
        agent.ready().await.unwrap();
        agents.push(agent);
    }
    ok(&ctl(
        eps,
        &["partitions", "create", "--count", "2", "--rf", "2"],
    ));
    let client = drover_client::Client::new(&[eps], None).unwrap();
    support::wait_for(
        "both partitions placed",
        std::time::Duration::from_secs(30),
        || async {
            let parts = client.all_partitions().await.ok()?;
            parts
                .iter()
                .all(|p| {
                    p.replicas.len() == 2
                        && p.replicas
                            .iter()
                            .all(|r| r.role == drover_types::ReplicaRole::Serving)
                })
                .then_some(())
        },
    )
    .await;
    agents
}

/// The regression: a dry run answered "NOT feasible" and exited 0, and a drain that could not
/// finish started anyway. Both now exit 6 (refused) — the real one changing nothing — unless
/// `--allow-blocked` says a blocked drain is wanted.
#[tokio::test]
async fn drains_that_cannot_finish_are_refused() {
    let c = Cluster::start(
        1,
        &[
            "--heartbeat-interval-ms",
            "100",
            "--suspect-after-ms",
            "1000",
            "--dead-after-ms",
            "20000",
        ],
    );
    c.leader_among(&[1]).await;
    let eps = c.node(1).addr.to_string();
    let _agents = two_workers_holding_rf2(&eps).await;
    let out = ctl(&eps, &["drain", "w1", "--dry-run"]);
    assert_eq!(out.code, 6, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("NOT feasible"), "{}", out.stdout);
    let out = ctl(&eps, &["workers", "drain", "w1"]);
    assert_eq!(out.code, 6, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("drain_infeasible"), "{}", out.stderr);
    let out = ctl(&eps, &["-o", "json", "workers", "show", "w1"]);
    let w: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(w["state"], "active", "a refused drain changed the worker");
    ok(&ctl(&eps, &["drain", "w1", "--dry-run", "--allow-blocked"]));
    let out = ctl(&eps, &["drain", "w1", "--allow-blocked"]);
    assert!(ok(&out).contains("cannot finish"), "{}", out.stdout);
}
