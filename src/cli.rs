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
    /// Run one reference node (the in-memory service dtc replicates to), with fault knobs.
    Node(crate::node::NodeArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Inject(args) => crate::k8s::inject_main(args),
        Command::Webhook(args) => block_on(crate::k8s::webhook_main(args)),
        Command::Node(args) => block_on(crate::node::node_main(args)),
    }
}

/// Runs a command's future on a fresh multi-threaded runtime.
fn block_on(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(command),
        Err(e) => {
            eprintln!("dtc: cannot start the runtime: {e}");
            ExitCode::from(70)
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); does nothing if
/// a subscriber is already installed.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
