//! Concurrent clients and the history they record.
//!
//! Each client sends one request at a time, each to a node picked at random (no failover, no
//! retry: the history must say exactly what one request did). Every operation is recorded with
//! its invocation and completion times and its outcome: a result (ok, or a definite refusal such
//! as a version conflict), a failure that certainly changed nothing (the connection was refused,
//! or 503 `unavailable`: nothing was proposed — dropped from the history), or unknown (timeout,
//! connection lost after sending, 503 `outcome_unknown`).
//!
//! The operations: on a few KV keys, reads, compare-and-set writes (the expected version is the
//! last one this client saw), blind writes and conditional deletes; create-only writes of
//! fresh keys (a set: each acknowledged one must be there at the end); and on a few workers,
//! reads, registrations with fresh incarnations, operator state changes with and without
//! `expected_version` and `force`, and removals.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_api::ErrorCode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::linearizability::Timed;
use crate::model::{KvOp, Record, WState, WorkerOp, WriteResult};

pub const KV_KEYS: usize = 4;
pub const WORKERS: usize = 3;
/// Clients move to fresh keys and workers every this long (`reg/<k>.<era>`, `cw-<j>.<era>`),
/// as Jepsen's independent keys do: a history the checker can search stays a few thousand
/// operations long however long the run, while each key still lives through several faults.
pub const KEY_ERA: Duration = Duration::from_secs(20);
const READ_TIMEOUT: Duration = Duration::from_secs(3);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A create-only write of a fresh key, and what came of it.
#[derive(Clone, Debug)]
pub struct SetCreate {
    pub key: String,
    pub value: String,
    /// `Some(true)` acknowledged, `Some(false)` certainly not applied, `None` unknown.
    pub acked: Option<bool>,
    /// Client, node, times and the answer, for the report.
    pub how: String,
}

/// Everything the clients observed.
#[derive(Debug, Default)]
pub struct History {
    pub kv: BTreeMap<String, Vec<Timed<KvOp>>>,
    pub workers: BTreeMap<String, Vec<Timed<WorkerOp>>>,
    pub sets: Vec<SetCreate>,
    /// Every version an acknowledged change reported (versions are global log indexes).
    pub owned: BTreeSet<u64>,
    /// The versions acknowledged writes reported, per key. KV writes to different keys may
    /// share a version (the leader group-commits them into one entry); one key's never do.
    pub kv_owned: BTreeMap<String, BTreeSet<u64>>,
    /// The versions acknowledged worker changes reported: each had a log entry of its own.
    pub worker_owned: BTreeSet<u64>,
    values: HashMap<String, u32>,
    pub counts: Counts,
    /// The version each key and worker had at the final read, after every client stopped
    /// (`None` inside: absent).
    pub final_reads: BTreeMap<String, Option<u64>>,
    /// Writes that certainly failed, with why (for whoever reads a report).
    pub failed_writes: Vec<String>,
    /// Answers the API should never give (a 500, a malformed body); reported, never hidden.
    pub anomalies: Vec<String>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counts {
    pub ok: u64,
    pub failed: u64,
    pub unknown: u64,
    pub by_kind: BTreeMap<String, u64>,
}

impl History {
    pub fn value_id(&mut self, v: &str) -> u32 {
        let n = self.values.len() as u32;
        *self.values.entry(v.to_owned()).or_insert(n)
    }

    /// Every value string with the id the models know it by.
    pub fn values(&self) -> impl Iterator<Item = (&String, &u32)> {
        self.values.iter()
    }

