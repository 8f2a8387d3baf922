//! `dtc inject`: Kubernetes YAML in, the same YAML with the dtc sidecar out.
//!
//! The input is split into documents at `---` lines; each is parsed on its own.
//! A document with nothing to inject (a Service, an opted-out or already
//! injected workload, a custom resource) is written back byte for byte; an
//! injected document is re-serialized, keeping its field order and its leading
//! comments (comments inside it are lost — YAML parsers do not keep them).

use super::kinds::{Kind, KindError, classify};
use super::pod::{Outcome, PodError, inject_pod_with};
use super::sidecar::SidecarOptions;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Why `dtc inject` could not process its input.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The input holds no Kubernetes object at all.
    #[error("the input holds no Kubernetes objects: give a file with -f, or pipe YAML into stdin")]
    Empty,
    /// A document is not valid YAML.
    #[error("document {doc} (line {line}): not valid YAML: {message}")]
    Yaml {
        /// 1-based index of the document.
        doc: usize,
        /// 1-based line in the input.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// A document is YAML but not a Kubernetes object.
    #[error("document {doc} (line {line}) is not a Kubernetes object: {why}")]
    NotAnObject {
        /// 1-based index of the document.
        doc: usize,
        /// 1-based line in the input.
        line: usize,
        /// What is missing.
        why: String,
    },
    /// A built-in API group with a kind it does not have (usually a typo).
    #[error("document {doc} (line {line}): unknown kind `{kind}` in `{api_version}`{hint}")]
    UnknownKind {
        /// 1-based index of the document.
        doc: usize,
        /// 1-based line in the input.
        line: usize,
        /// The kind as written.
        kind: String,
        /// The apiVersion as written.
        api_version: String,
        /// ": did you mean `X`?" when a known kind is close.
        hint: String,
    },
    /// A workload whose pod spec cannot take the sidecar.
    #[error("document {doc} (line {line}), {kind} `{name}`: {source}")]
    Pod {
        /// 1-based index of the document.
        doc: usize,
        /// 1-based line in the input.
        line: usize,
        /// Kind of the object.
        kind: String,
        /// `metadata.name` of the object.
        name: String,
        /// What is wrong with its pod spec.
        source: PodError,
    },
}

/// The result of [`inject_yaml`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The output YAML.
    pub yaml: String,
    /// One line per object, for stderr: `deployment "web" injected`.
    pub report: Vec<String>,
}

/// Injects the sidecar into every workload of a multi-document YAML text.
pub fn inject_yaml(input: &str, opts: &SidecarOptions) -> Result<Injected, InjectError> {
    inject_yaml_with(input, opts, false)
}

/// [`inject_yaml`]; with `upgrade`, workloads injected already get the sidecar rebuilt from
/// `opts` in place (`dtc inject --upgrade`), and those that are up to date stay as they are.
pub fn inject_yaml_with(
    input: &str,
    opts: &SidecarOptions,
    upgrade: bool,
) -> Result<Injected, InjectError> {
    let mut out = Injected {
        yaml: String::with_capacity(input.len() * 2),
        report: Vec::new(),
    };
    let mut objects = 0;
    for (index, chunk) in split_documents(input).iter().enumerate() {
        let at = Place {
            doc: index + 1,
            line: chunk.first_line,
        };
        out.yaml.push_str(chunk.separator);
        let Some(mut value) = parse(chunk.body, at)? else {
            out.yaml.push_str(chunk.body);
            continue;
        };
        objects += 1;
        let mut injector = Injector {
            opts,
            upgrade,
            report: &mut out.report,
            at,
        };
        if injector.object(&mut value)? {
            out.yaml.push_str(leading_comments(chunk.body));
            out.yaml
                .push_str(&serde_norway::to_string(&value).expect("JSON values serialize"));
        } else {
            out.yaml.push_str(chunk.body);
        }
    }
    match objects {
        0 => Err(InjectError::Empty),
        _ => Ok(out),
    }
}

/// Where a document starts, for error messages.
#[derive(Debug, Clone, Copy)]
struct Place {
    doc: usize,
    line: usize,
}

/// One document of the input, as written.
struct Chunk<'a> {
    /// The `---` line before it (with its newline), or "" for the first.
    separator: &'a str,
    body: &'a str,
    /// 1-based line of the body's first line.
    first_line: usize,
}

/// Splits at lines that are a YAML document marker (`---`, optionally followed
/// by a comment). YAML forbids such a line inside a document, so this split is
/// exact; the parser still checks each piece holds at most one document.
fn split_documents(input: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let (mut separator, mut start, mut first_line) = ("", 0, 1);
    let mut offset = 0;
    for (number, line) in input.split_inclusive('\n').enumerate() {
        if is_marker(line) {
            chunks.push(Chunk {
                separator,
                body: &input[start..offset],
                first_line,
            });
            separator = line;
            start = offset + line.len();
            first_line = number + 2;
        }
        offset += line.len();
    }
    chunks.push(Chunk {
        separator,
        body: &input[start..],
        first_line,
    });
    chunks.retain(|c| !(c.separator.is_empty() && c.body.is_empty()));
    chunks
}

fn is_marker(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("---") else {
        return false;
    };
    let rest = rest.trim();
    rest.is_empty() || rest.starts_with('#')
}

/// The comment and blank lines a document starts with.
fn leading_comments(body: &str) -> &str {
    let mut end = 0;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim();
        if !(trimmed.is_empty() || trimmed.starts_with('#')) {
            break;
        }
        end += line.len();
    }
    &body[..end]
}

