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
//!
//! Sealed segments ([`super::segment`]) are judged the same way: damage in one is quarantined
//! and the segment rewritten with its intact records (its header kept); segments a compaction
//! superseded are removed; a crashed cut's spare is removed.

use std::{
    fs::{self, File},
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
};

use super::format::{self, Damage, Format};
use super::segment::{self, SPARE_NAME, Sealed};
use super::writer::{SealedFile, sync_dir, tmp_path};
use super::{FILE_NAME, frame, private};
use crate::journal::JournalError;

/// A journal as read back, before anything in it is changed: the active segment (`path`,
/// `format`, `records`, `damage`, ...) and the sealed ones before it.
#[derive(Debug)]
pub struct Found {
    /// The sealed segments, oldest first, without those a compaction superseded.
    pub sealed: Vec<Sealed>,
    /// Sealed segments a compaction superseded (its crash left them): removed at start.
    pub superseded: Vec<PathBuf>,
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
        // Leftovers of a rewrite or a cut that crashed before its rename: the log is intact.
        let _ = fs::remove_file(tmp_path(&path));
        let _ = fs::remove_file(dir.join(SPARE_NAME));
        let file =
            private::open_file(&path).map_err(|e| JournalError::open(path.clone(), "open", e))?;
        Found::from_file(path, file)?.with_sealed(dir)
    }

    /// Reads `dir`'s log without creating or changing anything (`dtc journal check`).
    pub fn inspect(dir: &Path) -> Result<Found, JournalError> {
        let path = dir.join(FILE_NAME);
        let mut found = match File::open(&path) {
            Ok(file) => Found::from_file(path, file)?,
            // A cut that crashed between its renames leaves sealed segments only.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && has_sealed(dir) => {
                Found::from_bytes(path, &[], None)?
            }
            Err(e) => return Err(JournalError::open(path, "open", e)),
        };
        found.file = None;
        found.with_sealed(dir)
    }

    fn from_file(path: PathBuf, mut file: File) -> Result<Found, JournalError> {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| JournalError::open(path.clone(), "read", e))?;
        Found::from_bytes(path, &bytes, Some(file))
    }

    fn from_bytes(path: PathBuf, bytes: &[u8], file: Option<File>) -> Result<Found, JournalError> {
        let read = format::read(bytes).map_err(|r| segment::refused(&path, r))?;
        Ok(Found {
            sealed: Vec::new(),
            superseded: Vec::new(),
            path,
            format: read.format,
            records: read.records,
            damage: read.damage,
            end: read.end,
            file_len: bytes.len() as u64,
            file,
        })
    }

    /// Adds the sealed segments of `dir`, setting apart those a compaction superseded.
    fn with_sealed(mut self, dir: &Path) -> Result<Found, JournalError> {
        let mut sealed = segment::read_sealed(dir)?;
        let active_is_base = matches!(self.format, Format::V1 { base: true, .. });
        self.superseded = segment::supersede(&mut sealed, active_is_base);
        let active_first = match self.format {
            Format::V1 { first_seq, .. } => Some(first_seq),
            Format::Legacy => Some(0),
            Format::Empty => None,
        };
        segment::check_chain(dir, &sealed, active_first)?;
        self.sealed = sealed;
        Ok(self)
    }

    /// The payloads of every segment, in record order.
    pub fn payloads(&self) -> Vec<Vec<u8>> {
        self.all_records().map(|p| p.to_vec()).collect()
    }

    /// Every intact record's payload, in record order.
    pub fn all_records(&self) -> impl Iterator<Item = &[u8]> {
        self.sealed
            .iter()
            .flat_map(|s| &s.records)
            .chain(&self.records)
            .map(|(_, p)| p.as_slice())
    }

    /// Every damaged stretch, in record order, with the sealed segment it is in (`None`: the
    /// active one).
    pub fn all_damage(&self) -> impl Iterator<Item = (Option<&Path>, &Damage)> {
        self.sealed
            .iter()
            .flat_map(|s| s.damage.iter().map(|d| (Some(s.path.as_path()), d)))
            .chain(self.damage.iter().map(|d| (None, d)))
    }

    /// The first record number of the active segment.
    pub fn first_seq(&self) -> u64 {
        match self.format {
            Format::V1 { first_seq, .. } => first_seq,
            Format::Legacy => 0,
            Format::Empty => self.sealed.last().map_or(0, Sealed::next_seq),
        }
    }
}

/// Whether `dir` holds sealed segments.
fn has_sealed(dir: &Path) -> bool {
    segment::read_sealed(dir).is_ok_and(|s| !s.is_empty())
}

/// A file ready for the writer: the file, where its records end, how far it is allocated.
pub(super) struct Prepared {
    pub file: File,
    pub len: u64,
    pub allocated: u64,
    pub first_seq: u64,
    /// The sealed segments, open for reading.
    pub sealed: Vec<SealedFile>,
}

