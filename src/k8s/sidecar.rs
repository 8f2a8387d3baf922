//! The dtc sidecar as Kubernetes objects: the one place that decides what the
//! container, its volumes and its probes look like.
//!
//! `dtc inject` and `dtc webhook` both call [`sidecar_container`] and
//! [`sidecar_volumes`] (through [`super::pod::inject_pod`]), so a pod injected by
//! either path is identical.

use super::K8sError;
use clap::Args;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, PersistentVolumeClaimVolumeSource, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Name of the sidecar container; also how an injected pod is recognised.
pub const CONTAINER_NAME: &str = "dtc";
/// Name of the pod volume that carries the dtc ConfigMap.
pub const CONFIG_VOLUME: &str = "dtc-config";
/// Name of the pod volume that holds the transaction journal.
pub const JOURNAL_VOLUME: &str = "dtc-journal";
/// Directory the ConfigMap is mounted at (as a directory: hot reload needs the
/// kubelet's `..data` symlink swap, which `subPath` mounts never see).
pub const CONFIG_DIR: &str = "/etc/dtc";
/// Mount point of the journal volume inside the container. The journal itself goes in a
/// subdirectory ([`JOURNAL_DIR`]) that dtc creates 0700: Kubernetes makes an `emptyDir` 0777
/// and root's, which dtc rightly refuses to keep client credentials in.
pub const JOURNAL_MOUNT: &str = "/var/lib/dtc";
/// Directory of the journal inside the container (`journal.dir` of the shipped ConfigMap).
pub const JOURNAL_DIR: &str = "/var/lib/dtc/journal";
/// Name of the pod volume that carries the admin token Secret.
pub const TOKEN_VOLUME: &str = "dtc-admin-token";
/// Directory the admin token Secret is mounted at.
pub const TOKEN_DIR: &str = "/etc/dtc-secret";
/// The Secret's key holding the token; the file `listen.admin_token_file` names.
pub const TOKEN_KEY: &str = "token";
/// Port of the proxy (the app talks to `127.0.0.1:8000`) unless `--proxy-port` says otherwise.
pub const PROXY_PORT: i32 = 8000;
/// Port of the admin listener (health, readiness) unless `--admin-port` says otherwise.
pub const ADMIN_PORT: i32 = 9901;
/// The environment variables that move dtc's listeners off the ConfigMap's addresses
/// (`listen.address`, `listen.admin`), set when a pod's ports ask for it.
pub use crate::config::{LISTEN_ADDRESS_ENV, LISTEN_ADMIN_ENV};
/// Non-root user the image and the container run as.
pub const RUN_AS_USER: i64 = 65532;

/// How the sidecar is built; the same flags exist on `dtc inject` and `dtc webhook`.
#[derive(Debug, Clone, Args)]
pub struct SidecarOptions {
    /// Image of the dtc container.
    #[arg(long, default_value = "dtc:0.1")]
    pub image: String,
    /// Pull policy of the dtc image (Always, IfNotPresent, Never).
    #[arg(long, default_value = "IfNotPresent")]
    pub image_pull_policy: String,
    /// ConfigMap holding `dtc.toml`, mounted as a directory at /etc/dtc.
    #[arg(long, default_value = "dtc-config")]
    pub config_map: String,
    /// Secret whose key `token` is the admin API's bearer token, mounted at /etc/dtc-secret
    /// (the shipped ConfigMap sets `admin_token_file = "/etc/dtc-secret/token"`).
    #[arg(long, default_value = "dtc-admin-token")]
    pub admin_token_secret: String,
    /// Keep the journal in this PersistentVolumeClaim instead of an emptyDir.
    #[arg(long, value_name = "CLAIM")]
    pub journal_claim: Option<String>,
    /// Size limit of the journal's emptyDir (the kubelet evicts a pod past it).
    #[arg(long, default_value = "256Mi", value_name = "QUANTITY")]
    pub journal_size_limit: String,
    /// Port of dtc's proxy in the pod (the app talks to 127.0.0.1:PORT); a pod can ask with
    /// the annotation dtc.io/proxy-port.
    #[arg(long, default_value_t = PROXY_PORT as u16, value_name = "PORT")]
    pub proxy_port: u16,
    /// Port of dtc's admin listener (probes, metrics); a pod can ask with dtc.io/admin-port.
    #[arg(long, default_value_t = ADMIN_PORT as u16, value_name = "PORT")]
    pub admin_port: u16,
    /// Add dtc as a regular container instead of a native sidecar (clusters before 1.29).
    #[arg(long)]
    pub legacy_sidecar: bool,
    /// CPU request of the dtc container.
    #[arg(long, default_value = "50m")]
    pub cpu_request: String,
    /// Memory request of the dtc container.
    #[arg(long, default_value = "32Mi")]
    pub memory_request: String,
    /// CPU limit of the dtc container.
    #[arg(long, default_value = "500m")]
    pub cpu_limit: String,
    /// Memory limit of the dtc container.
    #[arg(long, default_value = "128Mi")]
    pub memory_limit: String,
    /// Lower bound for the pod's terminationGracePeriodSeconds (dtc drains on SIGTERM).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub termination_grace: i64,
    /// Cluster mode: give the sidecar `cluster.database_url` from this Secret (`NAME` or
    /// `NAME:KEY`, key `database_url` by default) as `DTC_DATABASE_URL`. A pod can ask for it
    /// with the `dtc.io/database-secret` annotation instead.
    #[arg(long, value_name = "SECRET[:KEY]")]
    pub database_secret: Option<String>,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        Self {
            image: "dtc:0.1".into(),
            image_pull_policy: "IfNotPresent".into(),
            config_map: "dtc-config".into(),
            admin_token_secret: "dtc-admin-token".into(),
            journal_claim: None,
            journal_size_limit: "256Mi".into(),
            proxy_port: PROXY_PORT as u16,
            admin_port: ADMIN_PORT as u16,
            legacy_sidecar: false,
            cpu_request: "50m".into(),
            memory_request: "32Mi".into(),
            cpu_limit: "500m".into(),
            memory_limit: "128Mi".into(),
            termination_grace: 30,
            database_secret: None,
        }
    }
}

