//! Kubernetes integration: `dtc inject` and the `dtc webhook` admission server.
//!
//! Both add the same sidecar. The pieces, from the shared core outwards:
//!
//! - [`sidecar`]: the dtc container and its volumes, built from [`SidecarOptions`]
//!   (the flags both commands share). The only place that knows what dtc's
//!   container looks like.
//! - [`pod`]: [`pod::inject_pod`] adds that sidecar to one pod or pod template
//!   (as JSON), idempotently: a pod marked `dtc.io/injected: "true"` or holding a
//!   `dtc` container is left alone, one annotated `dtc.io/inject: "disabled"` too.
//! - [`kinds`]: where each workload kind keeps its pod template.
//! - [`inject`]: multi-document YAML in, YAML out; untouched documents are
//!   copied byte for byte.
//! - [`webhook`]: AdmissionReview v1 → JSON Patch (the diff between the pod and
//!   [`pod::inject_pod`]'s result), served over rustls with certificate reload.

pub mod inject;
pub(crate) mod kinds;
pub(crate) mod pod;
pub mod sidecar;
pub mod webhook;

pub use sidecar::SidecarOptions;

use crate::exit;
use clap::Args;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Problems shared by both commands.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// One or more flags have values Kubernetes would refuse.
    #[error("bad flags: {0}")]
    BadFlags(String),
    /// The manifest to inject cannot be read.
    #[error("cannot read `{file}`: {why}")]
    ReadFile { file: String, why: std::io::Error },
    #[error("cannot read stdin: {0}")]
    ReadStdin(std::io::Error),
}

/// Arguments of `dtc inject`.
#[derive(Debug, Args)]
pub struct InjectArgs {
    /// YAML file to read; `-` or no flag reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Do not print what was injected to stderr (warnings still are).
    #[arg(short, long)]
    pub quiet: bool,
    /// Rebuild the sidecar of workloads injected already from these flags (a new --image, other
    /// ports), in place; workloads that are up to date are left as they are.
    #[arg(long)]
    pub upgrade: bool,
    #[command(flatten)]
    pub sidecar: SidecarOptions,
}

/// Arguments of `dtc webhook`.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// PEM certificate chain; re-read when the file changes.
    #[arg(long, default_value = "/etc/dtc-webhook/tls.crt")]
    pub tls_cert: PathBuf,
    /// PEM private key; re-read when the file changes.
    #[arg(long, default_value = "/etc/dtc-webhook/tls.key")]
    pub tls_key: PathBuf,
    #[command(flatten)]
    pub sidecar: SidecarOptions,
}

/// Runs `dtc inject`; returns the process exit code ([`crate::exit`]).
pub fn inject_main(args: InjectArgs) -> ExitCode {
    if let Err(error) = args.sidecar.validate() {
        eprintln!("dtc inject: {error}");
        return ExitCode::from(exit::USAGE);
    }
    let input = match read_input(args.file.as_deref()) {
        Ok(input) => input,
        Err(message) => {
            eprintln!("dtc inject: {message}");
            return ExitCode::from(exit::NO_INPUT);
        }
    };
    let injected = match inject::inject_yaml_with(&input, &args.sidecar, args.upgrade) {
        Ok(injected) => injected,
        Err(error) => {
            eprintln!("dtc inject: {error}");
            return ExitCode::from(exit::DATA);
        }
    };
    if let Err(error) = std::io::stdout().lock().write_all(injected.yaml.as_bytes()) {
        eprintln!("dtc inject: cannot write to stdout: {error}");
        return ExitCode::from(exit::IO);
    }
    injected
        .report
        .iter()
        .filter(|line| !args.quiet || line.starts_with("warning:"))
        .for_each(|line| eprintln!("{line}"));
    ExitCode::SUCCESS
}

fn read_input(file: Option<&std::path::Path>) -> Result<String, K8sError> {
    match file {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::read_to_string(path).map_err(|why| K8sError::ReadFile {
                file: path.display().to_string(),
                why,
            })
        }
        _ => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(K8sError::ReadStdin)?;
            Ok(input)
        }
    }
}

/// Runs `dtc webhook` until SIGTERM or Ctrl-C; returns the process exit code
/// ([`crate::exit`]).
pub async fn webhook_main(args: WebhookArgs) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    if let Err(error) = args.sidecar.validate() {
        eprintln!("dtc webhook: {error}");
        return ExitCode::from(exit::USAGE);
    }
    let certs = match webhook::tls::CertReloader::load(&args.tls_cert, &args.tls_key) {
        Ok(certs) => Arc::new(certs),
        Err(error) => {
            eprintln!("dtc webhook: {error}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("dtc webhook: cannot listen on {}: {error}", args.listen);
            return ExitCode::from(exit::UNAVAILABLE);
        }
    };
    tracing::info!(address = %args.listen, "webhook serving");
    webhook::serve(listener, certs, args.sidecar, terminated()).await;
    ExitCode::SUCCESS
}

/// Completes on SIGTERM (the kubelet stopping the pod) or Ctrl-C.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
