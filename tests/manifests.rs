//! Every file in `manifests/` is the Kubernetes objects it claims to be, with
//! no field a typed client would drop; the example Deployment is what
//! `dtc inject` makes of the app; and the pieces agree with each other
//! (ConfigMap ↔ sidecar paths, webhook routes, Dockerfile ↔ securityContext).
// The Kubernetes integration is built only with the `k8s` feature (on by default).
#![cfg(feature = "k8s")]

use dtc::k8s::SidecarOptions;
use dtc::k8s::inject::inject_yaml;
use dtc::k8s::sidecar::{
    ADMIN_PORT, CONFIG_DIR, JOURNAL_DIR, JOURNAL_MOUNT, PROXY_PORT, RUN_AS_USER, TOKEN_DIR,
    TOKEN_KEY,
};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file, as JSON values.
fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Parses `doc` as `T` and checks that serializing it back loses nothing.
fn round_trip<T: DeserializeOwned + serde::Serialize>(file: &str, doc: &Value) {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| {
        panic!(
            "{file}: {} is not a valid {}: {e}",
            doc["metadata"]["name"], doc["kind"]
        )
    });
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, doc, "{file}: a field of {} was ignored", doc["kind"]);
}

fn check_typed(file: &str, doc: &Value) {
    match doc["kind"].as_str().unwrap_or_default() {
        "ConfigMap" => round_trip::<ConfigMap>(file, doc),
        "Deployment" => round_trip::<Deployment>(file, doc),
        "Service" => round_trip::<Service>(file, doc),
        "Namespace" => round_trip::<Namespace>(file, doc),
        "ServiceAccount" => round_trip::<ServiceAccount>(file, doc),
        "Secret" => round_trip::<Secret>(file, doc),
        "MutatingWebhookConfiguration" => round_trip::<MutatingWebhookConfiguration>(file, doc),
        "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(file, doc),
        "NetworkPolicy" => round_trip::<NetworkPolicy>(file, doc),
        // Custom resources: no Kubernetes type to check them against; their shape is checked
        // by `the_custom_resources_have_the_fields_their_operators_read`.
        "Issuer" | "Certificate" | "PodMonitor" | "PrometheusRule" => {}
        other => panic!("{file}: no typed check for kind `{other}`: add one here"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    resources: Vec<String>,
}

/// The kustomizations: the base and its overlays.
const KUSTOMIZATIONS: [&str; 4] = ["base", "example", "webhook", "monitoring"];

fn kustomization_of(dir: &str) -> Kustomization {
    serde_norway::from_str(&read(format!("manifests/{dir}/kustomization.yaml"))).unwrap()
}

/// Every object file a kustomization applies (through `../base` too), as `dir/file`.
fn files_of(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    for r in kustomization_of(dir).resources {
        match r.strip_prefix("../") {
            Some(other) => out.extend(files_of(other)),
            None => out.push(format!("{dir}/{r}")),
        }
    }
    out
}

#[test]
fn every_manifest_parses_as_typed_objects_with_no_ignored_field() {
    for dir in KUSTOMIZATIONS {
        let k = kustomization_of(dir);
        assert_eq!(k.api_version, "kustomize.config.k8s.io/v1beta1");
        assert_eq!(k.kind, "Kustomization");
        for file in files_of(dir) {
            let docs = documents(&read(format!("manifests/{file}")));
            assert!(!docs.is_empty(), "{file} holds no object");
            docs.iter().for_each(|doc| check_typed(&file, doc));
        }
    }
}

#[test]
fn each_kustomization_lists_every_manifest_of_its_directory() {
    for dir in KUSTOMIZATIONS {
        let mut on_disk: Vec<String> = std::fs::read_dir(root().join("manifests").join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| {
                name.ends_with(".yaml")
                    && name != "kustomization.yaml"
                    && !name.starts_with("dtc-rules")
            })
            .map(|name| format!("{dir}/{name}"))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = files_of(dir)
            .into_iter()
            .filter(|f| f.starts_with(&format!("{dir}/")))
            .collect();
        listed.sort();
        assert_eq!(listed, on_disk, "manifests/{dir}/kustomization.yaml");
    }
}

/// The example's reference nodes are the nodes the base ConfigMap names, on their port; the
/// PDB and the NetworkPolicy select the app; the journal's emptyDir has a size limit.
#[test]
fn the_example_nodes_pdb_and_network_policy_fit_the_app() {
    let config_map = &documents(&read("manifests/base/configmap.yaml"))[0];
    let config: toml::Table =
        toml::from_str(config_map["data"]["dtc.toml"].as_str().unwrap()).unwrap();
    let nodes = documents(&read("manifests/example/nodes.yaml"));
    for n in config["nodes"].as_array().unwrap() {
        let name = n["name"].as_str().unwrap();
        assert_eq!(n["url"].as_str().unwrap(), format!("http://{name}:5000"));
        let service = nodes
            .iter()
            .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Service {name} in the example"));
        assert_eq!(service["spec"]["ports"][0]["port"], 5000);
        let deployment = nodes
            .iter()
            .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == name)
            .unwrap();
        let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
        assert_eq!(args[0], "node");
        assert!(
            args.as_array()
                .unwrap()
                .contains(&format!("--name={name}").into())
        );
    }
    let app = &documents(&read("manifests/base/deployment.yaml"))[0];
    let labels = &app["spec"]["template"]["metadata"]["labels"];
    let pdb = &documents(&read("manifests/base/pdb.yaml"))[0];
    let policy = &documents(&read("manifests/base/networkpolicy.yaml"))[0];
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(&policy["spec"]["podSelector"]["matchLabels"], labels);
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], ADMIN_PORT);
    let journal = app["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "dtc-journal")
        .unwrap();
    assert!(journal["emptyDir"]["sizeLimit"].is_string(), "{journal}");
}

