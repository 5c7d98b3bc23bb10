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
    let mut c = Cluster::start(3, &[]);
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
    let leader_row = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&leader.to_string()))
        .unwrap();
    assert!(leader_row.contains("leader"), "{}", out.stdout);

    // endpoint status: every endpoint asked directly, with role, term, applied index and lag;
    // one that nothing listens on is a row of its own, with the cause, and exit 5.
    let out = ctl(&eps, &["-o", "json", "endpoint", "status"]);
    let rows: Value = serde_json::from_str(ok(&out)).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{}", out.stdout);
    assert!(
        rows.iter()
            .all(|r| r["reachable"] == true && r["term"].as_u64() > Some(0) && r["lag"].is_u64()),
        "{}",
        out.stdout
    );
    assert_eq!(
        rows.iter().filter(|r| r["state"] == "leader").count(),
        1,
        "{}",
        out.stdout
    );
    let down = unused_addr();
    let out = ctl(&format!("{eps},{down}"), &["endpoint", "status"]);
    assert_eq!(out.code, 5, "{}{}", out.stdout, out.stderr);
    let row = out.stdout.lines().find(|l| l.contains(&down)).unwrap();
    assert!(
        row.contains("unreachable") && row.contains(&format!("connection refused to {down}")),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("1 of 4 endpoints unreachable"),
        "{}",
        out.stderr
    );

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
    // A key with characters a URL gives meaning to is sent as itself: refused as invalid, and
    // nothing written (unescaped, `app/q?x` wrote `app/q` and `app/h#x` wrote `app/h`).
    for odd in ["app/q?x=1", "app/h#x", "app/p%41"] {
        let out = ctl(&eps, &["kv", "put", odd, "odd"]);
        assert_ne!(out.code, 0, "{odd}: {}", out.stdout);
        assert!(out.stderr.contains("invalid"), "{odd}: {}", out.stderr);
    }
    let out = ctl(&eps, &["kv", "list", "--prefix", "app/"]);
    let listed = ok(&out);
    for cut in ["app/q", "app/h", "app/p"] {
        assert!(!listed.contains(cut), "{cut} written: {listed}");
    }

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
    let out = ctl(&eps, &["workers", "activate", "w1"]);
    assert!(
        ok(&out).starts_with("worker w1: activated; now active"),
        "{}",
        out.stdout
    );
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

    // members list with a member down: its row says so, with the cause; the others answer.
    let down = (1..=3).find(|id| *id != leader).unwrap();
    c.kill(down);
    let out = ctl(&eps, &["-o", "json", "members", "list"]);
    let rows: Value = serde_json::from_str(ok(&out)).unwrap();
    let rows = rows.as_array().unwrap();
    let row = |id: u64| rows.iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(row(down)["reachable"], false, "{}", out.stdout);
    assert!(
        row(down)["error"]
            .as_str()
            .is_some_and(|e| e.contains("connection refused")),
        "{}",
        out.stdout
    );
    assert_eq!(row(leader)["reachable"], true, "{}", out.stdout);
    let out = ctl(&eps, &["-o", "wide", "members", "list"]);
    assert!(ok(&out).contains("connection refused"), "{}", out.stdout);
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
        || async { support::at_rf(&client, 2, false).await.map(|_| ()) },
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

