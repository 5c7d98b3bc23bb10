//! `droverctl certs --dir DIR`: a throwaway CA and the certificates a demo or test cluster
//! needs to run over TLS (`drover_tls::ca`), without openssl or a PKI. The CA's key is dropped
//! once the certificates are signed, so the directory cannot be used to sign anything else.

use std::path::Path;

use serde::Serialize;

use crate::exit::Failure;
use crate::output::{Printer, table};

#[derive(Debug, Serialize)]
struct Written {
    dir: String,
    files: Vec<String>,
    hosts: Vec<String>,
}

fn failed(what: impl std::fmt::Display) -> Failure {
    Failure {
        message: format!("certs: {what}"),
        hint: None,
        exit: 1,
    }
}

/// Writes `ca.pem`, `node.crt`/`node.key` (for `hosts`, as server and peer client
/// certificate) and `client.crt`/`client.key` to `dir`.
pub(crate) fn create(out: Printer, dir: &Path, hosts: &[String]) -> Result<(), Failure> {
    if dir.join("ca.pem").exists() {
        return Err(Failure {
            message: format!("{} already holds ca.pem", dir.display()),
            hint: Some("use another --dir, or remove the old files first".into()),
            exit: 4,
        });
    }
    let hosts: Vec<String> = if hosts.is_empty() {
        vec!["127.0.0.1".into(), "localhost".into()]
    } else {
        hosts.to_vec()
    };
    let files = drover_tls::ca::throwaway(dir, &hosts).map_err(failed)?;
    let names = [
        &files.ca,
        &files.node_cert,
        &files.node_key,
        &files.client_cert,
        &files.client_key,
    ];
    let written = Written {
        dir: dir.display().to_string(),
        files: names.iter().map(|p| p.display().to_string()).collect(),
        hosts,
    };
    out.emit(&written, || {
        let mut t = table(&["FILE", "FOR"]);
        for (file, what) in [
            ("ca.pem", "--trusted-ca-file (nodes), --cacert (droverctl)"),
            ("node.crt, node.key", "--cert-file, --key-file (every node)"),
            (
                "client.crt, client.key",
                "--cert, --key (droverctl, optional)",
            ),
        ] {
            t.add_row(vec![format!("{}/{file}", written.dir), what.to_owned()]);
        }
        t
    });
    Ok(())
}
