//! `dtc webhook` over real TLS: the patch it answers, applied with a JSON Patch
//! library, gives exactly the pod `dtc inject` writes; everything else is
//! allowed unpatched; malformed reviews get a 400; certificates rotate.
// The Kubernetes integration is built only with the `k8s` feature (on by default).
#![cfg(feature = "k8s")]

use base64::Engine;
use bytes::Bytes;
use dtc::k8s::SidecarOptions;
use dtc::k8s::inject::inject_yaml;
use dtc::k8s::webhook::{serve, tls::CertReloader};
use http_body_util::{BodyExt, Full};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A test CA; `issue` writes a server certificate for `localhost` it signed.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    /// Writes cert and key atomically (write, then rename), as a rotation would.
    fn issue(&self, cert: &Path, key: &Path) {
        let keys = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let leaf = params.signed_by(&keys, &self.issuer).unwrap();
        write_atomically(cert, &leaf.pem());
        write_atomically(key, &keys.serialize_pem());
    }

    fn client(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A webhook running in-process on 127.0.0.1:0; stops when dropped.
struct Webhook {
    address: std::net::SocketAddr,
    dir: tempfile::TempDir,
    ca: Ca,
    _stop: oneshot::Sender<()>,
}

impl Webhook {
    async fn start() -> Webhook {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test CA 1");
        ca.issue(&dir.path().join("tls.crt"), &dir.path().join("tls.key"));
        let certs = CertReloader::load(&dir.path().join("tls.crt"), &dir.path().join("tls.key"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let opts = SidecarOptions::default();
        tokio::spawn(serve(listener, Arc::new(certs.unwrap()), opts, shutdown));
        Webhook {
            address,
            dir,
            ca,
            _stop: stop,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        self.request_with(&self.ca, "POST", path, body)
            .await
            .expect("the webhook answers")
    }

    async fn request_with(
        &self,
        ca: &Ca,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), String> {
        let tcp = TcpStream::connect(self.address)
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").unwrap();
        let tls = ca
            .client()
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let io = hyper_util::rt::TokioIo::new(tls);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Ok((status, body.to_vec()))
    }

    /// Sends a review and returns its `response` object.
    async fn review(&self, path: &str, review: &Value) -> Value {
        let (status, body) = self.post(path, serde_json::to_vec(review).unwrap()).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
        answer["response"].clone()
    }
}

fn pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-7d9f-",
            "namespace": "shop",
            "labels": {"app": "web"},
            "annotations": annotations,
        },
        "spec": {
            "containers": [{"name": "web", "image": "example/web:3"}],
            "initContainers": [{"name": "migrate", "image": "example/web:3"}],
            "volumes": [{"name": "cache", "emptyDir": {}}],
        },
    })
}

fn review_of(object: Value, kind: &str, operation: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": object,
            "dryRun": false,
        },
    })
}

/// What `dtc inject` writes for the same pod, as JSON.
fn injected_by_cli(pod: &Value) -> Value {
    let yaml = serde_norway::to_string(pod).unwrap();
    let out = inject_yaml(&yaml, &SidecarOptions::default()).unwrap().yaml;
    serde_norway::from_str(&out).unwrap()
}

fn apply(pod: &Value, response: &Value) -> Value {
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().expect("a patch"))
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    patched
}

fn assert_unpatched(response: &Value) {
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none(), "{response}");
}

#[tokio::test]
async fn an_annotated_pod_gets_exactly_the_sidecar_dtc_inject_adds() {
    let webhook = Webhook::start().await;
    let pod = pod(json!({"dtc.io/inject": "enabled"}));
    let response = webhook
        .review("/mutate", &review_of(pod.clone(), "Pod", "CREATE"))
        .await;
    let patched = apply(&pod, &response);
    assert_eq!(patched, injected_by_cli(&pod));
    assert_eq!(patched["spec"]["initContainers"][0]["name"], "dtc");
}

