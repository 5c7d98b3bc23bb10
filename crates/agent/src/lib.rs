//! The library a worker embeds (SPEC §1, §5).
//!
//! ```no_run
//! # async fn run() -> Result<(), drover_agent::Error> {
//! use drover_agent::{Agent, AgentConfig};
//! let mut agent = Agent::start(AgentConfig::new(["127.0.0.1:7001"], "w1", "10.0.0.1:9000")).await?;
//! let mut tasks = agent.take_tasks().expect("first call");
//! agent.ready().await?;                        // Provisioning -> Active
//! let handle = agent.handle();
//! tokio::spawn(async move {
//!     while let Some(task) = tasks.recv().await {
//!         // catch up a joining replica, or hand off a leaving one, then:
//!         let _ = handle.ack(&task).await;
//!     }
//! });
//! // ... serve agent.assignments() while *agent.lease().borrow() is true ...
//! agent.drain_and_wait().await?;               // graceful shutdown: returns once Disabled
//! # Ok(()) }
//! ```
//!
//! Two background tasks run for the agent's life: heartbeats (which hold the lease) and the
//! assignments long poll (which feeds a `watch` channel and the task stream). Every call goes
//! through a [`drover_client::Client`] that fails over between nodes.
//!
//! The lease: a heartbeat acknowledged by the cluster's leader proves the leader heard it no
//! earlier than it was *sent*; the cluster cannot declare the worker dead before `dead_after`
//! has passed since then. So the agent holds the lease until `sent + dead_after − margin` and
//! tells the application to stop serving the moment that passes without a newer acknowledged
//! heartbeat. The lease runs on the agent's own timer, raced against every call in flight: a
//! call that hangs cannot extend it. [`Agent::holds_lease`] reads that timer directly.
//!
//! Fencing: `fenced` means this generation was declared dead — the agent registers again (a
//! new generation, holding nothing). `stale_generation` means a newer process registered with
//! this worker id — this one stops for good: lease false, tasks end, [`Agent::ended`] says why,
//! and it never registers again on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_api::{Assignments, HeartbeatAck, RegisterRequest, StateRequest};
use drover_client::{Client, ClientOptions};
use drover_types::{MAX_DEAD_AFTER_MS, ReplicaRole, WorkerState};
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use drover_api::Assignment;
pub use drover_client::Error as ClientError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Client(#[from] drover_client::Error),
    #[error("the agent has shut down")]
    Stopped,
    #[error("{0}")]
    Ended(Ended),
}

/// Why an agent stopped for good.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ended {
    /// A newer process registered with this worker id (`stale_generation`): this one must not
    /// serve again. Its generation and the one the cluster now has.
    #[error(
        "superseded: another process registered as this worker (generation {newer} replaced \
         {ours}); this one stopped serving for good"
    )]
    Superseded { ours: u64, newer: u64 },
    /// The application shut the agent down ([`Agent::shutdown`]).
    #[error("shut down")]
    ShutDown,
    /// Declared dead, and disabled meanwhile (drained, or force-disabled): a drained worker
    /// does not come back on its own. This process stopped serving; start a new one (or
    /// recommission the worker while its agent runs) to bring it back.
    #[error(
        "declared dead and disabled (generation {generation}): this process stopped serving; \
         restart it to bring the worker back"
    )]
    Disabled { generation: u64 },
}

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub endpoints: Vec<String>,
    pub token: Option<String>,
    pub worker_id: String,
    /// Where peers and clients reach this worker.
    pub address: String,
    pub zone: Option<String>,
    pub capacity: Option<u32>,
    pub labels: BTreeMap<String, String>,
    /// Until the first heartbeat answer brings the cluster's own settings.
    pub heartbeat_interval: Duration,
    pub dead_after: Duration,
    /// How long before the cluster could declare it dead the agent gives up its lease.
    pub lease_margin: Duration,
    /// TLS to the nodes (`drover_tls::client_config`, with a client certificate if the
    /// cluster wants one); `None`: plain HTTP.
    pub tls: Option<drover_tls::rustls::ClientConfig>,
    /// The HTTP clients to use, shared with other agents of this process (their connection
    /// pools with them) — a fleet simulator runs thousands of agents in one process; `None`:
    /// this agent makes its own from the fields above.
    pub clients: Option<Clients>,
    /// Told how each heartbeat went, for the application's own metrics.
    pub observer: Option<Arc<dyn Observer>>,
}

