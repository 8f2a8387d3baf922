//! The chaos availability bench (issue 23): the real `dtc` binary, on the shipped
//! `config/dtc.toml`, in front of three reference nodes that are flaky but up, with one of them
//! really gone for 3 s; 8 clients send 2,000 creates and deletes. Prints the share of writes
//! completed and refused, the time from the node's return to the first write completed after
//! it, and how many keys differ between the nodes once the run is over.
//!
//! The fault plan, seeded (`--seeds`): every 0.3-0.8 s each node draws a new error rate (0-20 %
//! of writes answered 500, not applied), apply-then-500 rate (0-4 %), reset rate (0-4 %,
//! connection cut with no answer, half of them after applying) and delay (a quarter of the time
//! 50-300 ms, else 0-5 ms; plus 0-10 ms of jitter per request). Once 30-50 % of the writes are
//! done, one node (drawn) stops listening for 3 s. Clients pick one of 64 keys and create or
//! delete it; a refused write is not sent again, and the client waits `Retry-After` (1 s when
//! there is none) before its next write, as a polite client does.
//!
//! Completed: 2xx, or the API's own "already" (400 to a create, 404 to a delete). Refused:
//! everything else. After the run the nodes heal, dtc's admin API is polled until nothing is
//! failed or in doubt, and every key is compared across the nodes.
//!
//! ```text
//! cargo build --release && cargo bench --bench chaos -- [--seeds 1,2,3] [--breaker on|off|both]
//!     [--ops 2000] [--clients 8] [--reps 1] [--dtc target/release/dtc] [--config config/dtc.toml]
//! ```
//! (`bench/chaos.sh` does both and saves the table in `bench/results/`.)
//!
//! Diagnostics, on stderr: `CHAOS_FENCE_DETAIL=1` prints, for each late-write fence, when its
//! transaction started and ended against the outage and its nodes' outcomes (from the admin's
//! `/transactions/{id}`); `CHAOS_DTC_LOG=1` echoes dtc's node-health log lines and the writes
//! each node received.

mod plan;
mod run;

use std::time::Duration;

/// What to run.
#[derive(Debug, Clone)]
pub struct Args {
    pub seeds: Vec<u64>,
    pub breaker: Vec<bool>,
    pub ops: usize,
    pub clients: usize,
    pub dtc: String,
    pub config: String,
    pub down_for: Duration,
    /// Runs per seed and setting, interleaved (on, off, on, off, …).
    pub reps: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        seeds: vec![1, 2, 3],
        breaker: vec![true, false],
        ops: 2000,
        clients: 8,
        dtc: "target/release/dtc".into(),
        config: "config/dtc.toml".into(),
        down_for: Duration::from_secs(3),
        reps: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes `--bench` to every bench target.
        if flag == "--bench" {
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--seeds" => {
                a.seeds = value
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|e| bad(&e)))
                    .collect::<Result<_, _>>()?
            }
            "--breaker" => {
                a.breaker = match value.as_str() {
                    "on" => vec![true],
                    "off" => vec![false],
                    "both" => vec![true, false],
                    _ => return Err(bad(&"use on, off or both")),
                }
            }
            "--ops" => a.ops = value.parse().map_err(|e| bad(&e))?,
            "--reps" => a.reps = value.parse().map_err(|e| bad(&e))?,
            "--clients" => a.clients = value.parse().map_err(|e| bad(&e))?,
            "--dtc" => a.dtc = value,
            "--config" => a.config = value,
            "--down-for" => a.down_for = humantime::parse_duration(&value).map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

/// Per seed and setting over the repetitions: the mean share of writes completed, its range,
/// and the fence refusals — the one refusal that comes in bursts (a rollback whose node answer
/// was unknown fences its key until its late-write check, `journal.verify_after`), which is
/// what makes two runs of one seed differ.
fn summary(args: &Args, all: &[(u64, run::Outcome)]) {
    println!();
    println!(
        "| seed | breaker | runs | completed, mean | min - max | refused by fences, mean (fences) |"
    );
    println!("|---:|---|---:|---:|---|---|");
    for &seed in &args.seeds {
        for &breaker in &args.breaker {
            let runs: Vec<_> = all
                .iter()
                .filter(|(s, r)| *s == seed && r.breaker() == breaker)
                .map(|(_, r)| r)
                .collect();
            let pcts: Vec<f64> = runs.iter().map(|r| r.completed_pct()).collect();
            let mean = pcts.iter().sum::<f64>() / pcts.len().max(1) as f64;
            let min = pcts.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = pcts.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let fenced =
                runs.iter().map(|r| r.fenced().0).sum::<usize>() as f64 / runs.len().max(1) as f64;
            let fences: Vec<String> = runs.iter().map(|r| r.fenced().1.to_string()).collect();
            println!(
                "| {seed} | {} | {} | {mean:.2} % | {min:.1} - {max:.1} % | {fenced:.1} ({}) |",
                if breaker { "on (shipped)" } else { "off" },
                runs.len(),
                fences.join(", "),
            );
        }
    }
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chaos bench: {e}");
            std::process::exit(64);
        }
    };
    if !std::path::Path::new(&args.dtc).exists() {
        eprintln!(
            "chaos bench: no dtc binary at {} (cargo build --release, or --dtc PATH)",
            args.dtc
        );
        std::process::exit(66);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "| seed | breaker | writes | completed | refused (node down / rolled back / other) | node back → first write | divergent keys | run |"
    );
    println!("|---:|---|---:|---:|---|---:|---:|---:|");
    let mut ok = true;
    let mut all = Vec::new();
    for &seed in &args.seeds {
        for _ in 0..args.reps.max(1) {
            for &breaker in &args.breaker {
                let r = rt.block_on(run::run(&args, seed, breaker));
                ok &= r.divergent == 0;
                println!("{}", r.row());
                all.push((seed, r));
            }
        }
    }
    if args.reps > 1 {
        summary(&args, &all);
    }
    if !ok {
        std::process::exit(1);
    }
}
