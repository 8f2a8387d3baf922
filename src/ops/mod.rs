//! The operator's commands: `dtc status` and `dtc txn list|show|retry|resolve`, clients of a
//! running dtc's admin API (`--admin URL`, token from `DTC_ADMIN_TOKEN`); and [`journal`],
//! `dtc journal check|dump|repair`, which reads a journal directory offline.
//!
//! - `client`: the admin API over dtc's own hyper connection pool;
//! - `table`: what a person reads (`--output table`, the default);
//! - `--output json` prints the admin API's answers for scripts.
//!
//! Exit codes ([`crate::exit`]), one clear line on stderr for each failure:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done; for `dtc status`: nothing needs attention |
//! | 1 | `dtc status`: something needs attention (a node down, a failed transaction, ...); `dtc txn retry`: the transaction is still failed after the re-drive (or the re-drive did not end within `--wait`) |
//! | 64 | the command line is wrong, or the `--admin` URL is not `http://HOST:PORT` |
//! | 65 | the admin API refused the action (e.g. the transaction is not failed, or a person resolved it already: the answer says who, when and why) |
//! | 66 | no transaction with that id (or id prefix) |
//! | 69 | the admin listener is unreachable |
//! | 76 | the answer was not dtc's admin API |
//! | 77 | the token is missing or wrong |

mod client;
pub(crate) mod journal;
mod table;

pub(crate) use client::AdminClient;

use crate::admin::{StatusReport, TxnView};
use crate::exit;
use crate::txn::TxnState;
use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;
use serde_json::{Value, json};
use std::process::ExitCode;

/// Where the admin API is and how to talk to it; shared by `dtc status` and `dtc txn`.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// The admin listener's URL (`listen.admin` of the dtc to ask).
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:9901",
        env = "DTC_ADMIN"
    )]
    pub admin: String,
    /// Output format: a table for people, or the admin API's JSON for scripts.
    #[arg(long, short, global = true, value_enum, default_value = "table")]
    pub output: Output,
    /// The bearer token (`listen.admin_token`); read from the environment only, so it never
    /// shows in a process list.
    #[arg(skip = std::env::var("DTC_ADMIN_TOKEN").ok())]
    pub token: Option<String>,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// `dtc txn`.
#[derive(Debug, Args)]
pub struct TxnArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(subcommand)]
    pub command: TxnCommand,
}

#[derive(Debug, Subcommand)]
pub enum TxnCommand {
    /// List transactions, newest first.
    List {
        /// Only transactions in this state.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(
            TxnState::ALL.map(TxnState::as_str)
        ))]
        state: Option<String>,
        /// At most this many (the admin API lists at most 1,000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only transactions on this resource key, e.g. `group/g1`.
        #[arg(long)]
        key: Option<String>,
        /// Print only the ids, one a line (`txn=$(dtc txn list --state failed -q)`).
        #[arg(long, short)]
        quiet: bool,
    },
    /// Show one transaction with what each node did (an id, or the start of one).
    Show { id: String },
    /// Re-drive a failed transaction now (after fixing its node) and wait for the verdict:
    /// exit 0 when it converged, 1 when it is still failed.
    Retry {
        id: String,
        /// How long to wait for the re-drive's outcome.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
    },
    /// Mark a failed transaction as handled by a person; the reason and who you are are recorded.
    Resolve {
        id: String,
        /// Why it is resolved, e.g. "fixed by hand on node-2".
        #[arg(long)]
        reason: String,
        /// Who resolves it (default: $USER via dtc txn).
        #[arg(long)]
        by: Option<String>,
    },
}

/// Why an operator command failed; each maps to an exit code ([`OpsError::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpsError {
    #[error("`{url}` is not an admin URL: {why}")]
    BadUrl { url: String, why: String },
    #[error(
        "the admin listener at {url} is unreachable ({why}); is dtc running, and is --admin its listen.admin?"
    )]
    Unreachable { url: String, why: String },
    #[error("{}", token_message(url, *wrong))]
    Token { url: String, wrong: bool },
    #[error("{detail}")]
    UnknownTxn { detail: String },
    #[error("the admin API refused ({status}): {detail}")]
    Refused { status: u16, detail: String },
    #[error("{url}: {why}")]
    Protocol { url: String, why: String },
}

fn token_message(url: &str, wrong: bool) -> String {
    if wrong {
        format!("the admin listener at {url} refused the token in DTC_ADMIN_TOKEN: it is wrong")
    } else {
        format!(
            "the admin listener at {url} needs a token: set DTC_ADMIN_TOKEN to its listen.admin_token"
        )
    }
}

impl OpsError {
    /// The documented exit code (module docs).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            OpsError::BadUrl { .. } => exit::USAGE,
            OpsError::Refused { .. } => exit::DATA,
            OpsError::UnknownTxn { .. } => exit::NO_INPUT,
            OpsError::Unreachable { .. } => exit::UNAVAILABLE,
            OpsError::Protocol { .. } => exit::PROTOCOL,
            OpsError::Token { .. } => exit::NO_PERM,
        }
    }
}