/// Sees the agent's heartbeats: how long each took from send to answer, and the error, if
/// any. Called on the heartbeat task; keep it quick.
pub trait Observer: Send + Sync + std::fmt::Debug {
    fn heartbeat(&self, took: Duration, error: Option<&drover_client::Error>);
}

/// An agent's two API clients: one for its calls and long polls, one for heartbeats (short
/// timeouts, retried within one interval, so a slow call never delays a beat).
#[derive(Clone, Debug)]
pub struct Clients {
    calls: Client,
    beats: Client,
}

impl Clients {
    /// The clients an agent of `cfg` makes for itself; clone them into other agents' configs
    /// to share their connection pools. HTTP/1.1: at 10,000 agents HTTP/2
    /// (`ClientOptions::http2`) kept a placement's heartbeats flowing but made the steady
    /// state's slow (docs/benchmarks.md), so it is there to choose, not the default.
    pub fn new(cfg: &AgentConfig) -> Result<Clients, Error> {
        Self::with_options(cfg, ClientOptions::default())
    }

    /// [`Clients::new`] with `options` for the calls (`tls` is the config's); heartbeats time
    /// out within one interval.
    pub fn with_options(cfg: &AgentConfig, options: ClientOptions) -> Result<Clients, Error> {
        let plain = ClientOptions {
            tls: cfg.tls.clone(),
            ..options
        };
        let calls = Client::with_options(&cfg.endpoints, cfg.token.clone(), plain.clone())?;
        let interval = cfg.heartbeat_interval;
        let beats = Client::with_options(
            &cfg.endpoints,
            cfg.token.clone(),
            ClientOptions {
                timeout: interval.max(Duration::from_millis(300)),
                retry_for: interval,
                // Heartbeats are the leader's: straight there, not through a follower.
                prefer_leader: true,
                ..plain
            },
        )?;
        Ok(Clients { calls, beats })
    }
}

impl AgentConfig {
    pub fn new(
        endpoints: impl IntoIterator<Item = impl Into<String>>,
        worker_id: impl Into<String>,
        address: impl Into<String>,
    ) -> Self {
        AgentConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            token: None,
            worker_id: worker_id.into(),
            address: address.into(),
            zone: None,
            capacity: None,
            labels: BTreeMap::new(),
            heartbeat_interval: Duration::from_secs(1),
            dead_after: Duration::from_secs(30),
            lease_margin: Duration::from_secs(3),
            tls: None,
            clients: None,
            observer: None,
        }
    }
}

/// Work the application does before acknowledging: catch a joining replica up, or hand a
/// leaving one off. Acknowledge with [`AgentHandle::ack`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub partition: u32,
    /// `Joining` (catch up, then ack) or `Leaving` (stop serving it, then ack).
    pub role: ReplicaRole,
    /// The epoch to acknowledge.
    pub epoch: u64,
    pub assignment: Assignment,
}

/// How [`AgentHandle::ack_settled`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acked {
    /// The cluster applied the acknowledgement (or had already).
    Done,
    /// The replica changed role or epoch meanwhile (`409 stale_epoch`): nothing to do for this
    /// task; the current assignments, and any new task in them, come from the long poll.
    Superseded,
}

/// The running agent. Dropping it stops its background tasks.
#[derive(Debug)]
pub struct Agent {
    handle: AgentHandle,
    tasks_rx: Option<mpsc::UnboundedReceiver<Task>>,
    background: Vec<JoinHandle<()>>,
}

/// Whether the application may serve, and until when (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    /// The instant the lease runs out, if one is held.
    pub until: Option<Instant>,
}

impl Lease {
    pub fn held(&self) -> bool {
        self.until.is_some_and(|u| Instant::now() < u)
    }
}

