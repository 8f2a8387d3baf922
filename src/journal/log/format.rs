//! The file format: a header frame, then record frames; and reading a whole file back into
//! what is intact and what is damaged, with each damaged stretch classified.
//!
//! # Formats 1 and 2
//!
//! The file starts with a frame like any other whose payload is the header:
//! `[magic "dtcjrnl\0"][version: u32 LE][first_seq: u64 LE]` (20 bytes), and in format 2 a
//! compaction's file adds `[flags: u8]` (21 bytes; a later version may append fields, which
//! this one skips).
//! `first_seq` numbers the file's first record: records are numbered in file order across the
//! journal's segments ([`super::segment`]), and a rewrite (compaction) starts its file where
//! the old one's numbers ended, so numbers only grow. Flag bit 0, *base*, marks a compaction's
//! file: it holds every live record, so every segment numbered before it is superseded.
//!
//! Format 2 is format 1 plus segments and the flags byte. A dtc that reads only format 1
//! refuses a format-2 file (a newer format) instead of starting on one segment of a journal.
//!
//! Because the header is itself a valid frame, a dtc older than format 1 reads a format-1 file
//! without harm: it skips the header as a record of an unknown shape and reads the rest.
//!
//! # Format 0 (before the header)
//!
//! A file whose first frame is an intact record and no header is format 0: it is read the same
//! way (its frames are format 1's) and rewritten with a header when dtc starts on it.

use super::frame::{self, Bad, HEADER_LEN};

/// The first bytes of a header's payload.
pub const MAGIC: [u8; 8] = *b"dtcjrnl\0";
/// The format this dtc writes, and the newest it reads.
pub const VERSION: u32 = 2;
/// Bytes of the header payload this version writes (one more, the flags, in a base's).
const HEADER_PAYLOAD: usize = 20;
/// Header flag: a compaction's file, superseding every segment before it.
const BASE: u8 = 1;

/// The most bytes the writer puts in one write and sync, unless a single record is larger: a
/// power loss can leave holes only in the last of them, never in a synced one.
pub const MAX_BATCH_BYTES: usize = 256 << 10;

/// A run of zeros this long inside a frame is bytes never written (dtc's records are JSON text,
/// which holds no zero byte, and a frame header at most 6 zeros in a row).
const UNWRITTEN_RUN: usize = 8;

/// What kind of file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Empty, or only zeros: a new journal.
    Empty,
    /// Written before the header existed.
    Legacy,
    /// With a header (format 1 or 2): its version, first sequence number, and whether it is a
    /// compaction's file (the base every later segment builds on).
    V1 {
        first_seq: u64,
        version: u32,
        base: bool,
    },
}

/// What a damaged stretch looks like, and so what dtc does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageKind {
    /// At the end, nothing intact after it, and not a whole frame: a write cut short by a crash
    /// (never acknowledged). Cut.
    Torn,
    /// Unwritten bytes (zeros) followed by records, all within the last batch's bytes: a batch
    /// a power loss cut short before its sync (never acknowledged). Cut; the records after it
    /// are kept.
    TornBatch,
    /// The header only: it holds no record. Replaced by a fresh header.
    Header,
    /// Anything else: bytes that were written and synced changed (a flipped bit, a bad
    /// sector, garbage between records), or a whole record at the end whose checksum fails.
    /// What it held is unknown: a person decides.
    Damaged,
}

/// One damaged stretch of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub start: u64,
    pub end: u64,
    pub kind: DamageKind,
    /// Why the first frame in it is not intact, and where.
    pub reason: String,
    /// The damaged bytes themselves (what the quarantine file holds).
    pub bytes: Vec<u8>,
}

/// Why a file is not read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No header and not one intact record: not a dtc journal.
    Foreign,
    /// A header of a newer format than this dtc reads.
    Future(u32),
}

/// A file's bytes, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub format: Format,
    /// Offset and payload of every intact record (the header not included).
    pub records: Vec<(u64, Vec<u8>)>,
    pub damage: Vec<Damage>,
    /// End of the last intact frame (header included).
    pub end: u64,
    /// End of the non-zero bytes.
    pub data_end: u64,
}

