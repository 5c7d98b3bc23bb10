//! A fleet of real agents (`drover-agent`) that keeps the scheduler busy during a run, so the
//! replica invariants of SPEC §6 are exercised under faults: a partition table of 16 partitions
//! at RF 3 over five workers in three zones; agents acknowledge every catch-up and release; one
//! worker at a time is drained to Disabled (and recommissioned by a fresh agent) or has its
//! drain cancelled midway. The fleet's own outcomes are not checked here — the events log and
//! the snapshots are, by [`crate::invariants`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use drover_agent::{Agent, AgentConfig};
use drover_client::{Client, StateRequest};
use drover_types::WorkerState;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Mutex;

pub const WORKERS: usize = 5;
pub const PARTITIONS: u32 = 16;
pub const RF: u8 = 3;

/// What the fleet did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub agent_starts: u64,
    pub acks: u64,
    pub drains_started: u64,
    pub drains_completed: u64,
    pub drains_cancelled: u64,
    pub errors: u64,
}

#[derive(Debug)]
pub struct Fleet {
    endpoints: Vec<String>,
    stop: Arc<AtomicBool>,
    pub stats: Arc<std::sync::Mutex<Stats>>,
    /// Held by the one worker draining at a time, so every drain stays feasible.
    drain_token: Arc<Mutex<()>>,
}

impl Fleet {
    pub fn new(endpoints: Vec<String>) -> Arc<Fleet> {
        Arc::new(Fleet {
            endpoints,
            stop: Arc::default(),
            stats: Arc::default(),
            drain_token: Arc::default(),
        })
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn bump(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Creates the table (before the faults start), then runs every worker's life until
    /// [`Fleet::stop`].
    pub async fn run(self: Arc<Self>, seed: u64) {
        let client = match Client::new(&self.endpoints, None) {
            Ok(c) => c,
            Err(_) => return,
        };
        for _ in 0..50 {
            match client.create_table(PARTITIONS, RF).await {
                Ok(_) => break,
                Err(e) if e.is(drover_client::ErrorCode::AlreadyExists) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let mut lives = Vec::new();
        for i in 0..WORKERS {
            let me = self.clone();
            let rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1_000 + i as u64));
            lives.push(tokio::spawn(async move { me.life(i, rng).await }));
        }
        for l in lives {
            let _ = l.await;
        }
    }

    async fn start_agent(&self, i: usize) -> Option<Agent> {
        let mut cfg = AgentConfig::new(
            self.endpoints.clone(),
            format!("f-{i}"),
            format!("10.8.0.{i}:9000"),
        );
        cfg.zone = Some(format!("z{}", i % 3));
        while !self.stopped() {
            match Agent::start(cfg.clone()).await {
                Ok(a) => {
                    self.bump(|s| s.agent_starts += 1);
                    return Some(a);
                }
                Err(_) => {
                    self.bump(|s| s.errors += 1);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
        None
    }

    /// One worker: start an agent, become Active, serve a while; then drain to Disabled and
    /// start over with a fresh agent, or start a drain and cancel it.
    async fn life(&self, i: usize, mut rng: ChaCha8Rng) {
        let id = format!("f-{i}");
        'agent: while !self.stopped() {
            let Some(mut agent) = self.start_agent(i).await else {
                return;
            };
            if let Some(mut tasks) = agent.take_tasks() {
                let handle = agent.handle();
                let stats = self.stats.clone();
                tokio::spawn(async move {
                    while let Some(task) = tasks.recv().await {
                        let (h, stats) = (handle.clone(), stats.clone());
                        tokio::spawn(async move {
                            for _ in 0..20 {
                                match h.ack(&task).await {
                                    Ok(()) => {
                                        stats.lock().unwrap_or_else(|p| p.into_inner()).acks += 1;
                                        return;
                                    }
                                    Err(drover_agent::Error::Client(e))
                                        if e.status() == Some(409) =>
                                    {
                                        return;
                                    }
                                    Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
                                }
                            }
                        });
                    }
                });
            }
            while !self.stopped() && agent.ready().await.is_err() {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            loop {
                let serve = Duration::from_millis(rng.random_range(3_000..10_000));
                tokio::time::sleep(serve).await;
                if self.stopped() {
                    return;
                }
                let Ok(_token) = self.drain_token.try_lock() else {
                    continue;
                };
                self.bump(|s| s.drains_started += 1);
                if rng.random_bool(0.6) {
                    let drained =
                        tokio::time::timeout(Duration::from_secs(30), agent.drain_and_wait()).await;
                    if matches!(drained, Ok(Ok(()))) {
                        self.bump(|s| s.drains_completed += 1);
                        agent.stop();
                        continue 'agent;
                    }
                    // Not done in time: cancel it as an operator, and start over with a fresh
                    // agent (this one believes it is leaving).
                    let cancel = StateRequest::to(WorkerState::Active);
                    match agent.client().set_state(&id, &cancel).await {
                        Ok(_) => self.bump(|s| s.drains_cancelled += 1),
                        Err(_) => self.bump(|s| s.errors += 1),
                    }
                    agent.stop();
                    continue 'agent;
                }
                // Start a drain (or leave the unfinished one) and cancel it: Draining → Active.
                let client = agent.client().clone();
                let _ = client
                    .set_state(&id, &StateRequest::to(WorkerState::Draining))
                    .await;
                let pause = Duration::from_millis(rng.random_range(200..2_000));
                tokio::time::sleep(pause).await;
                match client
                    .set_state(&id, &StateRequest::to(WorkerState::Active))
                    .await
                {
                    Ok(_) => self.bump(|s| s.drains_cancelled += 1),
                    Err(_) => {
                        // Perhaps it finished draining meanwhile: start over with a new agent.
                        self.bump(|s| s.errors += 1);
                        agent.stop();
                        continue 'agent;
                    }
                }
            }
        }
    }
}
