//! Segments: the journal is a chain of files, each with its own header ([`super::format`]).
//!
//! `journal.log` is the *active* segment, the only one written to. When the next batch would
//! take it past [`LogOptions::segment_bytes`](super::LogOptions::segment_bytes), the writer
//! *cuts* ([`super::cut`]): it seals `journal.log` by renaming it `journal-<first_seq>.log`
//! (`first_seq` as 16 hex digits, so names sort in record order) and renames a spare, already
//! zero-filled file with a new header into `journal.log`. A journal of format 1 (one file,
//! `journal.log`) is therefore already a journal of one segment: it opens as it is, and its
//! first cut seals it like any other.
//!
//! Compaction writes every live record into a new `journal.log` whose header says *base*,
//! renames it over the active one, then removes the sealed segments. A crash before the
//! rename leaves the old chain; after it, sealed segments numbered before the newest base are
//! *superseded*: [`read`] sets them apart and the start removes them, so no record is read
//! twice. Sealed segments that overlap in numbers are refused: dtc will not guess.
//!
//! Sealed segments are read like the active one: damage in one costs only its own bytes, never
//! a record of a later segment. Since a segment is sealed only once its records are synced,
//! no damage in it is a torn write: all of it is for a person to judge.

use std::{
    fs,
    io::{self, Read as _},
    path::{Path, PathBuf},
};

use super::FILE_NAME;
use super::format::{self, Damage, DamageKind, Format, Refusal};
use crate::journal::JournalError;

/// Where a cut prepares the next active segment; a leftover is a crashed cut's, removed at open.
pub(super) const SPARE_NAME: &str = "journal.log.next";

/// The name of the sealed segment whose first record is number `first_seq`.
pub(crate) fn sealed_name(first_seq: u64) -> String {
    format!("journal-{first_seq:016x}.log")
}

/// The first sequence number a sealed segment's name says, if it is one.
fn parse_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("journal-")?.strip_suffix(".log")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// A sealed segment as read back.
#[derive(Debug)]
pub struct Sealed {
    pub path: PathBuf,
    pub format: Format,
    /// The first record's number (its header's, or its name's for a file without a header).
    pub first_seq: u64,
    /// Offset and payload of every intact record, in file order.
    pub records: Vec<(u64, Vec<u8>)>,
    pub damage: Vec<Damage>,
    /// End of the last intact frame.
    pub end: u64,
}

impl Sealed {
    pub fn is_base(&self) -> bool {
        matches!(self.format, Format::V1 { base: true, .. })
    }

    /// The number the next segment's first record must have, when nothing was lost here.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.records.len() as u64
    }
}

/// The sealed segments in `dir`, oldest first (none for a format-1 journal).
pub(super) fn read_sealed(dir: &Path) -> Result<Vec<Sealed>, JournalError> {
    let listed = fs::read_dir(dir).map_err(|e| JournalError::open(dir.to_owned(), "list", e))?;
    let mut found = Vec::new();
    for entry in listed {
        let entry = entry.map_err(|e| JournalError::open(dir.to_owned(), "list", e))?;
        let name = entry.file_name();
        if let Some(seq) = name.to_str().and_then(parse_name) {
            found.push((seq, entry.path()));
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|(seq, path)| read_one(path, seq))
        .collect()
}

fn read_one(path: PathBuf, named: u64) -> Result<Sealed, JournalError> {
    let mut bytes = Vec::new();
    fs::File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| JournalError::open(path.clone(), "read", e))?;
    let read = format::read(&bytes).map_err(|r| refused(&path, r))?;
    let first_seq = match read.format {
        Format::V1 { first_seq, .. } => first_seq,
        _ => named,
    };
    // A segment is sealed only after its records were synced: nothing in it can be a write
    // cut short, so whatever is damaged there is a person's to judge.
    let damage = read
        .damage
        .into_iter()
        .map(|d| Damage {
            kind: DamageKind::Damaged,
            ..d
        })
        .collect();
    Ok(Sealed {
        path,
        format: read.format,
        first_seq,
        records: read.records,
        damage,
        end: read.end,
    })
}

/// The error for a file [`format::read`] refuses.
pub(super) fn refused(path: &Path, r: Refusal) -> JournalError {
    match r {
        Refusal::Foreign => JournalError::Foreign {
            path: path.to_owned(),
        },
        Refusal::Future(version) => JournalError::FutureFormat {
            path: path.to_owned(),
            version,
            supported: format::VERSION,
        },
    }
}

/// Splits off the sealed segments a compaction superseded: every one before the newest base
/// (the active segment's base supersedes them all). Returns the superseded ones' paths.
pub(super) fn supersede(sealed: &mut Vec<Sealed>, active_is_base: bool) -> Vec<PathBuf> {
    let keep_from = if active_is_base {
        sealed.len()
    } else {
        sealed.iter().rposition(Sealed::is_base).unwrap_or(0)
    };
    sealed.drain(..keep_from).map(|s| s.path).collect()
}

/// Checks that the segments' numbers follow each other: overlapping numbers would read records
/// twice, so they are refused. A gap (a segment's records lost to damage, or a file removed)
/// is logged. `active_first` is the active segment's first number, if it has a header.
pub(super) fn check_chain(
    dir: &Path,
    sealed: &[Sealed],
    active_first: Option<u64>,
) -> Result<(), JournalError> {
    let firsts = sealed
        .iter()
        .skip(1)
        .map(|s| (s.first_seq, s.path.clone()))
        .chain(active_first.map(|f| (f, dir.join(FILE_NAME))));
    for (before, (first, path)) in sealed.iter().zip(firsts) {
        let next = before.next_seq();
        if first < next {
            return Err(JournalError::Segments {
                dir: dir.to_owned(),
                why: format!(
                    "`{}` holds records up to number {}, but `{}` starts at {first}",
                    before.path.display(),
                    next - 1,
                    path.display()
                ),
            });
        }
        if first > next && before.damage.is_empty() {
            tracing::warn!(segment = %path.display(), expected = next, first, "journal segment numbers skip: records between them are missing");
        }
    }
    Ok(())
}

/// Removes `paths` (superseded segments, a crashed cut's spare); a file already gone is fine.
pub(super) fn remove_all(paths: &[PathBuf]) -> io::Result<()> {
    for p in paths {
        match fs::remove_file(p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_record_order_and_parse_back() {
        assert_eq!(sealed_name(255), "journal-00000000000000ff.log");
        assert_eq!(parse_name(&sealed_name(u64::MAX)), Some(u64::MAX));
        assert!(sealed_name(9) < sealed_name(10));
        for other in [
            "journal.log",
            "journal-ff.log",
            "journal-00000000000000ff.log.tmp",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }
}