/// The header frame of a file whose first record is number `first_seq`.
pub fn header_frame(first_seq: u64) -> Vec<u8> {
    header_with(first_seq, false)
}

/// The header frame of a file whose first record is number `first_seq`; `base` for a
/// compaction's file.
pub fn header_with(first_seq: u64, base: bool) -> Vec<u8> {
    let mut payload = Vec::with_capacity(HEADER_PAYLOAD);
    payload.extend_from_slice(&MAGIC);
    payload.extend_from_slice(&VERSION.to_le_bytes());
    payload.extend_from_slice(&first_seq.to_le_bytes());
    if base {
        payload.push(BASE);
    }
    frame::encode(&payload)
}

/// Reads a whole file's bytes. Never panics, whatever the bytes.
pub fn read(bytes: &[u8]) -> Result<Read, Refusal> {
    let data_end = frame::data_end(bytes);
    if data_end == 0 {
        return Ok(Read {
            format: Format::Empty,
            records: Vec::new(),
            damage: Vec::new(),
            end: 0,
            data_end: 0,
        });
    }
    let (format, from, header_damage) = match frame::read_frame(bytes) {
        Ok(payload) if payload.starts_with(&MAGIC) => {
            let (version, first_seq, base) = header_fields(payload);
            if version > VERSION {
                return Err(Refusal::Future(version));
            }
            let format = Format::V1 {
                first_seq,
                version,
                base,
            };
            (format, HEADER_LEN + payload.len(), None)
        }
        Ok(_) => (Format::Legacy, 0, None),
        // A header whose magic is still there but whose checksum fails. Its version cannot be
        // trusted: a newer one makes the damage a person's to judge, never rewritten silently.
        Err(why) if bytes.get(HEADER_LEN..HEADER_LEN + MAGIC.len()) == Some(&MAGIC[..]) => {
            // Only the 20 bytes every header has are set aside with it: a base's flags byte,
            // if it was one, then reads as damage of its own, for a person to judge.
            let claimed = frame::claimed_len(bytes)
                .unwrap_or(HEADER_PAYLOAD)
                .clamp(HEADER_PAYLOAD, HEADER_PAYLOAD + 1);
            let payload = &bytes[HEADER_LEN..(HEADER_LEN + claimed).min(bytes.len())];
            let (version, first_seq, base) = header_fields(payload);
            let end = (HEADER_LEN + HEADER_PAYLOAD).min(data_end);
            let bad = Bad {
                start: 0,
                end,
                why: format!("{why} at offset 0 (the header, version {version})"),
            };
            let kind = if version > VERSION {
                DamageKind::Damaged
            } else {
                DamageKind::Header
            };
            let format = Format::V1 {
                first_seq,
                version: version.min(VERSION),
                base,
            };
            (format, end, Some((bad, kind)))
        }
        Err(_) => (Format::Legacy, 0, None),
    };
    let scan = frame::scan(bytes, from, data_end);
    if format == Format::Legacy && scan.records.is_empty() {
        return Err(Refusal::Foreign);
    }
    let last_record = scan.records.last().map_or(0, |(at, _)| *at);
    let mut damage: Vec<Damage> = header_damage
        .into_iter()
        .map(|(b, kind)| damage_of(bytes, b, kind))
        .collect();
    for bad in scan.bad {
        let kind = classify(
            bytes,
            &bad,
            data_end,
            bad.start > last_record || scan.records.is_empty(),
        );
        damage.push(damage_of(bytes, bad, kind));
    }
    Ok(Read {
        format,
        records: scan
            .records
            .into_iter()
            .map(|(at, p)| (at as u64, p))
            .collect(),
        damage,
        end: scan.end as u64,
        data_end: data_end as u64,
    })
}

