//! TLS for every Drover link (SPEC §5 "Security and recovery flags"): the API, Raft traffic
//! between nodes, `droverctl`, agents and the bench. rustls with the ring provider (it builds
//! in seconds; aws-lc-rs needs cmake and a long C build), certificates and keys from PEM files.
//!
//! One [`KeyPair`] — a certificate chain and its key — serves both sides: a node presents it as
//! its server certificate and, to its peers, as its client certificate. It reloads itself when
//! its files change or on SIGHUP ([`watch`]), and every new handshake uses the new pair, so a
//! certificate is rotated without a restart. The trusted CA is read at start.
//!
//! A node's one port serves the API and Raft, so its server asks for a client certificate but
//! does not require one at the handshake: an operator's `droverctl` or an agent may come with a
//! token only. A client certificate that is presented must be signed by the trusted CA, or the
//! handshake fails; whether one was presented is [`peer_certified`], which the Raft routes
//! require with `--peer-client-cert-auth`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

#[cfg(feature = "ca")]
pub mod ca;
#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "cli")]
pub use cli::ClientArgs;

pub use rustls;
pub use tokio_rustls::server::TlsStream;

/// A TLS setting that cannot be used, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {why}")]
    File { path: String, why: String },
    #[error("TLS: {0}")]
    Tls(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn file_err(path: &Path, why: impl ToString) -> Error {
    Error::File {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

fn tls_err(e: impl ToString) -> Error {
    Error::Tls(e.to_string())
}

/// The crypto provider every Drover TLS configuration uses: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in the PEM file `path`; at least one.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The private key in the PEM file `path` (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err(path, e))
}

/// The CA certificates in the PEM file `path`, as trust roots.
pub fn load_roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| file_err(path, e))?;
    }
    Ok(roots)
}

/// The operating system's trust roots, for a client given no CA file.
fn system_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(Error::Tls(format!(
            "no trusted CA given and none found on this system ({} errors); pass a CA file",
            found.errors.len()
        )));
    }
    Ok(roots)
}

/// When the two files were last modified, to tell a change.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(cert), modified(key))
}

/// A certificate chain and its private key from two PEM files, reloadable while in use: each
/// new handshake takes the pair loaded last. A reload that fails (a half-written file, a key
/// that is not the certificate's) keeps the pair in use and says why.
#[derive(Debug)]
pub struct KeyPair {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    loaded: Mutex<Stamp>,
}

fn certified(cert: &Path, key: &Path) -> Result<CertifiedKey> {
    let chain = load_certs(cert)?;
    let der = load_key(key)?;
    // Checks that the key is the certificate's, too.
    CertifiedKey::from_der(chain, der, &provider())
        .map_err(|e| file_err(key, format!("not a usable key for {}: {e}", cert.display())))
}

impl KeyPair {
    /// Loads the pair; fails naming the file that is missing, unreadable or mismatched.
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Arc<KeyPair>> {
        let (cert, key) = (cert.into(), key.into());
        let loaded = stamp(&cert, &key);
        let pair = certified(&cert, &key)?;
        Ok(Arc::new(KeyPair {
            cert,
            key,
            current: RwLock::new(Arc::new(pair)),
            loaded: Mutex::new(loaded),
        }))
    }

