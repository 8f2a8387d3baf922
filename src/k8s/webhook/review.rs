//! One `AdmissionReview` (v1) in, one `AdmissionReview` answer out.
//!
//! The webhook never builds a patch by hand: it runs [`inject_pod`] on a copy
//! of the pod and sends the JSON Patch (RFC 6902) from the original to that
//! copy, so a pod admitted here equals the pod `dtc inject` writes.

use crate::k8s::pod::{INJECT_ANNOTATION, Outcome, annotation, inject_pod};
use crate::k8s::sidecar::SidecarOptions;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

const API_VERSION: &str = "admission.k8s.io/v1";

/// Which pods a webhook path injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `/mutate`: only pods annotated `dtc.io/inject: "enabled"`.
    Annotated,
    /// `/mutate-namespace`: every pod (its namespace opted in) unless annotated `disabled`.
    Namespace,
}

/// A request body that is not an AdmissionReview v1 we can answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReviewError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("the body is not an AdmissionReview: {0}")]
    Shape(#[from] serde_json::Error),
    /// Another apiVersion or kind than `admission.k8s.io/v1` `AdmissionReview`.
    #[error(
        "expected apiVersion `admission.k8s.io/v1` and kind `AdmissionReview`, got `{0}` `{1}`: set admissionReviewVersions: [\"v1\"] in the MutatingWebhookConfiguration"
    )]
    Version(String, String),
    /// The review has no `request`.
    #[error("the AdmissionReview has no `request`")]
    NoRequest,
    /// A Pod CREATE without the pod.
    #[error("the AdmissionReview request for a Pod has no `object` mapping")]
    NoObject,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    api_version: String,
    kind: String,
    request: Option<Request>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    operation: String,
    object: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    kind: String,
}

/// Answers one review. An `Err` means the body itself is malformed (HTTP 400);
/// a pod that cannot be injected gets a normal answer that denies it.
pub(crate) fn answer(body: &[u8], mode: Mode, opts: &SidecarOptions) -> Result<Value, ReviewError> {
    let review: Review = serde_json::from_slice(body)?;
    if review.api_version != API_VERSION || review.kind != "AdmissionReview" {
        return Err(ReviewError::Version(review.api_version, review.kind));
    }
    let request = review.request.ok_or(ReviewError::NoRequest)?;
    let response = decide(&request, mode, opts)?;
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": "AdmissionReview",
        "response": response,
    }))
}

fn decide(request: &Request, mode: Mode, opts: &SidecarOptions) -> Result<Value, ReviewError> {
    let allow = json!({ "uid": request.uid, "allowed": true });
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if !is_pod || request.operation != "CREATE" {
        return Ok(allow);
    }
    let original = request.object.as_ref().filter(|o| o.is_object());
    let original = original.ok_or(ReviewError::NoObject)?;
    let mut pod = original.clone();
    let map = pod.as_object_mut().ok_or(ReviewError::NoObject)?;
    if mode == Mode::Annotated && annotation(map, INJECT_ANNOTATION) != Some("enabled") {
        return Ok(allow);
    }
    match inject_pod(map, "spec", opts) {
        Ok(Outcome::Injected) => Ok(patched(&request.uid, original, &pod)),
        Ok(Outcome::AlreadyInjected | Outcome::OptedOut | Outcome::Upgraded) => Ok(allow),
        Err(problem) => Ok(json!({
            "uid": request.uid,
            "allowed": false,
            "status": {
                "code": 422,
                "message": format!("dtc cannot inject its sidecar: {problem}"),
            },
        })),
    }
}

fn patched(uid: &str, original: &Value, injected: &Value) -> Value {
    let patch = json_patch::diff(original, injected);
    let bytes = serde_json::to_vec(&patch).expect("a JSON Patch serializes");
    json!({
        "uid": uid,
        "allowed": true,
        "patchType": "JSONPatch",
        "patch": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}