impl SidecarOptions {
    /// Checks every flag and returns all problems at once.
    pub fn validate(&self) -> Result<(), K8sError> {
        let mut problems = Vec::new();
        if self.image.trim().is_empty() || self.image.contains(char::is_whitespace) {
            problems.push(format!(
                "--image `{}` is not an image reference",
                self.image
            ));
        }
        if !["Always", "IfNotPresent", "Never"].contains(&self.image_pull_policy.as_str()) {
            problems.push(format!(
                "--image-pull-policy `{}`: write Always, IfNotPresent or Never",
                self.image_pull_policy
            ));
        }
        check_name("--config-map", &self.config_map, &mut problems);
        check_name(
            "--admin-token-secret",
            &self.admin_token_secret,
            &mut problems,
        );
        if let Some(claim) = &self.journal_claim {
            check_name("--journal-claim", claim, &mut problems);
        }
        if let Some(secret) = &self.database_secret {
            check_secret_ref("--database-secret", secret, &mut problems);
        }
        if self.proxy_port == 0 || self.admin_port == 0 || self.proxy_port == self.admin_port {
            problems.push(format!(
                "--proxy-port {} and --admin-port {} must be two different ports above 0",
                self.proxy_port, self.admin_port
            ));
        }
        for (flag, value) in [
            ("--journal-size-limit", &self.journal_size_limit),
            ("--cpu-request", &self.cpu_request),
            ("--memory-request", &self.memory_request),
            ("--cpu-limit", &self.cpu_limit),
            ("--memory-limit", &self.memory_limit),
        ] {
            if !is_quantity(value) {
                problems.push(format!(
                    "{flag} `{value}` is not a Kubernetes quantity (e.g. 50m, 0.5, 128Mi, 1Gi)"
                ));
            }
        }
        if self.termination_grace < 1 {
            problems.push(format!(
                "--termination-grace {} must be at least 1 second",
                self.termination_grace
            ));
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(K8sError::BadFlags(problems.join("; "))),
        }
    }
}

/// A DNS-1123 subdomain, the rule for ConfigMap and claim names.
fn check_name(flag: &str, name: &str, problems: &mut Vec<String>) {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        problems.push(format!(
            "{flag} `{name}` is not a valid Kubernetes name (lower-case letters, digits, '-' and '.')"
        ));
    }
}

/// `NAME` or `NAME:KEY`: a Secret name and a data key.
pub fn check_secret_ref(what: &str, value: &str, problems: &mut Vec<String>) {
    let (name, key) = secret_ref(value);
    check_name(what, name, problems);
    let key_ok = !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !key_ok {
        problems.push(format!(
            "{what} `{value}`: the key `{key}` is not a valid Secret key (letters, digits, '-', '_' and '.')"
        ));
    }
}

/// The Secret name and key of `NAME[:KEY]`.
pub fn secret_ref(value: &str) -> (&str, &str) {
    value
        .split_once(':')
        .unwrap_or((value, DATABASE_SECRET_KEY))
}

/// The Secret key `--database-secret NAME` reads.
pub const DATABASE_SECRET_KEY: &str = "database_url";
pub use crate::config::cluster::DATABASE_URL_ENV;

