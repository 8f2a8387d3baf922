//! `dtc verify --config FILE [--repair] [--since 1h] [--limit N]`.
//!
//! How it coexists with a running sidecar: a `dtc run` holds its journal directory's lock
//! ([`crate::journal::DirLock`]) and owns the key locks its writes take. So the command first
//! asks the config's admin listener (`POST /verify`): when a sidecar answers, *it* runs the
//! check under its own key locks and the command prints its report. When nothing listens there,
//! the command runs standalone: it takes the journal directory's lock itself (a `dtc run`
//! started meanwhile refuses to start until it is done), reads the journal, checks and repairs,
//! and journals its repairs there. A sidecar that holds the lock but whose admin API is off or
//! does not answer is reported (exit 69): the command never writes beside a live sidecar.
//!
//! Exit codes ([`crate::exit`]): 0 every checked key agrees (or was repaired); 1 a divergence
//! remains; 3 no divergence remains but some keys could not be checked (a node did not answer, a
//! failed transaction fences the key); 64 bad flags; 69 no way to run the check (see above, or the
//! admin API refused); 70 dtc itself failed; 78 the config cannot be read or is invalid.

use super::report::Report;
use super::{Options, Verifier};
use crate::config::{DurabilityMode, Settings};
use crate::exit;
use crate::journal::shared::Shared;
use crate::journal::{DirLock, Journal, JournalError};
use crate::runtime::Current;
use crate::saga::Coordinator;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Why `dtc verify` (or `POST /verify`) cannot run the check; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("since `{since}` is not a duration ({why}); write it like \"1h\"")]
    Since { since: String, why: String },
    #[error("since and limit must be more than 0")]
    Zero,
    #[error("the request to the sidecar cannot be built: {0}")]
    Request(String),
    #[error("the sidecar's admin API at {at} did not answer: {why}")]
    NoAnswer { at: SocketAddr, why: String },
    #[error("the sidecar's answer broke off: {0}")]
    BrokeOff(String),
    #[error("the sidecar's admin API at {at} answered {status}: {text}")]
    Refused {
        at: SocketAddr,
        status: StatusCode,
        text: String,
    },
    #[error("the sidecar's answer is not a verify report ({0})")]
    NotReport(String),
    #[error(
        "journal.durability = \"off\" keeps no journal on disk: only the running sidecar knows its keys, and its admin API (listen.admin) did not answer"
    )]
    NoDiskJournal,
    #[error("no journal at `{0}`: nothing was written through this config (check journal.dir)")]
    NoJournal(String),
    #[error(
        "{error}. That sidecar's admin API ({admin}) does not answer, so the check cannot run under its key locks: enable listen.admin on it, or stop it"
    )]
    Locked { error: JournalError, admin: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Store(#[from] crate::journal::shared::StoreError),
}

/// `dtc verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Config file of the sidecar whose keys are checked.
    #[arg(long, short, default_value = "config/dtc.toml", env = "DTC_CONFIG")]
    pub config: PathBuf,
    /// Bring odd nodes back to the majority or to the journaled outcome (a journaled write),
    /// and backfill every joining node (added by a reload, or found behind): every key the
    /// journal knows, copied from the nodes that serve reads.
    #[arg(long)]
    pub repair: bool,
    /// Check keys written within this window (`30m`, `1h`, `2d`).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub since: Duration,
    /// Check at most this many keys, the most recently written first.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
}

/// The JSON body of `POST /verify` on the admin API.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VerifyRequest {
    /// A duration like `1h`.
    pub since: String,
    pub limit: usize,
    pub repair: bool,
}

impl VerifyRequest {
    /// The options it asks for, or what is wrong with it.
    pub fn options(&self) -> Result<Options, VerifyError> {
        let since = humantime::parse_duration(&self.since).map_err(|e| VerifyError::Since {
            since: self.since.clone(),
            why: e.to_string(),
        })?;
        if self.limit == 0 || since.is_zero() {
            return Err(VerifyError::Zero);
        }
        Ok(Options {
            since,
            limit: self.limit,
            repair: self.repair,
        })
    }
}

