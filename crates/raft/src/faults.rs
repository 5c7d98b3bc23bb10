//! A fault layer for tests: drop or delay outgoing Raft messages per peer. The kernel here has no
//! netem, so delay must be injected in our own transport. Off unless a test turns it on through
//! the server's fault-injection endpoint, which exists only when the node was started with it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// What happens to messages sent to one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerFault {
    /// Fail every message as if the peer were unreachable.
    #[serde(default)]
    pub drop: bool,
    /// Hold every message this long before sending it.
    #[serde(default)]
    pub delay_ms: u64,
}

/// The faults in force, shared by every connection of a transport.
#[derive(Clone, Debug, Default)]
pub struct Faults(Arc<RwLock<BTreeMap<NodeId, PeerFault>>>);

impl Faults {
    pub fn set(&self, peer: NodeId, fault: PeerFault) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        if fault == PeerFault::default() {
            map.remove(&peer);
        } else {
            map.insert(peer, fault);
        }
    }

    pub fn clear(&self) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn get(&self, peer: NodeId) -> Option<PeerFault> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
            .cloned()
    }

    pub fn all(&self) -> BTreeMap<NodeId, PeerFault> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Applies the fault for `peer`: `Err` to drop the message, after any delay.
    pub(crate) async fn before_send(&self, peer: NodeId) -> Result<(), ()> {
        let Some(f) = self.get(peer) else {
            return Ok(());
        };
        if f.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
        }
        if f.drop { Err(()) } else { Ok(()) }
    }
}
