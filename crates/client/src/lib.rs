//! A typed client for Drover's admin HTTP API (SPEC §4).
//!
//! One [`Client`] talks to several nodes. Any node serves any request (followers forward to the
//! leader), so the client sticks to the node that last answered and moves on when it cannot be
//! reached or has no leader. Retries follow one rule: a request is sent again only when that
//! cannot apply it twice — the connection failed before the request went out, or the request is
//! idempotent (reads, registration with the same incarnation, heartbeats, acknowledgements,
//! state changes to a state). A write whose outcome is unknown is reported as
//! [`Error::Unknown`], never silently retried.
//!
//! This file holds the endpoint methods, one per route, each describing its request; how a
//! request reaches a node (failover, leader hints, backoff, the retry rule) is `transport.rs`,
//! and the bodies are `drover-api`'s, the same types the server answers with.

mod error;
pub mod stdout;
mod transport;

use std::time::Duration;

use drover_api::{
    AckRequest, AddMember, Assignments, ClusterStatus, CreateTable, DrainAnswer, DrainSetRequest,
    EventPage, HeartbeatAck, HeartbeatRequest, KvDeleted, KvItem, KvPage, KvPut, PartitionPage,
    RegisterRequest, Routing, SettingsRequest, StateChanged, StateRequest, WorkerPage,
    WorkerRemoved, WorkerView,
};
use drover_types::{Partition, Settings, SettingsPatch, Table, Worker, WorkerState};
use reqwest::Method;
use serde_json::Value;

pub use error::{Error, ErrorCode, LeaderHint, Result};
use transport::{Call, Repeat, key_path, seg};
pub use transport::{Client, ClientOptions};

impl Client {
    // ---- cluster ------------------------------------------------------------------------

    pub async fn cluster(&self) -> Result<ClusterStatus> {
        self.json(Call::get("/v1/cluster")).await
    }

    /// Adds a node (as a learner; the leader promotes it once caught up).
    pub async fn add_member(&self, id: u64, address: &str) -> Result<Value> {
        let body = AddMember {
            id,
            address: address.to_owned(),
        };
        let call = Call::new(Method::POST, "/v1/cluster/members", Repeat::Once).body(&body)?;
        self.json(call).await
    }

    pub async fn remove_member(&self, id: u64) -> Result<Value> {
        let path = format!("/v1/cluster/members/{id}");
        self.json(Call::new(Method::DELETE, path, Repeat::Once))
            .await
    }

    // ---- workers ------------------------------------------------------------------------

    /// Registers (or re-registers) a worker. Idempotent for one incarnation.
    pub async fn register(&self, id: &str, reg: &RegisterRequest) -> Result<Worker> {
        let path = format!("/v1/workers/{}", seg(id));
        self.json(Call::new(Method::PUT, path, Repeat::Safe).body(reg)?)
            .await
    }

    pub async fn worker(&self, id: &str) -> Result<WorkerView> {
        self.json(Call::get(format!("/v1/workers/{}", seg(id))))
            .await
    }

    /// One page of workers, optionally filtered by state and zone.
    pub async fn workers(
        &self,
        state: Option<WorkerState>,
        zone: Option<&str>,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<WorkerPage> {
        let call = Call::get("/v1/workers")
            .query_opt("state", state)
            .query_opt("zone", zone)
            .query_opt("cursor", cursor)
            .query_opt("limit", limit);
        self.json(call).await
    }

    /// Every worker, following the cursor.
    pub async fn all_workers(&self, state: Option<WorkerState>) -> Result<Vec<WorkerView>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .workers(state, None, cursor.as_deref(), Some(1000))
                .await?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) if page.more => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// Changes a worker's state. `generation` is for agents (fencing).
    ///
    /// Asking for the state a worker is in succeeds and changes nothing, but whether a repeat
    /// is harmless depends on what happened in between: a repeated `active` cancels a drain an
    /// operator started meanwhile, a repeated forced disable drops the replicas of a worker that
    /// came back. So only a plain request for `draining` is repeated on an unknown outcome;
    /// every other one is sent once and answered [`Error::Unknown`] (SPEC §4).
    pub async fn set_state(&self, id: &str, change: &StateRequest) -> Result<StateChanged> {
        let path = format!("/v1/workers/{}/state", seg(id));
        let repeat = if change.state == WorkerState::Draining && !change.force {
            Repeat::Safe
        } else {
            Repeat::Once
        };
        self.json(Call::new(Method::POST, path, repeat).body(change)?)
            .await
    }