/// An agent in `zone` that acknowledges its tasks only while `permits` lasts (each ack takes
/// one), so a test can hold moves in flight.
async fn agent_with_permits(
    eps: &str,
    id: &str,
    zone: &str,
    permits: std::sync::Arc<std::sync::atomic::AtomicI64>,
) -> drover_agent::Agent {
    use std::sync::atomic::Ordering;
    let mut cfg = drover_agent::AgentConfig::new(eps.split(','), id, "10.0.0.1:9000");
    cfg.zone = Some(zone.into());
    let mut agent = drover_agent::Agent::start(cfg).await.unwrap();
    let mut tasks = agent.take_tasks().unwrap();
    let h = agent.handle();
    tokio::spawn(async move {
        while let Some(t) = tasks.recv().await {
            while permits.fetch_sub(1, Ordering::SeqCst) <= 0 {
                permits.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            let _ = h.ack(&t).await;
        }
    });
    agent.ready().await.unwrap();
    agent
}

/// `droverctl -o json workers show`, parsed.
fn show(eps: &str, id: &str) -> Value {
    serde_json::from_str(ok(&ctl(eps, &["-o", "json", "workers", "show", id]))).unwrap()
}

/// The regressions of issue 16's "drains a script can trust": a dry run draining all of zone b
/// said only "feasible", and `workers show` of a drain at its move limit printed one
/// `throttled: planned target a1 is suspect or busy` line per partition. Now the dry run exits
/// 0 with a WARNINGS section (every partition loses its zone spread; the leaders on b0 move),
/// also in its JSON; the throttled moves are one line naming the slot they wait for and its
/// limit; and `workers show` gives a rate and an ETA — unknown until a move completes.
// Two threads: the agents keep heartbeating while the test waits on droverctl processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_warn_aggregate_their_throttles_and_give_an_eta() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
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
    let unlimited = || Arc::new(AtomicI64::new(i64::MAX / 2));
    let a1_permits = unlimited();
    let mut agents = Vec::new();
    for (id, zone, permits) in [
        ("a0", "a", unlimited()),
        ("a1", "a", a1_permits.clone()),
        ("b0", "b", unlimited()),
        ("c0", "c", unlimited()),
    ] {
        agents.push(agent_with_permits(&eps, id, zone, permits).await);
    }
    ok(&ctl(
        &eps,
        &["partitions", "create", "--count", "8", "--rf", "3"],
    ));
    let client = drover_client::Client::new(&[eps.as_str()], None).unwrap();
    let parts = support::wait_for(
        "every partition placed in three zones, with a leader",
        std::time::Duration::from_secs(30),
        || support::at_rf(&client, 3, true),
    )
    .await;

    // Draining zone b leaves two zones for RF 3: feasible, with warnings.
    let out = ctl(&eps, &["drain", "b0", "--dry-run"]);
    let text = ok(&out);
    assert!(text.contains("dry run: feasible"), "{text}");
    assert!(text.contains("WARNINGS"), "{text}");
    assert_eq!(text.matches("lost_zone_spread").count(), 8, "{text}");
    let out = ctl(&eps, &["-o", "json", "drain", "b0", "--dry-run"]);
    let dry: Value = serde_json::from_str(ok(&out)).unwrap();
    let warnings = dry["warnings"].as_array().unwrap();
    let codes = |code: &str| -> Vec<u64> {
        warnings
            .iter()
            .filter(|w| w["code"] == code)
            .map(|w| w["partition"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        codes("lost_zone_spread"),
        (0..8).collect::<Vec<u64>>(),
        "{dry}"
    );
    let led_by_b0: Vec<u64> = parts
        .iter()
        .filter(|p| p.leader.as_ref().is_some_and(|l| l.as_str() == "b0"))
        .map(|p| u64::from(p.id))
        .collect();
    assert_eq!(codes("leader_moves"), led_by_b0, "{dry}");

    // One move at a time per worker, and a1 holding its acknowledgements: a0's replicas can
    // only go to a1 (zone a), so one joins and the rest wait for a1's slot.
    ok(&ctl(&eps, &["settings", "set", "max_moves_per_worker=1"]));
    a1_permits.store(0, Ordering::SeqCst);
    let held = show(&eps, "a0")["replicas"].as_array().unwrap().len();
    assert!(held >= 2, "a0 holds {held} replicas");
    ok(&ctl(&eps, &["workers", "drain", "a0"]));
    // The view counts the moves its own planning round would start as in flight, so the
    // slot on a1 is full (and the rest throttled) a moment before the joining replica is
    // committed: wait for both.
    let w = support::wait_for(
        "a0's moves waiting for a1's slot, one joining",
        std::time::Duration::from_secs(20),
        || async {
            let w = show(&eps, "a0");
            let waits = w["drain"]["waits"].as_array()?;
            let throttled = waits
                .iter()
                .any(|x| x["code"] == "throttled" && x["moves"].as_u64() == Some(held as u64 - 1));
            let joining = waits
                .iter()
                .any(|x| x["on"] == "join_ack" && x["worker"] == "a1" && x["moves"] == 1);
            (throttled && joining).then_some(w)
        },
    )
    .await;
    let waits = w["drain"]["waits"].as_array().unwrap();
    let throttled: Vec<&Value> = waits.iter().filter(|x| x["code"] == "throttled").collect();
    assert_eq!(throttled.len(), 1, "{w}");
    assert_eq!(
        (
            throttled[0]["on"].as_str(),
            throttled[0]["worker"].as_str(),
            throttled[0]["in_flight"].as_u64(),
            throttled[0]["limit"].as_u64()
        ),
        (Some("worker_slot"), Some("a1"), Some(1), Some(1)),
        "{w}"
    );
    assert!(
        waits
            .iter()
            .any(|x| x["on"] == "join_ack" && x["worker"] == "a1" && x["moves"] == 1),
        "{w}"
    );
    // The per-partition list stays in the JSON.
    assert!(
        w["drain"]["blocked"].as_array().unwrap().len() >= held - 1,
        "{w}"
    );
    let out = ctl(&eps, &["workers", "show", "a0"]);
    let text = ok(&out);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("throttled:")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    let moves = if held == 2 {
        "1 move waits".to_owned()
    } else {
        format!("{} moves wait", held - 1)
    };
    assert!(
        lines[0].contains(&format!(
            "{moves} for a slot on a1 (1 of max_moves_per_worker 1 in flight)"
        )),
        "{text}"
    );
    let rate = text
        .lines()
        .find(|l| l.trim_start().starts_with("rate"))
        .unwrap();
    assert!(rate.contains("ETA unknown"), "{text}");

    // One acknowledgement from a1: one move completes, the next joins and waits. Now there
    // is a rate, and an ETA for what is left.
    a1_permits.store(1, Ordering::SeqCst);
    support::wait_for(
        "a0's first move completed",
        std::time::Duration::from_secs(20),
        || async {
            let w = show(&eps, "a0");
            (w["drain"]["rate"]["moves_completed"].as_u64()? >= 1).then_some(())
        },
    )
    .await;
    let out = ctl(&eps, &["workers", "show", "a0"]);
    let text = ok(&out);
    let rate = text
        .lines()
        .find(|l| l.trim_start().starts_with("rate"))
        .unwrap();
    assert!(
        rate.contains(" moves/min, ETA ") && !rate.contains("unknown"),
        "{text}"
    );
    let w = show(&eps, "a0");
    let r = &w["drain"]["rate"];
    assert!(r["moves_per_minute"].as_f64().unwrap() > 0.0, "{w}");
    assert_eq!(r["remaining"].as_u64(), Some(held as u64 - 1), "{w}");
    assert!(r["eta_ms"].as_u64().is_some(), "{w}");

    a1_permits.store(i64::MAX / 2, Ordering::SeqCst);
    support::wait_for(
        "a0 drained and disabled",
        std::time::Duration::from_secs(30),
        || async { (show(&eps, "a0")["state"] == "disabled").then_some(()) },
    )
    .await;
    drop(agents);
}

/// Registers worker `id` in `zone` through node 1's API, as an agent would, with no agent
/// behind it (it stays Provisioning and never heartbeats).
async fn register(c: &Cluster, id: &str, zone: &str) {
    let r = c
        .http
        .put(c.url(1, &format!("/v1/workers/{id}")))
        .json(&json!({"incarnation": 1, "address": "10.0.0.1:9000", "zone": zone}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "registering {id}");
}

/// An address on loopback where nothing listens (bound, then closed).
fn unused_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}

/// The regression: with nothing listening, droverctl retried for twice its timeout (10 s by
/// default) and then said only "error sending request for url (...)". Now it gives up within
/// the connect timeout, naming the cause; and `--timeout 0`, which could never succeed, is a
/// usage error.
#[test]
fn unreachable_endpoints_fail_fast_naming_the_cause() {
    let down = unused_addr();
    let start = std::time::Instant::now();
    let out = ctl(&down, &["--timeout", "5", "status"]);
    let took = start.elapsed();
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("connection refused to {down}")),
        "{}",
        out.stderr
    );
    assert!(
        took < std::time::Duration::from_secs(4),
        "took {took:?} to give up"
    );
    let out = ctl(&down, &["--timeout", "0", "status"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

/// Runs droverctl under `script`, so its standard input is a terminal, typing `input`.
fn ctl_on_a_terminal(endpoints: &str, args: &[&str], input: &str) -> Run {
    use std::io::Write;
    let mut cmd = format!(
        "{} --endpoints {endpoints}",
        env!("CARGO_BIN_EXE_droverctl")
    );
    for a in args {
        cmd.push(' ');
        cmd.push_str(a);
    }
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("DROVER_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The regression: `disable --force` printed raw JSON that buried `"partitions_below_rf":4`,
/// and destructive commands never asked. State changes now print a sentence (JSON with
/// `-o json`); on a terminal, a forced disable and a removal ask first — declining changes
/// nothing — unless `--yes`; off a terminal (scripts) they go ahead.
#[tokio::test]
async fn state_changes_speak_and_destructive_ones_ask_on_a_terminal() {
    let c = Cluster::start(1, &["--heartbeat-interval-ms", "100"]);
    c.leader_among(&[1]).await;
    let eps = c.node(1).addr.to_string();
    let mut cfg = drover_agent::AgentConfig::new([eps.as_str()], "w1", "10.0.0.1:9000");
    cfg.zone = Some("a".into());
    let mut agent = drover_agent::Agent::start(cfg).await.unwrap();
    let mut tasks = agent.take_tasks().unwrap();
    let h = agent.handle();
    tokio::spawn(async move {
        while let Some(t) = tasks.recv().await {
            let _ = h.ack(&t).await;
        }
    });
    agent.ready().await.unwrap();
    let out = ctl(&eps, &["partitions", "create", "--count", "4", "--rf", "1"]);
    assert!(
        ok(&out).starts_with("created 4 partitions"),
        "{}",
        out.stdout
    );
    let client = drover_client::Client::new(&[eps.as_str()], None).unwrap();
    support::wait_for(
        "4 replicas on w1",
        std::time::Duration::from_secs(30),
        || async { (client.worker("w1").await.ok()?.replicas.len() == 4).then_some(()) },
    )
    .await;

    // On a terminal, declining changes nothing.
    let out = ctl_on_a_terminal(&eps, &["workers", "disable", "w1", "--force"], "n\n");
    assert!(
        out.stdout
            .contains("Force-disable worker w1, dropping its 4 replicas")
            && out.stdout.contains("aborted: nothing was changed"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(client.worker("w1").await.unwrap().replicas.len(), 4);

    // Off a terminal it goes ahead, and says what the force cost.
    let out = ctl(&eps, &["workers", "disable", "w1", "--force"]);
    assert!(
        ok(&out).contains("4 partitions fell below their replication factor")
            && !out.stdout.contains('{'),
        "{}",
        out.stdout
    );

    // Remove: asked on a terminal; --yes skips the question.
    let out = ctl_on_a_terminal(&eps, &["workers", "remove", "w1"], "\n");
    assert!(
        out.stdout.contains("Remove worker w1? [y/N]"),
        "{}",
        out.stdout
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(
        client.worker("w1").await.unwrap().record.state,
        drover_types::WorkerState::Disabled
    );
    let out = ctl_on_a_terminal(&eps, &["--yes", "workers", "remove", "w1"], "");
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        !out.stdout.contains("[y/N]") && out.stdout.contains("worker w1 removed"),
        "{}",
        out.stdout
    );
    assert_eq!(client.worker("w1").await.unwrap_err().status(), Some(404));

    // Member removal: asked on a terminal too; declining leaves the membership as it was.
    let out = ctl_on_a_terminal(&eps, &["members", "remove", "1"], "n\n");
    assert!(
        out.stdout
            .contains("Remove node 1 from the cluster's membership? [y/N]")
            && out.stdout.contains("aborted: nothing was changed"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(out.code, 1, "{}", out.stdout);
    let status = client.cluster().await.unwrap();
    assert_eq!(status.members.len(), 1, "{status:?}");
    drop(agent);
}

/// `droverctl events`: the newest events by default with a line saying more remain, `--tail`,
/// `--after`/`--limit`, `--worker`, `--kind`, `--since` (RFC 3339 or an age), RFC 3339 times,
/// `--follow` into a closed pipe; enums list their values; workers sort naturally; `-o yaml` and `-o wide`.
#[tokio::test]
async fn events_filter_tail_and_follow_and_lists_read_well() {
    let c = Cluster::start(1, &[]);
    c.leader_among(&[1]).await;
    let eps = c.node(1).addr.to_string();
    for id in ["w10", "w2"] {
        register(&c, id, "a").await;
    }
    ok(&ctl(&eps, &["workers", "activate", "w10"]));

    // Natural order, and the enum's values in the usage error.
    let out = ctl(&eps, &["workers", "list"]);
    let ids: Vec<&str> = ok(&out)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids, ["w2", "w10"], "{}", out.stdout);
    let out = ctl(&eps, &["workers", "list", "--state", "bogus"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("possible values: provisioning, active, draining, disabled"),
        "{}",
        out.stderr
    );
    let out = ctl(&eps, &["-o", "wide", "workers", "list"]);
    assert!(
        ok(&out).lines().next().unwrap().contains("CAPACITY"),
        "{}",
        out.stdout
    );
    let out = ctl(&eps, &["-o", "yaml", "workers", "list"]);
    assert!(
        ok(&out).starts_with("- ")
            && out.stdout.find("\n  id: \"w2\"") < out.stdout.find("\n  id: \"w10\"")
            && out.stdout.contains("\n  state: \"provisioning\""),
        "{}",
        out.stdout
    );

    // Three events: two registrations and w10's activation.
    let out = ctl(&eps, &["events"]);
    let rows: Vec<&str> = ok(&out).lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{}", out.stdout);
    assert!(
        rows.iter().all(|r| r.contains('T') && r.contains("Z ")),
        "times in RFC 3339: {}",
        out.stdout
    );
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let out = ctl(&eps, &["events", "--tail", "1"]);
    assert_eq!(ok(&out).lines().count(), 2, "{}", out.stdout);
    assert!(out.stdout.contains("state_changed"), "{}", out.stdout);
    assert!(
        out.stderr.contains("2 earlier matching events not shown"),
        "{}",
        out.stderr
    );
    let out = ctl(&eps, &["events", "--after", "0", "--limit", "1"]);
    assert_eq!(ok(&out).lines().count(), 2, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("more events remain: --after 1 continues"),
        "{}",
        out.stderr
    );
    let out = ctl(&eps, &["events", "--worker", "w2"]);
    assert_eq!(ok(&out).lines().count(), 2, "{}", out.stdout);
    assert!(out.stdout.contains("worker=w2"), "{}", out.stdout);
    let out = ctl(
        &eps,
        &["events", "--kind", "state_changed", "--worker", "w10"],
    );
    assert_eq!(ok(&out).lines().count(), 2, "{}", out.stdout);
    let out = ctl(&eps, &["events", "--since", "1h"]);
    assert_eq!(ok(&out).lines().count(), 4, "{}", out.stdout);
    let out = ctl(&eps, &["events", "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(ok(&out).lines().count(), 1, "{}", out.stdout);
    let out = ctl(&eps, &["events", "--kind", "bogus"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("state_changed"), "{}", out.stderr);
    let out = ctl(&eps, &["-o", "json", "events", "--tail", "2"]);
    let page: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["more"], true);

    // A reader that went away ends it quietly, following or not.
    for args in [
        &["events"][..],
        &["events", "--follow"],
        &["watch", "--after", "0"],
    ] {
        let out = ctl_into_closed_pipe(&eps, args);
        assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{args:?}");
    }
}

/// The regression: a dead worker showed "active dead" forever, and cleaning it up took a forced
/// disable and then a removal, with nothing saying so. `workers remove --dead` does both, for
/// a worker the cluster declared dead only; `recommission` says how a disabled worker comes
/// back; and every operator action is one structured audit line on the node that applied it.
// Two threads: w3's agent keeps heartbeating while the test waits on droverctl processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_workers_go_in_one_step_and_recommission_says_what_to_do() {
    let c = Cluster::start(
        1,
        &[
            "--heartbeat-interval-ms",
            "100",
            "--suspect-after-ms",
            "500",
            "--dead-after-ms",
            "1500",
        ],
    );
    c.leader_among(&[1]).await;
    let eps = c.node(1).addr.to_string();
    // Two of two dying at once would trip the mass-failure brake (SPEC §3); this test is about
    // the cleanup of workers that are gone, so it lets every death through.
    let r = c
        .http
        .put(c.url(1, "/v1/settings"))
        .json(&json!({"max_deaths_fraction": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    for (id, zone) in [("w1", "a"), ("w2", "b")] {
        register(&c, id, zone).await;
        ok(&ctl(&eps, &["workers", "activate", id]));
    }
    // Nothing heartbeats for them: both are declared dead.
    let client = drover_client::Client::new(&[eps.as_str()], None).unwrap();
    support::wait_for(
        "w1 and w2 dead",
        std::time::Duration::from_secs(30),
        || async {
            let all = client.all_workers(None).await.ok()?;
            all.iter().all(|w| w.record.dead).then_some(())
        },
    )
    .await;
    let out = ctl(&eps, &["workers", "remove", "w1"]);
    assert_eq!(
        out.code, 4,
        "a plain remove of an active worker: {}",
        out.stderr
    );
    let out = ctl(&eps, &["workers", "remove", "w1", "--dead"]);
    assert!(ok(&out).contains("worker w1 removed"), "{}", out.stdout);
    assert_eq!(client.worker("w1").await.unwrap_err().status(), Some(404));

    // Recommission: an active worker is refused; a disabled one with no agent running is told
    // what to do (exit 4, nothing changed).
    let out = ctl(&eps, &["workers", "recommission", "w2"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("only a disabled worker"),
        "{}",
        out.stderr
    );
    ok(&ctl(&eps, &["workers", "disable", "w2", "--force"]));
    let out = ctl(&eps, &["workers", "recommission", "w2"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("start its agent process") && out.stderr.contains("generation 2"),
        "{}",
        out.stderr
    );
    assert_eq!(client.worker("w2").await.unwrap().record.generation, 1);
    let out = ctl(&eps, &["workers", "recommission", "nobody"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let out = ctl(&eps, &["workers", "remove", "w2", "--dead", "--yes"]);
    assert!(ok(&out).contains("worker w2 removed"), "{}", out.stdout);
    // A live worker (its agent heartbeats) is not removed by --dead.
    let _w3 = drover_agent::Agent::start(drover_agent::AgentConfig::new(
        [eps.as_str()],
        "w3",
        "10.0.0.1:9003",
    ))
    .await
    .unwrap();
    let out = ctl(&eps, &["workers", "remove", "w3", "--dead"]);
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(out.stderr.contains("is not dead"), "{}", out.stderr);
    client.worker("w3").await.unwrap();
    // A disabled worker whose agent still runs is recommissioned through it: the agent
    // registers again — a new generation, Provisioning (it never said it was ready).
    ok(&ctl(
        &eps,
        &["workers", "disable", "w3", "--force", "--yes"],
    ));
    let out = ctl(&eps, &["workers", "recommission", "w3"]);
    assert!(
        ok(&out).contains("worker w3: its agent registered again at generation 2 (was 1)"),
        "{}",
        out.stdout
    );
    let w3 = client.worker("w3").await.unwrap().record;
    assert_eq!(
        (w3.generation, w3.state),
        (2, drover_types::WorkerState::Provisioning)
    );

    let log = c.log(1);
    for line in [
        "action=\"force_disable\"",
        "action=\"remove_worker\"",
        "action=\"set_state\"",
        "action=\"recommission\"",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("drover::audit") && l.contains(line) && l.contains("actor=")),
            "no audit line with {line}:\n{log}"
        );
    }
}

/// Cordons, the scheduler pause and reasons through the binary: two holders on one worker
/// (it stays cordoned until both are gone), `--for` expiries, the pause in `status`, a state
/// change's reason and actor in `workers show` and `events`, and bad input refused with its
/// exit code (3 unknown worker, 6 invalid, 2 a bad `--for`), changing nothing.
#[tokio::test]
async fn cordons_pause_and_reasons_through_the_cli() {
    let c = Cluster::start(1, &[]);
    c.leader_among(&[1]).await;
    let eps = c.node(1).addr.to_string();
    let client = drover_client::Client::new(&[eps.as_str()], None).unwrap();
    for id in ["w1", "w2"] {
        let reg = drover_api::RegisterRequest {
            incarnation: 1,
            address: "10.0.0.1:9000".into(),
            ..Default::default()
        };
        client.register(id, &reg).await.unwrap();
        ok(&ctl(&eps, &["workers", "activate", id]));
    }

    let out = ctl(
        &eps,
        &[
            "workers",
            "cordon",
            "w1",
            "--holder",
            "alice",
            "--reason",
            "disk alarm",
        ],
    );
    assert!(ok(&out).contains("cordoned by alice"), "{}", out.stdout);
    ok(&ctl(
        &eps,
        &[
            "workers", "cordon", "w1", "--holder", "bot", "--reason", "kernel", "--for", "2h",
        ],
    ));
    let out = ctl(&eps, &["-o", "json", "workers", "show", "w1"]);
    let w: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(w["cordons"]["alice"]["reason"], "disk alarm", "{w}");
    assert_eq!(w["cordons"]["alice"]["actor"], "admin", "{w}");
    assert!(w["cordons"]["alice"]["until"].is_null(), "{w}");
    assert!(w["cordons"]["bot"]["until"].as_u64() > Some(0), "{w}");
    let out = ctl(&eps, &["workers", "list"]);
    let row = ok(&out)
        .lines()
        .find(|l| l.trim_start().starts_with("w1 "))
        .unwrap();
    assert!(row.contains("active,cordoned"), "{}", out.stdout);
    let out = ctl(&eps, &["workers", "show", "w1"]);
    assert!(
        ok(&out).contains("cordon alice") && out.stdout.contains("disk alarm (by admin"),
        "{}",
        out.stdout
    );

    // Bad input: refused with its exit code, and the record is untouched.
    let version = w["version"].clone();
    for (args, code) in [
        (
            &[
                "workers", "cordon", "nope", "--holder", "a", "--reason", "r",
            ][..],
            3,
        ),
        (
            &["workers", "cordon", "w1", "--holder", "a", "--reason", ""],
            6,
        ),
        (
            &[
                "workers", "cordon", "w1", "--holder", "a/b", "--reason", "r",
            ],
            6,
        ),
        (
            &[
                "workers", "cordon", "w1", "--holder", "a", "--reason", "r", "--for", "soon",
            ],
            2,
        ),
        (&["workers", "cordon", "w1", "--reason", "r"], 2),
        (&["scheduler", "pause", "--reason", " "], 6),
    ] {
        let out = ctl(&eps, args);
        assert_eq!(out.code, code, "{args:?}: {}{}", out.stdout, out.stderr);
    }
    let out = ctl(&eps, &["-o", "json", "workers", "show", "w1"]);
    let after: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(
        after["version"], version,
        "a refused cordon changed the worker"
    );

    // Two holders: removing one leaves the worker cordoned; removing both lifts it.
    let out = ctl(&eps, &["workers", "uncordon", "w1", "--holder", "alice"]);
    assert!(ok(&out).contains("still cordoned by bot"), "{}", out.stdout);
    let out = ctl(&eps, &["workers", "uncordon", "w1", "--holder", "bot"]);
    assert!(ok(&out).contains("not cordoned"), "{}", out.stdout);
    let out = ctl(
        &eps,
        &["-o", "json", "events", "--kind", "cordoned,uncordoned"],
    );
    let events: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(4),
        "{events}"
    );

    // The pause: in status (table and JSON), then gone after resume.
    let out = ctl(
        &eps,
        &[
            "scheduler",
            "pause",
            "--reason",
            "incident 7",
            "--for",
            "30m",
        ],
    );
    assert!(ok(&out).contains("paused: incident 7"), "{}", out.stdout);
    let out = ctl(&eps, &["status"]);
    assert!(
        ok(&out).contains("paused: incident 7 (by admin"),
        "{}",
        out.stdout
    );
    let out = ctl(&eps, &["-o", "json", "status"]);
    let s: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(s["brakes"]["pause"]["reason"], "incident 7", "{s}");
    ok(&ctl(&eps, &["scheduler", "resume"]));
    let out = ctl(&eps, &["-o", "json", "status"]);
    let s: Value = serde_json::from_str(ok(&out)).unwrap();
    assert!(s["brakes"]["pause"].is_null(), "{s}");

    // A state change's reason and actor: on the record, in `show`, in the event.
    ok(&ctl(
        &eps,
        &[
            "workers",
            "disable",
            "w2",
            "--force",
            "--reason",
            "host retired",
        ],
    ));
    let out = ctl(&eps, &["-o", "json", "workers", "show", "w2"]);
    let w2: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(
        (&w2["state_reason"], &w2["state_actor"]),
        (&json!("host retired"), &json!("admin"))
    );
    let out = ctl(&eps, &["workers", "show", "w2"]);
    assert!(ok(&out).contains("admin: host retired"), "{}", out.stdout);
    let out = ctl(
        &eps,
        &["events", "--worker", "w2", "--kind", "state_changed"],
    );
    assert!(
        ok(&out).contains("reason=\"host retired\"") && out.stdout.contains("actor=admin"),
        "{}",
        out.stdout
    );
}

/// `events --follow --worker W` streams that worker's events as they commit and nothing of
/// any other worker's: the lines arrive in commit order, so an event of another worker
/// committed before W's would arrive before it.
#[tokio::test]
async fn events_follow_one_worker_as_they_commit() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;

    let c = Cluster::start(1, &[]);
    c.leader_among(&[1]).await;
    let eps = c.node(1).addr.to_string();
    let register = |id: &'static str| {
        let (http, url) = (c.http.clone(), c.url(1, &format!("/v1/workers/{id}")));
        async move {
            let r = http
                .put(url)
                .json(&json!({"incarnation": 1, "address": "10.0.0.1:9000", "zone": "a"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    register("w2").await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_droverctl"))
        .args(["--endpoints", &eps, "events", "--follow", "--worker", "w2"])
        .env_remove("DROVER_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| {
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
    };

    // w2's registration, from before the follow started.
    let first = next_line("w2's registration");
    assert!(
        first.contains("worker=w2") && first.contains("registered"),
        "{first}"
    );

    // Another worker's events commit first, then w2's activation: the next line is w2's.
    register("w10").await;
    ok(&ctl(&eps, &["workers", "activate", "w10"]));
    ok(&ctl(&eps, &["workers", "activate", "w2"]));
    let next = next_line("w2's activation");
    assert!(
        next.contains("worker=w2") && next.contains("state_changed"),
        "another worker's event, or none: {next}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `droverctl what-if`: a stop that takes partitions below their majority exits 6 and says
/// so; so does a drain that could not finish; `-o json` is the API's answer; naming neither
/// workers nor a zone is a usage error (2), an unknown zone a 404 (3).
#[tokio::test]
async fn what_if_exits_6_when_a_majority_would_be_lost() {
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

    // RF 2 on two workers: stopping one leaves each partition one of two, below a majority.
    let out = ctl(&eps, &["what-if", "stop", "w1"]);
    assert_eq!(out.code, 6, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("2 partitions below RF, 2 below a majority"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("2 partitions would lose their majority"),
        "{}",
        out.stderr
    );
    let out = ctl(&eps, &["-o", "json", "what-if", "stop", "--zone", "b"]);
    assert_eq!(out.code, 6, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["workers"], json!(["w2"]));
    assert_eq!(v["below_majority"].as_array().unwrap().len(), 2, "{v}");

    // A drain of w1 has nowhere to go.
    let out = ctl(&eps, &["what-if", "drain", "w1"]);
    assert_eq!(out.code, 6, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("could NOT finish"), "{}", out.stdout);

    let out = ctl(&eps, &["what-if", "stop"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = ctl(&eps, &["what-if", "stop", "--zone", "nope"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("no worker in zone nope"),
        "{}",
        out.stderr
    );
}

/// Maintenance, the brake and drain deadlines through the binary: a maintenance with its
/// reason and end in `workers show`, lifted; `status` shows the brake armed; releasing an
/// untripped brake says so; a drain with a deadline carries it; bad flags exit 2 and bad
/// values 6, changing nothing.
#[tokio::test]
async fn maintenance_brake_and_deadlines_through_the_cli() {
    let c = Cluster::start(1, &[]);
    c.leader_among(&[1]).await;
    let eps = c.node(1).addr.to_string();
    let client = drover_client::Client::new(&[eps.as_str()], None).unwrap();
    for id in ["w1", "w2"] {
        let reg = drover_api::RegisterRequest {
            incarnation: 1,
            address: "10.0.0.1:9000".into(),
            ..Default::default()
        };
        client.register(id, &reg).await.unwrap();
        ok(&ctl(&eps, &["workers", "activate", id]));
    }
    let out = ctl(
        &eps,
        &[
            "workers",
            "maintenance",
            "w1",
            "--reason",
            "kernel 6.8",
            "--for",
            "5m",
        ],
    );
    assert!(ok(&out).contains("in maintenance until"), "{}", out.stdout);
    let out = ctl(&eps, &["workers", "show", "w1"]);
    assert!(
        ok(&out).contains("maintenance") && out.stdout.contains("kernel 6.8 (by admin"),
        "{}",
        out.stdout
    );
    let out = ctl(&eps, &["-o", "json", "workers", "show", "w1"]);
    let w: Value = serde_json::from_str(ok(&out)).unwrap();
    let version = w["version"].clone();
    for (args, code) in [
        (
            &[
                "workers",
                "maintenance",
                "w1",
                "--reason",
                "r",
                "--for",
                "2d",
            ][..],
            6,
        ),
        (
            &[
                "workers",
                "maintenance",
                "w1",
                "--reason",
                "r",
                "--for",
                "soon",
            ],
            2,
        ),
        (&["workers", "maintenance", "w1"], 2),
        (&["workers", "maintenance", "nope", "--reason", "r"], 3),
        (&["workers", "drain", "w2", "--deadline", "soon"], 2),
        (&["workers", "drain", "w2", "--on-deadline", "force"], 2),
        (
            &["drain", "w2", "--deadline", "1h", "--on-deadline", "maybe"],
            2,
        ),
        (&["brake", "release", "--reason", ""], 6),
    ] {
        let out = ctl(&eps, args);
        assert_eq!(out.code, code, "{args:?}: {}{}", out.stdout, out.stderr);
    }
    let out = ctl(&eps, &["-o", "json", "workers", "show", "w1"]);
    let after: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(after["version"], version, "a refusal changed w1");
    assert_eq!(after["maintenance"]["reason"], "kernel 6.8", "{after}");
    let out = ctl(&eps, &["workers", "end-maintenance", "w1"]);
    assert!(ok(&out).contains("not in maintenance"), "{}", out.stdout);

    let out = ctl(&eps, &["status"]);
    assert!(ok(&out).contains("armed"), "{}", out.stdout);
    let out = ctl(&eps, &["brake", "release", "--reason", "drill"]);
    assert!(ok(&out).contains("brake"), "{}", out.stdout);

    // A drain with a deadline is accepted (w2 holds nothing: it finishes at once).
    ok(&ctl(
        &eps,
        &[
            "workers",
            "drain",
            "w2",
            "--deadline",
            "1h",
            "--on-deadline",
            "force",
        ],
    ));
}

/// A worker whose process "restarts" when the restart command asks: the running agent gives
/// its lease up once `<dir>/<id>.restart` appears, and a fresh agent with the same id starts
/// (a new generation, the same replicas), as `--exec` would restart a real process.
fn restartable_worker(
    eps: &str,
    id: &'static str,
    zone: &'static str,
    dir: std::path::PathBuf,
) -> tokio::task::JoinHandle<()> {
    let eps = eps.to_owned();
    tokio::spawn(async move {
        let marker = dir.join(format!("{id}.restart"));
        loop {
            let mut cfg = drover_agent::AgentConfig::new(eps.split(','), id, "10.0.0.1:9000");
            cfg.zone = Some(zone.into());
            let mut agent = match drover_agent::Agent::start(cfg).await {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("{id}: start failed, retrying: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut tasks = agent.take_tasks().unwrap();
            let h = agent.handle();
            let acks = tokio::spawn(async move {
                while let Some(t) = tasks.recv().await {
                    let _ = h.ack(&t).await;
                }
            });
            while let Err(e) = agent.ready().await {
                eprintln!("{id}: ready failed, retrying: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            while std::fs::remove_file(&marker).is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            acks.abort();
            agent.shutdown().await.unwrap();
        }
    })
}

/// `droverctl rolling-restart` itself (the demo shows it; this checks it): three workers each
/// holding every partition are restarted one at a time, every one coming back at a newer
/// generation with its maintenance ended, and not one replica moves. A restart command that
/// fails stops the run there, leaving that worker in maintenance; the next restart then would
/// break the disruption budget and is refused (exit 6) naming the partitions, changing
/// nothing; bad input exits 2 or 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_through_the_cli_moves_nothing_and_stops_at_a_failure() {
    let c = Cluster::start(
        3,
        &[
            "--heartbeat-interval-ms",
            "100",
            "--suspect-after-ms",
            "1000",
            "--dead-after-ms",
            "20000",
        ],
    );
    c.leader_among(&[1, 2, 3]).await;
    let eps: Vec<String> = (1..=3).map(|id| c.node(id).addr.to_string()).collect();
    let eps = eps.join(",");
    let dir = tempfile::tempdir().unwrap();
    let workers: Vec<_> = [("w1", "a"), ("w2", "b"), ("w3", "c")]
        .into_iter()
        .map(|(id, zone)| restartable_worker(&eps, id, zone, dir.path().to_owned()))
        .collect();
    let client = drover_client::Client::new(&eps.split(',').collect::<Vec<_>>(), None).unwrap();
    support::wait_for(
        "three active workers",
        std::time::Duration::from_secs(30),
        || async {
            let ws = client.all_workers(None).await.ok()?;
            (ws.iter()
                .filter(|w| w.record.state == drover_types::WorkerState::Active)
                .count()
                == 3)
                .then_some(())
        },
    )
    .await;
    ok(&ctl(
        &eps,
        &["partitions", "create", "--count", "3", "--rf", "3"],
    ));
    support::wait_for(
        "every partition serving on all three, with a leader",
        std::time::Duration::from_secs(30),
        || async { support::at_rf(&client, 3, true).await.map(|_| ()) },
    )
    .await;

    let touch = format!("touch '{}/{{id}}.restart'", dir.path().display());
    let (e, t) = (eps.clone(), touch.clone());
    let out = tokio::task::spawn_blocking(move || {
        ctl(
            &e,
            &[
                "-o",
                "json",
                "rolling-restart",
                "--for",
                "1m",
                "--reason",
                "upgrade to 1.2",
                "--exec",
                &t,
            ],
        )
    })
    .await
    .unwrap();
    let summary: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(summary["partitions_changed"], 0, "{}", out.stdout);
    let restarted = summary["restarted"].as_array().unwrap();
    let order: Vec<&str> = restarted
        .iter()
        .map(|r| r["worker"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["w1", "w2", "w3"], "{}", out.stdout);
    for r in restarted {
        assert!(
            r["generation_after"].as_u64() > r["generation_before"].as_u64(),
            "{}",
            out.stdout
        );
        let w = show(&eps, r["worker"].as_str().unwrap());
        assert!(w["maintenance"].is_null(), "{w}");
        assert_eq!(w["generation"], r["generation_after"], "{w}");
    }
    let out = ctl(&eps, &["events", "--kind", "maintenance_ended"]);
    assert_eq!(
        ok(&out).matches("returned").count(),
        3,
        "every maintenance ended by the worker's return: {}",
        out.stdout
    );

    // A failing restart command stops the run at its worker, which stays in maintenance.
    let e = eps.clone();
    let out = tokio::task::spawn_blocking(move || {
        ctl(&e, &["rolling-restart", "w2", "w3", "--exec", "exit 3"])
    })
    .await
    .unwrap();
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("w2: the restart command `exit 3` failed")
            && out.stderr.contains("stopped here"),
        "{}",
        out.stderr
    );
    assert!(!show(&eps, "w2")["maintenance"].is_null());
    assert!(
        show(&eps, "w3")["maintenance"].is_null(),
        "w3 was not reached"
    );

    // With w2 still in maintenance, w3's would leave every partition one serving replica of
    // three: refused, naming them, and w3 is untouched.
    let before = show(&eps, "w3");
    let out = ctl(&eps, &["rolling-restart", "w3", "--exec", &touch]);
    assert_eq!(out.code, 6, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("budget_exceeded") && out.stderr.contains("0, 1, 2"),
        "{}",
        out.stderr
    );
    assert_eq!(show(&eps, "w3"), before, "a refused restart changed w3");
    assert!(!dir.path().join("w3.restart").exists(), "w3 was restarted");

    ok(&ctl(&eps, &["workers", "end-maintenance", "w2"]));
    for (args, code) in [
        (&["rolling-restart", "nope", "--exec", "true"][..], 3),
        (&["rolling-restart", "w1"], 2),
        (&["rolling-restart", "--zone", "z", "--exec", "true"], 3),
        (
            &["rolling-restart", "w1", "--for", "soon", "--exec", "true"],
            2,
        ),
    ] {
        let out = ctl(&eps, args);
        assert_eq!(out.code, code, "{args:?}: {}{}", out.stdout, out.stderr);
    }
    for w in workers {
        w.abort();
    }
}

/// `snapshot inspect` reads a saved backup alone, with no cluster reachable: its state
/// version and counts are the cluster's at the save; a truncated copy, one with a bit
/// flipped (the file's checksum) and a file of garbage are refused (exit 6) saying so, and a
/// missing file is exit 3.
#[tokio::test]
async fn a_saved_snapshot_is_inspected_without_a_cluster() {
    let c = Cluster::start(1, &[]);
    c.leader_among(&[1]).await;
    let eps = c.node(1).addr.to_string();
    for id in ["i1", "i2"] {
        register(&c, id, "a").await;
    }
    ok(&ctl(&eps, &["kv", "put", "app/config", "1"]));
    ok(&ctl(
        &eps,
        &["partitions", "create", "--count", "4", "--rf", "1"],
    ));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.bin");
    let file_s = file.display().to_string();
    let saved: Value =
        serde_json::from_str(ok(&ctl(&eps, &["-o", "json", "snapshot", "save", &file_s]))).unwrap();

    let nowhere = unused_addr();
    let v: Value = serde_json::from_str(ok(&ctl(
        &nowhere,
        &["-o", "json", "snapshot", "inspect", &file_s],
    )))
    .unwrap();
    assert_eq!(v["state_version"], saved["state_version"], "{v}");
    assert_eq!(v["workers"]["provisioning"], 2, "{v}");
    assert_eq!(v["workers"]["active"], 0, "{v}");
    assert_eq!(
        (&v["partitions"], &v["replication_factor"], &v["kv_keys"]),
        (&json!(4), &json!(1), &json!(1)),
        "{v}"
    );
    assert_eq!(v["invariant_violations"], json!([]), "{v}");
    let text = ok(&ctl(&nowhere, &["snapshot", "inspect", &file_s])).to_owned();
    assert!(
        text.contains("4 at RF 1") && text.contains("2 provisioning") && text.contains("hold"),
        "{text}"
    );

    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let inspect =
        |f: &std::path::Path| ctl(&nowhere, &["snapshot", "inspect", &f.display().to_string()]);
    let out = inspect(&cut);
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(out.stderr.contains("damaged"), "{}", out.stderr);
    // One bit flipped in the middle: bincode might still decode it; the checksum does not.
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x04;
    let bad = dir.path().join("flipped.bin");
    std::fs::write(&bad, &flipped).unwrap();
    let out = inspect(&bad);
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(
        out.stderr.contains("damaged: its checksum"),
        "{}",
        out.stderr
    );
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"hello, world").unwrap();
    let out = inspect(&junk);
    assert_eq!(out.code, 6, "{}", out.stderr);
    assert!(out.stderr.contains("not a Drover backup"), "{}", out.stderr);
    let out = ctl(
        &nowhere,
        &["snapshot", "inspect", "/nonexistent/backup.bin"],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
}

/// droverctl over TLS: `--cacert` makes bare endpoints HTTPS, checked against the cluster's
/// CA; `status`, `endpoint status`, a write and a read work; without `--cacert` (the system's
/// roots do not know the CA) or over plain HTTP the nodes cannot be reached (exit 5); a
/// `--cert` without `--key` is a usage error.
#[tokio::test]
async fn droverctl_speaks_tls_with_cacert() {
    let mut c = Cluster::new(3, &[]);
    let ca = support::certs::Ca::new(c.root.path(), "ca");
    c.with_tls(&ca, &["--peer-client-cert-auth"]);
    for id in 1..=3 {
        c.spawn(id);
    }
    c.leader_among(&[1, 2, 3]).await;
    let eps: Vec<String> = (1..=3).map(|id| c.node(id).addr.to_string()).collect();
    let eps = eps.join(",");
    let cacert = ca.file.display().to_string();
    let tls = |args: &[&str]| {
        let mut all = vec!["--cacert", cacert.as_str()];
        all.extend_from_slice(args);
        ctl(&eps, &all)
    };
    let out = tls(&["-o", "json", "status"]);
    let status: Value = serde_json::from_str(ok(&out)).unwrap();
    assert!(status["leader"].is_u64(), "{}", out.stdout);
    let out = tls(&["-o", "json", "endpoint", "status"]);
    let rows: Value = serde_json::from_str(ok(&out)).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["reachable"] == true),
        "{}",
        out.stdout
    );
    ok(&tls(&["kv", "put", "tls/ctl", "yes"]));
    assert!(ok(&tls(&["kv", "get", "tls/ctl"])).contains("yes"));
    // With a client certificate as well.
    let dir = c.root.path().to_owned();
    let (cert, key) = ca.issue(&dir, "operator", c.ip.into());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    ok(&tls(&["--cert", &cert, "--key", &key, "status"]));

    let https: Vec<String> = (1..=3)
        .map(|id| format!("https://{}", c.node(id).addr))
        .collect();
    let out = ctl(&https.join(","), &["status"]);
    assert_eq!(out.code, 5, "{}{}", out.stdout, out.stderr);
    let out = ctl(&eps, &["status"]);
    assert_eq!(out.code, 5, "{}{}", out.stdout, out.stderr);
    let out = tls(&["--cert", &cert, "status"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
}