/// Runs the command; prints one line per key out of order and a summary line last.
pub fn verify_main(args: VerifyArgs) -> ExitCode {
    let (settings, _) = match crate::config::load_file(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dtc verify: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let request = VerifyRequest {
        since: humantime::format_duration(args.since).to_string(),
        limit: args.limit as usize,
        repair: args.repair,
    };
    crate::process::with_runtime(1, async move {
        match check(settings, request).await {
            Ok(report) => {
                for k in &report.findings {
                    println!("{}", k.line());
                }
                for b in &report.backfills {
                    println!("{}", b.line());
                }
                println!("{}", report.summary());
                ExitCode::from(report.exit_code())
            }
            Err(e) => {
                eprintln!("dtc verify: {e}");
                ExitCode::from(exit::UNAVAILABLE)
            }
        }
    })
}

/// Through the running sidecar when one answers on the admin listener, else standalone.
pub async fn check(settings: Settings, request: VerifyRequest) -> Result<Report, VerifyError> {
    let token = settings.config.listen.admin_token.clone();
    if let Some(addr) = settings.admin {
        let spinner = terminal_bar(ProgressBar::new_spinner());
        spinner.set_message(format!("the sidecar at {addr} is checking"));
        spinner.enable_steady_tick(Duration::from_millis(120));
        let asked = ask_sidecar(addr, token.as_deref(), &request).await;
        spinner.finish_and_clear();
        if let Some(answer) = asked? {
            return Ok(answer);
        }
    }
    standalone(settings, request).await
}

/// `Ok(None)` when nothing listens at `addr`.
async fn ask_sidecar(
    addr: SocketAddr,
    token: Option<&str>,
    request: &VerifyRequest,
) -> Result<Option<Report>, VerifyError> {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    // Refused at once when nothing listens; the check itself may take long.
    if tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(target),
    )
    .await
    .map_or(true, |c| c.is_err())
    {
        return Ok(None);
    }
    let body = serde_json::to_vec(request).map_err(|e| VerifyError::Request(e.to_string()))?;
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{target}/verify"))
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| VerifyError::Request(e.to_string()))?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .request(req)
        .await
        .map_err(|e| VerifyError::NoAnswer {
            at: target,
            why: crate::upstream::source_text(&e),
        })?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| VerifyError::BrokeOff(e.to_string()))?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(VerifyError::Refused {
            at: target,
            status,
            text: String::from_utf8_lossy(&body).trim().to_string(),
        });
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| VerifyError::NotReport(e.to_string()))
}

async fn standalone(settings: Settings, request: VerifyRequest) -> Result<Report, VerifyError> {
    // With `[cluster]` the keys come from the fleet's journal in the shared store, and a repair
    // takes the key's lease like any write.
    if let Some(cluster) = settings.config.cluster.clone() {
        let shared = Shared::connect(&cluster).await?;
        let journal = Journal::with_shared_store(settings.config.journal.keep_finished, shared);
        journal.refresh().await?;
        return check_with(settings, request, journal).await;
    }
    let journal_cfg = settings.config.journal.clone();
    if journal_cfg.durability == DurabilityMode::Off {
        return Err(VerifyError::NoDiskJournal);
    }
    let dir = PathBuf::from(&journal_cfg.dir);
    if !dir.join(crate::journal::log::FILE_NAME).exists() {
        return Err(VerifyError::NoJournal(dir.display().to_string()));
    }
    let _lock = DirLock::acquire(&dir).map_err(|e| match e {
        JournalError::Locked { .. } => VerifyError::Locked {
            error: e,
            admin: settings.config.listen.admin.clone(),
        },
        e => VerifyError::Journal(e),
    })?;
    let (journal, _) = Journal::open(&journal_cfg)?;
    check_with(settings, request, journal).await
}

async fn check_with(
    settings: Settings,
    request: VerifyRequest,
    journal: Arc<Journal>,
) -> Result<Report, VerifyError> {
    let opts = request.options()?;
    let current = Arc::new(Current::new(settings));
    let coordinator = Coordinator::new(current).with_journal(journal.clone());
    let verifier = Verifier::new(&coordinator).expect("a coordinator with a journal");
    let bar = terminal_bar(ProgressBar::new(0));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} keys {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = verifier
        .run(&opts, &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await;
    bar.finish_and_clear();
    journal.flush().await?;
    Ok(report)
}

/// `bar`, drawn on stderr only when stderr is a terminal (hidden otherwise).
fn terminal_bar(bar: ProgressBar) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        bar
    } else {
        ProgressBar::hidden()
    }
}
