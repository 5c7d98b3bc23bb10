//! Drover's wire types (SPEC §4), one definition shared by the server and every client, with
//! enums where the values are closed — so retries and fencing match on variants, never on
//! strings.

mod error;

pub use error::ErrorCode;
