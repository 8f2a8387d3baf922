//! The command line: `dtc run | check | verify | node | demo | inject | webhook | status | txn |
//! journal`.

use crate::process::with_runtime;
use crate::{config, exit};
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
    /// Validate a config file and print the effective config (exit 78 when invalid).
    Check(CheckArgs),
    /// Check that the nodes agree on recently written keys; `--repair` fixes the odd ones
    /// (exit 0 all agree, 1 divergence left, 3 some keys unreadable, 64 bad flags, 78 bad
    /// config).
    Verify(crate::verify::cli::VerifyArgs),
    /// Run three reference nodes and the proxy in one process, on the default config; `dtc demo
    /// fault node-3 down` breaks a node of a running demo.
    Demo(crate::demo::DemoArgs),
    /// Add the dtc sidecar to Kubernetes manifests (stdin or a file) and print them.
    #[cfg(feature = "k8s")]
    Inject(crate::k8s::InjectArgs),
    /// Serve the mutating admission webhook that injects the sidecar.
    #[cfg(feature = "k8s")]
    Webhook(crate::k8s::WebhookArgs),
    /// Not in this build: `dtc inject` needs dtc built with the `k8s` feature.
    #[cfg(not(feature = "k8s"))]
    Inject(NotBuilt),
    /// Not in this build: `dtc webhook` needs dtc built with the `k8s` feature.
    #[cfg(not(feature = "k8s"))]
    Webhook(NotBuilt),
    /// Run one reference node (the in-memory service dtc replicates to), with fault knobs.
    Node(crate::node::NodeArgs),
    /// Summarize a running dtc (nodes, generation, counts, failed transactions); exit 1 when
    /// something needs attention.
    Status(crate::ops::AdminArgs),
    /// List, show, retry or resolve a running dtc's transactions.
    Txn(crate::ops::TxnArgs),
    /// Check, dump or repair a journal directory offline (exit 0 intact, 1 something open,
    /// 65 damaged, 66 no journal, 69 in use, 74 I/O).
    Journal(crate::ops::journal::JournalArgs),
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
    /// Start even on a journal with damage that may have held an in-doubt or failed
    /// transaction: the damaged bytes are set aside in side files (see `dtc journal check`).
    #[arg(long)]
    pub accept_journal_damage: bool,
}

/// The arguments of a subcommand this build leaves out, taken as they come so that the command
/// says what it needs rather than which flag it does not know.
#[cfg(not(feature = "k8s"))]
#[derive(Debug, clap::Args)]
pub struct NotBuilt {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<std::ffi::OsString>,
}

/// `dtc check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Config file to check.
    #[arg(long, short, default_value = "config/dtc.toml")]
    pub config: PathBuf,
    /// Check on a machine that is not where dtc runs (CI): files the config names that only
    /// exist there (the admin token Secret, TLS files) are reported, not fatal, and the shared
    /// store of `[cluster]` is not contacted.
    #[arg(long)]
    pub offline: bool,
}

/// Entry point of the binary; the exit codes are [`crate::exit`]'s.
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
        Command::Demo(args) => crate::demo::main(args),
        #[cfg(feature = "k8s")]
        Command::Inject(args) => crate::k8s::inject_main(args),
        #[cfg(feature = "k8s")]
        Command::Webhook(args) => with_runtime(0, crate::k8s::webhook_main(args)),
        #[cfg(not(feature = "k8s"))]
        Command::Inject(_) => not_built("inject"),
        #[cfg(not(feature = "k8s"))]
        Command::Webhook(_) => not_built("webhook"),
        Command::Node(args) => with_runtime(0, crate::node::node_main(args)),
        Command::Status(args) => crate::ops::status_main(args),
        Command::Txn(args) => crate::ops::txn_main(args),
        Command::Journal(args) => crate::ops::journal::journal_main(args),
    }
}

/// Prints a parse error (or the help it asked for) and exits: [`exit::USAGE`] for every
/// subcommand, 0 for `--help` and `--version`.
fn usage_error(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::from(exit::USAGE)
    } else {
        ExitCode::SUCCESS
    }
}

