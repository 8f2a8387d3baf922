//! Opening the log: read the file back without changing it ([`Found`]), then — once the owner
//! has decided that the damage found may be set aside — quarantine every damaged byte to a
//! side file and make the file clean again ([`prepare`]).
//!
//! | found | done at start |
//! |---|---|
//! | nothing, or only zeros | a header is written |
//! | format 0 (no header) | rewritten with a header (new file, synced, renamed over) |
//! | damage only at the end | quarantined, then the file is cut before it |
//! | damage elsewhere | quarantined, then the intact records are rewritten (new file, renamed over) |
//! | a foreign file, or a newer format | refused by [`Found::read`]: nothing is changed |

use std::{
    fs::{self, File},
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
};

use super::format::{self, Damage, Format, Refusal};
use super::writer::{sync_dir, tmp_path};
use super::{FILE_NAME, frame, private};
use crate::journal::JournalError;

/// A journal file as read back, before anything in it is changed.
#[derive(Debug)]
pub struct Found {
    pub path: PathBuf,
    pub format: Format,
    /// Offset and payload of every intact record, in file order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// The damaged stretches, in file order, with their bytes.
    pub damage: Vec<Damage>,
    /// End of the last intact frame.
    pub end: u64,
    /// Length of the file (records, then zeros the file was grown by).
    pub file_len: u64,
    pub(super) file: Option<File>,
}

/// What starting on a found file changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Damaged bytes removed from the file (all of them are in `quarantined`).
    pub cut_bytes: u64,
    /// Why the first damaged stretch is damaged, and where.
    pub reason: Option<String>,
    /// Each damaged stretch: start, end, kind.
    pub damaged: Vec<(u64, u64, format::DamageKind)>,
    /// The side files holding the damaged bytes.
    pub quarantined: Vec<PathBuf>,
    /// The file was format 0 and now has a header.
    pub upgraded: bool,
}

impl Found {
    /// Reads `dir`'s log, creating the directory and an empty file when there is none.
    pub(super) fn read_or_create(dir: &Path) -> Result<Found, JournalError> {
        private::prepare_dir(dir)?;
        let path = dir.join(FILE_NAME);
        // A leftover is a rewrite that crashed before its rename: the log itself is intact.
        let _ = fs::remove_file(tmp_path(&path));
        let file =
            private::open_file(&path).map_err(|e| JournalError::open(path.clone(), "open", e))?;
        Found::from_file(path, file)
    }

    /// Reads `dir`'s log without creating or changing anything (`dtc journal check`).
    pub fn inspect(dir: &Path) -> Result<Found, JournalError> {
        let path = dir.join(FILE_NAME);
        let file = File::open(&path).map_err(|e| JournalError::open(path.clone(), "open", e))?;
        let mut found = Found::from_file(path, file)?;
        found.file = None;
        Ok(found)
    }

    fn from_file(path: PathBuf, mut file: File) -> Result<Found, JournalError> {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| JournalError::open(path.clone(), "read", e))?;
        let read = format::read(&bytes).map_err(|r| match r {
            Refusal::Foreign => JournalError::Foreign { path: path.clone() },
            Refusal::Future(version) => JournalError::FutureFormat {
                path: path.clone(),
                version,
                supported: format::VERSION,
            },
        })?;
        Ok(Found {
            path,
            format: read.format,
            records: read.records,
            damage: read.damage,
            end: read.end,
            file_len: bytes.len() as u64,
            file: Some(file),
        })
    }

    /// The payloads, in file order.
    pub fn payloads(&self) -> Vec<Vec<u8>> {
        self.records.iter().map(|(_, p)| p.clone()).collect()
    }
}

/// A file ready for the writer: the file, where its records end, how far it is allocated.
pub(super) struct Prepared {
    pub file: File,
    pub len: u64,
    pub allocated: u64,
    pub first_seq: u64,
}

/// Quarantines the damage and leaves a clean format-1 file (see the module's table).
pub(super) fn prepare(
    dir: &Path,
    mut found: Found,
) -> Result<(Prepared, OpenReport), JournalError> {
    let path = found.path.clone();
    let mut report = OpenReport {
        reason: found.damage.first().map(|d| d.reason.clone()),
        damaged: found
            .damage
            .iter()
            .map(|d| (d.start, d.end, d.kind))
            .collect(),
        upgraded: found.format == Format::Legacy,
        ..OpenReport::default()
    };
    report.quarantined = quarantine(dir, &found.damage)
        .map_err(|e| JournalError::open(path.clone(), "quarantine the damaged bytes of", e))?;
    report.cut_bytes = found.damage.iter().map(|d| d.end - d.start).sum();
    for d in &found.damage {
        tracing::warn!(path = %path.display(), start = d.start, end = d.end, kind = ?d.kind, reason = %d.reason, "damaged journal bytes set aside");
    }
    let file = found.file.take().expect("a file read for writing");
    let first_seq = match found.format {
        Format::V1 { first_seq } => first_seq,
        _ => 0,
    };
    let only_at_the_end = found
        .damage
        .iter()
        .all(|d| d.start >= found.end && d.kind != format::DamageKind::Header);
    let prepared = match found.format {
        Format::V1 { .. } if only_at_the_end => {
            if !found.damage.is_empty() {
                file.set_len(found.end)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| JournalError::open(path.clone(), "cut the damaged tail of", e))?;
            }
            let allocated = if found.damage.is_empty() {
                found.file_len
            } else {
                found.end
            };
            Prepared {
                file,
                len: found.end,
                allocated,
                first_seq,
            }
        }
        _ => rewrite(dir, &path, first_seq, &found.payloads())?,
    };
    // Makes the directory entry of a new, cut or renamed file durable.
    sync_dir(dir).map_err(|e| JournalError::open(path.clone(), "sync", e))?;
    Ok((prepared, report))
}

/// Writes `records` under a fresh header as a new file, renamed over `path`.
fn rewrite(
    dir: &Path,
    path: &Path,
    first_seq: u64,
    records: &[Vec<u8>],
) -> Result<Prepared, JournalError> {
    let tmp = tmp_path(path);
    let mut bytes = format::header_frame(first_seq);
    records
        .iter()
        .for_each(|r| frame::encode_into(r, &mut bytes));
    let written = private::create_file(&tmp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_data()))
        .and_then(|()| fs::rename(&tmp, path))
        .and_then(|()| private::open_file(path));
    let file = written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        JournalError::open(path.to_owned(), "rewrite (at start)", e)
    })?;
    let _ = dir;
    let len = bytes.len() as u64;
    Ok(Prepared {
        file,
        len,
        allocated: len,
        first_seq,
    })
}

/// Writes each damaged stretch to `dir/journal.log.damaged-<ms>-at-<offset>` (0600), synced.
fn quarantine(dir: &Path, damage: &[Damage]) -> std::io::Result<Vec<PathBuf>> {
    let now = crate::journal::record::now_ms();
    let mut out = Vec::new();
    for d in damage {
        let path = dir.join(format!("{FILE_NAME}.damaged-{now}-at-{}", d.start));
        let mut f = private::create_file(&path)?;
        f.write_all(&d.bytes)?;
        f.sync_data()?;
        out.push(path);
    }
    if !out.is_empty() {
        sync_dir(dir)?;
    }
    Ok(out)
}
