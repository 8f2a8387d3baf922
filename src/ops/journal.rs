//! `dtc journal check|dump|repair DIR`: a journal directory read offline, with the exit codes of
//! every command ([`crate::exit`]).
//!
//! | code | `check` | `dump` | `repair` |
//! |---:|---|---|---|
//! | 0 | intact, nothing open | printed | done (or nothing to repair) |
//! | 1 | intact enough to start on, but in-doubt, failed or to-verify transactions, or a torn write the next start cuts | | |
//! | 65 | damage that needs a person (`dtc run` refuses it), or not a dtc journal, or a newer format | not a dtc journal, or a newer format | not a dtc journal, or a newer format |
//! | 66 | no journal in DIR | no journal in DIR | no journal in DIR |
//! | 69 | | | a running dtc holds DIR |
//! | 74 | DIR cannot be read | DIR cannot be read, or the output written | the repair cannot be written |

use crate::exit;
use crate::journal::check::Check;
use crate::journal::log::{Damage, Durability, FILE_NAME, Format, Found, Log, LogOptions};
use crate::journal::{DirLock, JournalError};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `dtc journal`.
#[derive(Debug, Args)]
pub struct JournalArgs {
    #[command(subcommand)]
    pub command: JournalCommand,
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Records, transactions in doubt, failed and to verify, damaged ranges; changes nothing
    /// (exit 0 intact, 1 something open or a torn write, 65 damage dtc will not start on).
    Check {
        /// The journal directory (`journal.dir`).
        dir: PathBuf,
        /// Print the check as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every record as a JSON line (sequence number, offset, record), damaged ranges too.
    Dump {
        /// The journal directory (`journal.dir`).
        dir: PathBuf,
    },
    /// Sets the damaged bytes aside in side files and rewrites the journal with every intact
    /// record, so `dtc run` starts on it. Refused while a dtc runs on DIR.
    Repair {
        /// The journal directory (`journal.dir`).
        dir: PathBuf,
    },
}

/// Runs `dtc journal ...`.
pub(crate) fn journal_main(args: JournalArgs) -> ExitCode {
    let code = match args.command {
        JournalCommand::Check { dir, json } => check(&dir, json),
        JournalCommand::Dump { dir } => dump(&dir),
        JournalCommand::Repair { dir } => repair(&dir),
    };
    ExitCode::from(code)
}

fn inspect(dir: &Path) -> Result<Found, u8> {
    Found::inspect(dir).map_err(|e| fail(&e))
}

/// Says what went wrong and picks its exit code.
fn fail(e: &JournalError) -> u8 {
    eprintln!("dtc journal: {e}");
    match e {
        JournalError::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            exit::NO_INPUT
        }
        JournalError::Foreign { .. }
        | JournalError::FutureFormat { .. }
        | JournalError::Segments { .. }
        | JournalError::Damaged { .. } => exit::DATA,
        JournalError::Locked { .. } => exit::UNAVAILABLE,
        _ => exit::IO,
    }
}

fn check(dir: &Path, as_json: bool) -> u8 {
    let found = match inspect(dir) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let c = Check::of(&found);
    let printed = if as_json {
        serde_json::to_string_pretty(&c).map(|text| println!("{text}"))
    } else {
        print_check(&c);
        Ok(())
    };
    if printed.is_err() {
        return exit::IO;
    }
    if let Some(pid) = crate::journal::lock::holder(dir).filter(|_| DirLock::acquire(dir).is_err())
    {
        eprintln!(
            "note: a dtc (pid {pid}) runs on this journal: its last records may be in flight"
        );
    }
    if c.needs_a_person() {
        exit::DATA
    } else if !(c.damage.is_empty()
        && c.in_doubt.is_empty()
        && c.failed.is_empty()
        && c.to_verify.is_empty())
    {
        exit::ATTENTION
    } else {
        exit::OK
    }
}

