//! Adding the sidecar to one pod (or pod template), as JSON.
//!
//! [`inject_pod`] is the single mutation behind both `dtc inject` and the
//! webhook: the webhook diffs its result against the original pod to build the
//! JSONPatch, so both paths produce the same pod by construction.
//!
//! Native sidecars are *prepended* to `initContainers`: the kubelet starts init
//! containers in order and waits for a sidecar's startup probe before the next
//! one, so every later init container and every app container can already reach
//! `127.0.0.1:8000`. At shutdown sidecars stop after the app containers.
//! A legacy sidecar is appended to `containers`, so the app stays the default
//! container of `kubectl logs` and `kubectl exec`.

use super::sidecar::{
    CONFIG_VOLUME, CONTAINER_NAME, JOURNAL_VOLUME, SidecarOptions, TOKEN_VOLUME, sidecar_container,
    sidecar_volumes,
};
use serde_json::{Map, Value};

/// Pod annotation that asks for (`enabled`) or refuses (`disabled`) injection.
pub(crate) const INJECT_ANNOTATION: &str = "dtc.io/inject";
/// Pod annotation that opts the pod into cluster mode: `SECRET[:KEY]` holding
/// `cluster.database_url` (as `--database-secret` does for every pod).
pub(crate) const DATABASE_SECRET_ANNOTATION: &str = "dtc.io/database-secret";
/// Pod annotation written by injection; makes injecting again a no-op.
pub(crate) const INJECTED_ANNOTATION: &str = "dtc.io/injected";
/// Pod annotation choosing the sidecar's proxy port (as `--proxy-port` does for every pod).
pub(crate) const PROXY_PORT_ANNOTATION: &str = "dtc.io/proxy-port";
/// Pod annotation choosing the sidecar's admin port (as `--admin-port` does for every pod).
pub(crate) const ADMIN_PORT_ANNOTATION: &str = "dtc.io/admin-port";

/// What [`inject_pod`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The sidecar, its volumes and the marker annotation were added.
    Injected,
    /// The pod already had the sidecar (marker annotation or a `dtc` container), as it would
    /// be built now.
    AlreadyInjected,
    /// The pod had the sidecar, built otherwise (another image, other flags): replaced in place
    /// (`dtc inject --upgrade`).
    Upgraded,
    /// The pod carries `dtc.io/inject: disabled`.
    OptedOut,
}

/// Why a pod could not be injected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PodError {
    /// The object has no pod spec with a `containers` list where one belongs.
    #[error("`{0}` is missing or has no `containers` list")]
    NoPodSpec(&'static str),
    /// A field has the wrong JSON type.
    #[error("`{0}` must be {1}")]
    WrongType(String, &'static str),
    /// The pod already uses one of the sidecar's volume names.
    #[error(
        "the pod already has a volume named `{0}`, which dtc needs: rename that volume and try again"
    )]
    VolumeTaken(String),
    /// A dtc annotation has a value dtc cannot use.
    #[error("{0}")]
    BadAnnotation(String),
    /// A container of the pod already uses a port the sidecar needs.
    #[error(
        "container `{container}` uses port {port}, which dtc's {} needs: both would bind it and one would crash; choose another with {} (or the pod annotation {})",
        listener.what(), listener.flag(), listener.annotation()
    )]
    PortTaken {
        container: String,
        port: i64,
        listener: Listener,
    },
}

/// One of the sidecar's two listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Proxy,
    Admin,
}

impl Listener {
    fn what(self) -> &'static str {
        match self {
            Listener::Proxy => "proxy",
            Listener::Admin => "admin listener",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Listener::Proxy => "--proxy-port",
            Listener::Admin => "--admin-port",
        }
    }

    fn annotation(self) -> &'static str {
        match self {
            Listener::Proxy => PROXY_PORT_ANNOTATION,
            Listener::Admin => ADMIN_PORT_ANNOTATION,
        }
    }
}

