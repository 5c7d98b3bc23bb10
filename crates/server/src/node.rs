//! A Drover node: the store, the Raft instance, bootstrap or join, the background membership
//! task, and the HTTP server — composed by [`run`], which the `drover` binary calls with a bound
//! listener and a shutdown future.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use drover_raft::{Faults, Peering, Raft, Transport};
use drover_store::{StateHandle, StateMachine};
use openraft::metrics::RaftMetrics;
use openraft::{BasicNode, ChangeMembers};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::api::{self, LeaderHint};
use crate::config::{Config, Membership};
use crate::liveness::{Liveness, Timing};

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage: {0}")]
    Store(#[from] drover_store::Error),
    #[error("raft: {0}")]
    Raft(String),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

struct Inner {
    config: Config,
    raft: Raft,
    state: StateHandle,
    state_machine: StateMachine,
    commit_index: Arc<AtomicU64>,
    faults: Faults,
    /// For forwarding to the leader and for joining.
    http: reqwest::Client,
    http_metrics: crate::api::metrics::HttpMetrics,
    heartbeats: crate::liveness::Heartbeats,
    /// Coalesces concurrent linearizable reads onto shared leadership confirmations.
    reads: Arc<crate::read_index::ReadIndex>,
    /// Group-commits concurrent KV writes into shared log entries.
    writes: crate::batcher::Batcher,
}

/// A handle on the running node, shared by the API handlers and background tasks.
#[derive(Clone)]
pub struct Node(Arc<Inner>);

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl Node {
    pub fn id(&self) -> u64 {
        self.0.config.id
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn raft(&self) -> &Raft {
        &self.0.raft
    }

    pub(crate) fn read_index(&self) -> &crate::read_index::ReadIndex {
        &self.0.reads
    }

    pub(crate) fn batcher(&self) -> &crate::batcher::Batcher {
        &self.0.writes
    }

    pub fn state(&self) -> &StateHandle {
        &self.0.state
    }

    pub fn faults(&self) -> &Faults {
        &self.0.faults
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.0.http
    }

    pub fn commit_index(&self) -> u64 {
        self.0.commit_index.load(Ordering::Relaxed)
    }

    pub fn snapshots_installed(&self) -> u64 {
        self.0.state_machine.snapshots_installed()
    }

    /// The leader's soft liveness state.
    pub fn heartbeats(&self) -> &crate::liveness::Heartbeats {
        &self.0.heartbeats
    }

    pub(crate) fn http_metrics(&self) -> &crate::api::metrics::HttpMetrics {
        &self.0.http_metrics
    }

    /// The planner's view of liveness at `now`: the workers this leader counts as suspect
    /// (silent past `suspect_after`, or not heard since it became leader), and its clock. Used
    /// by the scheduling loop, drain plans and drain progress alike, so they all agree.
    pub(crate) fn planner_view(
        &self,
        s: &drover_types::ClusterState,
        clock: &drover_store::ApplyClock,
        now: Instant,
    ) -> drover_scheduler::Liveness {
        let t = Timing::at(&s.settings, clock, now);
        let mut suspect = BTreeSet::new();
        // Not heard yet is no news: the planner places nothing on these workers but changes
        // nothing because of them (no leader re-picked, no move started).
        let mut unheard = BTreeSet::new();
        for w in s.workers.values() {
            let applied = clock.generation_applied(&w.id, w.generation);
            match self.heartbeats().liveness(w, applied, &t, now) {
                Liveness::Suspect => {
                    suspect.insert(w.id.clone());
                }
                Liveness::Unknown => {
                    suspect.insert(w.id.clone());
                    unheard.insert(w.id.clone());
                }
                Liveness::Alive | Liveness::Dead => {}
            }
        }
        drover_scheduler::Liveness {
            suspect,
            unheard,
            now_ms: crate::api::now_ms(),
        }
    }

    /// Waits until this leader knows whether each worker that may hold or take replicas is
    /// alive — it has heard it, or `suspect_after` has passed without — so a plan made now is the
    /// plan it would make later (a new leader's first moments would otherwise count every
    /// worker as a suspect: no candidate for anything). Bounded by `suspect_after`.
    pub(crate) async fn liveness_known(&self) {
        loop {
            let now = Instant::now();
            let unknown = {
                let guard = self.state().read();
                let s = &guard.state;
                let clock = self.state().clock();
                let t = Timing::at(&s.settings, &clock, now);
                s.workers.values().any(|w| {
                    matches!(
                        w.state,
                        drover_types::WorkerState::Active | drover_types::WorkerState::Draining
                    ) && {
                        let applied = clock.generation_applied(&w.id, w.generation);
                        self.heartbeats().liveness(w, applied, &t, now) == Liveness::Unknown
                    }
                })
            };
            if !unknown {
                return;
            }
            // Unknown turns into alive or suspect within `suspect_after`; look again soon.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A worker's liveness as this leader sees it at `now` (`None` on a follower: soft state).
    pub(crate) fn liveness_of(
        &self,
        s: &drover_types::ClusterState,
        w: &drover_types::Worker,
        now: Instant,
    ) -> Option<Liveness> {
        self.heartbeats().leader_since()?;
        let clock = self.state().clock();
        let t = Timing::at(&s.settings, &clock, now);
        let applied = clock.generation_applied(&w.id, w.generation);
        Some(self.heartbeats().liveness(w, applied, &t, now))
    }

    /// Follows the applied state version (for long polls).
    pub fn versions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.state_machine.subscribe()
    }

    /// Follows the version of the last applied change that matters to placement.
    pub(crate) fn placement_versions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.state_machine.subscribe_placement()
    }

    /// The id and address of `id` in the current membership.
    pub(crate) fn hint(&self, id: Option<u64>) -> Option<LeaderHint> {
        let id = id?;
        let m = self.raft().metrics().borrow().clone();
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some(LeaderHint {
            id,
            address: node.addr,
        })
    }

    /// The current leader as this node knows it.
    pub(crate) fn leader(&self) -> Option<LeaderHint> {
        let leader = self.raft().metrics().borrow().current_leader;
        self.hint(leader)
    }

    /// How many of `among` answer a health probe within a second and are caught up with the
    /// leader (the leader itself counts). Replication metrics alone cannot tell a node that died
    /// a moment ago from a live one, so each is asked.
    pub(crate) async fn reachable_voters(
        &self,
        m: &RaftMetrics<u64, BasicNode>,
        among: &BTreeSet<u64>,
    ) -> usize {
        let membership = m.membership_config.membership();
        let probes = among.iter().map(|id| {
            let addr = membership.get_node(id).map(|n| n.addr.clone());
            let caught_up = self.caught_up_voters(m, &BTreeSet::from([*id])) == 1;
            let me = *id == self.id();
            async move {
                if me {
                    return true;
                }
                let Some(addr) = addr else { return false };
                let probe = self
                    .http()
                    .get(format!("http://{addr}/healthz"))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await;
                let answered = probe.as_ref().is_ok_and(|r| r.status().is_success());
                tracing::debug!(voter = id, caught_up, answered, "quorum probe");
                caught_up && answered
            }
        });
        futures::future::join_all(probes)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    }

    /// Voters in `among` that are caught up with the leader (the leader itself counts).
    pub(crate) fn caught_up_voters(
        &self,
        m: &RaftMetrics<u64, BasicNode>,
        among: &BTreeSet<u64>,
    ) -> usize {
        let last = m.last_log_index.unwrap_or(0);
        let replication = m.replication.clone().unwrap_or_default();
        among
            .iter()
            .filter(|id| {
                **id == self.id()
                    || replication
                        .get(id)
                        .and_then(|matched| *matched)
                        .is_some_and(|l| last.saturating_sub(l.index) <= api::CAUGHT_UP_LAG_PUB)
            })
            .count()
    }
}

/// Runs a node until `shutdown` resolves: opens the store, starts Raft, bootstraps or joins (only
/// when the data dir is new), serves the API and Raft RPCs on `listener`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let store = drover_store::open(config.data_dir.join("store"))?;
    let commit_index = store.log.committed_index();
    let peering = Peering {
        cluster_id: config.cluster_id.clone(),
        secret: config.cluster_secret.clone(),
    };
    if peering.secret.is_none() {
        tracing::warn!(
            "NO CLUSTER SECRET: any process that knows the cluster id can send Raft messages to this node"
        );
    }
    if config.admin_token.is_none() && config.worker_token.is_none() {
        tracing::warn!("NO API TOKENS: this node serves every request without authentication");
    }
    if config.unsafe_test.any() {
        tracing::error!(
            switches = ?config.unsafe_test,
            "UNSAFE TEST SWITCHES ON: this node breaks linearizability or durability on purpose; \
             never run it outside the fault-injection harness's tests"
        );
    }
    let faults = Faults::default();
    let transport = Transport::new(
        config.listen.ip(),
        peering.clone(),
        faults.clone(),
        config.raft.max_rpc_bytes,
    )?;
    let raft_config = config
        .raft
        .openraft_config(&config.cluster_id)
        .map_err(Error::Raft)?;
    let state = store.state_machine.handle();
    let state_machine = store.state_machine.clone();
    let raft = Raft::new(
        config.id,
        raft_config,
        transport,
        store.log,
        store.state_machine,
    )
    .await
    .map_err(|e| Error::Raft(e.to_string()))?;
    let http = reqwest::Client::builder()
        .local_address(config.listen.ip())
        // Long enough for the leader to answer any proposal (bounded by the request timeout) or
        // membership change (10 s); short enough that a request forwarded to a leader that was
        // just cut off comes back `outcome_unknown` instead of hanging.
        .timeout(config.raft.request_timeout() + Duration::from_secs(10))
        .no_proxy()
        .build()?;

    let (writes, write_queue) = crate::batcher::Batcher::new(config.raft.request_timeout());
    let node = Node(Arc::new(Inner {
        config: config.clone(),
        raft: raft.clone(),
        state,
        state_machine,
        commit_index,
        faults,
        http,
        http_metrics: Default::default(),
        heartbeats: Default::default(),
        reads: crate::read_index::ReadIndex::new(),
        writes,
    }));
    let proposing = node.clone();
    tokio::spawn(write_queue.run(move |commands| {
        let node = proposing.clone();
        async move {
            let writes = commands.len() as f64;
            node.http_metrics().kv_writes_per_entry.observe(writes);
            node.propose_batch(commands).await
        }
    }));
    let confirming = node.clone();
    tokio::spawn(node.0.reads.clone().run(move || {
        let node = confirming.clone();
        async move { node.confirm_leadership().await }
    }));

    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
    match &config.membership {
        _ if initialized => tracing::info!(
            id = config.id,
            "restarting with existing data; not bootstrapping"
        ),
        Membership::Initial(members) => {
            tokio::spawn(bootstrap(node.clone(), members.clone()));
        }
        Membership::Join(via) => {
            tokio::spawn(join(node.clone(), via.clone()));
        }
    }
    tokio::spawn(promote_learners(node.clone()));
    tokio::spawn(track_leadership(node.clone()));
    tokio::spawn(crate::schedule::run(node.clone()));

    let app = api::router(node.clone()).merge(drover_raft::routes(
        raft.clone(),
        peering,
        config.raft.max_rpc_bytes,
    ));
    tracing::info!(id = config.id, listen = %config.listen, "serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("shutting down raft");
    raft.shutdown()
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
    Ok(())
}

/// Initializes a new cluster with `members`, staggered by rank: the lowest id initializes at
/// once, the next after a pause, and so on, each only if it has not meanwhile heard from a
/// leader. An initializing openraft node campaigns at once, so all of them initializing together
/// would split the first vote; staggering still forms the cluster when the first node is down.
/// Every node proposes the same membership, so whichever initializes, they agree.
async fn bootstrap(node: Node, members: BTreeMap<u64, std::net::SocketAddr>) {
    let rank = members.keys().position(|id| *id == node.id()).unwrap_or(0);
    let pause = node.config().raft.election_timeout_max * 2;
    tokio::time::sleep(pause * u32::try_from(rank).unwrap_or(u32::MAX)).await;
    match node.raft().is_initialized().await {
        Ok(true) => {
            tracing::info!("joined the bootstrapping cluster through its leader");
            return;
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot bootstrap: raft stopped");
            return;
        }
    }
    let nodes: BTreeMap<u64, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr.to_string())))
        .collect();
    match node.raft().initialize(nodes).await {
        Ok(()) => tracing::info!(id = node.id(), "bootstrapped a new cluster"),
        Err(e) => tracing::info!("bootstrap: {e}"),
    }
}

