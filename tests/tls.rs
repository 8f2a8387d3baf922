//! Nodes behind real TLS (rustls servers with rcgen certificates): which certificates dtc
//! trusts, the name it checks, the client certificate it presents, a certificate rotated on
//! disk while it runs, and pooling and probes over TLS.

mod support;

use http::{Method, StatusCode};
use support::tls::{Ca, FrontTls, Leaf, SecretDir, TlsFront, self_signed, write};
use support::*;

/// Three reference nodes, each behind a TLS front with a certificate from `leaf`.
async fn tls_nodes(
    leaf: impl Fn() -> Leaf,
    client_ca: Option<&str>,
) -> (Vec<dtc::node::RefNode>, Vec<TlsFront>) {
    let nodes = three_nodes().await;
    let mut fronts = Vec::new();
    for n in &nodes {
        let tls = FrontTls {
            leaf: leaf(),
            client_ca: client_ca.map(String::from),
        };
        fronts.push(TlsFront::start(tls, n.addr()).await);
    }
    (nodes, fronts)
}

/// A config for `nodes` reached through `fronts` at `https://HOST:PORT`.
fn https_config(
    nodes: &[dtc::node::RefNode],
    fronts: &[TlsFront],
    host: &str,
) -> dtc::config::Config {
    let mut cfg = test_config(nodes);
    for (n, f) in cfg.nodes.iter_mut().zip(fronts) {
        n.url = f.url(host);
    }
    cfg
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[tokio::test]
async fn nodes_signed_by_the_ca_bundle_take_writes_and_reads_over_pooled_tls() {
    let ca = Ca::new("test CA");
    let (nodes, fronts) = tls_nodes(|| ca.issue("node", &["localhost", "127.0.0.1"]), None).await;
    let dir = tempdir();
    let mut cfg = https_config(&nodes, &fronts, "localhost");
    cfg.tls.ca_file = Some(write(dir.path(), "ca.pem", &ca.pem));
    let dtc = start_proxy(cfg).await;
    for i in 0..5 {
        let answer = create_group(&dtc, &format!("g{i}")).await;
        assert_eq!(answer.status(), StatusCode::CREATED, "{}", answer.text());
    }
    assert_eq!(read_group(&dtc, "g4").await.status(), StatusCode::OK);
    for (n, f) in nodes.iter().zip(&fronts) {
        assert_eq!(n.groups().len(), 5, "node {} holds every write", n.name());
        let accepted = f.accepted();
        // Five writes, a read and the probes: all on one HTTP/2 connection per node.
        assert_eq!(
            accepted.len(),
            1,
            "connections to {}: {accepted:?}",
            n.name()
        );
        assert_eq!(accepted[0].alpn.as_deref(), Some("h2"));
        assert_eq!(accepted[0].sni.as_deref(), Some("localhost"));
    }
}

#[tokio::test]
async fn http1_over_tls_when_alpn_offers_only_http1_and_connections_are_reused() {
    let ca = Ca::new("test CA");
    let (nodes, fronts) = tls_nodes(|| ca.issue("node", &["127.0.0.1"]), None).await;
    let dir = tempdir();
    let mut cfg = https_config(&nodes, &fronts, "127.0.0.1");
    cfg.tls.ca_file = Some(write(dir.path(), "ca.pem", &ca.pem));
    cfg.tls.alpn = Some(vec!["http/1.1".into()]);
    cfg.health.path = String::new();
    let dtc = start_proxy(cfg).await;
    for i in 0..10 {
        let answer = create_group(&dtc, &format!("g{i}")).await;
        assert_eq!(answer.status(), StatusCode::CREATED, "{}", answer.text());
    }
    for f in &fronts {
        let accepted = f.accepted();
        assert_eq!(
            accepted.len(),
            1,
            "ten writes in a row, one connection: {accepted:?}"
        );
        assert_eq!(accepted[0].alpn.as_deref(), Some("http/1.1"));
        // An IP address is verified against the certificate's IP names, and sent as no SNI.
        assert_eq!(accepted[0].sni, None);
    }
}

#[tokio::test]
async fn a_self_signed_node_is_refused_with_the_system_roots_and_probed_down() {
    let (nodes, fronts) = tls_nodes(|| self_signed(&["localhost"]), None).await;
    let cfg = https_config(&nodes, &fronts, "localhost");
    let dtc = start_proxy(cfg).await;
    let answer = create_group(&dtc, "g1").await;
    assert_ne!(answer.status(), StatusCode::CREATED);
    let problem = answer.problem();
    let text = problem.to_string();
    assert!(
        text.contains("TLS") && text.contains("certificate"),
        "the problem names the TLS refusal: {text}"
    );
    assert!(
        nodes.iter().all(|n| n.groups().is_empty()),
        "no node was written"
    );
    // The probes go over TLS too: refused, they take the nodes down.
    wait_until("the probes mark the nodes down", || !dtc.node_up(0)).await;
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_unless_that_name_is_given() {
    let ca = Ca::new("test CA");
    let (nodes, fronts) = tls_nodes(|| ca.issue("node", &["node.other.test"]), None).await;
    let dir = tempdir();
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let node = &nodes[0];
    // Through the upstream client directly: one node, one answer.
    let send = |tweak: &dyn Fn(&mut dtc::config::Config)| {
        let mut cfg = https_config(std::slice::from_ref(node), &fronts[..1], "localhost");
        cfg.tls.ca_file = Some(ca_file.clone());
        tweak(&mut cfg);
        let settings = settings(cfg);
        let client = dtc::upstream::Node::new(
            settings.nodes[0].clone(),
            std::time::Duration::from_secs(1),
            settings.config.health.clone(),
        );
        async move {
            let req = client.request(
                Method::GET,
                "/healthz",
                Default::default(),
                Default::default(),
            );
            client.send(req).await.map(|r| r.status())
        }
    };
    let refused = send(&|_| {})
        .await
        .expect_err("a certificate for another name");
    assert!(
        !refused.maybe_applied() && refused.to_string().contains("not valid for name"),
        "{refused}"
    );
    let named = send(&|c| c.tls.server_name = Some("node.other.test".into())).await;
    assert_eq!(named.expect("the name it was issued for"), StatusCode::OK);
    assert_eq!(
        fronts[0].accepted().last().unwrap().sni.as_deref(),
        Some("node.other.test")
    );
    let unverified = send(&|c| c.tls.verify_hostname = Some(false)).await;
    assert_eq!(
        unverified.expect("hostname verification off"),
        StatusCode::OK
    );
    // Off, the chain is still checked: a certificate no CA signed stays refused.
    let stranger = TlsFront::start(
        FrontTls {
            leaf: self_signed(&["localhost"]),
            client_ca: None,
        },
        node.addr(),
    )
    .await;
    let mut cfg = https_config(
        std::slice::from_ref(node),
        std::slice::from_ref(&stranger),
        "localhost",
    );
    cfg.tls.ca_file = Some(ca_file.clone());
    cfg.tls.verify_hostname = Some(false);
    let dtc = start_proxy(cfg).await;
    assert_ne!(create_group(&dtc, "g").await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_node_that_requires_a_client_certificate_gets_dtcs() {
    let ca = Ca::new("node CA");
    let clients = Ca::new("client CA");
    let (nodes, fronts) = tls_nodes(|| ca.issue("node", &["localhost"]), Some(&clients.pem)).await;
    let dir = tempdir();
    let mut cfg = https_config(&nodes, &fronts, "localhost");
    cfg.tls.ca_file = Some(write(dir.path(), "ca.pem", &ca.pem));
    let without = start_proxy(cfg.clone()).await;
    let refused = create_group(&without, "g0").await;
    assert_ne!(refused.status(), StatusCode::CREATED, "{}", refused.text());
    assert!(nodes.iter().all(|n| n.groups().is_empty()));
    let me = clients.issue("dtc-sidecar", &["dtc"]);
    cfg.tls.cert_file = Some(write(dir.path(), "client.pem", &me.cert));
    cfg.tls.key_file = Some(write(dir.path(), "client.key", &me.key));
    let with = start_proxy(cfg).await;
    assert_eq!(
        create_group(&with, "g1").await.status(),
        StatusCode::CREATED
    );
    for f in &fronts {
        let presented: Vec<_> = f
            .accepted()
            .into_iter()
            .filter_map(|a| a.client_cn)
            .collect();
        assert!(
            presented.contains(&"dtc-sidecar".to_string()),
            "{presented:?}"
        );
    }
}

#[tokio::test]
async fn a_client_certificate_rotated_in_a_secret_mount_is_used_by_the_next_connection() {
    let ca = Ca::new("node CA");
    let clients = Ca::new("client CA");
    let (nodes, fronts) = tls_nodes(|| ca.issue("node", &["localhost"]), Some(&clients.pem)).await;
    let dir = tempdir();
    let first = clients.issue("dtc-1", &["dtc"]);
    let mut secret = SecretDir::new(
        dir.path(),
        &[
            ("tls.crt", &first.cert),
            ("tls.key", &first.key),
            ("ca.crt", &ca.pem),
        ],
    );
    let mut cfg = https_config(&nodes, &fronts, "localhost");
    cfg.tls.ca_file = Some(secret.path("ca.crt"));
    cfg.tls.cert_file = Some(secret.path("tls.crt"));
    cfg.tls.key_file = Some(secret.path("tls.key"));
    let dtc = start_proxy(cfg).await;
    assert_eq!(create_group(&dtc, "g1").await.status(), StatusCode::CREATED);
    let last_cn = |f: &TlsFront| f.accepted().last().and_then(|a| a.client_cn.clone());
    assert_eq!(last_cn(&fronts[0]).as_deref(), Some("dtc-1"));
    let second = clients.issue("dtc-2", &["dtc"]);
    secret.update(&[
        ("tls.crt", &second.cert),
        ("tls.key", &second.key),
        ("ca.crt", &ca.pem),
    ]);
    // Open connections keep the certificate they were made with; a new one takes the new one.
    for f in &fronts {
        f.cut();
    }
    eventually(
        "a new connection presents the rotated certificate",
        DEADLINE,
        std::time::Duration::from_millis(20),
        || async {
            let _ = read_group(&dtc, "g1").await;
            fronts
                .iter()
                .all(|f| last_cn(f).as_deref() == Some("dtc-2"))
        },
    )
    .await;
    assert_eq!(create_group(&dtc, "g2").await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn check_refuses_broken_tls_files_naming_the_field_and_the_file() {
    let ca = Ca::new("test CA");
    let dir = tempdir();
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let good = ca.issue("dtc", &["dtc"]);
    let other = ca.issue("other", &["other"]);
    let cert = write(dir.path(), "client.pem", &good.cert);
    let wrong_key = write(dir.path(), "other.key", &other.key);
    let secret_marker = "c2VjcmV0IGtleSBtYXRlcmlhbCBuZXZlciBzaG93bg";
    let garbage = write(
        dir.path(),
        "garbage.key",
        &format!("-----BEGIN PRIVATE KEY-----\n{secret_marker}\n-----END PRIVATE KEY-----\n"),
    );
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    let expired = ca.issue_valid("old", &["dtc"], now - 30 * day, now - day);
    let expired_cert = write(dir.path(), "expired.pem", &expired.cert);
    let expired_key = write(dir.path(), "expired.key", &expired.key);
    let missing = dir.path().join("missing.pem").display().to_string();
    let file = |body: String| {
        let path = dir.path().join("dtc.toml");
        std::fs::write(&path, body).unwrap();
        dtc::config::load_file(&path)
    };
    let node = |tls: &str| {
        format!("[[nodes]]\nname = \"a\"\nurl = \"https://localhost:8443\"\n[nodes.tls]\n{tls}\n")
    };
    for (tls, field, names) in [
        (
            format!("ca_file = \"{missing}\""),
            "nodes[0].tls.ca_file",
            missing.clone(),
        ),
        (
            format!("ca_file = \"{ca_file}\"\ncert_file = \"{cert}\"\nkey_file = \"{wrong_key}\""),
            "nodes[0].tls.key_file",
            wrong_key.clone(),
        ),
        (
            format!("ca_file = \"{ca_file}\"\ncert_file = \"{cert}\"\nkey_file = \"{garbage}\""),
            "nodes[0].tls.key_file",
            garbage.clone(),
        ),
        (
            format!(
                "ca_file = \"{ca_file}\"\ncert_file = \"{expired_cert}\"\nkey_file = \"{expired_key}\""
            ),
            "nodes[0].tls.cert_file",
            expired_cert.clone(),
        ),
        (
            format!("ca_file = \"{ca_file}\"\ncert_file = \"{cert}\""),
            "nodes[0].tls.cert_file",
            String::new(),
        ),
        (
            format!("ca_file = \"{cert}\"\nalpn = [\"h3\"]"),
            "nodes[0].tls.alpn",
            String::new(),
        ),
    ] {
        let err = file(node(&tls)).expect_err(&tls).to_string();
        assert!(err.contains(&format!("`{field}`")), "names {field}: {err}");
        assert!(err.contains(&names), "names the file {names}: {err}");
        assert!(!err.contains(secret_marker), "never shows a key: {err}");
    }
    // `[tls]` for every node: its problems name `tls.*`.
    let err = file(format!("[tls]\nca_file = \"{missing}\"\n{}", node("")))
        .expect_err("a missing CA file")
        .to_string();
    assert!(
        err.contains("`tls.ca_file`") && err.contains("line 2"),
        "{err}"
    );
    // TLS settings on an http node are a mistake.
    let err = file(
        "[[nodes]]\nname = \"a\"\nurl = \"http://localhost:1\"\ntls = { ca_file = \"x\" }\n".into(),
    )
    .expect_err("tls on http")
    .to_string();
    assert!(err.contains("`nodes[0].tls`"), "{err}");
}

#[tokio::test]
async fn check_accepts_good_tls_and_warns_of_a_near_expiry_and_of_hostname_verification_off() {
    let ca = Ca::new("test CA");
    let dir = tempdir();
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    let soon = ca.issue_valid("dtc", &["dtc"], now - day, now + 5 * day);
    let body = format!(
        "[tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n\n\
         [[nodes]]\nname = \"a\"\nurl = \"https://node-a.test:8443/api\"\n\n\
         [[nodes]]\nname = \"b\"\nurl = \"https://10.0.0.2\"\ntls = {{ verify_hostname = false, min_version = \"1.3\" }}\n",
        write(dir.path(), "ca.pem", &ca.pem),
        write(dir.path(), "dtc.pem", &soon.cert),
        write(dir.path(), "dtc.key", &soon.key),
    );
    let path = dir.path().join("dtc.toml");
    std::fs::write(&path, &body).unwrap();
    let (settings, _) = dtc::config::load_file(&path).expect("valid");
    let tls = settings.nodes[0].tls.as_ref().expect("https node has TLS");
    assert_eq!(tls.server_name, "node-a.test");
    assert_eq!(settings.nodes[0].authority, "node-a.test:8443");
    assert_eq!(settings.nodes[1].authority, "10.0.0.2:443");
    let b = settings.nodes[1].tls.as_ref().unwrap();
    assert!(
        !b.verify_hostname && b.identity.is_some(),
        "node b keeps [tls]'s client certificate"
    );
    let warnings: Vec<String> = settings.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("`tls.cert_file`") && w.contains("in 4 days")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("`nodes[1].tls.verify_hostname`")),
        "{warnings:?}"
    );
    // `dtc check` prints them and still accepts the file.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dtc"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run dtc check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("hostname verification is off"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("PRIVATE KEY") && stdout.contains("dtc.key"),
        "{stdout}"
    );
}
