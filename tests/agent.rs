//! The agent library against real `drover` nodes: leader failover, the lease, and graceful
//! shutdown.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use drover_agent::{Agent, AgentConfig};
use drover_client::Client;
use drover_types::{ReplicaRole, WorkerState};
use support::{Cluster, Proxy, all_events, check_serving_floor, wait_for};

/// Heartbeats every 200 ms; suspect after 2 s, dead after 8 s — room for a failover (< 2 s).
const FLAGS: &[&str] = &[
    "--heartbeat-interval-ms",
    "200",
    "--suspect-after-ms",
    "2000",
    "--dead-after-ms",
    "8000",
];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An agent that acknowledges every task at once. `lost_at` records (ms since the epoch) the
/// first time its lease was lost after being held; 0 while it never was.
struct TestAgent {
    agent: Agent,
    lost_at: Arc<AtomicU64>,
}

async fn start_agent(endpoints: Vec<String>, id: &str, zone: &str) -> TestAgent {
    let mut cfg = AgentConfig::new(endpoints, id, format!("10.1.0.1:{}", 9000 + id.len()));
    cfg.zone = Some(zone.into());
    cfg.lease_margin = Duration::from_secs(2);
    let mut agent = Agent::start(cfg).await.unwrap();
    let mut tasks = agent.take_tasks().unwrap();
    let handle = agent.handle();
    tokio::spawn(async move {
        while let Some(task) = tasks.recv().await {
            // Retry while nodes are unreachable; a refusal (409) means the task is stale.
            while let Err(e) = handle.ack(&task).await {
                if matches!(&e, drover_agent::Error::Client(c) if c.status().is_some()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let lost_at = Arc::new(AtomicU64::new(0));
    let mut lease = agent.lease();
    let lost = lost_at.clone();
    tokio::spawn(async move {
        let _ = lease.wait_for(|held| *held).await;
        if lease.wait_for(|held| !*held).await.is_ok() {
            lost.store(now_ms(), Ordering::SeqCst);
        }
    });
    agent.ready().await.unwrap();
    TestAgent { agent, lost_at }
}

/// Four agents: w0 and w3 in zone z0, w1 in z1, w2 in z2; all Active and holding their lease.
async fn four_agents(endpoints: &[String], admin: &Client) -> Vec<TestAgent> {
    let mut agents = Vec::new();
    for (id, zone) in [("w0", "z0"), ("w1", "z1"), ("w2", "z2"), ("w3", "z0")] {
        agents.push(start_agent(endpoints.to_vec(), id, zone).await);
    }
    wait_for(
        "four active agents holding leases",
        Duration::from_secs(30),
        || async {
            let active = admin.all_workers(Some(WorkerState::Active)).await.ok()?;
            let held = agents.iter().all(|a| *a.agent.lease().borrow());
            (active.len() == 4 && held).then_some(())
        },
    )
    .await;
    agents
}

/// Creates 8 partitions at RF 3 and waits until each has 3 serving replicas.
async fn place(admin: &Client) {
    admin.create_table(8, 3).await.unwrap();
    wait_for(
        "every partition at RF 3",
        Duration::from_secs(60),
        || async {
            let parts = admin.all_partitions().await.ok()?;
            parts
                .iter()
                .all(|p| {
                    p.replicas.len() == 3
                        && p.replicas.iter().all(|r| r.role == ReplicaRole::Serving)
                })
                .then_some(())
        },
    )
    .await;
}

fn endpoints(c: &Cluster) -> Vec<String> {
    (1..=3).map(|id| c.node(id).addr.to_string()).collect()
}

/// The leader is SIGKILLed while agents are connected: every agent keeps heartbeating through
/// the other nodes, none is declared dead or loses its lease, and the assignments the new
/// leader gives (w3's replicas moving to w0) reach w0's agent.
#[tokio::test]
async fn agents_ride_out_a_leader_failover() {
    let mut c = Cluster::start(3, FLAGS);
    let leader = c.leader_among(&[1, 2, 3]).await;
    let eps = endpoints(&c);
    let admin = Client::new(&eps, None).unwrap();
    let agents = four_agents(&eps, &admin).await;
    place(&admin).await;
    let generations: Vec<u64> = agents.iter().map(|a| a.agent.generation()).collect();

    c.kill(leader);
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let new_leader = c.leader_among(&others).await;
    assert_ne!(new_leader, leader);

    // w3 leaves: its replicas can only go to w0 (the other worker in zone z0).
    let moved: Vec<u32> = admin
        .all_partitions()
        .await
        .unwrap()
        .iter()
        .filter(|p| p.replica(&"w3".into()).is_some())
        .map(|p| p.id)
        .collect();
    assert!(!moved.is_empty());
    admin.drain("w3", false).await.unwrap();
    let mut w0 = agents[0].agent.assignments();
    wait_for(
        "w0's agent to serve w3's former partitions",
        Duration::from_secs(60),
        || {
            let a = w0.borrow_and_update().clone();
            let moved = &moved;
            async move {
                let a = a?;
                let serving: Vec<u32> = a
                    .replicas
                    .iter()
                    .filter(|r| r.role == ReplicaRole::Serving)
                    .map(|r| r.partition)
                    .collect();
                moved.iter().all(|p| serving.contains(p)).then_some(())
            }
        },
    )
    .await;
    wait_for("w3 disabled", Duration::from_secs(30), || async {
        (admin.worker("w3").await.ok()?.record.state == WorkerState::Disabled).then_some(())
    })
    .await;

    for (a, generation) in agents.iter().zip(generations) {
        assert_eq!(
            a.lost_at.load(Ordering::SeqCst),
            0,
            "an agent lost its lease"
        );
        assert_eq!(
            a.agent.generation(),
            generation,
            "an agent had to re-register"
        );
        assert!(*a.agent.lease().borrow());
    }
    let events = all_events(&c, new_leader).await;
    assert!(
        !events.iter().any(|e| e["kind"].get("dead").is_some()),
        "a worker was declared dead"
    );
    c.spawn(leader);
}

/// An agent cut off from every node stops serving (its lease runs out) before the cluster
/// declares it dead.
#[tokio::test]
async fn the_lease_runs_out_before_death() {
    let c = Cluster::start(
        3,
        &[
            "--heartbeat-interval-ms",
            "100",
            "--suspect-after-ms",
            "1000",
            "--dead-after-ms",
            "4000",
        ],
    );
    c.leader_among(&[1, 2, 3]).await;
    let mut proxies = Vec::new();
    for id in 1..=3 {
        proxies.push(Proxy::start(c.ip, c.node(id).addr).await);
    }
    let through: Vec<String> = proxies.iter().map(|p| p.addr.to_string()).collect();
    let admin = Client::new(&endpoints(&c), None).unwrap();
    let a = start_agent(through, "w0", "z0").await;
    wait_for(
        "w0 active with its lease",
        Duration::from_secs(30),
        || async {
            let w = admin.worker("w0").await.ok()?;
            (w.record.state == WorkerState::Active && *a.agent.lease().borrow()).then_some(())
        },
    )
    .await;

    for p in &proxies {
        p.cut();
    }
    let dead_at = wait_for("w0 declared dead", Duration::from_secs(30), || async {
        let events = admin.events(0, Some(1000)).await.ok()?;
        events.events.iter().find_map(|e| match &e.kind {
            drover_types::EventKind::Dead { worker, .. } if worker.as_str() == "w0" => {
                Some(e.at_ms)
            }
            _ => None,
        })
    })
    .await;
    let lost_at = a.lost_at.load(Ordering::SeqCst);
    assert!(lost_at > 0, "the agent never gave up its lease");
    assert!(
        lost_at < dead_at,
        "the lease ran out at {lost_at}, after the death verdict at {dead_at}"
    );
}

/// `drain_and_wait()` returns only once the worker is Disabled, and no partition went below
/// RF while its replicas moved.
#[tokio::test]
async fn drain_and_wait_returns_once_disabled() {
    let c = Cluster::start(3, FLAGS);
    let leader = c.leader_among(&[1, 2, 3]).await;
    let eps = endpoints(&c);
    let admin = Client::new(&eps, None).unwrap();
    let agents = four_agents(&eps, &admin).await;
    place(&admin).await;
    let from = admin.cluster().await.unwrap().state_version;

    tokio::time::timeout(Duration::from_secs(60), agents[3].agent.drain_and_wait())
        .await
        .expect("drain_and_wait did not return")
        .unwrap();
    let w3 = admin.worker("w3").await.unwrap();
    assert_eq!(w3.record.state, WorkerState::Disabled);
    assert!(w3.replicas.is_empty());
    let events = all_events(&c, leader).await;
    let added = check_serving_floor(&events, from, 3);
    assert!(added > 0, "nothing moved");
}

/// The regression: an agent talking only to the leader kept its lease when that leader was cut
/// off from the other two nodes — the cut-off leader went on acknowledging heartbeats while the
/// majority elected a new leader and declared the worker dead. A heartbeat is acknowledged only
/// by a leader that a quorum confirmed after it arrived, so the lease runs out first.
#[tokio::test]
async fn a_cut_off_leader_does_not_extend_a_lease() {
    let c = Cluster::start(
        3,
        &[
            "--enable-fault-injection",
            "true",
            "--heartbeat-interval-ms",
            "100",
            "--suspect-after-ms",
            "1000",
            "--dead-after-ms",
            "4000",
        ],
    );
    let leader = c.leader_among(&[1, 2, 3]).await;
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let admin_eps: Vec<String> = others
        .iter()
        .map(|id| c.node(*id).addr.to_string())
        .collect();
    let admin = Client::new(&admin_eps, None).unwrap();
    let a = start_agent(vec![c.node(leader).addr.to_string()], "w0", "z0").await;
    wait_for(
        "w0 active with its lease",
        Duration::from_secs(30),
        || async {
            let w = admin.worker("w0").await.ok()?;
            (w.record.state == WorkerState::Active && *a.agent.lease().borrow()).then_some(())
        },
    )
    .await;

    for other in &others {
        c.drop_messages(leader, *other).await;
        c.drop_messages(*other, leader).await;
    }
    c.leader_among(&others).await;
    let dead_at = wait_for("w0 declared dead", Duration::from_secs(30), || async {
        let events = admin.events(0, Some(1000)).await.ok()?;
        events.events.iter().find_map(|e| match &e.kind {
            drover_types::EventKind::Dead { worker, .. } if worker.as_str() == "w0" => {
                Some(e.at_ms)
            }
            _ => None,
        })
    })
    .await;
    let lost_at = a.lost_at.load(Ordering::SeqCst);
    assert!(lost_at > 0, "the cut-off leader kept the lease alive");
    assert!(
        lost_at < dead_at,
        "the lease ran out at {lost_at}, after the death verdict at {dead_at}"
    );
    for id in 1..=3 {
        c.clear_faults(id).await;
    }
}

/// The regression: two processes started with one worker id took it from each other about
/// every second (the superseded agent answered `stale_generation` by registering again). Now
/// the older one stops for good, the newer one holds its lease only once the older one's has
/// run out, and the generation stays where the newer registration put it.
#[tokio::test]
async fn two_processes_with_one_id_do_not_take_it_from_each_other() {
    let c = Cluster::start(3, FLAGS);
    c.leader_among(&[1, 2, 3]).await;
    let eps = endpoints(&c);
    let admin = Client::new(&eps, None).unwrap();
    let first = start_agent(eps.clone(), "w1", "z0").await;
    // The latest expiry the older process ever held (expiries only grow while it holds one).
    let first_until = Arc::new(std::sync::Mutex::new(None));
    let mut first_lease = first.agent.lease_expiry();
    let track = first_until.clone();
    tokio::spawn(async move {
        loop {
            if let Some(u) = first_lease.borrow_and_update().until {
                *track.lock().unwrap() = Some(u);
            }
            if first_lease.changed().await.is_err() {
                return;
            }
        }
    });
    wait_for(
        "the first agent's lease",
        Duration::from_secs(20),
        || async { first.agent.holds_lease().then_some(()) },
    )
    .await;

    let second = start_agent(eps.clone(), "w1", "z0").await;
    let mut ended = first.agent.ended();
    let why = tokio::time::timeout(Duration::from_secs(20), ended.wait_for(Option::is_some))
        .await
        .expect("the older agent did not stop")
        .unwrap()
        .clone();
    assert!(
        matches!(why, Some(drover_agent::Ended::Superseded { .. })),
        "{why:?}"
    );
    assert!(!first.agent.holds_lease());

    let mut second_lease = second.agent.lease_expiry();
    let granted = tokio::time::timeout(
        Duration::from_secs(30),
        second_lease.wait_for(|l| l.until.is_some()),
    )
    .await
    .expect("the newer agent never got its lease")
    .unwrap();
    let granted_at = tokio::time::Instant::now();
    drop(granted);
    let first_until = first_until
        .lock()
        .unwrap()
        .expect("the older agent held a lease");
    assert!(
        first_until <= granted_at,
        "both processes held the lease at once"
    );

    let generation = second.agent.generation();
    // Ten more acknowledged heartbeats of the newer agent, and nobody took the id back.
    for _ in 0..10 {
        tokio::time::timeout(Duration::from_secs(10), second_lease.changed())
            .await
            .expect("the newer agent's lease is renewed")
            .unwrap();
    }
    let w = admin.worker("w1").await.unwrap();
    assert_eq!(
        w.record.generation, generation,
        "the id changed hands again"
    );
    assert!(second.agent.holds_lease());
}
