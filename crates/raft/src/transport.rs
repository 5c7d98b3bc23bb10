//! The sending side of Raft RPCs: openraft's `RaftNetworkFactory` over one pooled HTTP client.
//!
//! The client binds its outgoing connections to the node's own address, so a peer (and a test's
//! firewall rules) sees traffic from the address the node is known by. Each RPC is bounded by
//! openraft's per-RPC deadline and by the body limit.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_types::codec;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{CLUSTER_ID_HEADER, CLUSTER_SECRET_HEADER, Faults, Node, NodeId, Peering, TypeConfig};

/// Creates connections to peers; cheap to clone (the HTTP pool is shared).
#[derive(Clone, Debug)]
pub struct Transport {
    client: reqwest::Client,
    /// `https` or `http`.
    scheme: &'static str,
    peering: Peering,
    faults: Faults,
    max_rpc_bytes: usize,
    peers: Arc<PeerLog>,
    timings: RpcTimings,
}

/// Round trips of the RPCs this node sends, by kind: from the request's encoding to its
/// answer's decoding, failed ones included. `heartbeat` is an append with no entries (Raft's
/// own heartbeats and the leadership confirmations of linearizable reads); `append` carries
/// entries. Shared by every clone of the transport.
#[derive(Clone, Debug)]
pub struct RpcTimings {
    pub round_trip: Family<RpcLabels, Histogram>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub rpc: &'static str,
}

/// Observes the time since `started` when dropped: at every return of an RPC.
struct Timed {
    started: std::time::Instant,
    histogram: Histogram,
}

impl Drop for Timed {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

impl Default for RpcTimings {
    fn default() -> Self {
        // 20 µs to ~5 s, as the store's timings.
        RpcTimings {
            round_trip: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_02, 2.0, 18))
            }),
        }
    }
}

/// Whether each peer answered its last RPC, so that a peer going down is logged once when it
/// goes (and once when it comes back), not on every retry: openraft retries a down peer many
/// times a second. The lock is held only to read and flip one flag, never across an await.
#[derive(Debug, Default)]
struct PeerLog {
    down: Mutex<BTreeMap<NodeId, bool>>,
}

impl PeerLog {
    /// Records one RPC's outcome; logs if it changes what is known of the peer.
    fn record(&self, target: NodeId, failure: Option<&str>) {
        let was_down = {
            let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
            let now_down = failure.is_some();
            let was = down.insert(target, now_down);
            if was == Some(now_down) {
                return;
            }
            was.unwrap_or(false)
        };
        match failure {
            Some(why) => tracing::warn!(peer = target, error = why, "peer unreachable"),
            None if was_down => tracing::info!(peer = target, "peer reachable again"),
            None => {}
        }
    }
}

fn network_err<E: std::error::Error>(e: impl Display) -> RPCError<NodeId, Node, E> {
    RPCError::Network(NetworkError::new(&io::Error::other(e.to_string())))
}

impl Transport {
    /// A transport whose connections originate from `source` (the node's own IP), over TLS
    /// with `tls` (HTTPS to every peer), else plain HTTP.
    pub fn new(
        source: IpAddr,
        peering: Peering,
        faults: Faults,
        max_rpc_bytes: usize,
        tls: Option<drover_tls::rustls::ClientConfig>,
    ) -> Result<Transport, reqwest::Error> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        // The receiving node tells a peer's connection from a client's by its first request
        // line (`POST /raft/…`), which HTTP/2 does not have. Over TLS the handshake picks the
        // protocol (hyper follows it whatever the builder says), so only HTTP/1.1 is offered.
        let tls = tls.map(|mut config| {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            config
        });
        let client = drover_tls::http_client(tls)
            .http1_only()
            .local_address(source)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(2))
            .no_proxy()
            .build()?;
        Ok(Transport {
            client,
            scheme,
            peering,
            faults,
            max_rpc_bytes,
            peers: Arc::default(),
            timings: RpcTimings::default(),
        })
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The RPC round-trip histograms, for the server's metrics.
    pub fn timings(&self) -> &RpcTimings {
        &self.timings
    }

    /// One RPC to `target`, timed as `rpc` in [`RpcTimings`] however it ends.
    async fn call<Req, Resp, E>(
        &self,
        rpc: &'static str,
        target: NodeId,
        node: &Node,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Node, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let _timed = Timed {
            started: std::time::Instant::now(),
            histogram: self
                .timings
                .round_trip
                .get_or_create(&RpcLabels { rpc })
                .clone(),
        };
        if self.faults.before_send(target).await.is_err() {
            let e = io::Error::other(format!(
                "message to node {target} dropped by fault injection"
            ));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        }
        let body = codec::encode(req).map_err(network_err)?;
        let mut request = self
            .client
            .post(format!("{}://{}/raft/{path}", self.scheme, node.addr))
            .timeout(option.hard_ttl())
            .header(CLUSTER_ID_HEADER, &self.peering.cluster_id)
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        if let Some(secret) = &self.peering.secret {
            request = request.header(CLUSTER_SECRET_HEADER, secret);
        }
        let response = request.send().await;
        // A peer that cannot be connected to (or does not answer in time) is down; any answer,
        // even an error status, means it is up.
        self.peers.record(
            target,
            response
                .as_ref()
                .err()
                .filter(|e| e.is_connect() || e.is_timeout())
                .map(|e| {
                    let mut why = e.to_string();
                    let mut source = std::error::Error::source(e);
                    while let Some(s) = source {
                        why = format!("{why}: {s}");
                        source = s.source();
                    }
                    why
                })
                .as_deref(),
        );
        let response = response.map_err(|e| {
            if e.is_connect() {
                // Unreachable makes openraft back off instead of retrying at once.
                RPCError::Unreachable(Unreachable::new(&e))
            } else {
                RPCError::Network(NetworkError::new(&e))
            }
        })?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|n| n > self.max_rpc_bytes as u64)
        {
            return Err(network_err(format!(
                "response from node {target} is too large"
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(network_err(format!(
                "node {target} answered {status}: {text}"
            )));
        }
        let result: Result<Resp, E> = codec::decode(&bytes).map_err(network_err)?;
        result
            .map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(target, node.clone(), e)))
    }
}

impl RaftNetworkFactory<TypeConfig> for Transport {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Connection {
        Connection {
            transport: self.clone(),
            target,
            node: node.clone(),
        }
    }
}

/// A connection to one peer (a name for it: requests go through the shared pool).
#[derive(Debug)]
pub struct Connection {
    transport: Transport,
    target: NodeId,
    node: Node,
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let kind = if rpc.entries.is_empty() {
            "heartbeat"
        } else {
            "append"
        };
        self.transport
            .call(kind, self.target, &self.node, "append", &rpc, &option)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.transport
            .call(
                "snapshot",
                self.target,
                &self.node,
                "snapshot",
                &rpc,
                &option,
            )
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.transport
            .call("vote", self.target, &self.node, "vote", &rpc, &option)
            .await
    }
}