/// cert-manager's and the Prometheus Operator's objects, by the fields they read.
#[test]
fn the_custom_resources_have_the_fields_their_operators_read() {
    let certs = documents(&read("manifests/webhook/certificate.yaml"));
    let cert = certs.iter().find(|d| d["kind"] == "Certificate").unwrap();
    assert_eq!(cert["apiVersion"], "cert-manager.io/v1");
    assert_eq!(cert["spec"]["secretName"], "dtc-webhook-tls");
    assert_eq!(cert["spec"]["dnsNames"][0], "dtc-webhook.dtc-system.svc");
    let issuer = certs.iter().find(|d| d["kind"] == "Issuer").unwrap();
    assert_eq!(
        cert["spec"]["issuerRef"]["name"],
        issuer["metadata"]["name"]
    );
    let hooks = documents(&read("manifests/webhook/webhook.yaml"));
    let mwc = hooks
        .iter()
        .find(|d| d["kind"] == "MutatingWebhookConfiguration")
        .unwrap();
    assert_eq!(
        mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!("dtc-system/{}", cert["metadata"]["name"].as_str().unwrap())
    );
    let monitor = &documents(&read("manifests/monitoring/podmonitor.yaml"))[0];
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["port"], "dtc-admin");
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(
        endpoint["authorization"]["credentials"]["name"],
        SidecarOptions::default().admin_token_secret
    );
    assert_eq!(endpoint["authorization"]["credentials"]["key"], TOKEN_KEY);
}

#[test]
fn the_example_deployment_is_the_app_after_dtc_inject() {
    let app = read("tests/fixtures/k8s/app-deployment.yaml");
    let injected = inject_yaml(&app, &SidecarOptions::default()).unwrap().yaml;
    assert_eq!(
        documents(&read("manifests/base/deployment.yaml")),
        documents(&injected),
        "regenerate manifests/base/deployment.yaml with `dtc inject -f tests/fixtures/k8s/app-deployment.yaml`"
    );
}

