//! The real `dtc` binary as a child process, for tests whose crash must be real (SIGKILL).

use dtc::config::Config;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(&path)
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
