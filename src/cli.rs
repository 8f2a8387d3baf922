//! The command line: `dtc run | check | verify | node | demo | inject | webhook | status | txn`.

use crate::config;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// dtc, the replicating sidecar proxy: every write on all nodes or on none.
#[derive(Debug, Parser)]
#[command(name = "dtc", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "human",
        env = "DTC_LOG_FORMAT"
    )]
    pub log_format: crate::logging::Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    Run(RunArgs),
    /// Validate a config file and print the effective config (exit 64 when invalid).
    Check(CheckArgs),
    /// Check that the nodes agree on recently written keys; `--repair` fixes the odd ones
    /// (exit 0 all agree, 1 divergence left, 3 some keys unreadable, 64 bad flags or config).
    Verify(crate::verify::cli::VerifyArgs),
    /// Run three reference nodes and the proxy in one process, on the default config.
    Demo,
    /// Add the dtc sidecar to Kubernetes manifests (stdin or a file) and print them.
    Inject(crate::k8s::InjectArgs),
    /// Serve the mutating admission webhook that injects the sidecar.
    Webhook(crate::k8s::WebhookArgs),
    /// Run one reference node (the in-memory service dtc replicates to), with fault knobs.
    Node(crate::node::NodeArgs),
    /// Summarize a running dtc (nodes, generation, counts, failed transactions); exit 1 when
    /// something needs attention.
    Status(crate::ops::AdminArgs),
    /// List, show, retry or resolve a running dtc's transactions.
    Txn(crate::ops::TxnArgs),
}

/// `dtc run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Config file (watched: edits apply without a restart).
    #[arg(long, short, default_value = "config/dtc.toml", env = "DTC_CONFIG")]
    pub config: PathBuf,
    /// Worker threads (overrides listen.workers; 0 = one per core, 1 = a single-threaded
    /// runtime).
    #[arg(long)]
    pub workers: Option<usize>,
}

/// `dtc check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Config file to check.
    #[arg(long, short, default_value = "config/dtc.toml")]
    pub config: PathBuf,
}

/// Exit code for a bad config (EX_CONFIG... sysexits' EX_USAGE is 64, used for bad input).
const EXIT_CONFIG: u8 = 64;
/// Exit code when the service cannot start (EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;
/// Exit code when dtc itself failed (EX_SOFTWARE).
const EXIT_SOFTWARE: u8 = 70;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    // Writes out the log lines still buffered when dtc exits.
    let _log = crate::logging::init(cli.log_format);
    match cli.command {
        Command::Check(args) => check(&args),
        Command::Run(args) => run(args),
        Command::Verify(args) => crate::verify::cli::verify_main(args),
        Command::Demo => demo(),
        Command::Inject(args) => crate::k8s::inject_main(args),
        Command::Webhook(args) => with_runtime(0, crate::k8s::webhook_main(args)),
        Command::Node(args) => with_runtime(0, crate::node::node_main(args)),
        Command::Status(args) => crate::ops::status_main(args),
        Command::Txn(args) => crate::ops::txn_main(args),
    }
}

/// Prints a parse error (or the help it asked for) and exits. `dtc verify` exits 64 (EX_USAGE)
/// on bad flags, as its documented exit codes say; other commands keep clap's 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if !e.use_stderr() {
        return ExitCode::SUCCESS;
    }
    if std::env::args_os().any(|a| a == "verify") {
        ExitCode::from(crate::verify::cli::EXIT_USAGE)
    } else {
        ExitCode::from(2)
    }
}

/// Runs `fut` on a tokio runtime with `workers` threads (0: one per core). One worker is a
/// current-thread runtime: every task on the thread that accepts, no cross-thread wake-ups,
/// about 13 % more GETs per second than a one-worker multi-thread runtime on loopback
/// (docs/performance.md). The journal writer and the config watcher keep their own threads.
/// With several workers `fut` itself runs as a task, so the accept loop is on a worker too,
/// not on an extra thread beside them.
pub fn with_runtime(
    workers: usize,
    fut: impl std::future::Future<Output = ExitCode> + Send + 'static,
) -> ExitCode {
    let single = workers == 1;
    let mut b = if single {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if workers > 1 {
        b.worker_threads(workers);
    }
    match b.enable_all().build() {
        Ok(rt) if single => rt.block_on(fut),
        Ok(rt) => rt.block_on(async {
            tokio::spawn(fut).await.unwrap_or_else(|e| {
                eprintln!("dtc: the main task failed: {e}");
                ExitCode::from(EXIT_SOFTWARE)
            })
        }),
        Err(e) => {
            eprintln!("dtc: cannot start the runtime: {e}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}

fn check(args: &CheckArgs) -> ExitCode {
    match config::load_file(&args.config) {
        Ok((settings, _)) => {
            // The effective config goes to a terminal or a CI log: never with a secret in it.
            let mut shown = settings.config.clone();
            if let Some(c) = shown.cluster.as_mut() {
                c.database_url = config::cluster::redact_url(&c.database_url);
            }
            if shown.listen.admin_token.is_some() {
                shown.listen.admin_token = Some("***".into());
            }
            match toml::to_string_pretty(&shown) {
                Ok(text) => print!("{text}"),
                Err(e) => eprintln!("dtc check: cannot print the config: {e}"),
            }
            eprintln!(
                "{}: ok ({} nodes, {} routes)",
                args.config.display(),
                settings.nodes.len(),
                settings.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dtc check: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    let (settings, text) = match config::load_file(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dtc: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // One process per journal directory: a second `dtc run` (or a standalone `dtc verify`)
    // on it is refused. Held until exit.
    let _lock = if settings.config.journal.durability == config::DurabilityMode::Off {
        None
    } else {
        match crate::journal::DirLock::acquire(std::path::Path::new(&settings.config.journal.dir)) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("dtc: {e}");
                return ExitCode::from(EXIT_UNAVAILABLE);
            }
        }
    };
    let workers = args.workers.unwrap_or(settings.config.listen.workers);
    with_runtime(workers, async move {
        let app = crate::app::App::builder(settings)
            .config_file(args.config, text)
            .start()
            .await;
        match app.map(|app| crate::app::run(app, |_| {})) {
            Ok(serving) => match serving.await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::from(EXIT_UNAVAILABLE)
                }
            },
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::from(EXIT_UNAVAILABLE)
            }
        }
    })
}

fn demo() -> ExitCode {
    with_runtime(0, crate::demo::run())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::runtime::{Handle, RuntimeFlavor};

    fn flavor(workers: usize) -> RuntimeFlavor {
        let (tx, rx) = std::sync::mpsc::channel();
        with_runtime(workers, async move {
            let _ = tx.send(Handle::current().runtime_flavor());
            ExitCode::SUCCESS
        });
        rx.recv().expect("the runtime ran the future")
    }

    #[test]
    fn one_worker_is_a_single_threaded_runtime() {
        assert_eq!(flavor(1), RuntimeFlavor::CurrentThread);
        assert_eq!(flavor(2), RuntimeFlavor::MultiThread);
        assert_eq!(flavor(0), RuntimeFlavor::MultiThread);
    }
}