/// Adds the dtc sidecar to `pod`, an object with `metadata` and `spec` (a Pod
/// or a workload's pod template). `spec_path` names `spec` in error messages.
pub(crate) fn inject_pod(
    pod: &mut Map<String, Value>,
    spec_path: &'static str,
    opts: &SidecarOptions,
) -> Result<Outcome, PodError> {
    inject_pod_with(pod, spec_path, opts, false)
}

/// [`inject_pod`]; with `upgrade`, a pod that has the sidecar already gets it rebuilt from
/// `opts` in place (image, ports, volumes), and one that is up to date is left as it is.
pub(crate) fn inject_pod_with(
    pod: &mut Map<String, Value>,
    spec_path: &'static str,
    opts: &SidecarOptions,
    upgrade: bool,
) -> Result<Outcome, PodError> {
    let spec = pod
        .get("spec")
        .and_then(Value::as_object)
        .filter(|s| s.get("containers").is_some_and(Value::is_array))
        .ok_or(PodError::NoPodSpec(spec_path))?;
    let injected = annotation(pod, INJECTED_ANNOTATION) == Some("true") || has_sidecar(spec);
    if injected && !upgrade {
        return Ok(Outcome::AlreadyInjected);
    }
    if annotation(pod, INJECT_ANNOTATION) == Some("disabled") {
        return Ok(Outcome::OptedOut);
    }
    let opts = pod_options(pod, opts)?;
    let spec = pod
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or(PodError::NoPodSpec(spec_path))?;
    if injected {
        let before = spec.clone();
        remove_sidecar(spec);
        let outcome = add_sidecar(spec, &opts).map(|()| {
            if *spec == before {
                Outcome::AlreadyInjected
            } else {
                Outcome::Upgraded
            }
        })?;
        set_annotation(pod, INJECTED_ANNOTATION, "true")?;
        return Ok(outcome);
    }
    add_sidecar(spec, &opts)?;
    set_annotation(pod, INJECTED_ANNOTATION, "true")?;
    Ok(Outcome::Injected)
}

/// The options for this pod: the flags, with what its dtc annotations ask for.
fn pod_options(
    pod: &Map<String, Value>,
    opts: &SidecarOptions,
) -> Result<SidecarOptions, PodError> {
    let mut own = opts.clone();
    if let Some(secret) = annotation(pod, DATABASE_SECRET_ANNOTATION) {
        let mut problems = Vec::new();
        super::sidecar::check_secret_ref(DATABASE_SECRET_ANNOTATION, secret, &mut problems);
        if let Some(p) = problems.into_iter().next() {
            return Err(PodError::BadAnnotation(p));
        }
        own.database_secret = Some(secret.to_string());
    }
    for (key, slot) in [
        (PROXY_PORT_ANNOTATION, &mut own.proxy_port),
        (ADMIN_PORT_ANNOTATION, &mut own.admin_port),
    ] {
        if let Some(text) = annotation(pod, key) {
            *slot = text.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                PodError::BadAnnotation(format!("{key}: `{text}` is not a port (1 to 65535)"))
            })?;
        }
    }
    if own.proxy_port == own.admin_port {
        return Err(PodError::BadAnnotation(format!(
            "the proxy and admin ports are both {}: give them different ports",
            own.proxy_port
        )));
    }
    Ok(own)
}

/// Adds the sidecar and its volumes to a spec that has neither.
fn add_sidecar(spec: &mut Map<String, Value>, opts: &SidecarOptions) -> Result<(), PodError> {
    check_volume_names(spec)?;
    check_ports(spec, opts)?;
    add_container(spec, opts)?;
    add_volumes(spec, opts)?;
    raise_grace_period(spec, opts.termination_grace);
    Ok(())
}

/// Takes out the sidecar container and its volumes, keeping the place of the container (an
/// upgrade puts the new one back there when it is of the same kind).
fn remove_sidecar(spec: &mut Map<String, Value>) {
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            cs.retain(|c| c["name"] != CONTAINER_NAME);
            if cs.is_empty() && list == "initContainers" {
                spec.remove(list);
            }
        }
    }
    if let Some(vs) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        vs.retain(|v| {
            ![CONFIG_VOLUME, JOURNAL_VOLUME, TOKEN_VOLUME]
                .contains(&v["name"].as_str().unwrap_or(""))
        });
    }
}