/// A subcommand of the Kubernetes integration in a build without it: says so, exits
/// [`exit::UNAVAILABLE`].
#[cfg(not(feature = "k8s"))]
fn not_built(command: &str) -> ExitCode {
    eprintln!(
        "dtc {command}: this dtc is built without the `k8s` feature, which `dtc {command}` needs; \
         build dtc with it (`cargo build --features k8s`, the default)"
    );
    ExitCode::from(exit::UNAVAILABLE)
}

fn check(args: &CheckArgs) -> ExitCode {
    let loaded = if args.offline {
        config::load_file_offline(&args.config)
    } else {
        config::load_file(&args.config).map(|(s, _)| (s, Vec::new()))
    };
    match loaded {
        Ok((settings, notes)) => {
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
            for w in &settings.warnings {
                eprintln!("dtc check: warning: {w}");
            }
            for warning in config::advice::advice(&settings) {
                eprintln!("dtc check: warning: {warning}");
            }
            for note in &notes {
                eprintln!("{}: {note}", args.config.display());
            }
            eprintln!(
                "{}: ok ({} nodes, {} routes)",
                args.config.display(),
                settings.nodes.len(),
                settings.routes.len()
            );
            match &settings.config.cluster {
                Some(_) if args.offline => {
                    eprintln!(
                        "{}: not checked (--offline): the shared store of `cluster.database_url` was not contacted (its TLS files and whether it answers); `dtc check` without --offline where dtc runs does",
                        args.config.display()
                    );
                    ExitCode::SUCCESS
                }
                Some(cluster) => check_store(cluster.clone()),
                None => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("dtc check: {e}");
            ExitCode::from(exit::CONFIG)
        }
    }
}

/// Connects to the shared store once: TLS settings that cannot work (a file, a CA that does not
/// vouch for the store's certificate) are config errors; a store that cannot be reached from
/// here is only a warning (`dtc check` often runs where the store is not).
fn check_store(cluster: config::ClusterConfig) -> ExitCode {
    use crate::journal::shared::{Shared, StoreError};
    with_runtime(1, async move {
        match Shared::probe(&cluster).await {
            Ok(answer) => {
                eprintln!("{answer}");
                ExitCode::SUCCESS
            }
            Err(e @ (StoreError::Tls { .. } | StoreError::Untrusted { .. })) => {
                eprintln!("dtc check: `cluster.database_url`: {e}");
                ExitCode::from(exit::CONFIG)
            }
            Err(e) => {
                eprintln!("dtc check: warning: {e}");
                ExitCode::SUCCESS
            }
        }
    })
}

fn run(args: RunArgs) -> ExitCode {
    let (settings, text) = match config::load_file(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dtc: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    for w in &settings.warnings {
        tracing::warn!(path = %args.config.display(), warning = %w, "config warning");
    }
    let workers = args.workers.unwrap_or(settings.config.listen.workers);
    with_runtime(workers, async move {
        // One process per journal directory: a second `dtc run` (or a standalone `dtc verify`)
        // on it is refused, after waiting `journal.lock_wait` for a predecessor still exiting.
        // Held until exit.
        let _lock = if settings.config.journal.durability == config::DurabilityMode::Off {
            None
        } else {
            let dir = std::path::Path::new(&settings.config.journal.dir);
            let wait = settings.config.journal.lock_wait;
            match crate::journal::DirLock::acquire_within(dir, wait).await {
                Ok(l) => Some(l),
                Err(e) => {
                    eprintln!("dtc: {e}");
                    return ExitCode::from(exit::UNAVAILABLE);
                }
            }
        };
        let app = crate::app::App::builder(settings)
            .config_file(args.config, text)
            .accept_journal_damage(args.accept_journal_damage)
            .start()
            .await;
        match app.map(|app| crate::app::run(app, |_| {})) {
            Ok(serving) => match serving.await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::from(exit::UNAVAILABLE)
                }
            },
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::from(start_exit_code(&e))
            }
        }
    })
}

/// A journal that is damaged, foreign or of a newer format is bad input ([`exit::DATA`]);
/// anything else that stops the start is [`exit::UNAVAILABLE`].
fn start_exit_code(e: &crate::app::StartError) -> u8 {
    use crate::journal::JournalError;
    match e {
        crate::app::StartError::Journal(
            JournalError::Damaged { .. }
            | JournalError::Foreign { .. }
            | JournalError::Segments { .. }
            | JournalError::FutureFormat { .. },
        ) => exit::DATA,
        _ => exit::UNAVAILABLE,
    }
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
