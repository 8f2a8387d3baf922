//! `dtc demo`: three reference nodes and the proxy in one process, on the embedded default config.

use crate::app::App;
use crate::node::{NodeOptions, RefNode};
use crate::{config, exit};
use std::process::ExitCode;

/// Runs the demo until Ctrl-C.
pub async fn run() -> ExitCode {
    let settings = match config::parse(config::DEFAULT_CONFIG, "embedded default config") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dtc demo: {e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let mut nodes = Vec::new();
    for (i, spec) in settings.nodes.iter().enumerate() {
        let opts = NodeOptions {
            name: spec.name.clone(),
            id_base: 1 + 1000 * i as u64,
            faults: Default::default(),
        };
        match RefNode::bind(&spec.authority, opts).await {
            Ok(n) => nodes.push(n),
            Err(e) => {
                eprintln!(
                    "dtc demo: cannot start reference node {} on {}: {e} (is something else using the port?)",
                    spec.name, spec.authority
                );
                return ExitCode::from(exit::UNAVAILABLE);
            }
        }
    }
    let started = match App::builder(settings).start().await {
        Ok(app) => crate::app::run(app, |addr| {
            println!("{}", banner(&addr.to_string(), &nodes))
        }),
        Err(e) => {
            eprintln!("dtc demo: {e}");
            return ExitCode::from(exit::UNAVAILABLE);
        }
    };
    match started.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dtc demo: {e}");
            ExitCode::from(exit::UNAVAILABLE)
        }
    }
}

fn banner(addr: &str, nodes: &[RefNode]) -> String {
    let list: Vec<String> = nodes
        .iter()
        .map(|n| format!("{} {}", n.name(), n.url()))
        .collect();
    format!(
        "dtc demo: proxy on http://{addr}, reference nodes: {}\n\
         Try:\n  \
         curl -i -X POST http://{addr}/v1/group/ -H 'content-type: application/json' -d '{{\"groupId\": \"g1\"}}'\n  \
         curl -i http://{addr}/v1/group/g1/\n  \
         curl -i -X POST http://{addr}/v1/group/ -H 'content-type: application/json' -d '{{\"groupId\": \"g1\"}}'   # 400: exists\n  \
         curl -i -X DELETE http://{addr}/v1/group/ -H 'content-type: application/json' -d '{{\"groupId\": \"g1\"}}'\n  \
         curl -i http://{addr}/v1/group/g1/                                                                   # 404\n\
         Admin (transactions, metrics, node health):\n  \
         open http://127.0.0.1:9901/ in a browser (the status page), or run: dtc status\n  \
         curl -s http://127.0.0.1:9901/transactions\n  \
         curl -s http://127.0.0.1:9901/nodes\n  \
         curl -s http://127.0.0.1:9901/metrics | grep dtc_transactions_total\n\
         Ctrl-C stops everything.",
        list.join(", ")
    )
}