/// A cheap clone of the agent's calls, for the application's tasks.
#[derive(Clone, Debug)]
pub struct AgentHandle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    cfg: AgentConfig,
    client: Client,
    /// Heartbeats get their own client: short timeouts, retried within one interval.
    beats: Client,
    generation: watch::Sender<u64>,
    assignments: watch::Sender<Option<Assignments>>,
    lease: watch::Sender<bool>,
    /// When the lease runs out; only the heartbeat task sets it.
    lease_until: watch::Sender<Lease>,
    ended: watch::Sender<Option<Ended>>,
    /// The application asked to be Active (re-asked after re-registering).
    wants_active: AtomicBool,
    /// Set once draining was asked for: re-registration must not undo it.
    draining: AtomicBool,
    /// Tasks already handed out, so a task is handed out once per epoch.
    handed: Mutex<BTreeSet<(u32, u64)>>,
    /// Dropped when the agent ends, so the application's task stream ends too.
    tasks: Mutex<Option<mpsc::UnboundedSender<Task>>>,
}

impl Agent {
    /// Registers with a fresh incarnation and starts heartbeating and watching assignments.
    pub async fn start(cfg: AgentConfig) -> Result<Agent, Error> {
        let Clients {
            calls: client,
            beats,
        } = match &cfg.clients {
            Some(shared) => shared.clone(),
            None => Clients::new(&cfg)?,
        };
        let (tasks, tasks_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            client,
            beats,
            generation: watch::Sender::new(0),
            assignments: watch::Sender::new(None),
            lease: watch::Sender::new(false),
            lease_until: watch::Sender::new(Lease::default()),
            ended: watch::Sender::new(None),
            wants_active: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            handed: Mutex::new(BTreeSet::new()),
            tasks: Mutex::new(Some(tasks)),
            cfg,
        });
        shared.register().await?;
        let background = vec![
            tokio::spawn(heartbeats(shared.clone())),
            tokio::spawn(watch_assignments(shared.clone())),
        ];
        Ok(Agent {
            handle: AgentHandle { shared },
            tasks_rx: Some(tasks_rx),
            background,
        })
    }

    pub fn handle(&self) -> AgentHandle {
        self.handle.clone()
    }

    /// The stream of catch-up and release work (once; later calls get `None`).
    pub fn take_tasks(&mut self) -> Option<mpsc::UnboundedReceiver<Task>> {
        self.tasks_rx.take()
    }

    /// Provisioning → Active: the worker is ready for replicas.
    pub async fn ready(&self) -> Result<(), Error> {
        self.handle.ready().await
    }

    /// The worker's assignments, updated by the long poll (`None` until the first answer).
    pub fn assignments(&self) -> watch::Receiver<Option<Assignments>> {
        self.handle.shared.assignments.subscribe()
    }

    /// Whether the application may serve: false before the first acknowledged heartbeat and
    /// once the lease runs out (the cluster may be about to declare this worker dead).
    pub fn lease(&self) -> watch::Receiver<bool> {
        self.handle.shared.lease.subscribe()
    }

    /// The lease with its expiry, updated on every acknowledged heartbeat.
    pub fn lease_expiry(&self) -> watch::Receiver<Lease> {
        self.handle.shared.lease_until.subscribe()
    }

    /// Whether the lease holds right now, read from its timer (not from the watch, which a
    /// busy runtime may update late): check it before serving a request.
    pub fn holds_lease(&self) -> bool {
        self.handle.shared.lease_until.borrow().held()
    }

    /// Set once the agent has stopped for good, with the reason (a newer process took the
    /// worker id, or the application shut it down).
    pub fn ended(&self) -> watch::Receiver<Option<Ended>> {
        self.handle.shared.ended.subscribe()
    }

    pub fn generation(&self) -> u64 {
        *self.handle.shared.generation.borrow()
    }

    pub fn client(&self) -> &Client {
        &self.handle.shared.client
    }

    /// Graceful shutdown: Active → Draining, then wait until the scheduler has moved every
    /// replica away and disabled the worker. Keep acknowledging tasks meanwhile. A worker that
    /// is already Disabled, or still Provisioning, holds no replica: this returns at once.
    /// (A Provisioning worker stays listed until an operator disables it; the agent's token may
    /// not.)
    pub async fn drain_and_wait(&self) -> Result<(), Error> {
        self.handle.drain_and_wait().await
    }

    /// Stops the background tasks (heartbeats stop: a worker not yet Disabled will turn
    /// suspect, then dead).
    pub fn stop(&mut self) {
        for t in self.background.drain(..) {
            t.abort();
        }
        self.handle.shared.drop_lease();
    }

    /// Stops for good and tells the cluster this process gave its lease up, so the next
    /// process of this worker (a restart) may hold one at once instead of waiting this one's
    /// lease out. Stop serving before calling it.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.stop();
        let s = &self.handle.shared;
        s.end(Ended::ShutDown);
        let generation = *s.generation.borrow();
        s.client.release_lease(&s.cfg.worker_id, generation).await?;
        Ok(())
    }
}

