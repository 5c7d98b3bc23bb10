//! The ways back from a disaster (docs/operations.md "Disasters") with real `drover` nodes: a
//! backup restored into a new cluster with every record, the old cluster's agents fenced; a
//! damaged, foreign or misplaced restore refused; and a cluster that lost two of its three
//! nodes for good brought back to three with `--force-new-cluster`.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use drover_agent::{Agent, AgentConfig};
use drover_api::{RegisterRequest, StateRequest};
use drover_client::Client;
use drover_types::{ClusterState, WorkerState, backup, codec};
use support::{Cluster, run_drover, wait_for};

/// Liveness quick enough that the agents hold leases soon after they start (a lease waits out
/// `dead_after` from the settings' commit); `populate` slows it down before the agents stop.
const FLAGS: &[&str] = &[
    "--heartbeat-interval-ms",
    "200",
    "--suspect-after-ms",
    "2000",
    "--dead-after-ms",
    "8000",
];

fn client(c: &Cluster, ids: &[u64]) -> Client {
    let eps: Vec<String> = ids.iter().map(|id| c.node(*id).addr.to_string()).collect();
    Client::new(&eps, None).unwrap()
}

/// A worker agent that acknowledges every task at once.
async fn start_agent(endpoints: &[String], id: &str, zone: &str) -> Agent {
    let mut cfg = AgentConfig::new(
        endpoints.to_vec(),
        id,
        format!("10.9.0.1:{}", 9000 + id.len()),
    );
    cfg.zone = Some(zone.into());
    let mut agent = Agent::start(cfg).await.unwrap();
    let mut tasks = agent.take_tasks().unwrap();
    let handle = agent.handle();
    tokio::spawn(async move {
        while let Some(task) = tasks.recv().await {
            while let Err(e) = handle.ack(&task).await {
                if matches!(&e, drover_agent::Error::Client(c) if c.status().is_some()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    agent.ready().await.unwrap();
    agent
}

/// One of everything, then still: four workers with agents in three zones, 8 partitions at
/// RF 3, KV keys, w3 drained to Disabled (its drain on record), a removed worker's tombstone,
/// and the scheduler paused; then liveness is slowed down and the agents stop.
async fn populate(c: &Cluster, admin: &Client) {
    let eps: Vec<String> = c.nodes.iter().map(|n| n.addr.to_string()).collect();
    let mut agents = Vec::new();
    for (id, zone) in [("w0", "z0"), ("w1", "z1"), ("w2", "z2"), ("w3", "z0")] {
        agents.push(start_agent(&eps, id, zone).await);
    }
    let reg: RegisterRequest = serde_json::from_value(serde_json::json!({
        "incarnation": 104,
        "address": "10.9.0.4:80",
        "zone": "z1",
    }))
    .unwrap();
    admin.register("w4", &reg).await.unwrap();
    let disabled: StateRequest =
        serde_json::from_value(serde_json::json!({"state": "disabled"})).unwrap();
    admin.set_state("w4", &disabled).await.unwrap();
    admin.remove_worker("w4").await.unwrap();
    admin.create_table(8, 3).await.unwrap();
    wait_for("8 partitions at RF 3", Duration::from_secs(30), || async {
        support::at_rf(admin, 3, false).await.map(drop)
    })
    .await;
    for i in 0..20 {
        admin
            .kv_put(&format!("app/{i}"), &format!("v{i}"), None)
            .await
            .unwrap();
    }
    admin.drain("w3", false).await.unwrap();
    wait_for("w3 drained", Duration::from_secs(30), || async {
        let w3 = admin.worker("w3").await.ok()?;
        let settled = support::at_rf(admin, 3, false).await.is_some();
        (w3.record.state == WorkerState::Disabled && settled).then_some(())
    })
    .await;
    admin
        .pause_scheduler("backup test", &drover_client::Expiry::Never)
        .await
        .unwrap();
    // No worker turns suspect once its agent stops, for the rest of the test.
    let slow = drover_types::SettingsPatch {
        suspect_after_ms: Some(600_000),
        dead_after_ms: Some(1_200_000),
        ..Default::default()
    };
    admin.set_settings(&slow, None).await.unwrap();
    drop(agents);
}

/// The replicated state as node `id` serves it.
async fn state_of(c: &Cluster, id: u64) -> ClusterState {
    let snap = client(c, &[id]).snapshot().await.unwrap();
    codec::decode(&snap.bytes).unwrap()
}

/// When the test saves its backups, ms since the epoch.
const SAVED_AT_MS: u64 = 1_800_000_000_000;

async fn save(admin: &Client, file: &Path) {
    let snap = admin.snapshot().await.unwrap();
    std::fs::write(
        file,
        backup::frame(&snap.cluster_id, SAVED_AT_MS, &snap.bytes),
    )
    .unwrap();
}

/// Flags that restore node `id` of a new cluster `c` from `file` as cluster `cluster_id`.
fn restoring(c: &mut Cluster, file: &Path, cluster_id: &str) {
    for node in &mut c.nodes {
        node.args.extend([
            "--restore".into(),
            file.display().to_string(),
            "--cluster-id".into(),
            cluster_id.into(),
        ]);
    }
}

/// Save → restore into a fresh three-node cluster → every record is the backup's, as
/// `backup::restored` says (fencing tokens 2^32 on), and the same on every node; the old
/// cluster's agents are fenced — at the backup's generation, at the next one (a restart after
/// the backup), and retrying their old registration; the new cluster takes writes at versions
/// above the backup's; and a node that joins later gets the restored state (as the leader's
/// snapshot: the log before is gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_a_new_cluster_with_every_record() {
    let old = Cluster::start(3, FLAGS);
    old.leader_among(&[1, 2, 3]).await;
    let admin = client(&old, &[1, 2, 3]);
    populate(&old, &admin).await;
    let keep = tempfile::tempdir().unwrap();
    let file = keep.path().join("backup.drover");
    save(&admin, &file).await;
    let saved: ClusterState = codec::decode(
        backup::unframe(&std::fs::read(&file).unwrap())
            .unwrap()
            .snapshot,
    )
    .unwrap();
    let generations: BTreeMap<_, _> = saved
        .workers
        .iter()
        .map(|(id, w)| (id.clone(), w.generation))
        .collect();
    drop(old);

    let mut new = Cluster::new(3, FLAGS);
    restoring(&mut new, &file, "restored");
    for id in 1..=3 {
        new.spawn(id);
    }
    let leader = new.leader_among(&[1, 2, 3]).await;
    let (expected, version) = backup::restored(saved.clone(), SAVED_AT_MS);
    let got = state_of(&new, leader).await;
    assert_eq!(got.version, version, "the new cluster changed the state");
    assert_eq!(got, expected, "the restored state is not the backup's");
    for id in [1, 2, 3] {
        assert_eq!(state_of(&new, id).await, expected, "node {id} differs");
        new.log_with(id, "RESTORED a new cluster").await;
    }

    let admin = client(&new, &[1, 2, 3]);
    for (id, generation) in &generations {
        let Some(w) = got.workers.get(id) else {
            continue;
        };
        if w.dead {
            continue;
        }
        assert_eq!(w.generation, generation + backup::RESTORE_GAP, "{id}");
        for old in [*generation, generation + 1] {
            let e = admin.heartbeat(id.as_str(), old).await.unwrap_err();
            assert!(
                e.is_superseded(),
                "{id}'s agent at {old} was not fenced: {e}"
            );
        }
        // The old agent retries the registration it made before: a new generation, not the
        // restored record's (which the old process would otherwise take for its own).
        let old = &saved.workers[id];
        let retry = RegisterRequest {
            incarnation: old.incarnation,
            address: old.address.clone(),
            zone: old.zone.clone(),
            capacity: Some(old.capacity),
            labels: old.labels.clone(),
        };
        let again = admin.register(id.as_str(), &retry).await.unwrap();
        assert_eq!(again.generation, w.generation + 1, "{id}");
    }
    let put = admin.kv_put("after/restore", "yes", None).await.unwrap();
    assert!(put.version > version, "{} <= {version}", put.version);

    new.add_joining_with(4, leader, &["--cluster-id", "restored"]);
    wait_for(
        "node 4 to hold the restored keys",
        Duration::from_secs(30),
        || async { (new.get(4, "app/19", true).await.as_deref() == Some("v19")).then_some(()) },
    )
    .await;
    let s = new.status(4).await.unwrap();
    assert!(s["snapshots_installed"].as_u64().unwrap() >= 1, "{s}");
    wait_for(
        "node 4 to apply the write after the restore",
        Duration::from_secs(30),
        || async {
            (new.get(4, "after/restore", true).await.as_deref() == Some("yes")).then_some(())
        },
    )
    .await;
}

/// A restore is refused, with a one-line reason, on a truncated or damaged copy, a file that
/// is no backup, a backup of another format version, the backup's own cluster id, `--join`,
/// or a data dir already in use; a refused restore leaves an empty dir empty.
#[tokio::test]
async fn a_bad_restore_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let state = codec::encode(&ClusterState::default()).unwrap();
    let good = backup::frame("old", SAVED_AT_MS, &state);
    // A frame of before the format byte (cluster id length, id, snapshot), checksum and all.
    let mut older_rest = vec![3u8];
    older_rest.extend_from_slice(b"old");
    older_rest.extend_from_slice(&state);
    let mut older = backup::MAGIC.to_vec();
    older.extend_from_slice(&crc32fast::hash(&older_rest).to_le_bytes());
    older.extend_from_slice(&older_rest);
    let mut damaged = good.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let mut other_format = codec::encode(&ClusterState::default()).unwrap();
    other_format[0] = codec::FORMAT_VERSION + 1;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..10].to_vec(), "truncated"),
        ("cut", good[..good.len() - 1].to_vec(), "damaged"),
        ("damaged", damaged, "damaged"),
        (
            "text",
            b"not a backup at all".to_vec(),
            "not a Drover backup",
        ),
        (
            "format",
            backup::frame("old", SAVED_AT_MS, &other_format),
            "unknown format version",
        ),
        ("older-frame", older, "frame format 0x03"),
        ("same-id", good.clone(), "another --cluster-id"),
    ];
    let addr = "127.0.0.1:7999";
    let run = |file: &Path, data: &Path, cluster_id: &str, membership: &[&str]| {
        let mut args = vec![
            "--id",
            "1",
            "--listen",
            addr,
            "--data-dir",
            data.to_str().unwrap(),
            "--cluster-id",
            cluster_id,
            "--restore",
            file.to_str().unwrap(),
        ];
        args.extend_from_slice(membership);
        run_drover(&args, root)
    };
    let one = ["--initial-cluster", "1=127.0.0.1:7999"];
    for (name, bytes, why) in cases {
        let file = root.join(name);
        std::fs::write(&file, bytes).unwrap();
        let data = root.join(format!("data-{name}"));
        let id = if name == "same-id" { "old" } else { "new" };
        let (code, err) = run(&file, &data, id, &one);
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
        assert_eq!(
            err.trim().lines().last().map(|l| l.starts_with("drover: ")),
            Some(true)
        );
        let store = drover_store::open(data.join("store")).unwrap();
        assert!(
            store.is_empty().unwrap(),
            "{name}: the refused restore wrote"
        );
    }
    let file = root.join("good");
    std::fs::write(&file, &good).unwrap();
    let (code, err) = run(&file, &root.join("data-join"), "new", &["--join", addr]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not --join"), "{err}");

    // A data dir in use: a restored node's, stopped and restored into again.
    let mut c = Cluster::new(1, FLAGS);
    restoring(&mut c, &file, "new");
    c.spawn(1);
    c.leader_among(&[1]).await;
    c.kill(1);
    let data = c.node(1).dir.clone();
    let before = drover_store::open(data.join("store"))
        .unwrap()
        .state_machine
        .handle()
        .read()
        .clone();
    let listen = c.node(1).addr.to_string();
    let initial = format!("1={listen}");
    let args = [
        "--id",
        "1",
        "--listen",
        &listen,
        "--data-dir",
        data.to_str().unwrap(),
        "--initial-cluster",
        &initial,
        "--cluster-id",
        "new",
        "--restore",
        file.to_str().unwrap(),
    ];
    let (code, err) = run_drover(&args, root);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("needs an empty data dir"), "{err}");
    let after = drover_store::open(data.join("store"))
        .unwrap()
        .state_machine
        .handle()
        .read()
        .clone();
    assert_eq!(after, before);
}

