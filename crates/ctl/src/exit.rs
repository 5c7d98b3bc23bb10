//! Exit codes: the stable numbers scripts branch on (`EXIT CODES` in `--help`), and the one
//! mapping from a failure — the client's error, or our own — to its code and hint.

use drover_client::{Error, ErrorCode};

pub(crate) const EXIT_CODES: &str = "EXIT CODES:
  0  success
  1  any other error (bad answer, I/O)
  2  usage error
  3  not found (404)
  4  conflict: illegal transition, version conflict, stale generation, fenced (409)
  5  unavailable: no endpoint reachable, or no leader (503)
  6  refused: authentication (401/403), invalid request (400/413), compacted (410), a drain
     that cannot finish (drain_infeasible, or a dry run that is not feasible), a maintenance
     over the disruption budget (budget_exceeded)
  7  outcome unknown: a write was sent and no answer came; read the state before retrying

Destructive commands (workers disable --force, workers remove, members remove) ask first when
standard input is a terminal; --yes skips the question, and declining exits 1 changing nothing.";

pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
    pub(crate) exit: u8,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let (exit, hint) = match &e {
            Error::Api {
                code: ErrorCode::DrainInfeasible,
                ..
            } => (6, Some("--allow-blocked starts it anyway")),
            Error::Api {
                code: ErrorCode::BudgetExceeded,
                ..
            } => (
                6,
                Some("droverctl what-if stop W shows what it would cost; restart another first"),
            ),
            Error::Api { status, .. } => match status {
                404 => (3, None),
                409 => (4, None),
                503 => (
                    5,
                    Some("the cluster has no leader right now; retry shortly"),
                ),
                401 | 403 => (6, Some("pass an admin token with --token or DROVER_TOKEN")),
                400 | 410 | 413 => (6, None),
                _ => (1, None),
            },
            Error::Unreachable { .. } => (
                5,
                Some(
                    "check that the nodes run and that --endpoints (or DROVER_ENDPOINTS) names them",
                ),
            ),
            Error::Unknown { .. } => (7, None),
            Error::Decode { .. } | Error::Config(_) => (1, None),
        };
        Failure {
            message: e.to_string(),
            hint: hint.map(str::to_owned),
            exit,
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure {
            message: e.to_string(),
            hint: None,
            exit: 1,
        }
    }
}
