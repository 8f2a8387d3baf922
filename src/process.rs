//! How every subcommand's process runs: on a tokio runtime of the size it asks for, ending with
//! an exit code of [`crate::exit`]. Below `cli` and the subcommands it starts (`dtc verify`
//! among them), so none of them imports the command line.

use crate::exit;
use std::process::ExitCode;

/// Runs `fut` on a tokio runtime with `workers` threads (0: one per core). One worker is a
/// current-thread runtime: every task on the thread that accepts, no cross-thread wake-ups,
/// about 13 % more GETs per second than a one-worker multi-thread runtime on loopback
/// (docs/performance.md). The journal writer and the config watcher keep their own threads.
/// With several workers `fut` itself runs as a task, so the accept loop is on a worker too,
/// not on an extra thread beside them.
pub(crate) fn with_runtime(
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
                ExitCode::from(exit::SOFTWARE)
            })
        }),
        Err(e) => {
            eprintln!("dtc: cannot start the runtime: {e}");
            ExitCode::from(exit::UNAVAILABLE)
        }
    }
}
