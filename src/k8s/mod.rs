//! Kubernetes integration: `dtc inject` and the admission webhook (filled in by the k8s work).

use clap::Args;

/// Arguments of `dtc inject`.
#[derive(Debug, Args)]
pub struct InjectArgs {}

/// Arguments of `dtc webhook`.
#[derive(Debug, Args)]
pub struct WebhookArgs {}

/// Runs `dtc inject`; returns the process exit code.
pub fn inject_main(_args: InjectArgs) -> std::process::ExitCode {
    eprintln!("dtc inject: not built yet");
    std::process::ExitCode::from(70)
}

/// Runs `dtc webhook`; returns the process exit code.
pub async fn webhook_main(_args: WebhookArgs) -> std::process::ExitCode {
    eprintln!("dtc webhook: not built yet");
    std::process::ExitCode::from(70)
}
