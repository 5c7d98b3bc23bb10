//! Starting a node's core: opens the store (and runs a recovery on it, if asked: `recovery.rs`),
//! starts Raft, assembles the [`Node`] and spawns the tasks that run for its life — group
//! commit, shared read confirmations, bootstrap or join (only when the data dir is new),
//! learner promotion, leadership tracking and the scheduling loop. Serving it is the caller's (`run.rs`: the HTTP layer and Raft's routes).

use std::time::Duration;

use tokio::runtime::Handle;

use drover_raft::{Faults, Peering, Raft, Transport};

use super::batcher::Batcher;
use super::node::{Inner, Node};
use super::read_index::ReadIndex;
use super::reads::HEARTBEAT_CONFIRM_GAP;
use super::recovery::{self, RecoveryError};
use super::{leadership, membership, schedule};
use crate::config::{Config, Membership};

/// Why a node's core could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Store(#[from] drover_store::Error),
    #[error("raft: {0}")]
    Raft(String),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
}

/// Opens the store and starts Raft and the node's background tasks; the returned node is
/// ready to serve. Raft — openraft's core, its replication streams and its state-machine
/// worker, and with them the connections its RPCs go out on — runs on `raft_lane`, the rest on
/// the caller's runtime. Stop it with `node.raft().shutdown()`.
pub async fn start(config: Config, raft_lane: &Handle) -> Result<Node, StartError> {
    let store = drover_store::open(config.data_dir.join("store"))?;
    recovery::recover(&store, &config)?;
    let timings = store.timings.clone();
    let commit_index = store.log.committed_index();
    let fsync_gate = store.log.fsync_gate();
    let peering = Peering {
        cluster_id: config.cluster_id.clone(),
        secret: config.cluster_secret.clone(),
    };
    if peering.secret.is_none() {
        tracing::warn!(
            "NO CLUSTER SECRET: any process that knows the cluster id can send Raft messages to this node"
        );
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
        config.tls.as_ref().map(|t| t.client.clone()),
    )?;
    let rpc_timings = transport.timings().clone();
    let raft_config = config
        .raft
        .openraft_config(&config.cluster_id)
        .map_err(StartError::Raft)?;
    let state = store.state_machine.handle();
    let state_machine = store.state_machine.clone();
    // openraft spawns its tasks on the runtime that creates it.
    let raft = raft_lane
        .spawn(Raft::new(
            config.id,
            raft_config,
            transport,
            store.log,
            store.state_machine,
        ))
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?
        .map_err(|e| StartError::Raft(e.to_string()))?;
    let peer_client = drover_tls::http_client(config.tls.as_ref().map(|t| t.client.clone()))
        .local_address(config.listen.ip())
        // Long enough for the leader to answer any proposal (bounded by the request timeout) or
        // membership change (10 s); short enough that a request forwarded to a leader that was
        // just cut off comes back `outcome_unknown` instead of hanging.
        .timeout(config.raft.request_timeout() + Duration::from_secs(10))
        .no_proxy()
        .build()?;

    let (writes, write_queue) =
        Batcher::new(config.raft.request_timeout(), config.max_queued_writes);
    let node = Node::new(Inner {
        config: config.clone(),
        peering,
        raft: raft.clone(),
        state,
        state_machine,
        commit_index,
        faults,
        fsync_gate,
        peer_client,
        metrics: Default::default(),
        heartbeats: Default::default(),
        reads: ReadIndex::new(),
        beats: ReadIndex::paced(HEARTBEAT_CONFIRM_GAP),
        writes,
    });
    node.metrics().register_store(&timings);
    node.metrics().register_transport(&rpc_timings);
    let proposing = node.clone();
    let write_queue = write_queue.observing_waits(node.metrics().batch_wait_seconds.clone());
    tokio::spawn(write_queue.run(move |commands| {
        let node = proposing.clone();
        async move {
            let writes = commands.len() as f64;
            node.metrics().kv_writes_per_entry.observe(writes);
            node.propose_batch(commands).await
        }
    }));
    for rounds in [node.read_index(), node.heartbeat_confirmations()] {
        let confirming = node.clone();
        tokio::spawn(rounds.clone().run(move || {
            let node = confirming.clone();
            async move {
                let started = std::time::Instant::now();
                let confirmed = node.confirm_leadership().await;
                node.metrics()
                    .confirmation_seconds
                    .observe(started.elapsed().as_secs_f64());
                confirmed
            }
        }));
    }

    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
    match &config.membership {
        _ if initialized => tracing::info!(
            id = config.id,
            "restarting with existing data; not bootstrapping"
        ),
        Membership::Initial(members) => {
            tokio::spawn(membership::bootstrap(node.clone(), members.clone()));
        }
        Membership::Join(via) => {
            tokio::spawn(membership::join(node.clone(), via.clone()));
        }
        // Only with --force-new-cluster, which refuses a data dir holding no cluster.
        Membership::Existing => {
            return Err(StartError::Raft(
                "the data dir holds no cluster to start".into(),
            ));
        }
    }
    tokio::spawn(membership::promote_learners(node.clone()));
    tokio::spawn(leadership::track_leadership(node.clone()));
    tokio::spawn(schedule::run(node.clone()));
    Ok(node)
}
