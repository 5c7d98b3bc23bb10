//! TLS on every link with real `drover` nodes: a three-node cluster whose peers must present
//! client certificates, a client whose certificate the cluster's CA did not sign refused at
//! the handshake, the admin client and an agent over TLS, and a node's certificate rotated
//! while it runs.

mod support;

use std::time::Duration;

use drover_agent::{Agent, AgentConfig};
use drover_client::{Client, ClientOptions};
use support::certs::{self, Ca};
use support::{Cluster, wait_for};

fn tls_client(c: &Cluster, ca: &Ca) -> Client {
    let eps: Vec<String> = c.nodes.iter().map(|n| n.addr.to_string()).collect();
    let opts = ClientOptions {
        tls: Some(certs::client(&ca.file, None)),
        ..ClientOptions::default()
    };
    Client::with_options(&eps, None, opts).unwrap()
}

/// The DER of the certificate node `addr` serves now, read from a new connection.
async fn served_certificate(ca: &Ca, addr: std::net::SocketAddr) -> Vec<u8> {
    let http = drover_tls::http_client(Some(certs::client(&ca.file, None)))
        .tls_info(true)
        .build()
        .unwrap();
    let r = http
        .get(format!("https://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    let info = r.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    info.peer_certificate().unwrap().to_vec()
}

/// Three nodes over TLS with `--peer-client-cert-auth` elect a leader and replicate (so Raft
/// runs over mutually authenticated TLS), and serve the API over HTTPS. Raft RPCs without a
/// client certificate are refused by the Raft routes; a client certificate from another CA is
/// refused at the handshake; plain HTTP gets no answer. The admin client and an agent work over
/// TLS. Node 1's certificate is replaced on disk: without a restart its new connections
/// present the new one, and the cluster carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls_with_client_certificate_peers() {
    let mut c = Cluster::new(3, &[]);
    let ca = Ca::new(c.root.path(), "cluster-ca");
    c.with_tls(&ca, &["--peer-client-cert-auth"]);
    for id in 1..=3 {
        c.spawn(id);
    }
    c.leader_among(&[1, 2, 3]).await;
    let admin = tls_client(&c, &ca);
    admin.kv_put("tls/k", "v", None).await.unwrap();
    for id in [1, 2, 3] {
        wait_for(
            "the write on every node",
            Duration::from_secs(10),
            || async { (c.get(id, "tls/k", true).await.as_deref() == Some("v")).then_some(()) },
        )
        .await;
    }
    c.log_with(1, "serving HTTPS").await;

    let node1 = c.node(1).addr;
    let dir = c.root.path().to_owned();
    // No client certificate: the handshake succeeds (an operator needs none), the Raft route
    // refuses.
    let anonymous = drover_tls::http_client(Some(certs::client(&ca.file, None)))
        .build()
        .unwrap();
    let r = anonymous
        .post(format!("https://{node1}/raft/vote"))
        .body(vec![0u8])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("client certificate"));
    // A client certificate from the cluster's CA: past that check (the cluster id is next).
    let (peer_cert, peer_key) = ca.issue(&dir, "peer", c.ip.into());
    let peer =
        drover_tls::http_client(Some(certs::client(&ca.file, Some((&peer_cert, &peer_key)))))
            .build()
            .unwrap();
    let r = peer
        .post(format!("https://{node1}/raft/vote"))
        .body(vec![0u8])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("cluster id"));
    // A certificate signed by another CA: no request gets through the handshake.
    let rogue = Ca::new(&dir, "rogue-ca");
    let (rogue_cert, rogue_key) = rogue.issue(&dir, "rogue", c.ip.into());
    let intruder = drover_tls::http_client(Some(certs::client(
        &ca.file,
        Some((&rogue_cert, &rogue_key)),
    )))
    .build()
    .unwrap();
    let e = intruder
        .get(format!("https://{node1}/healthz"))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_connect() || e.is_request(), "{e:?}");
    // Plain HTTP: no answer.
    let plain = drover_tls::http_client(None).build().unwrap();
    assert!(
        plain
            .get(format!("http://{node1}/healthz"))
            .send()
            .await
            .is_err()
    );

    // An agent over TLS registers, activates and holds its lease.
    let eps: Vec<String> = c.nodes.iter().map(|n| n.addr.to_string()).collect();
    let mut cfg = AgentConfig::new(eps, "w-tls", "10.7.0.1:9000");
    cfg.tls = Some(certs::client(&ca.file, None));
    let agent = Agent::start(cfg).await.unwrap();
    agent.ready().await.unwrap();
    wait_for("the agent's lease", Duration::from_secs(30), || async {
        agent.holds_lease().then_some(())
    })
    .await;

    // Rotation: node 1's files are replaced; its next connections present the new
    // certificate, picked up without a restart (a file check, or SIGHUP at once).
    let before = served_certificate(&ca, node1).await;
    let (new_cert, new_key) = ca.issue(&dir, "node1-next", c.ip.into());
    let (cert_arg, key_arg) = {
        let args = &c.node(1).args;
        let at = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
        (at("--cert-file"), at("--key-file"))
    };
    std::fs::copy(&new_key, format!("{key_arg}.tmp")).unwrap();
    std::fs::copy(&new_cert, format!("{cert_arg}.tmp")).unwrap();
    std::fs::rename(format!("{key_arg}.tmp"), &key_arg).unwrap();
    std::fs::rename(format!("{cert_arg}.tmp"), &cert_arg).unwrap();
    let pid = c.node(1).child.as_ref().unwrap().id();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for(
        "node 1 to serve its new certificate",
        Duration::from_secs(15),
        || async {
            let now = served_certificate(&ca, node1).await;
            (now != before).then_some(now)
        },
    )
    .await;
    c.log_with(1, "TLS certificate reloaded").await;
    let now = served_certificate(&ca, node1).await;
    let pem_der = drover_tls::load_certs(std::path::Path::new(&cert_arg)).unwrap();
    assert_eq!(now, pem_der[0].to_vec());
    admin
        .kv_put("tls/after-rotation", "ok", None)
        .await
        .unwrap();
    agent.shutdown().await.unwrap();
}
