//! The leader-only scheduler end to end: real `drover` nodes, and test workers that heartbeat,
//! long-poll their assignments and acknowledge over HTTP as the agent will.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Cluster, all_events, check_serving_floor, wait_for};

/// A test worker: registers, activates, heartbeats, and acknowledges every joining and leaving
/// replica it is assigned, until `stop` is set.
fn spawn_worker(
    base: Vec<String>,
    id: String,
    zone: String,
    incarnation: u64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    spawn_worker_beating(base, id, zone, incarnation, stop, Duration::ZERO)
}

/// [`spawn_worker`] heartbeating once per `every` (zero: on every turn of its loop, about ten
/// times a second), as an agent does at its `heartbeat_interval`: a round that fails on every
/// node it tries waits for the next period.
fn spawn_worker_beating(
    base: Vec<String>,
    id: String,
    zone: String,
    incarnation: u64,
    stop: Arc<AtomicBool>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = drover_tls::http_client(None)
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .unwrap();
        let mut n = 0usize;
        let mut url = |path: &str| {
            n += 1;
            format!("{}{path}", base[n % base.len()])
        };
        let reg = json!({"incarnation": incarnation, "address": format!("10.9.0.1:{}", 9000 + id.len()), "zone": zone});
        let generation = loop {
            if let Ok(r) = http
                .put(url(&format!("/v1/workers/{id}")))
                .json(&reg)
                .send()
                .await
                && r.status() == 200
            {
                break r.json::<Value>().await.unwrap()["generation"]
                    .as_u64()
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let _ = http
            .post(url(&format!("/v1/workers/{id}/state")))
            .json(&json!({"state": "active", "generation": generation}))
            .send()
            .await;
        let mut after = 0;
        // When the last heartbeat round began: one a period, each trying up to three nodes.
        let mut beat: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            let due = beat.is_none_or(|at| at.elapsed() >= every);
            if due {
                beat = Some(Instant::now());
            }
            let tries = if due { 3 } else { 0 };
            for _ in 0..tries {
                let sent = http
                    .post(url(&format!("/v1/workers/{id}/heartbeat")))
                    .json(&json!({"generation": generation}))
                    .send()
                    .await;
                if sent.is_ok_and(|r| !r.status().is_server_error()) {
                    break;
                }
            }
            let poll = http
                .get(url(&format!(
                    "/v1/workers/{id}/assignments?after={after}&wait=100ms"
                )))
                .send()
                .await;
            let Ok(poll) = poll else { continue };
            let Ok(a) = poll.json::<Value>().await else {
                continue;
            };
            after = a["version"].as_u64().unwrap_or(after);
            for r in a["replicas"].as_array().cloned().unwrap_or_default() {
                if r["role"] != "serving" {
                    let p = r["partition"].as_u64().unwrap();
                    let body = json!({"generation": generation, "epoch": r["since"]});
                    // Fail over across nodes, as the agent will: a node may be down.
                    for _ in 0..3 {
                        let sent = http
                            .post(url(&format!("/v1/partitions/{p}/replicas/{id}/ack")))
                            .json(&body)
                            .send()
                            .await;
                        if sent.is_ok_and(|r| !r.status().is_server_error()) {
                            break;
                        }
                    }
                    after = 0; // look again at once
                }
            }
        }
    })
}

async fn partitions(c: &Cluster, node: u64) -> Option<Vec<Value>> {
    let r = c
        .http
        .get(c.url(node, "/v1/partitions?limit=1000"))
        .send()
        .await
        .ok()?;
    Some(r.json::<Value>().await.ok()?["items"].as_array()?.clone())
}

