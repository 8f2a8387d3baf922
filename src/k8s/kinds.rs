//! Which objects carry a pod template, and where; and which kinds are typos.

use serde_json::{Map, Value};

/// What an object is, as far as injection cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A `List` (or `DeploymentList`, …): inject into each of its `items`.
    List,
    /// An object with a pod spec.
    Workload {
        /// The kind as written.
        kind: String,
        /// Path from the object to the pod template (empty for a Pod).
        template: &'static [&'static str],
        /// Where the pod spec is, for messages.
        spec_path: &'static str,
    },
    /// Anything else: passed through untouched.
    Other(String),
}

/// A problem with `apiVersion`/`kind`, before the document is known (`inject` places it
/// in its document).
#[derive(Debug)]
pub(crate) enum KindError {
    /// `apiVersion` or `kind` is missing or not a string.
    Missing(&'static str),
    /// A built-in group does not have this kind.
    Unknown {
        /// The kind as written.
        kind: String,
        /// The apiVersion as written.
        api_version: String,
        /// ": did you mean …?" or where the kind lives, if anything fits.
        hint: String,
    },
}

const POD: &[&str] = &[];
const TEMPLATE: &[&str] = &["spec", "template"];
const CRON: &[&str] = &["spec", "jobTemplate", "spec", "template"];

/// Where a kind keeps its pod template, and that spec's path for messages.
type Template = Option<(&'static [&'static str], &'static str)>;

/// Every kind of the groups checked strictly, with its pod template path.
const BUILT_IN: &[(&str, &str, Template)] = &[
    ("", "Pod", Some((POD, "spec"))),
    (
        "",
        "ReplicationController",
        Some((TEMPLATE, "spec.template.spec")),
    ),
    ("apps", "Deployment", Some((TEMPLATE, "spec.template.spec"))),
    (
        "apps",
        "StatefulSet",
        Some((TEMPLATE, "spec.template.spec")),
    ),
    ("apps", "DaemonSet", Some((TEMPLATE, "spec.template.spec"))),
    ("apps", "ReplicaSet", Some((TEMPLATE, "spec.template.spec"))),
    ("batch", "Job", Some((TEMPLATE, "spec.template.spec"))),
    (
        "batch",
        "CronJob",
        Some((CRON, "spec.jobTemplate.spec.template.spec")),
    ),
    ("apps", "ControllerRevision", None),
    ("", "Binding", None),
    ("", "ComponentStatus", None),
    ("", "ConfigMap", None),
    ("", "Endpoints", None),
    ("", "Event", None),
    ("", "LimitRange", None),
    ("", "List", None),
    ("", "Namespace", None),
    ("", "Node", None),
    ("", "PersistentVolume", None),
    ("", "PersistentVolumeClaim", None),
    ("", "PodTemplate", None),
    ("", "ResourceQuota", None),
    ("", "Secret", None),
    ("", "Service", None),
    ("", "ServiceAccount", None),
];

/// Classifies an object by its `apiVersion` and `kind`.
///
/// The core group, `apps` and `batch` are checked strictly (a kind they lack
/// is an error, usually a typo); other groups — including custom resources —
/// pass through untouched.
pub(crate) fn classify(object: &Map<String, Value>) -> Result<Kind, KindError> {
    let field = |name| object.get(name).and_then(Value::as_str);
    let api_version = field("apiVersion").ok_or(KindError::Missing("apiVersion"))?;
    let kind = field("kind").ok_or(KindError::Missing("kind"))?;
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let base = kind.strip_suffix("List").filter(|b| !b.is_empty());
    if kind == "List" || base.is_some_and(|b| known(group, b).is_some()) {
        return Ok(Kind::List);
    }
    match known(group, kind) {
        Some(Some((template, spec_path))) => Ok(Kind::Workload {
            kind: kind.into(),
            template,
            spec_path,
        }),
        Some(None) => Ok(Kind::Other(kind.into())),
        None if ["", "apps", "batch"].contains(&group) => Err(KindError::Unknown {
            kind: kind.into(),
            api_version: api_version.into(),
            hint: hint(kind),
        }),
        None => Ok(Kind::Other(kind.into())),
    }
}

fn known(group: &str, kind: &str) -> Option<Template> {
    BUILT_IN
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
        .map(|(_, _, t)| *t)
}

/// Says where a misplaced kind lives, or which known kind a typo is close to.
fn hint(kind: &str) -> String {
    if let Some((group, _, _)) = BUILT_IN.iter().find(|(_, k, _)| *k == kind) {
        let api_version = if group.is_empty() {
            "v1".to_string()
        } else {
            format!("{group}/v1")
        };
        return format!(": `{kind}` belongs to apiVersion `{api_version}`");
    }
    let lower = kind.to_lowercase();
    BUILT_IN
        .iter()
        .map(|(_, k, _)| (strsim::damerau_levenshtein(&lower, &k.to_lowercase()), *k))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map_or(String::new(), |(_, k)| format!(": did you mean `{k}`?"))
}