fn print_check(c: &Check) {
    let format = c.format.map_or("empty".to_owned(), |v| v.to_string());
    println!("journal     {}", c.path);
    println!("format      {format}");
    println!(
        "records     {} ({} of an unknown shape)",
        c.records, c.unreadable_records
    );
    println!("transactions {}", c.transactions);
    for (label, ids) in [
        ("in doubt", &c.in_doubt),
        ("failed", &c.failed),
        ("to verify", &c.to_verify),
    ] {
        println!("{label:<11} {} {}", ids.len(), ids.join(" "));
    }
    if c.damage.is_empty() {
        println!("damage      none");
    }
    for d in &c.damage {
        let verdict = if d.needs_a_person {
            "needs a person: `dtc journal repair` or `dtc run --accept-journal-damage`"
        } else {
            "set aside at the next start (a write cut short, never acknowledged)"
        };
        let reads = d
            .reads_as
            .as_ref()
            .map(|r| format!("; reads as {r} (unverified)"))
            .unwrap_or_default();
        let of = d
            .segment
            .as_ref()
            .map(|s| format!(" of {s}"))
            .unwrap_or_default();
        println!(
            "damaged     bytes {}..{}{of} {:?}: {}{reads}; {verdict}",
            d.start, d.end, d.kind, d.reason
        );
    }
    if !c.orphans.is_empty() {
        println!(
            "affected    {} (records after the damage, intent lost)",
            c.orphans.join(" ")
        );
    }
}

fn dump(dir: &Path) -> u8 {
    let found = match inspect(dir) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let mut lines = Vec::new();
    for s in &found.sealed {
        dump_segment(
            &mut lines,
            &s.path,
            s.format,
            s.first_seq,
            &s.records,
            &s.damage,
        );
    }
    let first_seq = found.first_seq();
    dump_segment(
        &mut lines,
        &found.path,
        found.format,
        first_seq,
        &found.records,
        &found.damage,
    );
    let mut out = std::io::stdout().lock();
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            return exit::IO;
        }
    }
    exit::OK
}

/// One segment's lines: its path, then its records and damaged ranges in file order.
fn dump_segment(
    lines: &mut Vec<Value>,
    path: &Path,
    format: Format,
    first_seq: u64,
    records: &[(u64, Vec<u8>)],
    damage: &[Damage],
) {
    lines.push(json!({"path": path.display().to_string(), "format": format_number(format), "first_seq": first_seq}));
    let mut damage = damage.iter().peekable();
    for (i, (offset, payload)) in records.iter().enumerate() {
        while let Some(d) = damage.next_if(|d| d.start < *offset) {
            lines.push(json!({"damaged": {"start": d.start, "end": d.end, "kind": d.kind, "reason": d.reason}}));
        }
        let record = serde_json::from_slice::<Value>(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
        lines.push(json!({"seq": first_seq + i as u64, "offset": offset, "bytes": payload.len(), "record": record}));
    }
    for d in damage {
        lines.push(json!({"damaged": {"start": d.start, "end": d.end, "kind": d.kind, "reason": d.reason}}));
    }
}

fn format_number(f: Format) -> Option<u32> {
    match f {
        Format::Empty => None,
        Format::Legacy => Some(0),
        Format::V1 { version, .. } => Some(version),
    }
}

fn repair(dir: &Path) -> u8 {
    if !dir.join(FILE_NAME).exists() && Found::inspect(dir).is_err() {
        eprintln!("dtc journal: no journal in `{}`", dir.display());
        return exit::NO_INPUT;
    }
    let _lock = match DirLock::acquire(dir) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let found = match Log::read(dir) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let check = Check::of(&found);
    match Log::start(LogOptions::new(dir, Durability::Fsync), found) {
        Ok((_log, records, report)) => {
            for (path, d) in report.quarantined.iter().zip(&check.damage) {
                println!(
                    "set aside   bytes {}..{} ({}) in {}",
                    d.start,
                    d.end,
                    d.reason,
                    path.display()
                );
            }
            if report.upgraded {
                println!(
                    "upgraded    format 0 to format {} (a header was added)",
                    crate::journal::log::format::VERSION
                );
            }
            if !check.orphans.is_empty() {
                println!(
                    "lost        the intent of {} (records after the damage name them): check those resources on the nodes",
                    check.orphans.join(" ")
                );
            }
            println!(
                "repaired    {}: {} intact records kept, {} damaged bytes set aside",
                dir.display(),
                records.len(),
                report.cut_bytes
            );
            exit::OK
        }
        Err(e) => fail(&e),
    }
}
