//! `/v1/events`: lifecycle events, a page at a time.

use drover_types::Event;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Whether more events follow this page.
    pub more: bool,
    /// Pass as `after` to continue.
    pub next_after: u64,
}