/// Parses one document; `None` when it is empty (only comments, or `~`).
fn parse(body: &str, at: Place) -> Result<Option<Value>, InjectError> {
    // Padding with the lines before the document makes the parser's own
    // "at line N" messages count lines of the whole input.
    let padded = "\n".repeat(at.line - 1) + body;
    let yaml_error = |e: serde_norway::Error| InjectError::Yaml {
        doc: at.doc,
        line: e.location().map_or(at.line, |l| l.line()),
        message: e.to_string(),
    };
    let mut docs = serde_norway::Deserializer::from_str(&padded);
    let Some(doc) = docs.next() else {
        return Ok(None);
    };
    let value = Value::deserialize(doc).map_err(yaml_error)?;
    if docs.next().is_some() {
        return Err(InjectError::Yaml {
            doc: at.doc,
            line: at.line,
            message:
                "two documents without a `---` line between them: put `---` on a line of its own"
                    .into(),
        });
    }
    Ok((!value.is_null()).then_some(value))
}

/// Places a [`KindError`] in its document.
fn kind_error(error: KindError, at: Place) -> InjectError {
    let (doc, line) = (at.doc, at.line);
    match error {
        KindError::Missing(field) => InjectError::NotAnObject {
            doc,
            line,
            why: format!("it has no `{field}` (Kubernetes objects need `apiVersion` and `kind`)"),
        },
        KindError::Unknown {
            kind,
            api_version,
            hint,
        } => InjectError::UnknownKind {
            doc,
            line,
            kind,
            api_version,
            hint,
        },
    }
}

/// Walks the objects of one document, adding the sidecar to workloads.
struct Injector<'a> {
    opts: &'a SidecarOptions,
    upgrade: bool,
    report: &'a mut Vec<String>,
    at: Place,
}

impl Injector<'_> {
    /// Injects into one object (recursing into `List`s); true when it changed.
    fn object(&mut self, value: &mut Value) -> Result<bool, InjectError> {
        let object = value.as_object_mut().ok_or(InjectError::NotAnObject {
            doc: self.at.doc,
            line: self.at.line,
            why: "it is not a mapping with `apiVersion` and `kind`".into(),
        })?;
        let name = object_name(object);
        match classify(object).map_err(|e| kind_error(e, self.at))? {
            Kind::List => self.list(object),
            Kind::Workload {
                kind,
                template,
                spec_path,
            } => self.workload(object, &kind, &name, template, spec_path),
            Kind::Other(kind) => {
                self.report
                    .push(format!("{} \"{name}\" skipped", kind.to_lowercase()));
                Ok(false)
            }
        }
    }

    fn list(&mut self, list: &mut Map<String, Value>) -> Result<bool, InjectError> {
        let mut changed = false;
        if let Some(items) = list.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                changed |= self.object(item)?;
            }
        }
        Ok(changed)
    }

    fn workload(
        &mut self,
        object: &mut Map<String, Value>,
        kind: &str,
        name: &str,
        template: &[&str],
        spec_path: &'static str,
    ) -> Result<bool, InjectError> {
        let at = self.at;
        let error = |source| InjectError::Pod {
            doc: at.doc,
            line: at.line,
            kind: kind.to_string(),
            name: name.to_string(),
            source,
        };
        let replicas = object
            .get("spec")
            .and_then(|s| s.get("replicas"))
            .and_then(Value::as_i64);
        let pod = pod_template(object, template).ok_or(error(PodError::NoPodSpec(spec_path)))?;
        let outcome = inject_pod_with(pod, spec_path, self.opts, self.upgrade).map_err(error)?;
        let what = format!("{} \"{name}\"", kind.to_lowercase());
        let verb = match outcome {
            Outcome::Injected => "injected",
            Outcome::Upgraded => "upgraded in place",
            Outcome::AlreadyInjected if self.upgrade => "already up to date",
            Outcome::AlreadyInjected => {
                "already injected (dtc inject --upgrade rebuilds its sidecar from these flags)"
            }
            Outcome::OptedOut => "skipped (dtc.io/inject: disabled)",
        };
        self.report.push(format!("{what} {verb}"));
        if outcome != Outcome::OptedOut {
            self.warn(&what, kind, replicas);
        }
        Ok(matches!(outcome, Outcome::Injected | Outcome::Upgraded))
    }

    /// Warnings about a workload that takes the sidecar but will not run well with it.
    fn warn(&mut self, what: &str, kind: &str, replicas: Option<i64>) {
        if self.opts.legacy_sidecar && matches!(kind, "Job" | "CronJob") {
            self.report.push(format!(
                "warning: {what}: with --legacy-sidecar, dtc is a regular container that keeps running after the job's own containers finish, so the Job never completes; leave out --legacy-sidecar (native sidecars need Kubernetes 1.29 or later) or end dtc from the job"
            ));
        }
        let shared = match (kind, replicas) {
            ("DaemonSet", _) => Some("every pod of the DaemonSet".to_string()),
            (_, Some(n)) if n > 1 => Some(format!("its {n} replicas")),
            _ => None,
        };
        if let (Some(claim), Some(who)) = (&self.opts.journal_claim, shared) {
            self.report.push(format!(
                "warning: {what}: --journal-claim {claim} gives {who} one and the same journal claim: a ReadWriteOnce claim lets only one pod start, and dtc refuses a journal another dtc holds; give each pod its own claim (a StatefulSet's volumeClaimTemplates) or keep the emptyDir journal"
            ));
        }
    }
}

/// Follows `path` (e.g. `spec.template`) to the pod template object.
fn pod_template<'a>(
    object: &'a mut Map<String, Value>,
    path: &[&str],
) -> Option<&'a mut Map<String, Value>> {
    path.iter()
        .try_fold(object, |map, key| map.get_mut(*key)?.as_object_mut())
}

fn object_name(object: &Map<String, Value>) -> String {
    object
        .get("metadata")
        .and_then(|m| m.get("name").or_else(|| m.get("generateName")))
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string()
}
