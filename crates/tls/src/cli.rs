//! The client side's TLS flags, one definition for every command that talks to a node:
//! `droverctl`, `drover-bench`, the example worker. Flatten [`ClientArgs`] into a clap parser.

use std::path::PathBuf;

use rustls::ClientConfig;

use crate::{KeyPair, Result, client_config};

/// `--cacert`, `--cert` and `--key`, also read from `DROVER_CACERT`, `DROVER_CERT`,
/// `DROVER_KEY`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ClientArgs {
    /// CA certificate (PEM) the nodes' certificates are signed by: talk HTTPS. Endpoints
    /// written `https://…` use HTTPS too, with the system's roots unless this is given.
    #[arg(long, global = true, env = "DROVER_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM) to present, with --key.
    #[arg(
        long = "cert",
        global = true,
        env = "DROVER_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(
        long = "key",
        global = true,
        env = "DROVER_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
}

impl ClientArgs {
    /// The TLS client configuration the flags ask for — any of them, or `https` because an
    /// endpoint was written `https://…` — and `None` for plain HTTP. A file that cannot be read
    /// is an error naming it.
    pub fn config(&self, https: bool) -> Result<Option<ClientConfig>> {
        if self.cacert.is_none() && self.client_cert.is_none() && !https {
            return Ok(None);
        }
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(KeyPair::load(cert, key)?),
            _ => None,
        };
        client_config(self.cacert.as_deref(), identity).map(Some)
    }

    /// The URL scheme for `config`'s answer.
    pub fn scheme(config: &Option<ClientConfig>) -> &'static str {
        if config.is_some() { "https" } else { "http" }
    }
}