/// Quarantines the damage and leaves a clean chain of segments (see the module's table).
pub(super) fn prepare(
    dir: &Path,
    mut found: Found,
) -> Result<(Prepared, OpenReport), JournalError> {
    let path = found.path.clone();
    let mut report = OpenReport {
        reason: found.all_damage().next().map(|(_, d)| d.reason.clone()),
        damaged: found
            .all_damage()
            .map(|(_, d)| (d.start, d.end, d.kind))
            .collect(),
        upgraded: found.format == Format::Legacy,
        ..OpenReport::default()
    };
    if !found.superseded.is_empty() {
        segment::remove_all(&found.superseded)
            .and_then(|()| sync_dir(dir))
            .map_err(|e| {
                JournalError::open(path.clone(), "remove the superseded segments of", e)
            })?;
        tracing::info!(dir = %dir.display(), segments = found.superseded.len(), "journal segments a compaction had superseded removed");
    }
    let first_seq = found.first_seq();
    let mut sealed = Vec::with_capacity(found.sealed.len());
    for s in &found.sealed {
        let len = prepare_sealed(dir, s, &mut report)?;
        let file =
            File::open(&s.path).map_err(|e| JournalError::open(s.path.clone(), "open", e))?;
        sealed.push(SealedFile {
            path: s.path.clone(),
            len,
            file,
        });
    }
    let quarantined = quarantine(dir, FILE_NAME, &found.damage)
        .map_err(|e| JournalError::open(path.clone(), "quarantine the damaged bytes of", e))?;
    report.quarantined.extend(quarantined);
    report.cut_bytes += found.damage.iter().map(|d| d.end - d.start).sum::<u64>();
    for d in &found.damage {
        tracing::warn!(path = %path.display(), start = d.start, end = d.end, kind = ?d.kind, reason = %d.reason, "damaged journal bytes set aside");
    }
    let file = found.file.take().expect("a file read for writing");
    let only_at_the_end = found
        .damage
        .iter()
        .all(|d| d.start >= found.end && d.kind != format::DamageKind::Header);
    let mut prepared = match found.format {
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
                sealed: Vec::new(),
            }
        }
        format => {
            let base = matches!(format, Format::V1 { base: true, .. });
            let records: Vec<&[u8]> = found.records.iter().map(|(_, p)| p.as_slice()).collect();
            let (file, len) = write_segment(&path, first_seq, base, &records)
                .map_err(|e| JournalError::open(path.clone(), "rewrite (at start)", e))?;
            Prepared {
                file,
                len,
                allocated: len,
                first_seq,
                sealed: Vec::new(),
            }
        }
    };
    prepared.sealed = sealed;
    // Makes the directory entry of a new, cut or renamed file durable.
    sync_dir(dir).map_err(|e| JournalError::open(path.clone(), "sync", e))?;
    Ok((prepared, report))
}

/// Quarantines a sealed segment's damage and rewrites it with its intact records under its
/// own header; returns the bytes its records take.
fn prepare_sealed(dir: &Path, s: &Sealed, report: &mut OpenReport) -> Result<u64, JournalError> {
    if s.damage.is_empty() {
        return Ok(s.end);
    }
    let name = s
        .path
        .file_name()
        .map_or_else(|| FILE_NAME.into(), |n| n.to_string_lossy().into_owned());
    let quarantined = quarantine(dir, &name, &s.damage)
        .map_err(|e| JournalError::open(s.path.clone(), "quarantine the damaged bytes of", e))?;
    report.quarantined.extend(quarantined);
    report.cut_bytes += s.damage.iter().map(|d| d.end - d.start).sum::<u64>();
    for d in &s.damage {
        tracing::warn!(path = %s.path.display(), start = d.start, end = d.end, kind = ?d.kind, reason = %d.reason, "damaged journal bytes set aside");
    }
    let records: Vec<&[u8]> = s.records.iter().map(|(_, p)| p.as_slice()).collect();
    let (_, len) = write_segment(&s.path, s.first_seq, s.is_base(), &records)
        .map_err(|e| JournalError::open(s.path.clone(), "rewrite (at start)", e))?;
    Ok(len)
}

/// Writes `records` under a fresh header as a new file, synced and renamed over `path`;
/// returns it, open for reading and writing, and its length.
fn write_segment(
    path: &Path,
    first_seq: u64,
    base: bool,
    records: &[&[u8]],
) -> std::io::Result<(File, u64)> {
    let tmp = tmp_path(path);
    let mut bytes = format::header_with(first_seq, base);
    records
        .iter()
        .for_each(|r| frame::encode_into(r, &mut bytes));
    let written = private::create_file(&tmp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_data()))
        .and_then(|()| fs::rename(&tmp, path))
        .and_then(|()| private::open_file(path));
    let file = written.inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    Ok((file, bytes.len() as u64))
}

/// Writes each damaged stretch of file `name` to `dir/<name>.damaged-<ms>-at-<offset>` (0600),
/// synced.
fn quarantine(dir: &Path, name: &str, damage: &[Damage]) -> std::io::Result<Vec<PathBuf>> {
    let now = crate::journal::record::now_ms();
    let mut out = Vec::new();
    for d in damage {
        let path = dir.join(format!("{name}.damaged-{now}-at-{}", d.start));
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