impl Agent {
    /// A restart without data movement (SPEC §1 maintenance), for a rolling upgrade: puts the
    /// worker in maintenance for at most `expected` (the cluster then neither declares it dead
    /// nor re-creates its replicas, and moves its preferred leaderships off), waits up to
    /// `leaders_off` until it leads no partition, then [`shutdown`](Agent::shutdown)s, giving
    /// the lease up. Stop serving, then start the new process: it registers (a new generation,
    /// the same replicas) and the cluster ends the maintenance once it hears it. Refused with
    /// `409 budget_exceeded` when the restart would leave a partition short of its
    /// `min_available` serving replicas: then nothing changed and the agent comes back in
    /// [`NotRestarted`], still running — keep serving.
    pub async fn maintenance_and_restart(
        self,
        reason: &str,
        expected: Duration,
        leaders_off: Duration,
    ) -> Result<(), NotRestarted> {
        let s = &self.handle.shared;
        let generation = *s.generation.borrow();
        let expiry = drover_client::Expiry::After(expected);
        if let Err(e) = s
            .client
            .maintenance(&s.cfg.worker_id, reason, &expiry, Some(generation))
            .await
        {
            return Err(NotRestarted {
                agent: self,
                error: e.into(),
            });
        }
        tracing::info!(worker = %s.cfg.worker_id, generation, ?expected, "in maintenance");
        let mut rx = s.assignments.subscribe();
        let leads = |a: &Option<Assignments>| {
            a.as_ref()
                .map_or(0, |a| a.replicas.iter().filter(|r| r.leader).count())
        };
        let waited = tokio::time::timeout(leaders_off, async {
            while leads(&rx.borrow_and_update()) > 0 {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!(
                worker = %s.cfg.worker_id,
                leading = leads(&rx.borrow()),
                "still a preferred leader after {leaders_off:?}; restarting anyway"
            );
        }
        let worker = s.cfg.worker_id.clone();
        if let Err(e) = self.shutdown().await {
            // Stopped all the same: the next process waits this one's lease out.
            tracing::warn!(%worker, error = %e, "lease not given up");
        }
        Ok(())
    }
}

/// [`Agent::maintenance_and_restart`] was refused before anything changed: the agent, still
/// running, and why.
#[derive(Debug)]
pub struct NotRestarted {
    pub agent: Agent,
    pub error: Error,
}

impl std::fmt::Display for NotRestarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not restarted: {}", self.error)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

impl AgentHandle {
    pub async fn ready(&self) -> Result<(), Error> {
        self.shared.wants_active.store(true, Ordering::SeqCst);
        self.shared.set_state(WorkerState::Active).await
    }

    /// Whether the lease holds right now (see [`Agent::holds_lease`]).
    pub fn holds_lease(&self) -> bool {
        self.shared.lease_until.borrow().held()
    }

    /// Acknowledges a task's work done. Retried across nodes while they are unreachable (an
    /// acknowledgement is idempotent); a task of an older generation or epoch is refused by the
    /// cluster (409) and that is returned. If this fails otherwise, call it again.
    pub async fn ack(&self, task: &Task) -> Result<(), Error> {
        let s = &self.shared;
        let generation = *s.generation.borrow();
        s.client
            .ack(task.partition, &s.cfg.worker_id, generation, task.epoch)
            .await?;
        Ok(())
    }

    /// Acknowledges a task, retrying while the cluster cannot be reached or has no leader,
    /// until `give_up` has passed. A `409 stale_epoch` is not retried: the replica has since
    /// changed role or epoch (a cancelled drain, a withdrawn move), so this task is over; the
    /// assignments long poll already carries the current view, and any new work in it comes
    /// as a new task. Repeating the stale acknowledgement could never succeed.
    pub async fn ack_settled(&self, task: &Task, give_up: Duration) -> Result<Acked, Error> {
        let deadline = Instant::now() + give_up;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.ack(task).await {
                Ok(()) => return Ok(Acked::Done),
                Err(Error::Client(e)) if e.is(drover_client::ErrorCode::StaleEpoch) => {
                    tracing::debug!(
                        worker = %self.shared.cfg.worker_id,
                        partition = task.partition,
                        epoch = task.epoch,
                        "task superseded (stale_epoch); following the current assignments"
                    );
                    return Ok(Acked::Superseded);
                }
                // Any other refusal (fenced, stale generation, not found) is final too.
                Err(Error::Client(e)) if e.status().is_some_and(|s| s != 503) => {
                    return Err(Error::Client(e));
                }
                Err(e @ (Error::Stopped | Error::Ended(_))) => return Err(e),
                Err(e) => {
                    if Instant::now() + backoff > deadline {
                        return Err(e);
                    }
                    tracing::debug!(partition = task.partition, error = %e, "ack not delivered; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    pub async fn drain_and_wait(&self) -> Result<(), Error> {
        let s = &self.shared;
        s.draining.store(true, Ordering::SeqCst);
        s.wants_active.store(false, Ordering::SeqCst);
        // A re-registration (a recommission) that lands while this asks makes its generation
        // stale: ask again at the new one.
        let mut asked = s.set_state(WorkerState::Draining).await;
        for _ in 0..3 {
            match &asked {
                Err(Error::Client(e)) if e.is(drover_client::ErrorCode::StaleGeneration) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    asked = s.set_state(WorkerState::Draining).await;
                }
                _ => break,
            }
        }
        match asked {
            Ok(()) => {}
            // Only an Active worker drains. One that is already Disabled (the scheduler got
            // there first, or an operator) or still Provisioning holds no replica: there is
            // nothing to wait for, and a graceful shutdown must not fail on it.
            Err(Error::Client(e)) if e.is(drover_client::ErrorCode::IllegalTransition) => {
                let w = s.client.worker(&s.cfg.worker_id).await?;
                return match w.record.state {
                    WorkerState::Disabled | WorkerState::Provisioning => {
                        tracing::info!(
                            worker = %s.cfg.worker_id,
                            state = w.record.state.as_str(),
                            "nothing to drain: the worker holds no replica"
                        );
                        Ok(())
                    }
                    WorkerState::Active | WorkerState::Draining => Err(Error::Client(e)),
                };
            }
            Err(e) => return Err(e),
        }
        let mut rx = s.assignments.subscribe();
        let mut ended = s.ended.subscribe();
        loop {
            if rx
                .borrow_and_update()
                .as_ref()
                .is_some_and(|a| a.state == WorkerState::Disabled)
            {
                return Ok(());
            }
            if let Some(why) = ended.borrow_and_update().clone() {
                return Err(Error::Ended(why));
            }
            tokio::select! {
                changed = rx.changed() => changed.map_err(|_| Error::Stopped)?,
                changed = ended.changed() => changed.map_err(|_| Error::Stopped)?,
            }
        }
    }
}

impl Shared {
    /// Registers with a new random incarnation: a new generation, fencing any older process.
    async fn register(&self) -> Result<(), Error> {
        let reg = RegisterRequest {
            incarnation: rand::rng().random_range(1..u64::MAX),
            address: self.cfg.address.clone(),
            zone: self.cfg.zone.clone(),
            capacity: self.cfg.capacity,
            labels: self.cfg.labels.clone(),
        };
        let w = self.client.register(&self.cfg.worker_id, &reg).await?;
        tracing::info!(worker = %self.cfg.worker_id, generation = w.generation, state = ?w.state, "registered");
        self.lock_handed().clear();
        self.generation.send_replace(w.generation);
        Ok(())
    }

    /// Asks for `to`. A request the client could not repeat safely (its outcome unknown) is
    /// settled by reading the record: done if the worker is there, asked again otherwise.
    async fn set_state(&self, to: WorkerState) -> Result<(), Error> {
        loop {
            if let Some(why) = self.ended.borrow().clone() {
                return Err(Error::Ended(why));
            }
            let mut req = StateRequest::to(to);
            req.generation = Some(*self.generation.borrow());
            match self.client.set_state(&self.cfg.worker_id, &req).await {
                Ok(_) => return Ok(()),
                Err(drover_client::Error::Unknown { .. }) => {
                    let w = self.client.worker(&self.cfg.worker_id).await?;
                    if w.record.state == to {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Lease false, now and for the heartbeat task's timer.
    fn drop_lease(&self) {
        self.lease_until.send_replace(Lease::default());
        set_lease(&self.lease, false);
    }

    /// Stops for good: no lease, no more tasks, and the reason for whoever watches.
    fn end(&self, why: Ended) {
        self.drop_lease();
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.ended.send_if_modified(|e| {
            let first = e.is_none();
            if first {
                *e = Some(why);
            }
            first
        });
    }

    fn lock_handed(&self) -> std::sync::MutexGuard<'_, BTreeSet<(u32, u64)>> {
        self.handed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fenced (declared dead), or recommissioned: register again and ask for the state the
    /// application wanted — Active, or Draining if a graceful shutdown was under way. A worker
    /// that was disabled meanwhile (drained while it was declared dead, or force-disabled)
    /// does not come back on its own: unless an operator recommissions it, this process ends
    /// ([`Ended::Disabled`]) and a new one registers anew. Returns whether it registered.
    async fn register_again(&self, recommissioned: bool) -> bool {
        self.drop_lease();
        if !recommissioned
            && let Ok(w) = self.client.worker(&self.cfg.worker_id).await
            && w.record.state == WorkerState::Disabled
            && w.record.generation == *self.generation.borrow()
        {
            let why = Ended::Disabled {
                generation: w.record.generation,
            };
            tracing::warn!(worker = %self.cfg.worker_id, "{why}");
            self.end(why);
            return false;
        }
        if let Err(e) = self.register().await {
            tracing::warn!(error = %e, "re-registration failed; will retry");
            return false;
        }
        let want = if self.draining.load(Ordering::SeqCst) {
            WorkerState::Draining
        } else if self.wants_active.load(Ordering::SeqCst) {
            WorkerState::Active
        } else {
            return true;
        };
        if let Err(e) = self.set_state(want).await {
            tracing::warn!(error = %e, ?want, "could not restore the state after re-registering");
        }
        true
    }
}

/// Sets the lease, waking watchers only on a change; returns whether it changed.
fn set_lease(lease: &watch::Sender<bool>, held: bool) -> bool {
    lease.send_if_modified(|v| std::mem::replace(v, held) != held)
}

/// What one heartbeat answer grants: the lease's new expiry, or why none.
fn lease_from(reply: &HeartbeatAck, sent: Instant, margin: Duration) -> Result<Instant, String> {
    // The cluster validates its settings; an answer outside them is not to be trusted with a
    // lease (a dead_after no longer than the heartbeat interval could never be kept up).
    if reply.dead_after_ms <= reply.heartbeat_interval_ms || reply.dead_after_ms > MAX_DEAD_AFTER_MS
    {
        return Err(format!(
            "the answer's dead_after_ms {} is not between its heartbeat interval ({} ms) and \
             {MAX_DEAD_AFTER_MS}",
            reply.dead_after_ms, reply.heartbeat_interval_ms
        ));
    }
    if reply.lease_wait_ms > 0 {
        return Err(format!(
            "an older process of this worker may still hold a lease for {} ms",
            reply.lease_wait_ms
        ));
    }
    let dead_after = Duration::from_millis(reply.dead_after_ms);
    let margin = margin.min(dead_after / 2);
    sent.checked_add(dead_after - margin)
        .ok_or_else(|| "the lease would end past the clock's range".to_owned())
}

/// Runs `work`, dropping the lease the moment it runs out meanwhile: the lease's timer runs
/// whatever the heartbeat task is waiting for (a call in flight, or the next beat).
async fn until_or_lease_end<T>(s: &Shared, work: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(work);
    loop {
        let until = s.lease_until.borrow().until;
        tokio::select! {
            out = &mut work => return out,
            _ = tokio::time::sleep_until(until.unwrap_or_else(Instant::now)), if until.is_some() => {
                s.lease_until.send_replace(Lease::default());
                if set_lease(&s.lease, false) {
                    tracing::warn!(worker = %s.cfg.worker_id, "lease lost: no heartbeat acknowledged in time; stop serving");
                }
            }
        }
    }
}

/// Heartbeats every interval and keeps the lease: valid until `sent + dead_after − margin` of
/// the last acknowledged heartbeat.
async fn heartbeats(s: Arc<Shared>) {
    let mut interval = s.cfg.heartbeat_interval;
    loop {
        let sent = Instant::now();
        let generation = *s.generation.borrow();
        let answer = until_or_lease_end(&s, s.beats.heartbeat(&s.cfg.worker_id, generation)).await;
        if let Some(o) = &s.cfg.observer {
            o.heartbeat(sent.elapsed(), answer.as_ref().err());
        }
        match answer {
            Ok(reply) if reply.register_again && !s.draining.load(Ordering::SeqCst) => {
                // An operator recommissions this disabled worker: this generation gives its
                // lease up (so the next need not wait it out), then a new generation and the
                // state the application asked for (Active once it said it is ready). The next
                // beat comes one interval on, whatever happened.
                tracing::info!(worker = %s.cfg.worker_id, generation, "recommissioned; registering again");
                if let Err(e) = s.client.release_lease(&s.cfg.worker_id, generation).await {
                    tracing::debug!(error = %e, "lease release before re-registering failed");
                }
                s.register_again(true).await;
            }
            Ok(reply) => {
                interval = Duration::from_millis(reply.heartbeat_interval_ms.clamp(10, 60_000));
                match lease_from(&reply, sent, s.cfg.lease_margin) {
                    Ok(until) if Instant::now() < until => {
                        s.lease_until.send_replace(Lease { until: Some(until) });
                        if set_lease(&s.lease, true) {
                            tracing::info!(worker = %s.cfg.worker_id, generation, "lease held");
                        }
                    }
                    Ok(_) => {
                        tracing::warn!(worker = %s.cfg.worker_id, "heartbeat acknowledged too late to extend the lease")
                    }
                    Err(why) => {
                        tracing::warn!(worker = %s.cfg.worker_id, "heartbeat acknowledged without a lease: {why}")
                    }
                }
            }
            Err(e) if e.is_superseded() => {
                let newer = s
                    .client
                    .worker(&s.cfg.worker_id)
                    .await
                    .map_or(0, |w| w.record.generation);
                let why = Ended::Superseded {
                    ours: generation,
                    newer,
                };
                tracing::error!(worker = %s.cfg.worker_id, "{why}");
                s.end(why);
                return;
            }
            Err(e) if e.is_fenced() => {
                tracing::warn!(worker = %s.cfg.worker_id, error = %e, "declared dead; registering again");
                if s.register_again(false).await {
                    continue;
                }
                if s.ended.borrow().is_some() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(worker = %s.cfg.worker_id, error = %e, "heartbeat not acknowledged")
            }
        }
        // The next beat one interval after this one was sent, at the interval the cluster
        // just gave (not the one known before its answer).
        until_or_lease_end(&s, tokio::time::sleep_until(sent + interval)).await;
    }
}

/// Long-polls the assignments, publishes each new version, and hands out the joining and
/// leaving replicas as tasks (once per partition and epoch).
async fn watch_assignments(s: Arc<Shared>) {
    let mut after = 0;
    loop {
        if s.ended.borrow().is_some() {
            return;
        }
        match s
            .client
            .assignments(&s.cfg.worker_id, after, Duration::from_secs(30))
            .await
        {
            Ok(a) => {
                let generation = *s.generation.borrow();
                if a.generation != generation {
                    // A newer registration (ours, about to be published) or an older view
                    // from a lagging node: look again without publishing.
                    after = 0;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                // Never backwards: a lagging node's older answer is ignored.
                let known = s
                    .assignments
                    .borrow()
                    .as_ref()
                    .filter(|p| p.generation == generation)
                    .map(|p| p.version);
                if known.is_some_and(|v| a.version < v) {
                    after = known.unwrap_or(after);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                after = a.version;
                if let Some(tasks) = s.tasks.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    let mut handed = s.lock_handed();
                    for r in a.replicas.iter().filter(|r| r.role != ReplicaRole::Serving) {
                        if handed.insert((r.partition, r.since)) {
                            let _ = tasks.send(Task {
                                partition: r.partition,
                                role: r.role,
                                epoch: r.since,
                                assignment: r.clone(),
                            });
                        }
                    }
                }
                s.assignments.send_replace(Some(a));
            }
            Err(e) => {
                if s.ended.borrow().is_some() {
                    return;
                }
                tracing::debug!(error = %e, "assignments poll failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