async fn worker(c: &Cluster, node: u64, id: &str) -> Option<Value> {
    c.http
        .get(c.url(node, &format!("/v1/workers/{id}")))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Every partition has `rf` serving replicas in distinct zones, none on `excluded`.
fn healthy(
    parts: &[Value],
    zones: &BTreeMap<String, String>,
    rf: usize,
    excluded: &BTreeSet<String>,
) -> bool {
    parts.iter().all(|p| {
        let reps = p["replicas"].as_array().unwrap();
        let serving: Vec<&str> = reps
            .iter()
            .filter(|r| r["role"] == "serving")
            .map(|r| r["worker"].as_str().unwrap())
            .collect();
        let zs: BTreeSet<&String> = serving.iter().filter_map(|w| zones.get(*w)).collect();
        reps.len() == rf
            && serving.len() == rf
            && zs.len() == rf
            && serving.iter().all(|w| !excluded.contains(*w))
    })
}

/// Test workers w0.. in zones z0..z2 (round robin), each with its stop flag.
struct Fleet {
    base: Vec<String>,
    zones: BTreeMap<String, String>,
    stops: BTreeMap<String, Arc<AtomicBool>>,
}

/// Starts `n` test workers on a fresh cluster and waits until all are Active.
async fn start_workers(c: &Cluster, leader: u64, n: usize) -> Fleet {
    let workers: Vec<(String, String)> = (0..n)
        .map(|i| (format!("w{i}"), format!("z{}", i % 3)))
        .collect();
    start_fleet(c, leader, &workers, Duration::ZERO).await
}

/// Starts test workers `(id, zone)` heartbeating once per `every` (see
/// [`spawn_worker_beating`]) and waits until all are Active.
async fn start_fleet(
    c: &Cluster,
    leader: u64,
    workers: &[(String, String)],
    every: Duration,
) -> Fleet {
    let mut fleet = Fleet {
        base: (1..=3).map(|id| c.url(id, "")).collect(),
        zones: BTreeMap::new(),
        stops: BTreeMap::new(),
    };
    for (id, zone) in workers {
        fleet.join(id, zone, every);
    }
    wait_for("every worker active", Duration::from_secs(30), || async {
        let r = c
            .http
            .get(c.url(leader, "/v1/workers?state=active"))
            .send()
            .await
            .ok()?;
        (r.json::<Value>().await.ok()?["items"].as_array()?.len() == workers.len()).then_some(())
    })
    .await;
    fleet
}

impl Fleet {
    /// Starts one more test worker (it registers and activates itself).
    fn join(&mut self, id: &str, zone: &str, every: Duration) {
        let stop = Arc::new(AtomicBool::new(false));
        spawn_worker_beating(
            self.base.clone(),
            id.to_owned(),
            zone.to_owned(),
            1,
            stop.clone(),
            every,
        );
        self.zones.insert(id.to_owned(), zone.to_owned());
        self.stops.insert(id.to_owned(), stop);
    }

    fn stop(&self) {
        for s in self.stops.values() {
            s.store(true, Ordering::Relaxed);
        }
    }
}

/// Creates a table of `count` partitions at RF 3 and waits until every partition has 3
/// serving replicas in 3 zones.
async fn place(c: &Cluster, leader: u64, fleet: &Fleet, count: u32) {
    let table = json!({"count": count, "replication_factor": 3});
    let r = c
        .http
        .post(c.url(leader, "/v1/partitions"))
        .json(&table)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    wait_for(
        "every partition placed in three zones",
        Duration::from_secs(60),
        || async {
            let parts = partitions(c, leader).await?;
            healthy(&parts, &fleet.zones, 3, &BTreeSet::new()).then_some(())
        },
    )
    .await;
}

/// Six workers in three zones, all Active, holding a placed table of `count` partitions.
async fn fleet(c: &Cluster, leader: u64, count: u32) -> Fleet {
    let fleet = start_workers(c, leader, 6).await;
    place(c, leader, &fleet, count).await;
    fleet
}

/// Six workers in three zones and 64 partitions at RF 3: placement fills every partition in
/// three zones with balanced counts; draining a worker moves its replicas away make-before-break
/// and disables it; a worker that stops heartbeating is declared dead and its replicas are
/// re-created elsewhere.
#[tokio::test]
async fn place_drain_and_recover() {
    let c = Cluster::start(
        3,
        &[
            "--heartbeat-interval-ms",
            "100",
            "--suspect-after-ms",
            "1000",
            "--dead-after-ms",
            "3000",
        ],
    );
    let leader = c.leader_among(&[1, 2, 3]).await;
    let Fleet { base, zones, stops } = fleet(&c, leader, 64).await;
    let parts = partitions(&c, leader).await.unwrap();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &parts {
        for r in p["replicas"].as_array().unwrap() {
            *counts.entry(r["worker"].as_str().unwrap()).or_insert(0) += 1;
        }
    }
    let (lo, hi) = (
        counts.values().min().unwrap(),
        counts.values().max().unwrap(),
    );
    assert!(hi - lo <= 1, "replica counts {counts:?}");

    // Dry runs commit nothing: w0 alone can go; four of six cannot (two left, RF 3).
    let held = counts["w0"];
    let before = c.status(leader).await.unwrap()["state_version"].clone();
    let r = c
        .http
        .post(c.url(leader, "/v1/workers/w0/drain"))
        .json(&json!({"dry_run": true}))
        .send()
        .await
        .unwrap();
    let dry: Value = r.json().await.unwrap();
    assert_eq!(
        (
            dry["feasible"].as_bool(),
            dry["moves"].as_array().map(Vec::len)
        ),
        (Some(true), Some(held)),
        "{dry}"
    );
    let previewed: BTreeSet<(u64, String)> = dry["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["partition"].as_u64().unwrap(),
                m["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let dry_moves = dry["moves"].clone();
    let set = json!({"workers": ["w0", "w1", "w2", "w3"], "dry_run": true});
    let r = c
        .http
        .post(c.url(leader, "/v1/drain"))
        .json(&set)
        .send()
        .await
        .unwrap();
    let dry: Value = r.json().await.unwrap();
    assert_eq!(dry["feasible"], false, "{dry}");
    assert!(
        dry["blocked"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["code"] == "no_candidate"),
        "{dry}"
    );
    // Acknowledgements of the placement may still land meanwhile; what a dry run would have
    // committed — a drain, a state change, a move — must not be there.
    let before = before.as_u64().unwrap();
    let committed: Vec<Value> = all_events(&c, leader)
        .await
        .into_iter()
        .filter(|e| e["version"].as_u64().unwrap() > before)
        .filter(|e| {
            // Events are tagged by their kind's name: `{"drain_started": {...}}`.
            e["kind"].as_object().is_some_and(|kind| {
                kind.keys().any(|k| {
                    [
                        "drain_started",
                        "drain_planned",
                        "state_changed",
                        "replica_added",
                        "replica_removed",
                    ]
                    .contains(&k.as_str())
                })
            })
        })
        .collect();
    assert!(committed.is_empty(), "a dry run committed {committed:?}");

    // Drain w0 (through a follower): the committed plan moves exactly its replicas; it ends
    // Disabled, holding nothing; every partition stays at RF in three zones.
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let r = c
        .http
        .post(c.url(follower, "/v1/drain"))
        .json(&json!({"workers": ["w0"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started: Value = r.json().await.unwrap();
    assert_eq!(
        started["drain"]["moves"], dry_moves,
        "the committed plan is not the dry run's"
    );
    let drain_version = started["drain"]["id"].as_u64().unwrap();
    let drained = BTreeSet::from(["w0".to_owned()]);
    wait_for(
        "w0 drained and disabled",
        Duration::from_secs(60),
        || async {
            let w = worker(&c, leader, "w0").await?;
            let parts = partitions(&c, leader).await?;
            (w["state"] == "disabled" && healthy(&parts, &zones, 3, &drained)).then_some(())
        },
    )
    .await;

    // The dry run was the drain: exactly its moves completed, each once.
    let events = all_events(&c, leader).await;
    let completed: Vec<(u64, String)> = events
        .iter()
        .filter(|e| e["version"].as_u64() > Some(drain_version))
        .filter_map(|e| {
            let added = e["kind"].get("replica_added")?;
            (added["replaces"] == "w0").then(|| {
                let p = added["partition"].as_u64().unwrap();
                (p, added["worker"].as_str().unwrap().to_owned())
            })
        })
        .collect();
    assert_eq!(
        completed.len(),
        held,
        "a move was made twice: {completed:?}"
    );
    assert_eq!(
        completed.into_iter().collect::<BTreeSet<_>>(),
        previewed,
        "the drain completed other moves than its dry run showed"
    );

    // The leader counted the drain's moves and its duration.
    let text = c.metrics(leader).await;
    for series in [
        "drover_moves_started_total{reason=\"drain\"}",
        "drover_moves_completed_total{reason=\"drain\"}",
        "drover_drain_to_disabled_seconds_count 1",
        "drover_moves_in_flight ",
    ] {
        assert!(text.contains(series), "no {series:?} in\n{text}");
    }

    // w2 stops heartbeating: suspect, then declared dead; its replicas are re-created.
    let silent_from = c.status(leader).await.unwrap()["state_version"]
        .as_u64()
        .unwrap();
    stops["w2"].store(true, Ordering::Relaxed);
    let gone = BTreeSet::from(["w0".to_owned(), "w2".to_owned()]);
    wait_for(
        "w2 declared dead and its replicas re-created",
        Duration::from_secs(60),
        || async {
            let leader = c.leader_among(&[1, 2, 3]).await;
            let w = worker(&c, leader, "w2").await?;
            let parts = partitions(&c, leader).await?;
            (w["dead"] == true && w["liveness"] == "dead" && healthy(&parts, &zones, 3, &gone))
                .then_some(())
        },
    )
    .await;

    // A drain that cannot finish (one worker would be left for RF 3) starts when asked to
    // (`allow_blocked`), and the drained workers stay Draining, their records saying what
    // holds them up.
    let leader = c.leader_among(&[1, 2, 3]).await;
    let set = json!({"workers": ["w1", "w3", "w4"], "allow_blocked": true});
    let r = c
        .http
        .post(c.url(leader, "/v1/drain"))
        .json(&set)
        .send()
        .await
        .unwrap();
    let started: Value = r.json().await.unwrap();
    assert_eq!(started["feasible"], false, "{started}");
    let w1 = wait_for(
        "w1's record to show a blocked drain",
        Duration::from_secs(30),
        || async {
            let leader = c.leader_among(&[1, 2, 3]).await;
            let w = worker(&c, leader, "w1").await?;
            let blocked = w["drain"]["blocked"].as_array()?;
            (w["state"] == "draining" && blocked.iter().any(|b| b["code"] == "no_candidate"))
                .then_some(w)
        },
    )
    .await;
    assert!(
        w1["drain"]["replicas_remaining"].as_u64().unwrap() > 0,
        "{w1}"
    );
    assert!(w1["drain"]["replicas_total"].as_u64().is_some(), "{w1}");

    // Cancelling returns them to Active with their replicas intact.
    for w in ["w1", "w3", "w4"] {
        let r = c
            .http
            .post(c.url(leader, &format!("/v1/workers/{w}/state")))
            .json(&json!({"state": "active"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{w}");
    }
    wait_for(
        "the cancelled workers to keep serving",
        Duration::from_secs(30),
        || async {
            let leader = c.leader_among(&[1, 2, 3]).await;
            let mut all = true;
            for w in ["w1", "w3", "w4"] {
                let rec = worker(&c, leader, w).await?;
                all &= rec["state"] == "active" && !rec["replicas"].as_array()?.is_empty();
            }
            all.then_some(())
        },
    )
    .await;

    // The dead worker's old process is fenced; restarted (new incarnation), it serves again.
    let r = c
        .http
        .post(c.url(leader, "/v1/workers/w2/heartbeat"))
        .json(&json!({"generation": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "fenced");
    let stop = Arc::new(AtomicBool::new(false));
    spawn_worker(base.clone(), "w2".into(), "z2".into(), 2, stop.clone());
    wait_for("w2 back with replicas", Duration::from_secs(60), || async {
        let leader = c.leader_among(&[1, 2, 3]).await;
        let w = worker(&c, leader, "w2").await?;
        (w["generation"] == 2 && w["dead"] == false && !w["replicas"].as_array()?.is_empty())
            .then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for s in stops.values() {
        s.store(true, Ordering::Relaxed);
    }

    // From the moment w2 went silent until it registered again, it got no new replica: not
    // while suspect, not once dead.
    let leader = c.leader_among(&[1, 2, 3]).await;
    let events = all_events(&c, leader).await;
    let back = events
        .iter()
        .find(|e| {
            e["version"].as_u64() > Some(silent_from)
                && e["kind"]
                    .get("registered")
                    .is_some_and(|r| r["worker"] == "w2")
        })
        .and_then(|e| e["version"].as_u64())
        .expect("w2's re-registration in the events log");
    let given: Vec<&Value> = events
        .iter()
        .filter(|e| (silent_from + 1..back).contains(&e["version"].as_u64().unwrap()))
        .filter(|e| {
            e["kind"]
                .get("replica_added")
                .is_some_and(|a| a["worker"] == "w2")
        })
        .collect();
    assert!(given.is_empty(), "silent w2 was given replicas: {given:?}");
}

/// Killing the leader right after a drain starts: the new leader finishes the committed drain;
/// replayed version by version from the events log, no partition ever had fewer than 3 serving
/// replicas during the drain, and no move was made twice (exactly one new replica per replica
/// the drained worker held).
#[tokio::test]
async fn drain_finishes_under_a_new_leader() {
    let mut c = Cluster::start(
        3,
        &[
            "--heartbeat-interval-ms",
            "100",
            "--suspect-after-ms",
            "2000",
            "--dead-after-ms",
            "20000",
        ],
    );
    let leader = c.leader_among(&[1, 2, 3]).await;
    let Fleet { zones, stops, .. } = fleet(&c, leader, 16).await;

    let r = c
        .http
        .post(c.url(leader, "/v1/drain"))
        .json(&json!({"workers": ["w0"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started: Value = r.json().await.unwrap();
    let drain_version = started["drain"]["id"].as_u64().unwrap();
    let held = started["drain"]["moves"].as_array().unwrap().len();
    c.kill(leader);

    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let drained = BTreeSet::from(["w0".to_owned()]);
    let new_leader = wait_for(
        "the drain to finish under a new leader",
        Duration::from_secs(60),
        || async {
            let l = c.leader_among(&others).await;
            let w = worker(&c, l, "w0").await?;
            let parts = partitions(&c, l).await?;
            (w["state"] == "disabled" && healthy(&parts, &zones, 3, &drained)).then_some(l)
        },
    )
    .await;
    assert_ne!(new_leader, leader);

    // Replay the replica events version by version.
    let events = all_events(&c, new_leader).await;
    let added_during_drain = check_serving_floor(&events, drain_version, 3);
    assert_eq!(
        added_during_drain, held,
        "a move was made twice, or one was missed"
    );

    c.spawn(leader);
    for s in stops.values() {
        s.store(true, Ordering::Relaxed);
    }
}

/// Exactly three workers and RF 3: a long poll on w0's assignments is woken by the commit that
/// gives it its first replicas; draining w0 is infeasible in the dry run, refused without
/// `allow_blocked`, started with it stays Draining blocked on `no_candidate`, and cancelling
/// returns it to Active holding the same replicas.
#[tokio::test]
async fn three_workers_cannot_drain_one() {
    let c = Cluster::start(
        3,
        &[
            "--heartbeat-interval-ms",
            "100",
            "--suspect-after-ms",
            "2000",
            "--dead-after-ms",
            "20000",
        ],
    );
    let leader = c.leader_among(&[1, 2, 3]).await;
    let fleet = start_workers(&c, leader, 3).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    // Park a long poll (through a follower) at w0's current assignments version.
    let now: Value = c
        .http
        .get(c.url(follower, "/v1/workers/w0/assignments"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(now["replicas"], json!([]), "{now}");
    let version = now["version"].as_u64().unwrap();
    let poll = c
        .http
        .get(c.url(
            follower,
            &format!("/v1/workers/w0/assignments?after={version}&wait=30s"),
        ))
        .timeout(Duration::from_secs(40))
        .send();
    let poll = tokio::spawn(async move { poll.await.unwrap().json::<Value>().await.unwrap() });
    place(&c, leader, &fleet, 8).await;
    let woke = poll.await.unwrap();
    // A timeout answers the same version with no replicas; the commit answers with them.
    assert!(woke["version"].as_u64().unwrap() > version, "{woke}");
    assert!(!woke["replicas"].as_array().unwrap().is_empty(), "{woke}");

    let held = |parts: &[Value]| -> BTreeSet<u64> {
        parts
            .iter()
            .filter(|p| {
                p["replicas"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["worker"] == "w0" && r["role"] == "serving")
            })
            .map(|p| p["id"].as_u64().unwrap())
            .collect()
    };
    let before = held(&partitions(&c, leader).await.unwrap());
    assert_eq!(before.len(), 8);

    let dry: Value = c
        .http
        .post(c.url(leader, "/v1/workers/w0/drain"))
        .json(&json!({"dry_run": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dry["feasible"], false, "{dry}");
    let blocked = dry["blocked"].as_array().unwrap();
    assert_eq!(blocked.len(), 8, "{dry}");
    assert!(blocked.iter().all(|b| b["code"] == "no_candidate"), "{dry}");

    // Refused up front, changing nothing (SPEC §3) ...
    let r = c
        .http
        .post(c.url(follower, "/v1/workers/w0/drain"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let refusal: Value = r.json().await.unwrap();
    assert_eq!(refusal["error"]["code"], "drain_infeasible", "{refusal}");
    assert_eq!(worker(&c, leader, "w0").await.unwrap()["state"], "active");
    // ... unless asked to start anyway.
    let r = c
        .http
        .post(c.url(follower, "/v1/workers/w0/drain"))
        .json(&json!({"allow_blocked": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["feasible"], false);
    wait_for(
        "w0 draining and blocked on no_candidate",
        Duration::from_secs(30),
        || async {
            let w = worker(&c, leader, "w0").await?;
            let blocked = w["drain"]["blocked"].as_array()?;
            (w["state"] == "draining"
                && !blocked.is_empty()
                && blocked.iter().all(|b| b["code"] == "no_candidate"))
            .then_some(())
        },
    )
    .await;
    // Blocked, it keeps everything: no partition lost a replica.
    let parts = partitions(&c, leader).await.unwrap();
    assert_eq!(held(&parts), before);
    assert!(healthy(&parts, &fleet.zones, 3, &BTreeSet::new()));

    let r = c
        .http
        .post(c.url(follower, "/v1/workers/w0/state"))
        .json(&json!({"state": "active"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let w = worker(&c, leader, "w0").await.unwrap();
    assert_eq!(w["state"], "active", "{w}");
    assert!(w.get("drain").is_none_or(Value::is_null), "{w}");
    let parts = partitions(&c, leader).await.unwrap();
    assert_eq!(held(&parts), before, "cancelling changed w0's replicas");
    assert!(healthy(&parts, &fleet.zones, 3, &BTreeSet::new()));
    for s in fleet.stops.values() {
        s.store(true, Ordering::Relaxed);
    }
}

async fn drain_dry_run(c: &Cluster, node: u64, worker: &str) -> Value {
    let r = c
        .http
        .post(c.url(node, "/v1/drain"))
        .json(&json!({"workers": [worker], "dry_run": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()
}

/// The regression: a drain dry run (or a drain) planned in a new leader's first moments saw
/// every worker as suspect — not heard yet — and answered `no_candidate`. The leader now plans
/// only once it knows who is alive, so the dry run right after a failover gives the moves a dry
/// run gave before it.
#[tokio::test]
async fn a_dry_run_right_after_a_failover_plans_what_it_did_before() {
    let mut c = Cluster::start(
        3,
        &[
            "--heartbeat-interval-ms",
            "100",
            "--suspect-after-ms",
            "2000",
            "--dead-after-ms",
            "20000",
        ],
    );
    let leader = c.leader_among(&[1, 2, 3]).await;
    let Fleet { stops, .. } = fleet(&c, leader, 16).await;
    let before = drain_dry_run(&c, leader, "w0").await;
    assert_eq!(before["feasible"], true, "{before}");
    c.kill(leader);
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let new_leader = c.leader_among(&others).await;
    let after = drain_dry_run(&c, new_leader, "w0").await;
    assert_eq!(after["feasible"], true, "{after}");
    assert_eq!(after["moves"], before["moves"]);
    c.spawn(leader);
    for s in stops.values() {
        s.store(true, Ordering::Relaxed);
    }
}

/// Each partition's epoch and preferred leader: what a move or a leader change alters.
type Placement = BTreeMap<u64, (u64, Option<String>)>;

fn placement(parts: &[Value]) -> Placement {
    parts
        .iter()
        .map(|p| {
            let leader = p["leader"].as_str().map(str::to_owned);
            (
                p["id"].as_u64().unwrap(),
                (p["epoch"].as_u64().unwrap(), leader),
            )
        })
        .collect()
}

/// How long placement must stay unchanged to count as settled: the scheduler plans on every
/// applied change and at least every 250 ms, so this is several rounds that planned nothing.
const QUIET: Duration = Duration::from_millis(1500);

/// Waits until placement, read through `node`, has settled: every partition has 3 serving
/// replicas in 3 zones, nothing joining or leaving, a preferred leader, and no epoch or leader
/// changed for [`QUIET`]. Returns the partitions.
async fn settled(c: &Cluster, node: u64, zones: &BTreeMap<String, String>) -> Vec<Value> {
    let deadline = Duration::from_secs(90);
    let start = Instant::now();
    let mut last: Option<(Placement, Instant)> = None;
    loop {
        assert!(
            start.elapsed() < deadline,
            "placement did not settle within {deadline:?}; last seen: {last:?}"
        );
        if let Some(parts) = partitions(c, node).await {
            let now = placement(&parts);
            let whole = healthy(&parts, zones, 3, &BTreeSet::new())
                && now.values().all(|(_, leader)| leader.is_some());
            match &last {
                Some((seen, since)) if *seen == now => {
                    if whole && since.elapsed() >= QUIET {
                        return parts;
                    }
                }
                _ => last = Some((now, Instant::now())),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sequence number of the newest event, read through `node`.
async fn events_cursor(c: &Cluster, node: u64) -> u64 {
    let events = all_events(c, node).await;
    events.last().map_or(0, |e| e["seq"].as_u64().unwrap())
}

/// Heartbeats `node` answered 200, from its `/metrics` (a follower counts those it forwarded;
/// a leader, every heartbeat acknowledged in the cluster).
fn heartbeats_served(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("drover_http_requests_total{")
                && l.contains("route=\"/v1/workers/{id}/heartbeat\"")
                && l.contains("status=\"200\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Whether the leader `node` has heard all `n` workers: each one's liveness is `alive` (a
/// worker a new leader has not heard yet shows as `suspect`).
async fn all_heard(c: &Cluster, node: u64, n: usize) -> Option<()> {
    let r = c.http.get(c.url(node, "/v1/workers")).send().await.ok()?;
    let page: Value = r.json().await.ok()?;
    let items = page["items"].as_array()?;
    (items.len() == n && items.iter().all(|w| w["liveness"] == "alive")).then_some(())
}

/// Issue 16's failover, the regression: a new control-plane leader treated the workers it had
/// not heard from yet as suspect and re-picked the preferred leader of every partition they
/// led (21–24 `leader_changed` events within a second of a failover, some partitions twice).
/// Six workers heartbeat once a second, as agents do by default, so the new leader's first
/// rounds run before it has heard most of them. With a settled table of 32 partitions at RF 3,
/// SIGKILLing the leader and giving the new one every worker's heartbeats and then time for
/// two dozen rounds — past `suspect_after` since it took over, when it may start moves —
/// changes no partition's preferred leader or epoch and logs no replica or leader event.
#[tokio::test]
async fn control_plane_failover_with_a_settled_fleet_changes_nothing() {
    let mut c = Cluster::start(
        3,
        &[
            "--heartbeat-interval-ms",
            "1000",
            "--suspect-after-ms",
            "5000",
            "--dead-after-ms",
            "30000",
        ],
    );
    let leader = c.leader_among(&[1, 2, 3]).await;
    let workers: Vec<(String, String)> = (0..6)
        .map(|i| (format!("w{i}"), format!("z{}", i % 3)))
        .collect();
    let fleet = start_fleet(&c, leader, &workers, Duration::from_secs(1)).await;
    place(&c, leader, &fleet, 32).await;
    let before = placement(&settled(&c, leader, &fleet.zones).await);
    let cursor = events_cursor(&c, leader).await;

    c.kill(leader);
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let new_leader = c.leader_among(&others).await;
    wait_for(
        "the new leader to hear every worker",
        Duration::from_secs(30),
        || all_heard(&c, new_leader, workers.len()),
    )
    .await;
    // Time for the scheduler to act, counted in heartbeats: each worker sends at most one a
    // second, so seven more per worker take over six seconds — past `suspect_after` (5 s)
    // since the new leader took over, and some two dozen scheduling rounds.
    let served = heartbeats_served(&c.metrics(new_leader).await);
    let more = 7 * workers.len() as u64;
    wait_for(
        "the new leader to acknowledge seven more heartbeats per worker",
        Duration::from_secs(60),
        || async {
            (heartbeats_served(&c.metrics(new_leader).await) >= served + more).then_some(())
        },
    )
    .await;
    assert_eq!(
        c.leader_among(&others).await,
        new_leader,
        "leadership moved again during the test"
    );

    let after = placement(&partitions(&c, new_leader).await.unwrap());
    let changed: Vec<String> = before
        .iter()
        .filter(|(p, was)| after.get(p) != Some(was))
        .map(|(p, was)| format!("partition {p}: {was:?} -> {:?}", after.get(p)))
        .collect();
    assert!(
        changed.is_empty(),
        "the failover changed {} partitions' epoch or preferred leader:\n{}",
        changed.len(),
        changed.join("\n")
    );
    let churn: Vec<Value> = all_events(&c, new_leader)
        .await
        .into_iter()
        .filter(|e| e["seq"].as_u64() > Some(cursor))
        .filter(|e| {
            [
                "leader_changed",
                "replica_added",
                "replica_role",
                "replica_removed",
            ]
            .iter()
            .any(|k| e["kind"].get(*k).is_some())
        })
        .collect();
    assert!(
        churn.is_empty(),
        "{} replica or leader events after the failover: {churn:?}",
        churn.len()
    );
    let text = c.metrics(new_leader).await;
    assert!(
        !text.contains("drover_preferred_leader_changes_total{"),
        "the new leader counted preferred-leader changes:\n{text}"
    );
    fleet.stop();
}

/// Issue 16's join, with real nodes and agents acknowledging at their own pace: five workers
/// in zones a (one), b (two) and c (two) hold a settled table of 32 partitions at RF 3, every
/// partition in all three zones. A worker joins in a new zone d, whose even share of the 96
/// replicas is 24 — 8 from each zone, keeping each zone's workers even. The join makes exactly
/// those 24 moves (Drover made 38: the zone balance took sources that the per-zone balance
/// then had to even out), make-before-break: no partition ever had fewer than 3 serving
/// replicas.
#[tokio::test]
async fn a_worker_joining_a_new_zone_moves_only_its_share() {
    let c = Cluster::start(
        3,
        &[
            "--heartbeat-interval-ms",
            "100",
            "--suspect-after-ms",
            "2000",
            "--dead-after-ms",
            "20000",
        ],
    );
    let leader = c.leader_among(&[1, 2, 3]).await;
    let workers: Vec<(String, String)> = [("a0", "a"), ("b0", "b"), ("b1", "b")]
        .into_iter()
        .chain([("c0", "c"), ("c1", "c")])
        .map(|(w, z)| (w.to_owned(), z.to_owned()))
        .collect();
    let mut fleet = start_fleet(&c, leader, &workers, Duration::ZERO).await;
    place(&c, leader, &fleet, 32).await;
    settled(&c, leader, &fleet.zones).await;
    let from = c.status(leader).await.unwrap()["state_version"]
        .as_u64()
        .unwrap();

    fleet.join("d0", "d", Duration::ZERO);
    wait_for(
        "d0 to receive its first replica",
        Duration::from_secs(30),
        || async {
            let w = worker(&c, leader, "d0").await?;
            (!w["replicas"].as_array()?.is_empty()).then_some(())
        },
    )
    .await;
    let parts = settled(&c, leader, &fleet.zones).await;

    let mut held: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &parts {
        for r in p["replicas"].as_array().unwrap() {
            *held.entry(r["worker"].as_str().unwrap()).or_insert(0) += 1;
        }
    }
    let events = all_events(&c, leader).await;
    let moves: Vec<String> = events
        .iter()
        .filter(|e| e["version"].as_u64() > Some(from))
        .filter_map(|e| {
            let a = e["kind"].get("replica_added")?;
            Some(format!(
                "p{}: {} -> {}",
                a["partition"], a["replaces"], a["worker"]
            ))
        })
        .collect();
    let added = check_serving_floor(&events, from, 3);
    assert_eq!(
        added,
        24,
        "the join made {added} moves, not 24:\n{}",
        moves.join("\n")
    );
    let expected = BTreeMap::from([
        ("a0", 24),
        ("b0", 12),
        ("b1", 12),
        ("c0", 12),
        ("c1", 12),
        ("d0", 24),
    ]);
    assert_eq!(held, expected, "moves:\n{}", moves.join("\n"));
    fleet.stop();
}

/// The partitions `id` holds, as its record lists them.
async fn held_by(c: &Cluster, node: u64, id: &str) -> Option<BTreeSet<u64>> {
    let w = worker(c, node, id).await?;
    Some(
        w["replicas"]
            .as_array()?
            .iter()
            .filter_map(|r| r["partition"].as_u64())
            .collect(),
    )
}

/// SPEC §1 cordons and §3 pause end to end, across a leader failover. w3 is cordoned by two
/// holders and the scheduler paused; the leader is killed. The new leader keeps both (they are
/// replicated): the pause shows in `/v1/cluster` and `/metrics`; after resume, draining w0 —
/// whose zone's only other worker is w3 — sends nothing to w3, which keeps exactly what it
/// held. Removing one holder leaves w3 cordoned; removing the second lifts it, and the
/// scheduler then restores zone spread onto it.
#[tokio::test]
async fn a_cordon_survives_failover_and_lifts_only_when_both_holders_are_gone() {
    let mut c = Cluster::start(
        3,
        &[
            "--heartbeat-interval-ms",
            "100",
            "--suspect-after-ms",
            "2000",
            "--dead-after-ms",
            "20000",
        ],
    );
    let leader = c.leader_among(&[1, 2, 3]).await;
    let Fleet { zones, stops, .. } = fleet(&c, leader, 16).await;
    assert_eq!(zones["w0"], zones["w3"], "w0 and w3 share a zone");
    let before = held_by(&c, leader, "w3").await.unwrap();
    for (holder, body) in [
        ("alice", json!({"reason": "disk alarm"})),
        ("bob", json!({"reason": "kernel rollout", "for": "1h"})),
    ] {
        let r = c
            .http
            .put(c.url(leader, &format!("/v1/workers/w3/cordon/{holder}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let r = c
        .http
        .post(c.url(leader, "/v1/scheduler/pause"))
        .json(&json!({"reason": "failover drill"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    c.kill(leader);
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let new_leader = c.leader_among(&others).await;
    let status = c.status(new_leader).await.unwrap();
    assert_eq!(
        status["brakes"]["pause"]["reason"], "failover drill",
        "{status}"
    );
    assert!(
        c.metrics(new_leader)
            .await
            .lines()
            .any(|l| l == "drover_scheduler_paused 1"),
        "the pause gauge"
    );
    let w3 = worker(&c, new_leader, "w3").await.unwrap();
    let holders: Vec<&String> = w3["cordons"].as_object().unwrap().keys().collect();
    assert_eq!(holders, ["alice", "bob"], "{w3}");
    let r = c
        .http
        .post(c.url(new_leader, "/v1/scheduler/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Drain w0: the new leader places none of its replicas on the cordoned w3.
    let r = c
        .http
        .post(c.url(new_leader, "/v1/drain"))
        .json(&json!({"workers": ["w0"], "allow_blocked": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    wait_for("w0 drained", Duration::from_secs(60), || async {
        let w = worker(&c, new_leader, "w0").await?;
        (w["state"] == "disabled").then_some(())
    })
    .await;
    assert_eq!(
        held_by(&c, new_leader, "w3").await.unwrap(),
        before,
        "the cordoned worker keeps exactly what it held"
    );

    // One holder gone: still cordoned, still nothing new.
    let uncordon = |holder: &'static str| {
        let url = c.url(new_leader, &format!("/v1/workers/w3/cordon/{holder}"));
        let http = c.http.clone();
        async move {
            http.delete(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let w3 = uncordon("alice").await;
    assert_eq!(w3["cordons"].as_object().map(|m| m.len()), Some(1), "{w3}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(held_by(&c, new_leader, "w3").await.unwrap(), before);

    // Both gone: lifted, and the scheduler gives w3 its zone's share again.
    let w3 = uncordon("bob").await;
    assert_eq!(w3["cordons"], json!({}), "{w3}");
    wait_for(
        "w3 receives replicas once uncordoned",
        Duration::from_secs(60),
        || async { (held_by(&c, new_leader, "w3").await?.len() > before.len()).then_some(()) },
    )
    .await;
    c.spawn(leader);
    for s in stops.values() {
        s.store(true, Ordering::Relaxed);
    }
}

/// `POST /v1/what-if` to node `node`, its status and body.
async fn what_if(c: &Cluster, node: u64, body: Value) -> (u16, Value) {
    let r = c
        .http
        .post(c.url(node, "/v1/what-if"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json::<Value>().await.unwrap())
}

fn partition_ids(v: &Value) -> BTreeSet<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| f["partition"].as_u64().or(f.as_u64()).unwrap())
        .collect()
}

/// What-if (SPEC §3) answers what then happens: stopping zone z0 leaves every partition one
/// replica short but with its majority, two zones take the majority; a drain's answer is the
/// plan the drain then commits, and the partitions it says lose their preferred leader are the
/// ones whose leader moves; a forced disable drops below RF exactly the partitions a stop of
/// that worker was said to. Bad input changes nothing.
#[tokio::test]
async fn what_if_answers_what_then_happens() {
    let c = Cluster::start(
        3,
        &[
            "--heartbeat-interval-ms",
            "100",
            "--suspect-after-ms",
            "1000",
            "--dead-after-ms",
            "3000",
        ],
    );
    let leader = c.leader_among(&[1, 2, 3]).await;
    let fleet = fleet(&c, leader, 24).await;
    settled(&c, leader, &fleet.zones).await;
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    let version = c.status(leader).await.unwrap()["state_version"].clone();

    // A follower forwards it: the leader knows who is alive.
    let (code, zone) = what_if(&c, follower, json!({"zone": "z0", "action": "stop"})).await;
    assert_eq!(code, 200, "{zone}");
    assert_eq!(zone["workers"], json!(["w0", "w3"]));
    assert_eq!(partition_ids(&zone["below_rf"]).len(), 24, "{zone}");
    assert!(zone["below_majority"].as_array().unwrap().is_empty());
    let (_, two) = what_if(
        &c,
        leader,
        json!({"workers": ["w0", "w3", "w1", "w4"], "action": "stop"}),
    )
    .await;
    assert_eq!(partition_ids(&two["below_majority"]).len(), 24, "{two}");

    // Bad input is refused with its code and changes nothing.
    for (body, status, code) in [
        (json!({"action": "stop"}), 400, "invalid"),
        (
            json!({"workers": ["w0"], "zone": "z0", "action": "stop"}),
            400,
            "invalid",
        ),
        (
            json!({"workers": ["w0"], "action": "reboot"}),
            400,
            "invalid",
        ),
        (
            json!({"workers": ["w0", "w0"], "action": "stop"}),
            400,
            "invalid",
        ),
        (
            json!({"workers": ["nope"], "action": "stop"}),
            404,
            "not_found",
        ),
        (json!({"zone": "z9", "action": "drain"}), 404, "not_found"),
    ] {
        let (s, e) = what_if(&c, leader, body.clone()).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {e}"
        );
    }
    assert_eq!(
        c.status(leader).await.unwrap()["state_version"],
        version,
        "what-if changed the state"
    );

    // A drain: the answer's plan is what the drain commits, and its lost leaders move.
    let (_, d) = what_if(&c, leader, json!({"workers": ["w1"], "action": "drain"})).await;
    assert_eq!(d["drain"]["feasible"], true, "{d}");
    assert!(d["below_rf"].as_array().unwrap().is_empty());
    let lost = partition_ids(&d["leaders_lost"]);
    assert!(!lost.is_empty(), "{d}");
    let r = c
        .http
        .post(c.url(leader, "/v1/workers/w1/drain"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started: Value = r.json().await.unwrap();
    assert_eq!(started["drain"]["moves"], d["drain"]["moves"]);
    wait_for(
        "w1's leaderships to move",
        Duration::from_secs(30),
        || async {
            let parts = partitions(&c, leader).await?;
            let led: BTreeSet<u64> = parts
                .iter()
                .filter(|p| p["leader"] == "w1")
                .map(|p| p["id"].as_u64().unwrap())
                .collect();
            led.is_empty().then_some(())
        },
    )
    .await;

    wait_for("w1 drained", Duration::from_secs(60), || async {
        (worker(&c, leader, "w1").await?["state"] == "disabled").then_some(())
    })
    .await;
    let parts = settled(&c, leader, &fleet.zones).await;

    // A stop, then the forced disable of that worker: the same partitions fall below RF.
    let (_, stop) = what_if(&c, leader, json!({"workers": ["w2"], "action": "stop"})).await;
    let said = partition_ids(&stop["below_rf"]);
    let held: BTreeSet<u64> = parts
        .iter()
        .filter(|p| {
            p["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["worker"] == "w2")
        })
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(said, held, "{stop}");
    let r = c
        .http
        .post(c.url(leader, "/v1/workers/w2/state"))
        .json(&json!({"state": "disabled", "force": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let forced: Value = r.json().await.unwrap();
    assert_eq!(
        forced["partitions_below_rf"].as_u64(),
        Some(said.len() as u64),
        "{forced}"
    );
    fleet.stop();
}
