//! TLS to the store: a PostgreSQL with `ssl = on` that takes only TLS connections with a client
//! certificate from the test CA; `sslmode=verify-full` with that CA works end to end, and a
//! wrong CA is a clear error at start and in `dtc check`.

use super::cluster_config;
use super::support::pg::{PgServer, TlsFiles};
use super::support::*;
use dtc::journal::shared::Shared;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::path::Path;

/// A test CA.
fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate for `names` (the common name is the first), signed by `ca`: (cert, key) PEM.
fn leaf(ca: &CertifiedIssuer<'static, KeyPair>, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// TCP only over TLS with a client certificate; the tests' own SQL over the unix socket.
const HBA: &str =
    "local all all trust\nhostssl all all 127.0.0.1/32 trust clientcert=verify-full\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_stores_ca_works_and_a_wrong_ca_is_a_clear_error() {
    let (right, wrong) = (ca("dtc test CA"), ca("some other CA"));
    let (cert, key) = leaf(&right, &["127.0.0.1", "localhost"]);
    let server = PgServer::start_tls(&TlsFiles {
        cert: &cert,
        key: &key,
        client_ca: &right.pem(),
        hba: HBA,
    });
    server.database("tls").await;
    let dir = tempfile::tempdir().unwrap();
    let (client_cert, client_key) = leaf(&right, &["postgres"]);
    let (cc, ck) = (
        write(dir.path(), "client.crt", &client_cert),
        write(dir.path(), "client.key", &client_key),
    );
    let url = |ca: &str| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={ca}&sslcert={cc}&sslkey={ck}",
            server.url("tls")
        )
    };
    let good = url(&write(dir.path(), "ca.crt", &right.pem()));
    let bad = url(&write(dir.path(), "wrong-ca.crt", &wrong.pem()));

    // verify-full with the CA that signed the store's certificate: a write goes through.
    let nodes = three_nodes().await;
    let sidecar = start_proxy(cluster_config(&nodes, &good)).await;
    assert_eq!(create_group(&sidecar, "t1").await.state(), "succeeded");
    let rows = server
        .count(
            "tls",
            "SELECT count(*) FROM pg_stat_ssl WHERE ssl AND client_dn IS NOT NULL",
        )
        .await;
    assert!(
        rows >= 1,
        "the sidecar's connections are TLS with a client certificate"
    );

    // Without a client certificate the server refuses, and says why.
    let e = Shared::connect(&dtc::config::ClusterConfig::with_url(&format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        server.url("tls"),
        dir.path().join("ca.crt").display()
    )))
    .await
    .err()
    .expect("refused without a client certificate")
    .to_string();
    assert!(e.contains("certificate"), "{e}");

    // A wrong CA, at start: the sidecar does not start, and says what to fix.
    let e = dtc::app::App::builder(settings(cluster_config(&nodes, &bad)))
        .start()
        .await
        .err()
        .expect("refused with a wrong CA")
        .to_string();
    assert!(
        e.contains("cannot be trusted") && e.contains("sslrootcert") && e.contains("UnknownIssuer"),
        "{e}"
    );
    assert!(!e.contains(&ck) || !e.contains("password"), "{e}");

    // And in `dtc check`.
    let mut cfg = cluster_config(&nodes, &bad);
    cfg.journal.dir = dir.path().join("journal").display().to_string();
    let path = dir.path().join("dtc.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let check = |path: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dtc"))
            .args(["check", "--config"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = check(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("cannot be trusted") && err.contains("sslrootcert"),
        "{err}"
    );
    cfg.cluster.as_mut().unwrap().database_url = good;
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let out = check(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("answers (sslmode=verify-full)"), "{err}");
}