/// Asks the cluster, through `via`, to add this node; retries until it is a member.
async fn join(node: Node, via: String) {
    let body = serde_json::json!({"id": node.id(), "address": node.config().listen.to_string()});
    let mut delay = Duration::from_millis(200);
    loop {
        let mut request = node
            .http()
            .post(format!("http://{via}/v1/cluster/members"))
            .json(&body);
        if let Some(token) = &node.config().admin_token {
            request = request.bearer_auth(token);
        }
        let result = request.send().await;
        match result {
            Ok(r) if r.status().is_success() => {
                tracing::info!(via, "joined the cluster as a learner");
                return;
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                tracing::warn!(via, %status, text, "join refused; retrying");
            }
            Err(e) => tracing::warn!(via, error = %e, "cannot reach the cluster to join; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Rebuilds the leader's soft state on every change of leadership — by term, not by role: a
/// node that lost leadership and won it back between two looks at its metrics (the watch
/// keeps only the latest) leads in a new term, and the old term's view must not carry over.
async fn track_leadership(node: Node) {
    let mut metrics = node.raft().metrics();
    let mut leading_in: Option<u64> = None;
    loop {
        let now_leading_in = {
            let m = metrics.borrow();
            (m.state == openraft::ServerState::Leader).then_some(m.current_term)
        };
        if now_leading_in != leading_in {
            leading_in = now_leading_in;
            if let Some(term) = leading_in {
                node.heartbeats().became_leader(term, Instant::now());
                tracing::info!(
                    term,
                    "became leader: liveness starts afresh, no worker declared dead until the \
                     death threshold has passed"
                );
                tokio::spawn(initial_settings(node.clone()));
            } else {
                node.heartbeats().lost_leadership();
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// On the first leader of a new cluster, commits this node's configured liveness settings as
/// the cluster's initial settings (compare-and-set on settings version 0, so it happens once
/// and never overwrites an operator's change). Heartbeats are not acknowledged before: no lease
/// is ever granted under settings the cluster did not commit.
async fn initial_settings(node: Node) {
    let l = node.config().liveness;
    let ms = |d: Duration| Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let patch = drover_types::SettingsPatch {
        heartbeat_interval_ms: ms(l.heartbeat_interval),
        suspect_after_ms: ms(l.suspect_after),
        dead_after_ms: ms(l.dead_after),
        ..Default::default()
    };
    loop {
        if node.heartbeats().leader_since().is_none()
            || node.state().read().state.settings.version != 0
        {
            return;
        }
        let command = drover_types::Command::UpdateSettings {
            patch: patch.clone(),
            expected_version: Some(0),
        };
        match node.propose(command).await {
            Ok(_) => {
                tracing::info!(?patch, "committed the cluster's initial settings");
                return;
            }
            Err(e) if e.code == "version_conflict" => return,
            Err(e) => {
                tracing::warn!(error = %e.message, "initial settings not committed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// On the leader, promotes learners to voters once they have caught up.
async fn promote_learners(node: Node) {
    let mut metrics = node.raft().metrics();
    loop {
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if !api::is_leader(&node) {
            continue;
        }
        let m = node.raft().metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let learners: BTreeSet<u64> = membership.learner_ids().collect();
        let ready: BTreeSet<u64> = learners
            .into_iter()
            .filter(|id| node.caught_up_voters(&m, &BTreeSet::from([*id])) == 1)
            .collect();
        if ready.is_empty() {
            continue;
        }
        match node
            .raft()
            .change_membership(ChangeMembers::AddVoterIds(ready.clone()), false)
            .await
        {
            Ok(_) => tracing::info!(?ready, "promoted caught-up learners to voters"),
            Err(e) => tracing::warn!(?ready, error = %e, "promotion failed; will retry"),
        }
    }
}