    /// Loads the files again and, if they make a valid pair, uses it from the next handshake.
    pub fn reload(&self) -> Result<()> {
        let loaded = stamp(&self.cert, &self.key);
        let pair = certified(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(pair);
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = loaded;
        Ok(())
    }

    /// [`reload`](Self::reload)s if either file changed since the last load; whether it did.
    pub fn reload_if_changed(&self) -> Result<bool> {
        let now = stamp(&self.cert, &self.key);
        if *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) == now {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// The pair in use.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for KeyPair {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for KeyPair {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// HTTP/2 first, then HTTP/1.1, on both sides.
fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// A node's server side: `pair` as its certificate; with `ca`, clients may present a
/// certificate, and one that is presented must be signed by `ca` (see the crate doc).
pub fn server_config(pair: Arc<KeyPair>, ca: Option<&Path>) -> Result<Arc<ServerConfig>> {
    let provider = provider();
    let verifier = match ca {
        Some(path) => WebPkiClientVerifier::builder_with_provider(
            Arc::new(load_roots(path)?),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| file_err(path, e))?,
        None => WebPkiClientVerifier::no_client_auth(),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(pair);
    config.alpn_protocols = alpn();
    Ok(Arc::new(config))
}

/// A client side: servers must present a certificate signed by `ca` (the system's roots
/// without one), and the client presents `identity`, if any.
pub fn client_config(ca: Option<&Path>, identity: Option<Arc<KeyPair>>) -> Result<ClientConfig> {
    let roots = match ca {
        Some(path) => load_roots(path)?,
        None => system_roots()?,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(pair) => builder.with_client_cert_resolver(pair),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn();
    Ok(config)
}

/// A reqwest client builder for a Drover link: over `tls` when given, else plain HTTP. reqwest
/// is built without a crypto provider of its own (so aws-lc-rs stays out), so ring is
/// installed as the process's default here first; every Drover HTTP client is built through
/// this.
pub fn http_client(tls: Option<ClientConfig>) -> reqwest::ClientBuilder {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // Err only if another provider was installed first; that one serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let builder = reqwest::Client::builder();
    match tls {
        Some(config) => builder.tls_backend_preconfigured(config),
        None => builder,
    }
}

/// Whether the client of `stream` presented a certificate the server verified.
pub fn peer_certified(stream: &TlsStream<TcpStream>) -> bool {
    stream.get_ref().1.peer_certificates().is_some()
}

/// How long a client has to finish its handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; past it, accepting waits (the kernel's backlog holds the
/// rest), so a flood of connections that never finish costs at most this many tasks and
/// sockets for `HANDSHAKE_TIMEOUT` each.
const HANDSHAKES_IN_FLIGHT: usize = 512;

/// Accepts TCP connections and completes their TLS handshakes concurrently, so one slow or
/// hostile client cannot hold up the others; yields the connections that completed. A failed
/// handshake (a certificate not signed by the CA, plain HTTP, a timeout) is logged at debug
/// level and dropped.
#[derive(Debug)]
pub struct Acceptor {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl Acceptor {
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> io::Result<Acceptor> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let slots = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_IN_FLIGHT));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    drop(slot);
                    match handshake {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Acceptor { ready, local })
    }

    /// The next connection whose handshake completed.
    pub async fn accept(&mut self) -> (TlsStream<TcpStream>, SocketAddr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task ends only when this receiver is gone.
            None => std::future::pending().await,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Reloads `pair` on SIGHUP, and whenever its files change (checked every `every`), for the
/// life of the process; each outcome is logged. SIGHUP is taken over before this returns, so
/// from then on it no longer ends the process.
pub fn watch(pair: Arc<KeyPair>, every: Duration) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async { hup.as_mut()?.recv().await } => true,
            };
            let result = if forced {
                pair.reload().map(|()| true)
            } else {
                pair.reload_if_changed()
            };
            match result {
                Ok(true) => tracing::info!(cert = %pair.cert.display(), "TLS certificate reloaded"),
                Ok(false) => {}
                Err(e) => tracing::error!(
                    error = %e,
                    "TLS certificate NOT reloaded; the one loaded before stays in use"
                ),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str, ca: &ca::Ca) -> (PathBuf, PathBuf) {
        let issued = ca.issue(name, &["localhost".to_owned()]).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        ca::write_pem(&c, &issued.cert).unwrap();
        ca::write_pem(&k, &issued.key).unwrap();
        (c, k)
    }

    /// A pair loads, a reload after the files change takes the new certificate, and a reload
    /// that fails (a key of another certificate, a missing file) keeps the old one in use.
    #[test]
    fn a_key_pair_reloads_and_keeps_the_old_one_when_the_new_is_bad() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca::Ca::new("test CA").unwrap();
        let (cert, key) = write_pair(dir.path(), "a", &ca);
        let pair = KeyPair::load(&cert, &key).unwrap();
        let first = pair.current().cert[0].clone();
        assert!(!pair.reload_if_changed().unwrap(), "nothing changed");

        let (cert_b, key_b) = write_pair(dir.path(), "b", &ca);
        std::fs::copy(&cert_b, &cert).unwrap();
        std::fs::copy(&key_b, &key).unwrap();
        pair.reload().unwrap();
        let second = pair.current().cert[0].clone();
        assert_ne!(first, second);

        // A certificate without its key: refused, the second pair stays.
        let (cert_c, _) = write_pair(dir.path(), "c", &ca);
        std::fs::copy(&cert_c, &cert).unwrap();
        let e = pair.reload().unwrap_err();
        assert!(e.to_string().contains("not a usable key"), "{e}");
        assert_eq!(pair.current().cert[0], second);
        std::fs::remove_file(&key).unwrap();
        assert!(pair.reload().is_err());
        assert_eq!(pair.current().cert[0], second);

        let e = KeyPair::load(dir.path().join("none.crt"), &key_b).unwrap_err();
        assert!(e.to_string().contains("none.crt"), "{e}");
    }
}
