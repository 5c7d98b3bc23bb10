//! What a call answers when it fails: the API's error shape as a typed error, or why no answer
//! came.

pub use drover_api::{ErrorCode, LeaderHint};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with its error shape.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: ErrorCode,
        message: String,
        leader: Option<LeaderHint>,
        current_version: Option<u64>,
    },
    /// No endpoint could be reached (or none had a leader) before the retry budget ran out.
    #[error("no endpoint reachable: tried {}; last error: {last}", tried.join(", "))]
    Unreachable { tried: Vec<String>, last: String },
    /// A write that is not safe to repeat was sent, and no answer came back: it may or may not
    /// have been applied. Read the state to find out.
    #[error(
        "outcome unknown: {endpoint} did not answer a {what} ({message}); read the state before retrying"
    )]
    Unknown {
        endpoint: String,
        what: String,
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from {endpoint}: {message}")]
    Decode { endpoint: String, message: String },
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The API error code, if the API answered.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the API answered with `code`.
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code() == Some(&code)
    }

    /// The HTTP status, if the API answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A worker call refused because this generation was declared dead: the agent may register
    /// again (a new generation, holding nothing).
    pub fn is_fenced(&self) -> bool {
        self.is(ErrorCode::Fenced)
    }

    /// A worker call refused because a newer process registered with this worker id: the
    /// older one must stop serving for good and never register again on its own.
    pub fn is_superseded(&self) -> bool {
        self.is(ErrorCode::StaleGeneration)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
