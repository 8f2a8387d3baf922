//! The real `dtc` binary as a child process, for tests whose crash must be real (SIGKILL).

use dtc::config::Config;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The `dtc` binary running a config; its proxy address is read from its log.
pub struct Process {
    pub child: Child,
    pub url: String,
}

impl Process {
    /// SIGKILL: no chance to clean up, like a crash; waits until it is gone.
    pub fn crash(mut self) {
        self.child.kill().expect("kill dtc");
        self.child.wait().expect("reap dtc");
    }

    /// SIGKILL, and return at once: the process may still be exiting (holding its journal
    /// directory's lock) when a successor starts, as under a supervisor that restarts at once.
    pub fn crash_nowait(mut self) {
        self.child.kill().expect("kill dtc");
        std::thread::spawn(move || {
            let _ = self.child.wait();
        });
    }
}

/// Starts `dtc run` on `cfg` (written to `dir/dtc.toml`) and returns once it listens.
pub fn spawn_dtc(cfg: &Config, dir: &std::path::Path) -> Process {
    let path = dir.join("dtc.toml");
    std::fs::write(&path, toml::to_string(cfg).unwrap()).unwrap();
    spawn_dtc_at(&path)
}

/// Starts `dtc run --config path` and returns once it listens.
pub fn spawn_dtc_at(path: &std::path::Path) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(path)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("dtc exited before listening").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["fields"]["message"] == "dtc listening" {
            break v["fields"]["addr"].as_str().unwrap().to_string();
        }
    };
    // Keep draining the log so dtc never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Process {
        child,
        url: format!("http://{addr}"),
    }
}

/// What a writer of [`crash_loop`] gets: the proxy's URL (changed at every restart), the count of
/// writes done (it adds to it), and the stop flag.
pub struct Writer {
    pub url: tokio::sync::watch::Receiver<String>,
    pub done: Arc<AtomicUsize>,
    pub stop: Arc<AtomicBool>,
}

/// How [`crash_loop`] kills dtc.
pub struct Crashes {
    /// SIGKILLs, each followed by a restart.
    pub count: usize,
    /// Writes done between two crashes (over all writers).
    pub every: usize,
    /// Restart without waiting for the killed process to be gone (it may still hold the
    /// journal's lock), as a supervisor that restarts at once would.
    pub at_once: bool,
}

/// The crash loop of the chaos tests: `dtc run` on `cfg` (in `dir`) while `writers` writers
/// (`writer(w, Writer)`) write through it; after every `crashes.every` writes it is SIGKILLed
/// and restarted, `crashes.count` times; after one more round the writers are stopped and their
/// results returned with the number of writes done, and the last process is killed.
pub async fn crash_loop<T, F, Fut>(
    cfg: &Config,
    dir: &std::path::Path,
    crashes: Crashes,
    writers: u64,
    writer: F,
) -> (Vec<T>, usize)
where
    T: Send + 'static,
    F: Fn(u64, Writer) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let mut dtc = spawn_dtc(cfg, dir);
    let (url_tx, url_rx) = tokio::sync::watch::channel(dtc.url.clone());
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            tokio::spawn(writer(
                w,
                Writer {
                    url: url_rx.clone(),
                    done: done.clone(),
                    stop: stop.clone(),
                },
            ))
        })
        .collect();
    for crash in 1..=crashes.count {
        wait_for_writes(&done, crash * crashes.every).await;
        match crashes.at_once {
            true => dtc.crash_nowait(),
            false => dtc.crash(),
        }
        dtc = spawn_dtc(cfg, dir);
        url_tx.send(dtc.url.clone()).unwrap();
    }
    wait_for_writes(&done, (crashes.count + 1) * crashes.every).await;
    stop.store(true, Ordering::SeqCst);
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    dtc.crash();
    (out, done.load(Ordering::SeqCst))
}

/// Waits (with a deadline) until `done` reaches `n`.
async fn wait_for_writes(done: &AtomicUsize, n: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while done.load(Ordering::SeqCst) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writes stalled at {n}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
