//! Drover's wire types (SPEC §4), one definition shared by the server and every client, with
//! enums where the values are closed — so retries and fencing match on variants, never on
//! strings. Replicated records (`Worker`, `Partition`, `Settings`, ...) are `drover-types`' own
//! and appear here as they are; this crate declares what the API composes around them: the
//! requests, the views and pages, the error body, and the planner's explanations.
//!
//! Pure: serde and `drover-types`, nothing else. With the `openapi` feature every type derives
//! utoipa's `ToSchema`, for the server's OpenAPI document; clients leave it off. Unknown fields
//! of an answer are ignored, so a newer server does not break an older client; requests are
//! strict (`deny_unknown_fields`), so a typo is a 400 naming the field.

mod cluster;
mod drains;
mod error;
mod events;
mod kv;
mod partitions;
mod settings;
mod what_if;
mod workers;

pub use cluster::{AddMember, ClusterStatus, Member, MemberRole, NodeState};
pub use drains::{
    BlockCode, Blocked, DrainAnswer, DrainOneRequest, DrainPreview, DrainRate, DrainSetRequest,
    DrainStarted, DrainWarning, Wait, WaitOn, WarningCode,
};
pub use error::{ErrorBody, ErrorCode, ErrorDetail, LeaderHint};
pub use events::EventPage;
pub use kv::{KvDeleted, KvItem, KvPage, KvPut};
pub use partitions::{AckRequest, CreateTable, Endpoint, PartitionPage, Routing};
pub use settings::SettingsRequest;
pub use what_if::{Shortfall, WhatIf, WhatIfAction, WhatIfRequest};
pub use workers::{
    Assignment, Assignments, DrainProgress, ForcedDisable, HeartbeatAck, HeartbeatRequest,
    HeldReplica, Liveness, Peer, Recommissioned, RegisterRequest, StateChanged, StateRequest,
    WorkerPage, WorkerRemoved, WorkerView,
};