/// Accepts what Kubernetes accepts as a quantity: a decimal number and a suffix.
pub fn is_quantity(text: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E",
    ];
    let number = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number = SUFFIXES
        .iter()
        .find_map(|s| number.strip_suffix(s))
        .or_else(|| exponent_free(number))
        .unwrap_or(number);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !(int.is_empty() && frac.is_empty()) && digits(int) && digits(frac)
}

/// Strips a decimal exponent (`1e3`, `5E-2`) and returns the mantissa.
fn exponent_free(text: &str) -> Option<&str> {
    let at = text.find(['e', 'E'])?;
    let exp = &text[at + 1..];
    let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    (!exp.is_empty() && exp.bytes().all(|b| b.is_ascii_digit())).then_some(&text[..at])
}

/// The dtc container. A native sidecar (`restartPolicy: Always`, for
/// `initContainers`) unless `legacy_sidecar` asks for a regular container.
pub fn sidecar_container(opts: &SidecarOptions) -> Container {
    Container {
        name: CONTAINER_NAME.into(),
        image: Some(opts.image.clone()),
        image_pull_policy: Some(opts.image_pull_policy.clone()),
        args: Some(
            ["run", "--config", "/etc/dtc/dtc.toml"]
                .map(String::from)
                .to_vec(),
        ),
        restart_policy: (!opts.legacy_sidecar).then(|| "Always".into()),
        ports: Some(vec![
            port("dtc-proxy", i32::from(opts.proxy_port)),
            port("dtc-admin", i32::from(opts.admin_port)),
        ]),
        startup_probe: Some(probe("/healthz", 1, 30)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 5, 2)),
        resources: Some(resources(opts)),
        security_context: Some(security_context()),
        volume_mounts: Some(vec![
            mount(CONFIG_VOLUME, CONFIG_DIR, true),
            mount(JOURNAL_VOLUME, JOURNAL_MOUNT, false),
            mount(TOKEN_VOLUME, TOKEN_DIR, true),
        ]),
        env: env(opts),
        ..Container::default()
    }
}

/// The container's environment: the database URL's Secret, and the listeners' addresses when
/// the ports are not the ConfigMap's.
fn env(opts: &SidecarOptions) -> Option<Vec<EnvVar>> {
    let mut vars = opts
        .database_secret
        .as_deref()
        .map(database_env)
        .unwrap_or_default();
    let plain = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    };
    if i32::from(opts.proxy_port) != PROXY_PORT {
        vars.push(plain(
            LISTEN_ADDRESS_ENV,
            format!("127.0.0.1:{}", opts.proxy_port),
        ));
    }
    if i32::from(opts.admin_port) != ADMIN_PORT {
        vars.push(plain(
            LISTEN_ADMIN_ENV,
            format!("0.0.0.0:{}", opts.admin_port),
        ));
    }
    (!vars.is_empty()).then_some(vars)
}

/// `DTC_DATABASE_URL` from the Secret `NAME[:KEY]`: the URL (and its password) never appears
/// in the pod spec or the ConfigMap.
fn database_env(secret: &str) -> Vec<EnvVar> {
    let (name, key) = secret_ref(secret);
    vec![EnvVar {
        name: DATABASE_URL_ENV.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: name.into(),
                key: key.into(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
    }]
}

/// The pod volumes the sidecar mounts: the ConfigMap, the journal and the admin token Secret
/// (not optional: a pod without its token does not start, rather than start with an open API).
pub fn sidecar_volumes(opts: &SidecarOptions) -> Vec<Volume> {
    let config = Volume {
        name: CONFIG_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: opts.config_map.clone(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    let journal = match &opts.journal_claim {
        Some(claim) => Volume {
            name: JOURNAL_VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: None,
            }),
            ..Volume::default()
        },
        None => Volume {
            name: JOURNAL_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity(opts.journal_size_limit.clone())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
    };
    let token = Volume {
        name: TOKEN_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(opts.admin_token_secret.clone()),
            items: Some(vec![KeyToPath {
                key: TOKEN_KEY.into(),
                path: TOKEN_KEY.into(),
                mode: None,
            }]),
            default_mode: None,
            optional: None,
        }),
        ..Volume::default()
    };
    vec![config, journal, token]
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("dtc-admin".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(1),
        ..Probe::default()
    }
}

fn resources(opts: &SidecarOptions) -> ResourceRequirements {
    let pair = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])
    };
    ResourceRequirements {
        requests: Some(pair(&opts.cpu_request, &opts.memory_request)),
        limits: Some(pair(&opts.cpu_limit, &opts.memory_limit)),
        ..ResourceRequirements::default()
    }
}

fn security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

#[cfg(test)]
mod tests;