/// Refuses a pod whose containers already use the sidecar's ports.
fn check_ports(spec: &Map<String, Value>, opts: &SidecarOptions) -> Result<(), PodError> {
    let wanted = [
        (opts.proxy_port, Listener::Proxy),
        (opts.admin_port, Listener::Admin),
    ];
    for list in ["containers", "initContainers"] {
        for c in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let ports = c["ports"].as_array().into_iter().flatten();
            for p in ports {
                let port = p["containerPort"].as_i64().unwrap_or(-1);
                if let Some((_, listener)) = wanted.iter().find(|(w, _)| i64::from(*w) == port) {
                    return Err(PodError::PortTaken {
                        container: c["name"].as_str().unwrap_or("?").to_string(),
                        port,
                        listener: *listener,
                    });
                }
            }
        }
    }
    Ok(())
}

/// The value of one annotation of `pod`, if it is a string.
pub(crate) fn annotation<'a>(pod: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    pod.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

fn has_sidecar(spec: &Map<String, Value>) -> bool {
    ["containers", "initContainers"].iter().any(|list| {
        spec.get(*list)
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c["name"] == CONTAINER_NAME))
    })
}

fn check_volume_names(spec: &Map<String, Value>) -> Result<(), PodError> {
    let Some(volumes) = spec.get("volumes").and_then(Value::as_array) else {
        return Ok(());
    };
    for taken in [CONFIG_VOLUME, JOURNAL_VOLUME, TOKEN_VOLUME] {
        if volumes.iter().any(|v| v["name"] == taken) {
            return Err(PodError::VolumeTaken(taken.into()));
        }
    }
    Ok(())
}

fn add_container(spec: &mut Map<String, Value>, opts: &SidecarOptions) -> Result<(), PodError> {
    let container = to_json(sidecar_container(opts));
    if opts.legacy_sidecar {
        list(spec, "containers")?.push(container);
    } else {
        list(spec, "initContainers")?.insert(0, container);
    }
    Ok(())
}

fn add_volumes(spec: &mut Map<String, Value>, opts: &SidecarOptions) -> Result<(), PodError> {
    let volumes = list(spec, "volumes")?;
    volumes.extend(sidecar_volumes(opts).into_iter().map(to_json));
    Ok(())
}

/// dtc drains in-flight writes on SIGTERM; the pod must give it the time.
fn raise_grace_period(spec: &mut Map<String, Value>, at_least: i64) {
    const KEY: &str = "terminationGracePeriodSeconds";
    let current = spec.get(KEY).and_then(Value::as_i64).unwrap_or(30);
    if current < at_least || !spec.contains_key(KEY) {
        spec.insert(KEY.into(), current.max(at_least).into());
    }
}

fn set_annotation(pod: &mut Map<String, Value>, key: &str, value: &str) -> Result<(), PodError> {
    let metadata = object(pod, "metadata")?;
    let annotations = object(metadata, "annotations")?;
    annotations.insert(key.into(), value.into());
    Ok(())
}

/// The array at `key`, created empty when absent (or `null`).
fn list<'a>(map: &'a mut Map<String, Value>, key: &str) -> Result<&'a mut Vec<Value>, PodError> {
    let slot = map.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut()
        .ok_or_else(|| PodError::WrongType(key.into(), "a list"))
}

/// The object at `key`, created empty when absent (or `null`).
fn object<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, PodError> {
    let slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
        .ok_or_else(|| PodError::WrongType(key.into(), "a mapping"))
}

/// Serializes a k8s-openapi object, `name` first as people write it.
fn to_json<T: serde::Serialize>(value: T) -> Value {
    let value = serde_json::to_value(value).expect("k8s-openapi types always serialize to JSON");
    let Value::Object(mut fields) = value else {
        return value;
    };
    let mut ordered = Map::new();
    if let Some(name) = fields.shift_remove("name") {
        ordered.insert("name".into(), name);
    }
    ordered.extend(fields);
    Value::Object(ordered)
}
