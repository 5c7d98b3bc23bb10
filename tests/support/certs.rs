//! Throwaway certificate authorities for the TLS tests (rcgen): a CA, and certificates it
//! signs for a node's IP, usable as both server and client certificates.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate's PEM file.
    pub file: PathBuf,
}

impl Ca {
    /// A new CA named `name`, its certificate written to `dir/name.pem`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let file = dir.join(format!("{name}.pem"));
        std::fs::write(&file, cert.pem()).unwrap();
        Ca {
            issuer: rcgen::Issuer::new(params, key),
            file,
        }
    }

    /// A certificate for `ip` (and `localhost`) and its key, written to `dir/name.crt` and
    /// `dir/name.key`; returns their paths.
    pub fn issue(&self, dir: &Path, name: &str, ip: IpAddr) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec![ip.to_string(), "localhost".into()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        // Written beside and renamed, as a certificate manager does, so a reload never reads
        // half a file.
        for (path, pem) in [(&c, cert.pem()), (&k, key.serialize_pem())] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, pem).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        (c, k)
    }
}

/// A TLS client trusting `ca`, presenting `identity` (certificate and key files) if given.
pub fn client(ca: &Path, identity: Option<(&Path, &Path)>) -> drover_tls::rustls::ClientConfig {
    let pair = identity.map(|(c, k)| drover_tls::KeyPair::load(c, k).unwrap());
    drover_tls::client_config(Some(ca), pair).unwrap()
}
