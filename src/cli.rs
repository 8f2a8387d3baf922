//! The command line: `dtc run | check | node | demo | inject | webhook`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// dtc, the replicating sidecar proxy.
#[derive(Debug, Parser)]
#[command(name = "dtc", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add the dtc sidecar to Kubernetes manifests (stdin or a file) and print them.
    Inject(crate::k8s::InjectArgs),
    /// Serve the mutating admission webhook that injects the sidecar.
    Webhook(crate::k8s::WebhookArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inject(args) => crate::k8s::inject_main(args),
        Command::Webhook(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(crate::k8s::webhook_main(args)),
                Err(e) => {
                    eprintln!("dtc: cannot start the runtime: {e}");
                    ExitCode::from(70)
                }
            }
        }
    }
}
