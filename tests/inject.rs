//! `dtc inject`: golden files for every workload kind, idempotency, untouched
//! documents, and a clear error for each kind of bad input.
// The Kubernetes integration is built only with the `k8s` feature (on by default).
#![cfg(feature = "k8s")]

use dtc::k8s::SidecarOptions;
use dtc::k8s::inject::{InjectError, inject_yaml};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn fixture(name: &str) -> String {
    let path = fixtures().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/k8s")
}

fn inject(input: &str) -> String {
    inject_yaml(input, &SidecarOptions::default())
        .expect("injects")
        .yaml
}

fn inject_err(input: &str) -> String {
    inject_yaml(input, &SidecarOptions::default())
        .expect_err("must be refused")
        .to_string()
}

/// Compares with `golden/NAME`; `DTC_BLESS=1 cargo test` rewrites the files.
fn assert_golden(name: &str, actual: &str) {
    let path = fixtures().join("golden").join(name);
    if std::env::var_os("DTC_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with DTC_BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

const KINDS: [&str; 8] = [
    "app-deployment.yaml",
    "statefulset.yaml",
    "daemonset.yaml",
    "job.yaml",
    "cronjob.yaml",
    "pod.yaml",
    "list.yaml",
    "multi.yaml",
];

#[test]
fn every_workload_kind_matches_its_golden_file() {
    for name in KINDS {
        assert_golden(name, &inject(&fixture(name)));
    }
}

#[test]
fn legacy_sidecar_is_a_regular_container_appended_after_the_app() {
    let opts = SidecarOptions {
        legacy_sidecar: true,
        image: "registry.example/dtc:0.2".into(),
        ..SidecarOptions::default()
    };
    let out = inject_yaml(&fixture("pod.yaml"), &opts).unwrap().yaml;
    assert_golden("pod-legacy.yaml", &out);
    let pod: Value = serde_norway::from_str(&out).unwrap();
    assert_eq!(pod["spec"]["containers"][1]["name"], "dtc");
    assert!(pod["spec"]["containers"][1].get("restartPolicy").is_none());
    assert!(pod["spec"].get("initContainers").is_none());
}

#[test]
fn injecting_twice_equals_injecting_once() {
    for name in KINDS {
        let once = inject(&fixture(name));
        assert_eq!(inject(&once), once, "{name}");
    }
}

#[test]
fn native_sidecar_goes_first_among_init_containers() {
    let job: Value = serde_norway::from_str(&inject(&fixture("job.yaml"))).unwrap();
    let init = &job["spec"]["template"]["spec"]["initContainers"];
    assert_eq!(init[0]["name"], "dtc");
    assert_eq!(init[0]["restartPolicy"], "Always");
    assert_eq!(init[1]["name"], "migrate");
}

#[test]
fn untouched_documents_are_copied_byte_for_byte() {
    let input = fixture("multi.yaml");
    let out = inject(&input);
    let docs: Vec<&str> = input.split("\n---\n").collect();
    assert_eq!(docs.len(), 4);
    for untouched in [docs[0], docs[2], docs[3]] {
        assert!(out.contains(untouched), "not copied verbatim:\n{untouched}");
    }
    assert!(
        !out.contains(docs[1]),
        "the web Deployment should have changed"
    );
}

#[test]
fn a_file_without_workloads_comes_out_unchanged() {
    let input = "# only config\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n";
    assert_eq!(inject(input), input);
}

#[test]
fn grace_period_is_raised_but_never_lowered() {
    let grace = |name: &str| -> Value {
        let out: Value = serde_norway::from_str(&inject(&fixture(name))).unwrap();
        out["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].clone()
    };
    assert_eq!(grace("daemonset.yaml"), 30);
    assert_eq!(grace("statefulset.yaml"), 60);
}

#[test]
fn a_workload_with_a_dtc_container_already_is_left_alone() {
    let input = fixture("pod.yaml").replace("name: shell", "name: dtc");
    assert_eq!(inject(&input), input);
}

#[test]
fn text_that_is_not_yaml_is_refused_with_its_line() {
    let message = inject_err("apiVersion: v1\nkind: ConfigMap\n---\nmetadata: {name: [unclosed\n");
    assert!(message.starts_with("document 2 (line 5)"), "{message}");
    assert!(message.contains("at line 4 column 18"), "{message}");
    assert!(message.contains("not valid YAML"), "{message}");
}

#[test]
fn yaml_that_is_not_a_kubernetes_object_is_refused() {
    let message = inject_err("name: web\nimage: nginx\n");
    assert!(message.contains("not a Kubernetes object"), "{message}");
    assert!(message.contains("`apiVersion`"), "{message}");
    let message = inject_err("- just\n- a list\n");
    assert!(message.contains("not a Kubernetes object"), "{message}");
    let message = inject_err("apiVersion: v1\nmetadata: {name: x}\n");
    assert!(message.contains("has no `kind`"), "{message}");
}

#[test]
fn a_mistyped_kind_gets_a_suggestion() {
    let message = inject_err("apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: x}\n");
    assert!(message.contains("unknown kind `Deploymnet`"), "{message}");
    assert!(message.contains("did you mean `Deployment`?"), "{message}");
    let message = inject_err("apiVersion: v1\nkind: Deployment\nmetadata: {name: x}\n");
    assert!(
        message.contains("belongs to apiVersion `apps/v1`"),
        "{message}"
    );
}

#[test]
fn a_workload_without_a_pod_spec_is_refused() {
    let message = inject_err(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n",
    );
    assert!(message.contains("Deployment `web`"), "{message}");
    assert!(message.contains("spec.template.spec"), "{message}");
}

#[test]
fn a_volume_named_like_dtcs_is_refused() {
    let input = fixture("job.yaml").replace("name: scratch", "name: dtc-journal");
    let message = inject_err(&input);
    assert!(
        message.contains("already has a volume named `dtc-journal`"),
        "{message}"
    );
}

#[test]
fn empty_input_is_refused() {
    assert!(matches!(
        inject_yaml("# nothing here\n", &SidecarOptions::default()),
        Err(InjectError::Empty)
    ));
}

fn dtc(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dtc runs");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (
        out.status.code().unwrap(),
        text(out.stdout),
        text(out.stderr),
    )
}

#[test]
fn the_command_reads_stdin_and_reports_on_stderr() {
    let (code, out, err) = dtc(&["inject"], &fixture("pod.yaml"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, inject(&fixture("pod.yaml")));
    assert_eq!(err, "pod \"debug\" injected\n");
}

#[test]
fn the_command_reads_a_file() {
    let path = fixtures().join("list.yaml");
    let (code, out, _) = dtc(&["inject", "-q", "-f", path.to_str().unwrap()], "");
    assert_eq!(code, 0);
    assert_eq!(out, inject(&fixture("list.yaml")));
}

#[test]
fn bad_flags_exit_64_with_every_problem_named() {
    let (code, out, err) = dtc(
        &[
            "inject",
            "--memory-limit",
            "128MB",
            "--config-map",
            "My_Config",
        ],
        "",
    );
    assert_eq!(code, 64);
    assert!(out.is_empty());
    assert!(
        err.contains("--memory-limit `128MB` is not a Kubernetes quantity"),
        "{err}"
    );
    assert!(
        err.contains("--config-map `My_Config` is not a valid Kubernetes name"),
        "{err}"
    );
}

#[test]
fn a_missing_file_exits_66_and_bad_input_65() {
    let (code, _, err) = dtc(&["inject", "-f", "/nonexistent/deploy.yaml"], "");
    assert_eq!(code, 66);
    assert!(
        err.contains("cannot read `/nonexistent/deploy.yaml`"),
        "{err}"
    );
    let (code, out, err) = dtc(&["inject"], "kind: Deploymnet\napiVersion: apps/v1\n");
    assert_eq!(code, 65);
    assert!(
        out.is_empty(),
        "nothing is written when a document is refused"
    );
    assert!(err.contains("did you mean `Deployment`?"), "{err}");
}

/// A pod whose app already listens on 8000 is refused with the flag that fixes it; with other
/// ports (flags or annotations) it injects, and dtc is told its addresses.
#[test]
fn a_port_the_app_uses_is_refused_and_other_ports_are_honoured() {
    let app = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: web\n    image: web:1\n    ports:\n    - containerPort: 8000\n";
    let e = inject_err(app);
    assert!(
        e.contains("container `web` uses port 8000") && e.contains("--proxy-port"),
        "{e}"
    );
    let opts = SidecarOptions {
        proxy_port: 8100,
        ..SidecarOptions::default()
    };
    let out = inject_yaml(app, &opts).unwrap().yaml;
    let pod: Value = serde_norway::from_str(&out).unwrap();
    let dtc = &pod["spec"]["initContainers"][0];
    assert_eq!(dtc["ports"][0]["containerPort"], 8100);
    assert_eq!(dtc["env"][0]["name"], "DTC_LISTEN_ADDRESS");
    assert_eq!(dtc["env"][0]["value"], "127.0.0.1:8100");
    let annotated = app.replace(
        "  name: web\n",
        "  name: web\n  annotations:\n    dtc.io/proxy-port: \"8200\"\n",
    );
    let out = inject(&annotated);
    let pod: Value = serde_norway::from_str(&out).unwrap();
    assert_eq!(
        pod["spec"]["initContainers"][0]["ports"][0]["containerPort"],
        8200
    );
}

/// `--upgrade` rebuilds an injected workload's sidecar from the flags, and a second run changes
/// nothing; without it a different image is reported, not applied.
#[test]
fn upgrade_replaces_the_sidecar_in_place_and_is_idempotent() {
    use dtc::k8s::inject::inject_yaml_with;
    let first = inject(&fixture("app-deployment.yaml"));
    let newer = SidecarOptions {
        image: "dtc:0.2".into(),
        ..SidecarOptions::default()
    };
    let kept = inject_yaml_with(&first, &newer, false).unwrap();
    assert_eq!(kept.yaml, first);
    assert!(
        kept.report[0].contains("already injected (dtc inject --upgrade"),
        "{:?}",
        kept.report
    );
    let upgraded = inject_yaml_with(&first, &newer, true).unwrap();
    assert_eq!(
        upgraded.report,
        ["deployment \"dtc-app\" upgraded in place"]
    );
    let d: Value = serde_norway::from_str(&upgraded.yaml).unwrap();
    let spec = &d["spec"]["template"]["spec"];
    let dtcs: Vec<&Value> = spec["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "dtc")
        .collect();
    assert_eq!(dtcs.len(), 1);
    assert_eq!(dtcs[0]["image"], "dtc:0.2");
    assert_eq!(
        spec["volumes"].as_array().unwrap().len(),
        3,
        "the sidecar's volumes once each"
    );
    let again = inject_yaml_with(&upgraded.yaml, &newer, true).unwrap();
    assert_eq!(again.yaml, upgraded.yaml);
    assert_eq!(again.report, ["deployment \"dtc-app\" already up to date"]);
}

#[test]
fn jobs_with_a_legacy_sidecar_and_shared_journal_claims_are_warned_about() {
    let legacy = SidecarOptions {
        legacy_sidecar: true,
        ..SidecarOptions::default()
    };
    let report = inject_yaml(&fixture("cronjob.yaml"), &legacy)
        .unwrap()
        .report;
    assert!(
        report
            .iter()
            .any(|l| l.starts_with("warning: cronjob") && l.contains("never completes")),
        "{report:?}"
    );
    let claim = SidecarOptions {
        journal_claim: Some("dtc-journal".into()),
        ..SidecarOptions::default()
    };
    let two = fixture("app-deployment.yaml").replace("replicas: 1", "replicas: 2");
    let report = inject_yaml(&two, &claim).unwrap().report;
    assert!(
        report.iter().any(|l| l.contains(
            "warning: deployment \"dtc-app\": --journal-claim dtc-journal gives its 2 replicas"
        )),
        "{report:?}"
    );
    let one = inject_yaml(&fixture("app-deployment.yaml"), &claim)
        .unwrap()
        .report;
    assert!(!one.iter().any(|l| l.starts_with("warning")), "{one:?}");
}