    pub fn total(&self) -> u64 {
        self.counts.ok + self.counts.failed + self.counts.unknown
    }
}

/// Builds a worker operation from the answer's body (`None`: no usable answer).
type MakeOp = Box<dyn Fn(Option<Value>) -> WorkerOp + Send>;

/// How one request ended.
enum Outcome {
    /// The API answered with this status and body.
    Answer(u16, Value),
    /// Certainly not applied, and why.
    Failed(String),
    /// No answer after sending.
    Unknown,
}

#[derive(Debug)]
pub struct Clients {
    pub history: Arc<Mutex<History>>,
    pub start: Instant,
    stop: Arc<AtomicBool>,
    http: crate::cluster::Http,
    ids: Vec<u64>,
}

impl Clients {
    pub fn new(http: crate::cluster::Http, ids: Vec<u64>, start: Instant) -> Clients {
        Clients {
            history: Arc::default(),
            start,
            stop: Arc::default(),
            http,
            ids,
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Which generation of keys and workers the clients use now.
    fn era(&self) -> u64 {
        (self.start.elapsed().as_secs_f64() / KEY_ERA.as_secs_f64()) as u64
    }

    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        node: u64,
        path: &str,
        body: Option<Value>,
        write: bool,
    ) -> Outcome {
        let timeout = if write { WRITE_TIMEOUT } else { READ_TIMEOUT };
        let mut req = self
            .http
            .request(method, self.http.url(node, path))
            .timeout(timeout);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Outcome::Failed(format!("connect: {e}")),
            Err(_) => return Outcome::Unknown,
        };
        let status = resp.status().as_u16();
        match resp.bytes().await {
            Ok(b) => {
                let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                if status == 503 {
                    return match error_code(&v) {
                        Some(ErrorCode::Unavailable) => {
                            Outcome::Failed(format!("503 {}", v["error"]["message"]))
                        }
                        _ => Outcome::Unknown,
                    };
                }
                Outcome::Answer(status, v)
            }
            Err(_) => Outcome::Unknown,
        }
    }