/// Version, first sequence number, base flag (format 1 has no flags).
fn header_fields(payload: &[u8]) -> (u32, u64, bool) {
    let version = payload
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes);
    let first_seq = payload
        .get(12..20)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    let base = version >= 2 && payload.get(20).is_some_and(|f| f & BASE != 0);
    (version, first_seq, base)
}

fn damage_of(bytes: &[u8], bad: Bad, kind: DamageKind) -> Damage {
    Damage {
        start: bad.start as u64,
        end: bad.end as u64,
        kind,
        reason: bad.why,
        bytes: bytes[bad.start..bad.end].to_vec(),
    }
}

/// Torn (a write cut short, never acknowledged) or damaged (bytes that were written changed).
fn classify(bytes: &[u8], bad: &Bad, data_end: usize, at_the_end: bool) -> DamageKind {
    let stretch = &bytes[bad.start..bad.end];
    if !at_the_end {
        let in_last_batch = data_end - bad.start <= MAX_BATCH_BYTES;
        return if in_last_batch && has_unwritten_run(stretch) {
            DamageKind::TornBatch
        } else {
            DamageKind::Damaged
        };
    }
    // At the end: a whole frame (its bytes all there, none left unwritten) whose checksum
    // fails is a changed record, not a write cut short.
    let whole = frame::claimed_len(stretch).is_some_and(|len| {
        (1..=frame::MAX_RECORD).contains(&len)
            && bad.start + HEADER_LEN + len <= data_end
            && !has_unwritten_run(&stretch[HEADER_LEN..HEADER_LEN + len])
    });
    if whole {
        DamageKind::Damaged
    } else {
        DamageKind::Torn
    }
}

fn has_unwritten_run(bytes: &[u8]) -> bool {
    bytes
        .split(|&b| b != 0)
        .any(|zeros| zeros.len() >= UNWRITTEN_RUN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(records: &[&[u8]]) -> Vec<u8> {
        let mut out = header_frame(7);
        for r in records {
            frame::encode_into(r, &mut out);
        }
        out
    }

    #[test]
    fn a_header_frame_is_read_back_with_its_sequence_number() {
        let r = read(&file(&[b"{\"a\":1}"])).unwrap();
        assert_eq!(
            r.format,
            Format::V1 {
                first_seq: 7,
                version: VERSION,
                base: false
            }
        );
        assert_eq!(r.records.len(), 1);
        assert!(r.damage.is_empty());
    }

    #[test]
    fn a_newer_format_and_a_foreign_file_are_refused() {
        let mut payload = MAGIC.to_vec();
        payload.extend_from_slice(&(VERSION + 1).to_le_bytes());
        payload.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(
            read(&frame::encode(&payload)),
            Err(Refusal::Future(VERSION + 1))
        );
        assert_eq!(read(b"# not a journal\n"), Err(Refusal::Foreign));
    }

    #[test]
    fn a_file_without_a_header_is_format_0() {
        let mut bytes = Vec::new();
        frame::encode_into(b"{}", &mut bytes);
        let r = read(&bytes).unwrap();
        assert_eq!((r.format, r.records.len()), (Format::Legacy, 1));
    }

    #[test]
    fn zeros_then_records_within_the_last_batch_are_a_torn_batch() {
        let mut bytes = file(&[b"{\"a\":1}"]);
        bytes.extend_from_slice(&[0; 600]);
        frame::encode_into(b"{\"b\":2}", &mut bytes);
        let r = read(&bytes).unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.damage[0].kind, DamageKind::TornBatch);
    }

    #[test]
    fn a_whole_flipped_record_at_the_end_is_damage_a_cut_one_is_torn() {
        let mut bytes = file(&[b"{\"a\":1}", b"{\"b\":2}"]);
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        assert_eq!(read(&bytes).unwrap().damage[0].kind, DamageKind::Damaged);
        let mut cut = file(&[b"{\"a\":1}", b"{\"b\":2}"]);
        cut.truncate(cut.len() - 2);
        assert_eq!(read(&cut).unwrap().damage[0].kind, DamageKind::Torn);
    }
}
