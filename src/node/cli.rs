//! `dtc node`: run one reference node until Ctrl-C or SIGTERM.

use super::{Faults, NodeOptions, RefNode};
use crate::exit;
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `dtc node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub listen: String,
    /// Name of the node in logs.
    #[arg(long, default_value = "node")]
    pub name: String,
    /// First id assigned by `POST /items` (give each node its own).
    #[arg(long, default_value_t = 1)]
    pub id_base: u64,
    /// Probability (0 to 1) that a write answers 500 without being applied.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub error_rate: f64,
    /// Latency added before each request, e.g. `20ms`.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub delay: Duration,
    /// Probability (0 to 1) that a write is applied and then answers 500.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub apply_then_fail_rate: f64,
    /// Start down: connects are refused until the node is brought up through `--admin`
    /// (`dtc demo fault --node-admin URL NAME up`).
    #[arg(long)]
    pub down: bool,
    /// Serve the fault switch here (e.g. `127.0.0.1:5100`): change this node's faults while it
    /// runs with `dtc demo fault --node-admin http://127.0.0.1:5100 NAME down|up|delay=500ms|...`.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// Seed of the random faults, for reproducible runs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Answer a create of an existing group with 500 text/html, as json-server 0.17 does.
    #[arg(long)]
    pub duplicate_as_500: bool,
}

impl NodeArgs {
    /// The options these arguments describe.
    pub fn options(&self) -> NodeOptions {
        NodeOptions {
            name: self.name.clone(),
            id_base: self.id_base,
            faults: Faults {
                error_rate: self.error_rate,
                delay: self.delay,
                jitter: Duration::ZERO,
                apply_then_fail_rate: self.apply_then_fail_rate,
                down: self.down,
                seed: self.seed,
                duplicate_as_500: self.duplicate_as_500,
                reset_rate: 0.0,
            },
        }
    }
}

/// A probability between 0 and 1.
fn parse_rate(text: &str) -> Result<f64, super::control::FaultError> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(super::control::FaultError::BareRate(text.to_string())),
    }
}

/// Runs `dtc node`: serves until Ctrl-C or SIGTERM; returns the exit code
/// ([`exit::UNAVAILABLE`] when the address cannot be bound).
pub async fn node_main(args: NodeArgs) -> ExitCode {
    let node = match RefNode::bind(&args.listen, args.options()).await {
        Ok(node) => node,
        Err(e) => {
            eprintln!("dtc node: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(exit::UNAVAILABLE);
        }
    };
    let admin = match &args.admin {
        Some(addr) => match tokio::net::TcpListener::bind(addr.as_str()).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("dtc node: cannot serve the fault switch on {addr}: {e}");
                node.shutdown().await;
                return ExitCode::from(exit::UNAVAILABLE);
            }
        },
        None => None,
    };
    let switch = admin.as_ref().and_then(|l| l.local_addr().ok());
    println!("{}", started_line(&node, switch));
    if let Some(listener) = admin {
        tokio::spawn(super::control::serve(
            listener,
            vec![node.clone()],
            std::future::pending(),
        ));
    }
    if let Err(e) = stop_signal().await {
        eprintln!("dtc node: cannot wait for signals: {e}");
        node.shutdown().await;
        return ExitCode::from(exit::OS);
    }
    node.shutdown().await;
    ExitCode::SUCCESS
}

/// What `dtc node` prints once started: listening, or down (and how to bring it up).
fn started_line(node: &RefNode, switch: Option<std::net::SocketAddr>) -> String {
    let how = |change: &str| match switch {
        Some(a) => format!(
            "dtc demo fault --node-admin http://{a} {} {change}",
            node.name()
        ),
        None => "restart it without --down (start it with --admin to switch faults live)".into(),
    };
    let state = if node.is_down() {
        format!(
            "{} is down on {} (connects are refused); bring it up with: {}",
            node.name(),
            node.url(),
            how("up")
        )
    } else {
        format!("{} listening on {}", node.name(), node.url())
    };
    match switch {
        Some(a) => format!(
            "{state}
fault switch on http://{a} (e.g. {})",
            how("down")
        ),
        None => state,
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            ctrl_c = tokio::signal::ctrl_c() => ctrl_c,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }

    #[test]
    fn defaults_and_flags_parse() {
        let cli = Cli::parse_from(["node"]);
        assert_eq!(cli.node.listen, "127.0.0.1:5000");
        assert_eq!(cli.node.id_base, 1);
        let cli = Cli::parse_from([
            "node",
            "--delay",
            "20ms",
            "--error-rate",
            "0.5",
            "--id-base",
            "1000",
            "--down",
        ]);
        let opts = cli.node.options();
        assert_eq!(opts.faults.delay, Duration::from_millis(20));
        assert_eq!(opts.faults.error_rate, 0.5);
        assert_eq!(opts.id_base, 1000);
        assert!(opts.faults.down);
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        assert!(Cli::try_parse_from(["node", "--error-rate", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["node", "--apply-then-fail-rate", "x"]).is_err());
        assert!(Cli::try_parse_from(["node", "--delay", "soon"]).is_err());
    }
}