/// Runs `dtc status`.
pub(crate) fn status_main(args: AdminArgs) -> ExitCode {
    finish("dtc status", run(async move { status(&args).await }))
}

/// Runs `dtc txn ...`.
pub(crate) fn txn_main(args: TxnArgs) -> ExitCode {
    finish("dtc txn", run(async move { txn(&args).await }))
}

fn run(fut: impl Future<Output = Result<u8, OpsError>>) -> Result<u8, OpsError> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => Err(OpsError::Unreachable {
            url: "-".into(),
            why: format!("cannot start the runtime: {e}"),
        }),
    }
}

fn finish(what: &str, result: Result<u8, OpsError>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{what}: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Writes `text` to stdout; a closed pipe (`dtc status | head`) is not an error worth a panic.
fn out(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => out(&format!("{text}\n")),
        Err(e) => eprintln!("cannot print the answer: {e}"),
    }
}

async fn status(args: &AdminArgs) -> Result<u8, OpsError> {
    let client = AdminClient::new(&args.admin, args.token.clone())?;
    let report: StatusReport = client.get("/status").await?;
    let problems = report.problems();
    match args.output {
        Output::Json => {
            let mut value = serde_json::to_value(&report).unwrap_or(Value::Null);
            value["problems"] = json!(problems);
            print_json(&value);
        }
        Output::Table => out(&table::status(&args.admin, &report, &problems)),
    }
    Ok(if problems.is_empty() {
        exit::OK
    } else {
        exit::ATTENTION
    })
}

#[derive(Deserialize, serde::Serialize)]
struct TxnList {
    transactions: Vec<TxnView>,
}

async fn txn(args: &TxnArgs) -> Result<u8, OpsError> {
    let a = &args.admin;
    let client = AdminClient::new(&a.admin, a.token.clone())?;
    let view: TxnView = match &args.command {
        TxnCommand::List {
            state,
            limit,
            key,
            quiet,
        } => {
            let mut path = format!("/transactions?limit={limit}");
            if let Some(s) = state {
                path.push_str(&format!("&state={s}"));
            }
            if let Some(k) = key {
                path.push_str(&format!("&key={}", client::segment(k)));
            }
            let list: TxnList = client.get(&path).await?;
            match a.output {
                Output::Json => print_json(&list),
                Output::Table if *quiet => {
                    list.transactions
                        .iter()
                        .for_each(|t| out(&format!("{}\n", t.txn)));
                }
                Output::Table => out(&table::txns(&list.transactions)),
            }
            return Ok(exit::OK);
        }
        TxnCommand::Show { id } => {
            client
                .get(&format!("/transactions/{}", client::segment(id)))
                .await?
        }
        TxnCommand::Retry { id, wait } => return retry(&client, a.output, id, *wait).await,
        TxnCommand::Resolve { id, reason, by } => {
            let path = format!("/transactions/{}/resolve", client::segment(id));
            let by = by.clone().unwrap_or_else(default_by);
            let body = json!({"reason": reason, "by": by});
            parse(&client.post(&path, Some(body)).await?)?
        }
    };
    match a.output {
        Output::Json => print_json(&view),
        Output::Table => out(&table::txn(&view)),
    }
    Ok(exit::OK)
}

/// `$USER via dtc txn`.
fn default_by() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "someone".into());
    format!("{user} via dtc txn")
}

/// `dtc txn retry`: re-drives, waits at most `wait` for the outcome, prints the transaction as
/// it is now and a verdict line; exit 0 converged, 1 still failed (or no outcome in time).
async fn retry(
    client: &AdminClient,
    output: Output,
    id: &str,
    wait: std::time::Duration,
) -> Result<u8, OpsError> {
    let path = format!("/transactions/{}/retry", client::segment(id));
    let answer = tokio::time::timeout(wait, client.post(&path, None)).await;
    let view = match answer {
        Ok(v) => parse(&v?)?,
        Err(_) => {
            let now: TxnView = client
                .get(&format!("/transactions/{}", client::segment(id)))
                .await?;
            if output == Output::Table {
                out(&table::txn(&now));
            }
            eprintln!(
                "dtc txn retry: no verdict within {}: the re-drive of {} is still running; see `dtc txn show {}`",
                humantime::format_duration(wait),
                now.txn,
                now.txn
            );
            return Ok(exit::ATTENTION);
        }
    };
    match output {
        Output::Json => print_json(&view),
        Output::Table => {
            out(&table::txn(&view));
            out(&format!("\n{}\n", table::verdict(&view)));
        }
    }
    Ok(if view.state == TxnState::Failed {
        exit::ATTENTION
    } else {
        exit::OK
    })
}

fn parse(value: &Value) -> Result<TxnView, OpsError> {
    serde_json::from_value(value.clone()).map_err(|e| OpsError::Protocol {
        url: "-".into(),
        why: format!("the answer is not a transaction: {e}"),
    })
}