    pub async fn heartbeat(&self, id: &str, generation: u64) -> Result<HeartbeatAck> {
        self.send_heartbeat(id, generation, false).await
    }

    /// Tells the leader this process (at `generation`) stopped serving for good, so a newer
    /// process of the worker may hold a lease at once instead of waiting this one's out.
    pub async fn release_lease(&self, id: &str, generation: u64) -> Result<HeartbeatAck> {
        self.send_heartbeat(id, generation, true).await
    }

    async fn send_heartbeat(
        &self,
        id: &str,
        generation: u64,
        release: bool,
    ) -> Result<HeartbeatAck> {
        let body = HeartbeatRequest {
            generation,
            release,
        };
        let path = format!("/v1/workers/{}/heartbeat", seg(id));
        self.json(Call::new(Method::POST, path, Repeat::Safe).body(&body)?)
            .await
    }

    pub async fn remove_worker(&self, id: &str) -> Result<WorkerRemoved> {
        let path = format!("/v1/workers/{}", seg(id));
        self.json(Call::new(Method::DELETE, path, Repeat::Once))
            .await
    }

    /// The worker's assignments once their version exceeds `after`, or after `wait` unchanged.
    pub async fn assignments(&self, id: &str, after: u64, wait: Duration) -> Result<Assignments> {
        let call = Call::get(format!("/v1/workers/{}/assignments", seg(id)))
            .query("after", after)
            .query("wait", format!("{}ms", wait.as_millis()))
            .waiting(wait);
        self.json(call).await
    }

    /// Drains one worker (`dry_run`: only plan). A drain that cannot finish is refused with
    /// `drain_infeasible`; see [`Client::drain_workers`] to start one anyway.
    pub async fn drain(&self, id: &str, dry_run: bool) -> Result<DrainAnswer> {
        let opts = DrainOptions {
            dry_run,
            ..DrainOptions::default()
        };
        self.drain_workers(&[id.to_owned()], opts).await
    }

    /// Drains a set of workers as one operation (a rack, a zone).
    pub async fn drain_set(&self, ids: &[String], dry_run: bool) -> Result<DrainAnswer> {
        let opts = DrainOptions {
            dry_run,
            ..DrainOptions::default()
        };
        self.drain_workers(ids, opts).await
    }

    /// Drains `ids` as one operation with `opts`. A real drain is sent once (its outcome may
    /// depend on what happened in between); a dry run is a read.
    pub async fn drain_workers(&self, ids: &[String], opts: DrainOptions) -> Result<DrainAnswer> {
        self.drain_with_reason(ids, opts, None).await
    }

    /// [`Client::drain_workers`] with a reason, recorded on each worker and in its event.
    pub async fn drain_with_reason(
        &self,
        ids: &[String],
        opts: DrainOptions,
        reason: Option<&str>,
    ) -> Result<DrainAnswer> {
        let (deadline, deadline_in) = match opts.deadline {
            Expiry::Never => (None, None),
            Expiry::At(ms) => (Some(ms), None),
            Expiry::After(d) => (None, Some(format!("{}ms", d.as_millis()))),
        };
        let body = DrainSetRequest {
            workers: ids.to_vec(),
            dry_run: opts.dry_run,
            allow_blocked: opts.allow_blocked,
            reason: reason.map(str::to_owned),
            deadline,
            deadline_in,
            on_deadline: opts.on_deadline,
        };
        let repeat = if opts.dry_run {
            Repeat::Safe
        } else {
            Repeat::Once
        };
        self.json(Call::new(Method::POST, "/v1/drain", repeat).body(&body)?)
            .await
    }