    /// Runs `n` clients until [`Clients::stop`]; returns when all have finished their last
    /// request.
    pub async fn run(self: &Arc<Self>, n: usize, seed: u64) {
        let mut tasks = Vec::new();
        for c in 0..n {
            let me = self.clone();
            let rng = ChaCha8Rng::seed_from_u64(
                seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(c as u64 + 1)),
            );
            tasks.push(tokio::spawn(async move { me.client(c, rng).await }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn client(&self, c: usize, mut rng: ChaCha8Rng) {
        let mut known: HashMap<String, u64> = HashMap::new();
        let mut seq = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            seq += 1;
            let node = self.ids[rng.random_range(0..self.ids.len())];
            let dice = rng.random_range(0..100);
            let backoff = if dice < 45 {
                let key = format!("reg/{}.{}", rng.random_range(0..KV_KEYS), self.era());
                self.kv_op(c, seq, node, &key, &mut known, &mut rng).await
            } else if dice < 62 {
                self.set_create(c, seq, node).await
            } else {
                let w = format!("cw-{}.{}", rng.random_range(0..WORKERS), self.era());
                self.worker_op(c, node, &w, &mut known, &mut rng).await
            };
            if backoff {
                // Nothing was done (no leader, or the node is down): do not spin.
                tokio::time::sleep(Duration::from_millis(rng.random_range(50..150))).await;
            }
        }
    }

    fn count(&self, kind: &str, result: &str) {
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            "ok" => h.counts.ok += 1,
            "failed" => h.counts.failed += 1,
            _ => h.counts.unknown += 1,
        }
        *h.counts
            .by_kind
            .entry(format!("{kind}:{result}"))
            .or_default() += 1;
    }

    fn anomaly(&self, what: String) {
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if h.anomalies.len() < 50 {
            h.anomalies.push(what);
        }
    }

    /// One KV operation on `key`. Returns whether to back off.
    async fn kv_op(
        &self,
        c: usize,
        seq: u64,
        node: u64,
        key: &str,
        known: &mut HashMap<String, u64>,
        rng: &mut ChaCha8Rng,
    ) -> bool {
        let dice = rng.random_range(0..100);
        let invoke = self.now();
        let path = format!("/v1/kv/{key}");
        if dice < 45 {
            let out = self
                .send(reqwest::Method::GET, node, &path, None, false)
                .await;
            let op = match out {
                Outcome::Answer(200, v) => {
                    let (Some(val), Some(ver)) = (v["value"].as_str(), v["version"].as_u64())
                    else {
                        self.anomaly(format!("GET {key}: malformed {v}"));
                        return false;
                    };
                    known.insert(key.to_owned(), ver);
                    let id = self
                        .history
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .value_id(val);
                    KvOp::Read(Some((id, ver)))
                }
                Outcome::Answer(404, _) => {
                    known.insert(key.to_owned(), 0);
                    KvOp::Read(None)
                }
                Outcome::Answer(s, v) => {
                    self.anomaly(format!("GET {key}: {s} {v}"));
                    self.count("kv_read", "failed");
                    return true;
                }
                // A read that did not answer changed nothing: leave it out.
                Outcome::Failed(_) | Outcome::Unknown => {
                    self.count("kv_read", "failed");
                    return true;
                }
            };
            self.record_kv(
                key,
                op,
                (invoke, Some(self.now())),
                "kv_read",
                format!("client {c} via node {node}"),
            );
            return false;
        }
        let delete = dice >= 90;
        let expected = if dice < 85 || delete {
            Some(known.get(key).copied().unwrap_or(0))
        } else {
            None // a blind write
        };
        let value = format!("c{c}-{seq}");
        let out = if delete {
            let q = expected.map_or(String::new(), |e| format!("?expected_version={e}"));
            self.send(
                reqwest::Method::DELETE,
                node,
                &format!("{path}{q}"),
                None,
                true,
            )
            .await
        } else {
            let body = match expected {
                Some(e) => serde_json::json!({"value": value, "expected_version": e}),
                None => serde_json::json!({"value": value}),
            };
            self.send(reqwest::Method::PUT, node, &path, Some(body), true)
                .await
        };
        let kind = if delete { "kv_delete" } else { "kv_write" };
        let (result, complete) = match out {
            Outcome::Answer(200, v) => {
                let Some(ver) = v["version"].as_u64() else {
                    self.anomaly(format!("{kind} {key}: malformed {v}"));
                    return false;
                };
                known.insert(key.to_owned(), if delete { 0 } else { ver });
                (WriteResult::Ok(Some(ver)), Some(self.now()))
            }
            Outcome::Answer(409, v) if error_code(&v) == Some(ErrorCode::VersionConflict) => {
                let cur = v["error"]["current_version"].as_u64().unwrap_or(0);
                known.insert(key.to_owned(), cur);
                (WriteResult::Conflict(cur), Some(self.now()))
            }
            Outcome::Answer(404, _) if delete => {
                known.insert(key.to_owned(), 0);
                (WriteResult::NotFound, Some(self.now()))
            }
            Outcome::Answer(s, v) => {
                self.anomaly(format!("{kind} {key}: {s} {v}"));
                (WriteResult::Unknown, None)
            }
            Outcome::Failed(why) => {
                self.count(kind, "failed");
                self.history
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .failed_writes
                    .push(format!(
                        "{kind} {key} {value} client {c} via node {node} {:.3}s-{:.3}s: {why}",
                        invoke as f64 / 1e9,
                        self.now() as f64 / 1e9
                    ));
                return true;
            }
            Outcome::Unknown => (WriteResult::Unknown, None),
        };
        let op = if delete {
            KvOp::Delete { expected, result }
        } else {
            let id = self
                .history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .value_id(&value);
            KvOp::Write {
                value: id,
                expected,
                result,
            }
        };
        self.record_kv(
            key,
            op,
            (invoke, complete),
            kind,
            format!("client {c} via node {node}"),
        );
        false
    }

    pub fn record_kv(
        &self,
        key: &str,
        op: KvOp,
        (invoke, complete): (u64, Option<u64>),
        kind: &str,
        who: String,
    ) {
        let result = match (&op, complete) {
            (_, None) => "unknown",
            _ => "ok",
        };
        self.count(kind, result);
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        match &op {
            KvOp::Write {
                result: WriteResult::Ok(Some(v)),
                ..
            }
            | KvOp::Delete {
                result: WriteResult::Ok(Some(v)),
                ..
            } => {
                h.owned.insert(*v);
                h.kv_owned.entry(key.to_owned()).or_default().insert(*v);
            }
            _ => {}
        }
        h.kv.entry(key.to_owned()).or_default().push(Timed {
            op,
            invoke,
            complete,
            who,
        });
    }

    /// A create-only write of a key no one else writes.
    async fn set_create(&self, c: usize, seq: u64, node: u64) -> bool {
        let invoke = self.now();
        let key = format!("set/c{c}-{seq}");
        let value = format!("v{c}-{seq}");
        let body = serde_json::json!({"value": value, "expected_version": 0});
        let out = self
            .send(
                reqwest::Method::PUT,
                node,
                &format!("/v1/kv/{key}"),
                Some(body),
                true,
            )
            .await;
        let how = format!(
            "client {c} via node {node}, {:.3}s-{:.3}s: {}",
            invoke as f64 / 1e9,
            self.now() as f64 / 1e9,
            match &out {
                Outcome::Answer(s, v) => format!("{s} {v}"),
                Outcome::Failed(why) => format!("failed: {why}"),
                Outcome::Unknown => "unknown".to_owned(),
            }
        );
        let acked = match out {
            Outcome::Answer(200, v) => {
                if let Some(ver) = v["version"].as_u64() {
                    self.history
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .owned
                        .insert(ver);
                }
                Some(true)
            }
            Outcome::Failed(_) => Some(false),
            Outcome::Answer(s, v) => {
                self.anomaly(format!("create {key}: {s} {v}"));
                None
            }
            Outcome::Unknown => None,
        };
        let result = match acked {
            Some(true) => "ok",
            Some(false) => "failed",
            None => "unknown",
        };
        self.count("set_create", result);
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sets
            .push(SetCreate {
                key,
                value,
                acked,
                how,
            });
        acked == Some(false)
    }

    /// One operation on worker `w`.
    async fn worker_op(
        &self,
        c: usize,
        node: u64,
        w: &str,
        known: &mut HashMap<String, u64>,
        rng: &mut ChaCha8Rng,
    ) -> bool {
        let dice = rng.random_range(0..100);
        let path = format!("/v1/workers/{w}");
        let kkey = format!("worker/{w}");
        let invoke = self.now();
        if dice < 40 {
            let op = match self
                .send(reqwest::Method::GET, node, &path, None, false)
                .await
            {
                Outcome::Answer(200, v) => match record(&v) {
                    Some(r) => {
                        known.insert(kkey, r.version.unwrap_or(0));
                        WorkerOp::Read(Some(r))
                    }
                    None => {
                        self.anomaly(format!("GET {w}: malformed {v}"));
                        return false;
                    }
                },
                Outcome::Answer(404, _) => WorkerOp::Read(None),
                _ => {
                    self.count("worker_read", "failed");
                    return true;
                }
            };
            self.record_worker(
                w,
                op,
                (invoke, Some(self.now())),
                "worker_read",
                format!("client {c} via node {node}"),
            );
            return false;
        }
        let expected = if rng.random_bool(0.6) {
            known.get(&kkey).copied()
        } else {
            None
        };
        let (kind, out, make): (&str, Outcome, MakeOp) = if dice < 55 {
            let incarnation: u64 = rng.random_range(1..u64::MAX / 2);
            let body = serde_json::json!({"incarnation": incarnation, "address": "10.9.9.9:9"});
            let out = self
                .send(reqwest::Method::PUT, node, &path, Some(body), true)
                .await;
            (
                "worker_register",
                out,
                Box::new(move |v| WorkerOp::Register {
                    incarnation,
                    result: v.as_ref().and_then(record),
                }),
            )
        } else if dice < 95 {
            let to = if rng.random_bool(0.5) {
                WState::Active
            } else {
                WState::Disabled
            };
            let force = rng.random_bool(0.5);
            let mut body = serde_json::json!({"state": to.name(), "force": force});
            if let Some(e) = expected {
                body["expected_version"] = e.into();
            }
            let out = self
                .send(
                    reqwest::Method::POST,
                    node,
                    &format!("{path}/state"),
                    Some(body),
                    true,
                )
                .await;
            (
                "worker_state",
                out,
                Box::new(move |v| WorkerOp::SetState {
                    to,
                    expected,
                    force,
                    result: match v.as_ref().and_then(record) {
                        Some(r) => Ok(r),
                        None => Err(WriteResult::Unknown),
                    },
                }),
            )
        } else {
            let q = expected.map_or(String::new(), |e| format!("?expected_version={e}"));
            let out = self
                .send(
                    reqwest::Method::DELETE,
                    node,
                    &format!("{path}{q}"),
                    None,
                    true,
                )
                .await;
            (
                "worker_remove",
                out,
                Box::new(move |v| WorkerOp::Remove {
                    expected,
                    result: if v.is_some() {
                        WriteResult::Ok(None)
                    } else {
                        WriteResult::Unknown
                    },
                }),
            )
        };
        let refusal = |v: &Value| -> Option<WriteResult> {
            match error_code(v)? {
                ErrorCode::VersionConflict => Some(WriteResult::Conflict(
                    v["error"]["current_version"].as_u64().unwrap_or(0),
                )),
                ErrorCode::IllegalTransition => Some(WriteResult::Illegal),
                ErrorCode::NotFound => Some(WriteResult::NotFound),
                _ => None,
            }
        };
        let (op, complete) = match out {
            Outcome::Answer(200, v) => {
                let op = make(Some(v.clone()));
                let malformed = matches!(
                    op,
                    WorkerOp::Register { result: None, .. }
                        | WorkerOp::SetState { result: Err(_), .. }
                );
                if malformed {
                    self.anomaly(format!("{kind} {w}: malformed {v}"));
                    return false;
                }
                if let WorkerOp::Register {
                    result: Some(r), ..
                }
                | WorkerOp::SetState { result: Ok(r), .. } = &op
                {
                    known.insert(kkey, r.version.unwrap_or(0));
                }
                (op, Some(self.now()))
            }
            Outcome::Answer(s @ (404 | 409), v) => {
                let Some(r) = refusal(&v) else {
                    self.anomaly(format!("{kind} {w}: {s} {v}"));
                    return false;
                };
                if let WriteResult::Conflict(cur) = r {
                    known.insert(kkey, cur);
                }
                let op = match make(None) {
                    WorkerOp::SetState {
                        to,
                        expected,
                        force,
                        ..
                    } => WorkerOp::SetState {
                        to,
                        expected,
                        force,
                        result: Err(r),
                    },
                    WorkerOp::Remove { expected, .. } => WorkerOp::Remove {
                        expected,
                        result: r,
                    },
                    other => {
                        self.anomaly(format!("{kind} {w}: {s} {v} for {other:?}"));
                        return false;
                    }
                };
                (op, Some(self.now()))
            }
            Outcome::Answer(s, v) => {
                self.anomaly(format!("{kind} {w}: {s} {v}"));
                (make(None), None)
            }
            Outcome::Failed(_) => {
                self.count(kind, "failed");
                return true;
            }
            Outcome::Unknown => (make(None), None),
        };
        self.record_worker(
            w,
            op,
            (invoke, complete),
            kind,
            format!("client {c} via node {node}"),
        );
        false
    }

    pub fn record_worker(
        &self,
        w: &str,
        op: WorkerOp,
        (invoke, complete): (u64, Option<u64>),
        kind: &str,
        who: String,
    ) {
        self.count(kind, if complete.is_some() { "ok" } else { "unknown" });
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        // A registration with a fresh incarnation always changes the record; a state change may
        // answer the unchanged record (asking for the state it is in), so it proves nothing.
        if let WorkerOp::Register {
            result: Some(r), ..
        } = &op
            && let Some(v) = r.version
        {
            h.owned.insert(v);
            h.worker_owned.insert(v);
        }
        h.workers.entry(w.to_owned()).or_default().push(Timed {
            op,
            invoke,
            complete,
            who,
        });
    }

    /// A read that is retried (a few times, a moment apart) until it gets an answer: a read
    /// that got none changed nothing, so only the answered attempt enters the history.
    async fn read_retrying(&self, node: u64, path: &str) -> (u64, Outcome) {
        let mut last = (self.now(), Outcome::Unknown);
        for _ in 0..5 {
            let invoke = self.now();
            let out = self
                .send(reqwest::Method::GET, node, path, None, false)
                .await;
            if matches!(out, Outcome::Answer(..)) {
                return (invoke, out);
            }
            last = (invoke, out);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        last
    }

    /// A final linearizable read of every key and worker through `node`, into the history.
    pub async fn final_reads(&self, node: u64) {
        let (keys, workers): (Vec<String>, Vec<String>) = {
            let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            (
                h.kv.keys().cloned().collect(),
                h.workers.keys().cloned().collect(),
            )
        };
        for key in keys {
            let (invoke, out) = self.read_retrying(node, &format!("/v1/kv/{key}")).await;
            let op = match out {
                Outcome::Answer(200, v) => {
                    let val = v["value"].as_str().unwrap_or("");
                    let id = self
                        .history
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .value_id(val);
                    KvOp::Read(Some((id, v["version"].as_u64().unwrap_or(0))))
                }
                Outcome::Answer(404, _) => KvOp::Read(None),
                _ => {
                    self.anomaly(format!("final read of {key} through node {node} failed"));
                    continue;
                }
            };
            let version = match &op {
                KvOp::Read(r) => r.map(|(_, v)| v),
                _ => None,
            };
            self.history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .final_reads
                .insert(key.clone(), version);
            self.record_kv(
                &key,
                op,
                (invoke, Some(self.now())),
                "kv_read",
                format!("final read via node {node}"),
            );
        }
        for w in workers {
            let (invoke, out) = self.read_retrying(node, &format!("/v1/workers/{w}")).await;
            let op = match out {
                Outcome::Answer(200, v) => WorkerOp::Read(record(&v)),
                Outcome::Answer(404, _) => WorkerOp::Read(None),
                _ => {
                    self.anomaly(format!("final read of {w} through node {node} failed"));
                    continue;
                }
            };
            let version = match &op {
                WorkerOp::Read(r) => r.and_then(|r| r.version),
                _ => None,
            };
            self.history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .final_reads
                .insert(w.clone(), version);
            self.record_worker(
                &w,
                op,
                (invoke, Some(self.now())),
                "worker_read",
                format!("final read via node {node}"),
            );
        }
    }
}

/// The error code of an answer in SPEC §4's error shape.
fn error_code(v: &Value) -> Option<ErrorCode> {
    v["error"]["code"].as_str().map(ErrorCode::from)
}

/// The modelled fields of a worker record (or of `{"worker": record, ...}` after a forced
/// disable).
pub fn record(v: &Value) -> Option<Record> {
    let r = if v.get("worker").is_some_and(Value::is_object) {
        &v["worker"]
    } else {
        v
    };
    Some(Record {
        state: WState::parse(r["state"].as_str()?)?,
        generation: r["generation"].as_u64()?,
        incarnation: r["incarnation"].as_u64()?,
        version: Some(r["version"].as_u64()?),
    })
}
