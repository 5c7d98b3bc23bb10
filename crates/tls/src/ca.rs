//! Throwaway certificate authorities (rcgen, feature `ca`): for demos, tests and the chaos
//! harness — a cluster over TLS without openssl or a PKI. Production uses its own PKI.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

fn rcgen_err(e: rcgen::Error) -> Error {
    Error::Tls(format!("certificate generation: {e}"))
}

/// A CA whose key lives only in memory: when it is dropped, nothing more can be signed by it.
pub struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A certificate and its private key, PEM.
#[derive(Debug)]
pub struct Issued {
    pub cert: String,
    pub key: String,
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Result<Ca> {
        let key = rcgen::KeyPair::generate().map_err(rcgen_err)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(rcgen_err)?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let pem = params.self_signed(&key).map_err(rcgen_err)?.pem();
        Ok(Ca {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        })
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A certificate for `names` (IP addresses or DNS names), usable as server and client
    /// certificate, signed by this CA.
    pub fn issue(&self, common_name: &str, names: &[String]) -> Result<Issued> {
        let key = rcgen::KeyPair::generate().map_err(rcgen_err)?;
        let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(rcgen_err)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = params.signed_by(&key, &self.issuer).map_err(rcgen_err)?;
        Ok(Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// Writes `contents` to `path` beside and renames it into place, as a certificate manager
/// does, so a reload never reads half a file; a key is readable by its owner only.
pub fn write_pem(path: &Path, contents: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |e: std::io::Error| Error::File {
        path: path.display().to_string(),
        why: e.to_string(),
    };
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, contents).map_err(fail)?;
    if path.extension().is_some_and(|e| e == "key") {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)
}

/// The files [`throwaway`] writes.
#[derive(Debug)]
pub struct Files {
    /// For `--trusted-ca-file` and `--cacert`.
    pub ca: PathBuf,
    /// For every node's `--cert-file` and `--key-file`: it names every host.
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
    /// For an operator's or agent's `--cert` and `--key`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A throwaway CA for one cluster in `dir`: `ca.pem`, `node.crt`/`node.key` naming `hosts`,
/// `client.crt`/`client.key`. The CA's key is dropped on return.
pub fn throwaway(dir: &Path, hosts: &[String]) -> Result<Files> {
    std::fs::create_dir_all(dir).map_err(|e| Error::File {
        path: dir.display().to_string(),
        why: e.to_string(),
    })?;
    let ca = Ca::new("drover throwaway CA")?;
    let node = ca.issue("drover node", hosts)?;
    let client = ca.issue("drover client", &["drover-client".to_owned()])?;
    let files = Files {
        ca: dir.join("ca.pem"),
        node_cert: dir.join("node.crt"),
        node_key: dir.join("node.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    };
    write_pem(&files.ca, ca.pem())?;
    write_pem(&files.node_cert, &node.cert)?;
    write_pem(&files.node_key, &node.key)?;
    write_pem(&files.client_cert, &client.cert)?;
    write_pem(&files.client_key, &client.key)?;
    Ok(files)
}