#[tokio::test]
async fn a_pod_asking_for_cluster_mode_gets_its_database_url_from_the_secret() {
    let webhook = Webhook::start().await;
    let pod = pod(json!({"dtc.io/inject": "enabled", "dtc.io/database-secret": "shop-db:url"}));
    let response = webhook
        .review("/mutate", &review_of(pod.clone(), "Pod", "CREATE"))
        .await;
    let patched = apply(&pod, &response);
    assert_eq!(
        patched,
        injected_by_cli(&pod),
        "the annotation works for dtc inject too"
    );
    let env = &patched["spec"]["initContainers"][0]["env"];
    assert_eq!(
        env,
        &json!([{"name": "DTC_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "shop-db", "key": "url"}}}])
    );
    let bad = pod_with_secret("Not A Name");
    let response = webhook
        .review("/mutate", &review_of(bad, "Pod", "CREATE"))
        .await;
    let text = response.to_string();
    assert!(text.contains("dtc.io/database-secret"), "{text}");
}

fn pod_with_secret(secret: &str) -> Value {
    pod(json!({"dtc.io/inject": "enabled", "dtc.io/database-secret": secret}))
}

#[tokio::test]
async fn a_pod_without_the_annotation_is_allowed_unpatched() {
    let webhook = Webhook::start().await;
    let review = review_of(pod(json!({"team": "shop"})), "Pod", "CREATE");
    assert_unpatched(&webhook.review("/mutate", &review).await);
}

#[tokio::test]
async fn an_already_injected_pod_is_allowed_unpatched() {
    let webhook = Webhook::start().await;
    let once = injected_by_cli(&pod(json!({"dtc.io/inject": "enabled"})));
    for path in ["/mutate", "/mutate-namespace"] {
        let review = review_of(once.clone(), "Pod", "CREATE");
        assert_unpatched(&webhook.review(path, &review).await);
    }
}

#[tokio::test]
async fn namespace_mode_injects_unannotated_pods_but_respects_opt_out() {
    let webhook = Webhook::start().await;
    let plain = pod(json!({}));
    let response = webhook
        .review(
            "/mutate-namespace",
            &review_of(plain.clone(), "Pod", "CREATE"),
        )
        .await;
    assert_eq!(apply(&plain, &response), injected_by_cli(&plain));
    let opted_out = review_of(pod(json!({"dtc.io/inject": "disabled"})), "Pod", "CREATE");
    assert_unpatched(&webhook.review("/mutate-namespace", &opted_out).await);
}

#[tokio::test]
async fn other_kinds_and_operations_are_allowed_unpatched() {
    let webhook = Webhook::start().await;
    let annotated = pod(json!({"dtc.io/inject": "enabled"}));
    let update = review_of(annotated.clone(), "Pod", "UPDATE");
    assert_unpatched(&webhook.review("/mutate", &update).await);
    let service = review_of(json!({"kind": "Service"}), "Service", "CREATE");
    assert_unpatched(&webhook.review("/mutate", &service).await);
}

#[tokio::test]
async fn a_pod_that_cannot_take_the_sidecar_is_denied_with_the_reason() {
    let webhook = Webhook::start().await;
    let mut pod = pod(json!({"dtc.io/inject": "enabled"}));
    pod["spec"]["volumes"][0]["name"] = "dtc-config".into();
    let response = webhook
        .review("/mutate", &review_of(pod, "Pod", "CREATE"))
        .await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("already has a volume named `dtc-config`"),
        "{message}"
    );
}

#[tokio::test]
async fn malformed_reviews_get_400_with_a_clear_message_and_the_server_lives_on() {
    let webhook = Webhook::start().await;
    let cases: [(Vec<u8>, &str); 4] = [
        (b"not json at all".to_vec(), "not an AdmissionReview"),
        (
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#.to_vec(),
            "expected apiVersion `admission.k8s.io/v1`",
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            "has no `request`",
        ),
        (
            serde_json::to_vec(&review_of(Value::Null, "Pod", "CREATE")).unwrap(),
            "has no `object`",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = webhook.post("/mutate", body).await;
        let answer = String::from_utf8(answer).unwrap();
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains(expected), "{answer}");
    }
    let (status, _) = webhook.post("/elsewhere", Vec::new()).await;
    assert_eq!(status, 404);
    let health = webhook
        .request_with(&webhook.ca, "GET", "/healthz", Vec::new())
        .await;
    assert_eq!(health.unwrap().0, 200);
}

#[tokio::test]
async fn new_connections_get_the_rotated_certificate() {
    let webhook = Webhook::start().await;
    let new_ca = Ca::new("test CA 2");
    let health = |ca| webhook.request_with(ca, "GET", "/healthz", Vec::new());
    assert!(
        health(&new_ca).await.is_err(),
        "the new CA is not trusted yet"
    );
    new_ca.issue(&webhook.path("tls.crt"), &webhook.path("tls.key"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while health(&new_ca).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the webhook never served the new certificate"
        );
        tokio::task::yield_now().await;
    }
    assert!(
        health(&webhook.ca).await.is_err(),
        "the old certificate is gone"
    );
}

#[tokio::test]
async fn a_half_rotated_pair_keeps_the_last_good_certificate() {
    let webhook = Webhook::start().await;
    let other = Ca::new("test CA 2");
    let scratch = tempfile::tempdir().unwrap();
    other.issue(&scratch.path().join("c"), &scratch.path().join("k"));
    // Only the certificate is new: it does not match the old key.
    std::fs::copy(scratch.path().join("c"), webhook.path("tls.crt")).unwrap();
    let health = webhook
        .request_with(&webhook.ca, "GET", "/healthz", Vec::new())
        .await;
    assert_eq!(health.unwrap().0, 200);
}

#[test]
fn unusable_certificate_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let missing = CertReloader::load(&cert, &key).err().unwrap().to_string();
    assert!(
        missing.contains("cannot load the certificate from"),
        "{missing}"
    );
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let garbage = CertReloader::load(&cert, &key).err().unwrap().to_string();
    assert!(
        garbage.contains("no `BEGIN CERTIFICATE` block"),
        "{garbage}"
    );
    Ca::new("a").issue(&cert, &key);
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    std::fs::write(&key, other_key).unwrap();
    let mismatch = CertReloader::load(&cert, &key).err().unwrap().to_string();
    assert!(mismatch.contains("do not work together"), "{mismatch}");
}