/// A three-node cluster loses nodes 2 and 3 for good (their data dirs deleted): node 1 alone
/// cannot commit. `--force-new-cluster` with the cluster's own id is refused; with a new one,
/// node 1 is a one-voter cluster with every key and worker from before, and the flag left in
/// place is refused at the next start, as is the old id. Nodes 2 and 3 join back with empty
/// dirs, all three are voters, and the replayed events log, the final state's invariants and
/// every node's copy agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_new_cluster_brings_back_a_cluster_that_lost_two_nodes() {
    let mut c = Cluster::start(3, FLAGS);
    c.leader_among(&[1, 2, 3]).await;
    let admin = client(&c, &[1, 2, 3]);
    populate(&c, &admin).await;
    // Node 1 has every write before the loss.
    let before = wait_for(
        "node 1 to apply every write",
        Duration::from_secs(10),
        || async {
            let leader = c.leader_among(&[1, 2, 3]).await;
            let want = state_of(&c, leader).await;
            let mine =
                codec::decode::<ClusterState>(&client(&c, &[1]).snapshot().await.ok()?.bytes)
                    .ok()?;
            // A follower serves the snapshot at a linearizable point too; compare the stale read.
            let local = c.get(1, "app/19", true).await;
            (mine == want && local.as_deref() == Some("v19")).then_some(want)
        },
    )
    .await;

    for id in [2, 3] {
        c.kill(id);
        std::fs::remove_dir_all(&c.node(id).dir).unwrap();
    }
    c.kill(1);
    let root = c.root.path().to_owned();
    let refused = |args: &[String], why: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, err) = run_drover(&args, &root);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(why), "{err}");
    };
    let mut args = c.nodes[0].args.clone();
    args.push("--force-new-cluster".into());
    refused(&args, "another --cluster-id");
    c.nodes[0]
        .args
        .extend(["--cluster-id", "forced", "--force-new-cluster"].map(String::from));
    c.spawn(1);
    c.leader_among(&[1]).await;
    c.log_with(1, "FORCED A NEW CLUSTER").await;
    let forced = state_of(&c, 1).await;
    assert_eq!(forced.kv, before.kv);
    assert_eq!(forced.workers, before.workers);
    assert_eq!(forced.partitions, before.partitions);
    let put = client(&c, &[1])
        .kv_put("after/force", "yes", None)
        .await
        .unwrap();
    assert!(put.version > before.version);

    // The flag left in place is refused: the data dir is of the new cluster already. So is
    // the old cluster's id.
    c.kill(1);
    refused(&c.nodes[0].args, "remove it");
    let mut old_id = c.nodes[0].args.clone();
    old_id.truncate(old_id.len() - 3);
    refused(&old_id, "holds a node of cluster \"forced\"");
    // Back to three: nodes 2 and 3 join with empty data dirs; the flag is dropped from node 1.
    c.nodes[0].args.pop();
    c.spawn(1);
    c.leader_among(&[1]).await;
    let first = c.nodes[0].addr.to_string();
    for id in [2, 3] {
        let n = &mut c.nodes[(id - 1) as usize];
        let join = n
            .args
            .iter()
            .position(|a| a == "--initial-cluster")
            .unwrap();
        n.args[join] = "--join".into();
        n.args[join + 1] = first.clone();
        n.args.extend(["--cluster-id", "forced"].map(String::from));
        c.spawn(id);
    }
    let admin = client(&c, &[1, 2, 3]);
    wait_for("three voters", Duration::from_secs(60), || async {
        let s = admin.cluster().await.ok()?;
        let voters = s
            .members
            .iter()
            .filter(|m| m.role == drover_api::MemberRole::Voter)
            .count();
        (voters == 3).then_some(())
    })
    .await;
    for id in [2, 3] {
        wait_for(
            "the joined node to hold the keys",
            Duration::from_secs(30),
            || async {
                (c.get(id, "after/force", true).await.as_deref() == Some("yes")).then_some(())
            },
        )
        .await;
    }
    let leader = c.leader_among(&[1, 2, 3]).await;
    let last = state_of(&c, leader).await;
    assert_eq!(
        last.kv.get("app/7").map(|e| e.value.clone()),
        before.kv.get("app/7").map(|e| e.value.clone())
    );
    assert_eq!(last.workers, before.workers);
    assert!(
        last.check_invariants().is_empty(),
        "{:?}",
        last.check_invariants()
    );
    let mut shadow = drover_chaos::invariants::Shadow::default();
    shadow.feed(&last.events.events.iter().cloned().collect::<Vec<_>>());
    shadow.finish();
    shadow.compare(&last);
    assert!(shadow.violations.is_empty(), "{:?}", shadow.violations);
    assert!(drover_chaos::invariants::check_state(&last).is_empty());
}