    // ---- partitions ---------------------------------------------------------------------

    pub async fn create_table(&self, count: u32, replication_factor: u8) -> Result<Table> {
        let body = CreateTable {
            count,
            replication_factor,
        };
        self.json(Call::new(Method::POST, "/v1/partitions", Repeat::Once).body(&body)?)
            .await
    }

    pub async fn partitions(
        &self,
        cursor: Option<u32>,
        limit: Option<usize>,
    ) -> Result<PartitionPage> {
        let call = Call::get("/v1/partitions")
            .query_opt("cursor", cursor)
            .query_opt("limit", limit);
        self.json(call).await
    }

    /// The whole table, following the cursor.
    pub async fn all_partitions(&self) -> Result<Vec<Partition>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.partitions(cursor, Some(1000)).await?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) if page.more => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    pub async fn partition(&self, id: u32) -> Result<Partition> {
        self.json(Call::get(format!("/v1/partitions/{id}"))).await
    }

    /// The partition owning `key`, and its healthy serving replicas.
    pub async fn locate(&self, key: u64) -> Result<Routing> {
        self.json(Call::get(format!("/v1/partitions/by-key/{key}")))
            .await
    }

    /// Acknowledges a joining replica caught up, or a leaving one released.
    pub async fn ack(
        &self,
        partition: u32,
        worker: &str,
        generation: u64,
        epoch: u64,
    ) -> Result<Partition> {
        let body = AckRequest { generation, epoch };
        let path = format!("/v1/partitions/{partition}/replicas/{}/ack", seg(worker));
        self.json(Call::new(Method::POST, path, Repeat::Safe).body(&body)?)
            .await
    }

    // ---- KV -----------------------------------------------------------------------------

    /// A linearizable read (or the answering node's applied state with `stale`).
    pub async fn kv_get(&self, key: &str, stale: bool) -> Result<KvItem> {
        let call = Call::get(format!("/v1/kv/{}", key_path(key)))
            .query_opt("stale", stale.then_some(true));
        self.json(call).await
    }

    /// Writes a value; `expected_version` makes it a compare-and-set (0: create only).
    pub async fn kv_put(
        &self,
        key: &str,
        value: &str,
        expected_version: Option<u64>,
    ) -> Result<KvItem> {
        let body = KvPut {
            value: value.to_owned(),
            expected_version,
        };
        let path = format!("/v1/kv/{}", key_path(key));
        self.json(Call::new(Method::PUT, path, Repeat::Once).body(&body)?)
            .await
    }

    pub async fn kv_delete(&self, key: &str, expected_version: Option<u64>) -> Result<KvDeleted> {
        let path = format!("/v1/kv/{}", key_path(key));
        let call = Call::new(Method::DELETE, path, Repeat::Once)
            .query_opt("expected_version", expected_version);
        self.json(call).await
    }

    pub async fn kv_list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<KvPage> {
        let call = Call::get("/v1/kv")
            .query("prefix", prefix)
            .query_opt("cursor", cursor)
            .query_opt("limit", limit);
        self.json(call).await
    }

    // ---- settings -----------------------------------------------------------------------

    /// The replicated cluster settings (admin token).
    pub async fn settings(&self) -> Result<Settings> {
        self.json(Call::get("/v1/settings")).await
    }

    /// Changes the settings `patch` names, in one Raft command (admin token). Sent once: a
    /// repeat after an unknown outcome could undo a change made in between.
    pub async fn set_settings(
        &self,
        patch: &SettingsPatch,
        expected_version: Option<u64>,
    ) -> Result<Settings> {
        let body = SettingsRequest::new(patch, expected_version);
        self.json(Call::new(Method::PUT, "/v1/settings", Repeat::Once).body(&body)?)
            .await
    }

    // ---- events and backup --------------------------------------------------------------

    /// Events after sequence number `after` (410 `compacted` if those are gone).
    pub async fn events(&self, after: u64, limit: Option<usize>) -> Result<EventPage> {
        let call = Call::get("/v1/events")
            .query("after", after)
            .query_opt("limit", limit);
        self.json(call).await
    }

    /// A consistent snapshot of the replicated state, for backup (admin token).
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let resp = self.call(&Call::get("/v1/snapshot")).await?;
        let endpoint = resp.url().origin().ascii_serialization();
        let version = resp
            .headers()
            .get("x-drover-state-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Decode {
                endpoint: endpoint.clone(),
                message: "snapshot without x-drover-state-version".into(),
            })?;
        let cluster_id = resp
            .headers()
            .get("x-drover-cluster-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Error::Decode {
                endpoint: endpoint.clone(),
                message: "snapshot without x-drover-cluster-id".into(),
            })?;
        let bytes = resp.bytes().await.map_err(|e| Error::Decode {
            endpoint,
            message: e.to_string(),
        })?;
        Ok(Snapshot {
            bytes,
            version,
            cluster_id,
        })
    }

    // ---- health, metrics, the API's document --------------------------------------------

    /// `GET /healthz`: whether some node answers at all. (Readiness, `/readyz`, is a property
    /// of one node: ask that node, e.g. with curl or a load balancer's probe.)
    pub async fn healthy(&self) -> Result<()> {
        self.call(&Call::get("/healthz")).await.map(drop)
    }

    /// `GET /metrics`, in Prometheus text format.
    pub async fn metrics(&self) -> Result<String> {
        let resp = self.call(&Call::get("/metrics")).await?;
        let endpoint = resp.url().origin().ascii_serialization();
        resp.text().await.map_err(|e| Error::Decode {
            endpoint,
            message: e.to_string(),
        })
    }

    /// `GET /openapi.json`: the API's OpenAPI 3 document.
    pub async fn openapi(&self) -> Result<Value> {
        self.json(Call::get("/openapi.json")).await
    }

    // ---- operator safety (SPEC §1 cordons, §3 pause and what-if) ---------------------------

    /// Cordons worker `id` under `holder`: nothing new is placed on it. Placing the same cordon
    /// again changes nothing, so it is repeated on an unknown outcome.
    pub async fn cordon(
        &self,
        id: &str,
        holder: &str,
        reason: &str,
        expiry: &Expiry,
    ) -> Result<Worker> {
        let mut body = serde_json::json!({"reason": reason});
        expiry.fill(&mut body);
        let path = format!("/v1/workers/{}/cordon/{}", seg(id), seg(holder));
        self.json(Call::new(Method::PUT, path, Repeat::Safe).body(&body)?)
            .await
    }

    /// Removes `holder`'s cordon on `id`. Sent once: repeated after another cordon by the same
    /// holder, it would remove that one.
    pub async fn uncordon(&self, id: &str, holder: &str) -> Result<Worker> {
        let path = format!("/v1/workers/{}/cordon/{}", seg(id), seg(holder));
        self.json(Call::new(Method::DELETE, path, Repeat::Once))
            .await
    }

    /// Pauses new moves. Sent once: repeated after someone resumed, it would pause again.
    pub async fn pause_scheduler(
        &self,
        reason: &str,
        expiry: &Expiry,
    ) -> Result<drover_types::Brakes> {
        let mut body = serde_json::json!({"reason": reason});
        expiry.fill(&mut body);
        self.json(Call::new(Method::POST, "/v1/scheduler/pause", Repeat::Once).body(&body)?)
            .await
    }

    /// Ends the pause. Sent once: repeated after someone paused again, it would end that pause.
    pub async fn resume_scheduler(&self) -> Result<drover_types::Brakes> {
        self.json(Call::new(
            Method::POST,
            "/v1/scheduler/resume",
            Repeat::Once,
        ))
        .await
    }

    /// Puts worker `id` into maintenance until `expiry` (required: `At` or `After`), as the
    /// admin, or as its agent when `generation` is given. The same maintenance again changes
    /// nothing, so it is repeated on an unknown outcome.
    pub async fn maintenance(
        &self,
        id: &str,
        reason: &str,
        expiry: &Expiry,
        generation: Option<u64>,
    ) -> Result<Worker> {
        let mut body = serde_json::json!({"reason": reason});
        expiry.fill(&mut body);
        if let Some(g) = generation {
            body["generation"] = serde_json::json!(g);
        }
        let path = format!("/v1/workers/{}/maintenance", seg(id));
        self.json(Call::new(Method::PUT, path, Repeat::Safe).body(&body)?)
            .await
    }

    /// Ends worker `id`'s maintenance now. Sent once: repeated after a new maintenance began,
    /// it would end that one.
    pub async fn end_maintenance(&self, id: &str, generation: Option<u64>) -> Result<Worker> {
        let path = format!("/v1/workers/{}/maintenance", seg(id));
        let call =
            Call::new(Method::DELETE, path, Repeat::Once).query_opt("generation", generation);
        self.json(call).await
    }

    /// Recommissions a disabled worker: its running agent is asked to register again, and the
    /// answer comes once it has (a new generation, Provisioning). Sent once.
    pub async fn recommission(&self, id: &str) -> Result<drover_api::Recommissioned> {
        let path = format!("/v1/workers/{}/recommission", seg(id));
        self.json(Call::new(Method::POST, path, Repeat::Once)).await
    }

    /// Releases the mass-failure brake: the deaths it held back are declared, and it does not
    /// trip again for one `dead_after`. Sent once.
    pub async fn release_brake(&self, reason: Option<&str>) -> Result<drover_types::Brakes> {
        let body = match reason {
            Some(r) => serde_json::json!({ "reason": r }),
            None => serde_json::json!({}),
        };
        self.json(Call::new(Method::POST, "/v1/brake/release", Repeat::Once).body(&body)?)
            .await
    }

    /// What stopping or draining the workers (or a zone) would cost; changes nothing, so it is
    /// repeated freely.
    pub async fn what_if(&self, request: &drover_api::WhatIfRequest) -> Result<drover_api::WhatIf> {
        self.json(Call::new(Method::POST, "/v1/what-if", Repeat::Safe).body(request)?)
            .await
    }
}

/// When a cordon or pause ends by itself: never (until removed), at a time, or after a
/// duration counted on the leader's clock (the clock that judges the expiry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expiry {
    #[default]
    Never,
    /// Milliseconds since the Unix epoch.
    At(u64),
    /// From when the leader receives the request.
    After(Duration),
}

impl Expiry {
    fn fill(&self, body: &mut Value) {
        match self {
            Expiry::Never => {}
            Expiry::At(ms) => body["until"] = serde_json::json!(ms),
            Expiry::After(d) => body["for"] = serde_json::json!(format!("{}ms", d.as_millis())),
        }
    }
}

/// How to drain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainOptions {
    /// Only plan and answer the verdict.
    pub dry_run: bool,
    /// Start even a drain that cannot finish (it stays Draining, blocked).
    pub allow_blocked: bool,
    /// Its deadline (SPEC §3): past it the drain is reported overdue. `Never`: none.
    pub deadline: Expiry,
    /// What the deadline does.
    pub on_deadline: drover_types::OnDeadline,
}

/// A backup: the codec-encoded state and the state version it was taken at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub bytes: bytes::Bytes,
    pub version: u64,
    /// The `--cluster-id` of the cluster it was taken from.
    pub cluster_id: String,
}