#[test]
fn the_configmap_carries_a_config_in_the_place_the_sidecar_reads() {
    let config_map = &documents(&read("manifests/base/configmap.yaml"))[0];
    assert_eq!(
        config_map["metadata"]["name"],
        SidecarOptions::default().config_map
    );
    let text = config_map["data"]["dtc.toml"]
        .as_str()
        .expect("a dtc.toml key");
    let config: toml::Table = toml::from_str(text).expect("dtc.toml is TOML");
    assert_eq!(
        config["listen"]["address"].as_str(),
        Some(&*format!("127.0.0.1:{PROXY_PORT}"))
    );
    assert_eq!(
        config["listen"]["admin"].as_str(),
        Some(&*format!("0.0.0.0:{ADMIN_PORT}"))
    );
    assert_eq!(config["journal"]["dir"].as_str(), Some(JOURNAL_DIR));
    assert!(JOURNAL_DIR.starts_with(&format!("{JOURNAL_MOUNT}/")));
    assert_eq!(config["nodes"].as_array().map(Vec::len), Some(3));
    let args = dtc::k8s::sidecar::sidecar_container(&SidecarOptions::default())
        .args
        .unwrap();
    assert_eq!(args[2], format!("{CONFIG_DIR}/dtc.toml"));
}

#[test]
fn the_webhook_configuration_calls_the_routes_the_server_has() {
    let docs = documents(&read("manifests/webhook/webhook.yaml"));
    let config = docs
        .iter()
        .find(|d| d["kind"] == "MutatingWebhookConfiguration")
        .unwrap();
    let mut paths = Vec::new();
    for hook in config["webhooks"].as_array().unwrap() {
        assert_eq!(hook["admissionReviewVersions"], serde_json::json!(["v1"]));
        assert_eq!(hook["sideEffects"], "None");
        assert!(hook["failurePolicy"].is_string());
        assert!(hook["namespaceSelector"].is_object() && hook["objectSelector"].is_object());
        assert_eq!(hook["clientConfig"]["service"]["name"], "dtc-webhook");
        paths.push(
            hook["clientConfig"]["service"]["path"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    paths.sort();
    assert_eq!(paths, ["/mutate", "/mutate-namespace"]);
}

#[test]
fn the_image_runs_as_the_user_and_exposes_the_ports_of_the_sidecar() {
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains(&format!("\nUSER {RUN_AS_USER}:{RUN_AS_USER}\n")));
    assert!(dockerfile.contains(&format!("\nEXPOSE {PROXY_PORT} {ADMIN_PORT}\n")));
    assert!(dockerfile.contains("\nENTRYPOINT [\"/dtc\"]\n"));
    assert!(dockerfile.contains(&format!("{CONFIG_DIR}/dtc.toml")));
}

#[test]
fn the_offline_check_builds_the_same_final_stage_as_the_dockerfile() {
    let final_stage = |file: &str| {
        let text = read(file);
        let at = text
            .find("# ---- final stage")
            .unwrap_or_else(|| panic!("{file}: no final stage marker"));
        text[at..].to_string()
    };
    assert_eq!(
        final_stage("Dockerfile"),
        final_stage("docker/Dockerfile.prebuilt")
    );
}

#[test]
fn the_image_default_config_matches_the_configmap_except_the_addresses() {
    let image: toml::Table = toml::from_str(&read("docker/etc/dtc/dtc.toml")).unwrap();
    let config_map = &documents(&read("manifests/base/configmap.yaml"))[0];
    let k8s: toml::Table =
        toml::from_str(config_map["data"]["dtc.toml"].as_str().unwrap()).unwrap();
    for section in ["retry", "journal", "routes"] {
        assert_eq!(image[section], k8s[section], "[{section}] differs");
    }
}

#[test]
fn the_shipped_container_configs_are_valid_dtc_configs() {
    let config_map = &documents(&read("manifests/base/configmap.yaml"))[0];
    let text = config_map["data"]["dtc.toml"]
        .as_str()
        .expect("a dtc.toml key");
    let settings =
        dtc::config::parse(text, "manifests/base/configmap.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(settings.nodes.len(), 3);
    assert_eq!(settings.routes.len(), 2);
    let image = read("docker/etc/dtc/dtc.toml");
    dtc::config::parse(&image, "docker/etc/dtc/dtc.toml").unwrap_or_else(|e| panic!("{e}"));
}

/// The admin API is reachable from the pod network (the kubelet's probes need it), so every
/// endpoint but the probes needs a token, which comes from a Secret mounted by the sidecar, and
/// no Service exposes the admin port.
#[test]
fn the_shipped_admin_api_needs_a_token_from_a_secret_and_no_service_exposes_it() {
    let config_map = &documents(&read("manifests/base/configmap.yaml"))[0];
    let text = config_map["data"]["dtc.toml"].as_str().unwrap();
    let config: toml::Table = toml::from_str(text).unwrap();
    let listen = config["listen"].as_table().unwrap();
    assert!(
        !listen.contains_key("admin_token"),
        "a token in a ConfigMap is no secret"
    );
    assert_eq!(
        listen["admin_token_file"].as_str(),
        Some(&*format!("{TOKEN_DIR}/{TOKEN_KEY}"))
    );
    let deployment = &documents(&read("manifests/base/deployment.yaml"))[0];
    let spec = &deployment["spec"]["template"]["spec"];
    let sidecar = &spec["initContainers"][0];
    let mounts = sidecar["volumeMounts"].as_array().unwrap();
    let token_mount = mounts
        .iter()
        .find(|m| m["mountPath"] == TOKEN_DIR)
        .expect("the sidecar mounts the token Secret");
    assert_eq!(token_mount["readOnly"], true);
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == token_mount["name"])
        .unwrap();
    assert_eq!(
        volume["secret"]["secretName"],
        SidecarOptions::default().admin_token_secret
    );
    assert_eq!(volume["secret"]["items"][0]["key"], TOKEN_KEY);
    for file in KUSTOMIZATIONS.iter().flat_map(|d| files_of(d)) {
        for doc in documents(&read(format!("manifests/{file}"))) {
            if doc["kind"] != "Service" {
                continue;
            }
            for port in doc["spec"]["ports"].as_array().unwrap() {
                let target = &port["targetPort"];
                assert!(
                    target != "dtc-admin" && target != ADMIN_PORT && port["port"] != ADMIN_PORT,
                    "{file}: Service {} exposes the admin API",
                    doc["metadata"]["name"]
                );
            }
        }
    }
    assert!(!root().join("manifests/service.yaml").exists());
}

#[test]
fn the_cluster_example_is_the_app_after_dtc_inject_with_the_database_secret() {
    for file in [
        "manifests/cluster/deployment.yaml",
        "manifests/cluster/secret.yaml",
    ] {
        for doc in documents(&read(file)) {
            check_typed(file, &doc);
        }
    }
    let opts = SidecarOptions {
        database_secret: Some("dtc-database".into()),
        ..SidecarOptions::default()
    };
    let app = read("tests/fixtures/k8s/app-deployment.yaml");
    assert_eq!(
        documents(&inject_yaml(&app, &opts).unwrap().yaml),
        documents(&read("manifests/cluster/deployment.yaml")),
        "regenerate it with `dtc inject --database-secret dtc-database -f tests/fixtures/k8s/app-deployment.yaml`"
    );
    let secret = &documents(&read("manifests/cluster/secret.yaml"))[0];
    assert_eq!(secret["metadata"]["name"], "dtc-database");
    assert!(
        secret["stringData"]["database_url"]
            .as_str()
            .unwrap()
            .starts_with("postgresql://")
    );
}
