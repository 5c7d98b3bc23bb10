//! Certificates for the TLS tests, from throwaway CAs (`drover_tls::ca`): a CA, and
//! certificates it signs for a node's IP, usable as both server and client certificates.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use drover_tls::ca::write_pem;

pub struct Ca {
    ca: drover_tls::ca::Ca,
    /// The CA certificate's PEM file.
    pub file: PathBuf,
}

impl Ca {
    /// A new CA named `name`, its certificate written to `dir/name.pem`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let ca = drover_tls::ca::Ca::new(name).unwrap();
        let file = dir.join(format!("{name}.pem"));
        write_pem(&file, ca.pem()).unwrap();
        Ca { ca, file }
    }

    /// A certificate for `ip` (and `localhost`) and its key, written (beside, then renamed) to
    /// `dir/name.crt` and `dir/name.key`; returns their paths.
    pub fn issue(&self, dir: &Path, name: &str, ip: IpAddr) -> (PathBuf, PathBuf) {
        let issued = self
            .ca
            .issue(name, &[ip.to_string(), "localhost".into()])
            .unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        write_pem(&c, &issued.cert).unwrap();
        write_pem(&k, &issued.key).unwrap();
        (c, k)
    }
}

/// A TLS client trusting `ca`, presenting `identity` (certificate and key files) if given.
pub fn client(ca: &Path, identity: Option<(&Path, &Path)>) -> drover_tls::rustls::ClientConfig {
    let pair = identity.map(|(c, k)| drover_tls::KeyPair::load(c, k).unwrap());
    drover_tls::client_config(Some(ca), pair).unwrap()
}
