//! Segments as a caller sees them: cuts, reopening across segments, compaction dropping
//! segments, every crash point of a cut and of a compaction (left as files on disk), a
//! format-1 journal carried on, and damage in a middle segment.

use std::{fs, os::unix::fs::FileExt, path::Path};

use super::segment::{SPARE_NAME, sealed_name};
use super::*;

/// Segments this small cut every few dozen records.
const SEGMENT: u64 = 4096;

fn opts(dir: &Path, durability: Durability) -> LogOptions {
    LogOptions {
        segment_bytes: SEGMENT,
        ..LogOptions::new(dir, durability)
    }
}

fn open(dir: &Path) -> (Log, Vec<Vec<u8>>, OpenReport) {
    Log::open(opts(dir, Durability::GroupCommit)).expect("open")
}

/// Record `i` of a test: 100 bytes, JSON-like text.
fn record(i: usize) -> Vec<u8> {
    format!("{{\"n\":{i:>94}}}").into_bytes()
}

fn records(from: usize, to: usize) -> Vec<Vec<u8>> {
    (from..to).map(record).collect()
}

async fn append_all(log: &Log, records: &[Vec<u8>]) {
    for r in records {
        log.append(r.clone()).await.expect("append");
    }
}

/// The sealed segments' file names in `dir`, in order.
fn sealed_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("journal-") && n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

/// A journal of 100 records over several segments; returns them.
async fn chain(dir: &Path) -> Vec<Vec<u8>> {
    let (log, found, _) = open(dir);
    assert!(found.is_empty());
    let written = records(0, 100);
    append_all(&log, &written).await;
    written
}

#[tokio::test]
async fn a_batch_that_would_not_fit_goes_into_a_new_segment_and_reopen_reads_them_all() {
    for mode in [Durability::Fsync, Durability::GroupCommit, Durability::None] {
        let dir = tempfile::tempdir().unwrap();
        let (log, _, _) = Log::open(opts(dir.path(), mode)).unwrap();
        let written = records(0, 100);
        append_all(&log, &written).await;
        let sealed = sealed_files(dir.path());
        // 108 bytes a frame, 28 of header: 37 records fill a 4096-byte segment.
        assert_eq!(
            sealed,
            vec![sealed_name(0), sealed_name(37)],
            "{mode:?}: cut before the record that did not fit"
        );
        for name in &sealed {
            let len = fs::metadata(dir.path().join(name)).unwrap().len();
            assert!(len <= SEGMENT, "{mode:?}: {name} is {len} bytes");
        }
        assert_eq!(
            log.size_bytes(),
            3 * 28 + 100 * 108,
            "{mode:?}: every segment's records"
        );
        drop(log);
        let (log, back, report) = open(dir.path());
        assert_eq!(back, written, "{mode:?}: every record, in order");
        assert_eq!(report, OpenReport::default());
        let more = records(100, 130);
        append_all(&log, &more).await;
        drop(log);
        let found = Log::read(dir.path()).unwrap();
        assert_eq!(found.payloads(), [written, more].concat(), "{mode:?}");
        let seqs: Vec<u64> = found.sealed.iter().map(|s| s.first_seq).collect();
        assert_eq!(
            seqs,
            vec![0, 37, 74],
            "{mode:?}: numbers run on across segments"
        );
        assert_eq!(found.first_seq(), 111, "{mode:?}");
    }
}

#[tokio::test]
async fn the_next_segment_is_zero_filled_ahead_so_the_crossing_batch_does_not_grow_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, _) = open(dir.path());
    append_all(&log, &records(0, 30)).await;
    // Past half of the segment: the spare is being zero-filled on its own thread.
    let spare = dir.path().join(SPARE_NAME);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while fs::metadata(&spare).map_or(true, |m| m.len() < SEGMENT) {
        assert!(tokio::time::Instant::now() < deadline, "no spare prepared");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    append_all(&log, &records(30, 38)).await;
    assert_eq!(sealed_files(dir.path()), vec![sealed_name(0)]);
    assert!(!spare.exists(), "the spare became the active segment");
    let active = fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
    assert_eq!(
        active, SEGMENT,
        "already as long as its records will make it"
    );
}

#[tokio::test]
async fn compaction_drops_the_sealed_segments_whole() {
    let dir = tempfile::tempdir().unwrap();
    chain(dir.path()).await;
    let (log, _, _) = open(dir.path());
    assert_eq!(sealed_files(dir.path()).len(), 2);
    let live = records(1000, 1003);
    log.rewrite(live.clone()).await.unwrap();
    assert!(
        sealed_files(dir.path()).is_empty(),
        "no sealed segment left"
    );
    let after = records(2000, 2002);
    append_all(&log, &after).await;
    drop(log);
    let found = Log::read(dir.path()).unwrap();
    assert!(matches!(
        found.format,
        Format::V1 {
            first_seq: 100,
            base: true,
            ..
        }
    ));
    assert_eq!(found.payloads(), [live, after].concat());
}

/// The state a compaction leaves when it crashes after its rename and before removing the
/// sealed segments (or after removing some of them): the old sealed files beside the base.
async fn compaction_crashed_before_removing(dir: &Path, keep: usize) -> Vec<Vec<u8>> {
    chain(dir).await;
    let aside = tempfile::tempdir().unwrap();
    let names = sealed_files(dir);
    for n in &names {
        fs::copy(dir.join(n), aside.path().join(n)).unwrap();
    }
    let (log, _, _) = open(dir);
    let live = records(1000, 1003);
    log.rewrite(live.clone()).await.unwrap();
    drop(log);
    for n in names.iter().take(keep) {
        fs::copy(aside.path().join(n), dir.join(n)).unwrap();
    }
    live
}

#[tokio::test]
async fn a_compaction_crashed_before_removing_its_segments_reads_each_record_once() {
    for keep in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let live = compaction_crashed_before_removing(dir.path(), keep).await;
        assert_eq!(sealed_files(dir.path()).len(), keep);
        let found = Log::read(dir.path()).unwrap();
        assert_eq!(found.superseded.len(), keep, "set apart, unread");
        assert_eq!(found.payloads(), live, "keep {keep}: no record twice");
        let (log, back, _) = Log::start(opts(dir.path(), Durability::Fsync), found).unwrap();
        assert_eq!(back, live);
        assert!(sealed_files(dir.path()).is_empty(), "removed at the start");
        append_all(&log, &records(5, 6)).await;
        drop(log);
        let (_, back, _) = open(dir.path());
        assert_eq!(back, [live, records(5, 6)].concat());
    }
}

#[tokio::test]
async fn a_compaction_crashed_before_its_rename_leaves_the_old_chain() {
    let dir = tempfile::tempdir().unwrap();
    let written = chain(dir.path()).await;
    // Its new file, written and synced, never renamed.
    let mut tmp = format::header_with(100, true);
    frame::encode_into(&record(1000), &mut tmp);
    fs::write(dir.path().join("journal.log.tmp"), tmp).unwrap();
    let (_, back, report) = open(dir.path());
    assert_eq!(back, written);
    assert_eq!(report, OpenReport::default());
    assert!(!dir.path().join("journal.log.tmp").exists());
}

#[tokio::test]
async fn every_crash_point_of_a_cut_reopens_with_each_record_once() {
    // Before the seal: a spare left behind.
    let dir = tempfile::tempdir().unwrap();
    let written = chain(dir.path()).await;
    let mut spare = format::header_frame(100);
    spare.resize(SEGMENT as usize, 0);
    fs::write(dir.path().join(SPARE_NAME), spare).unwrap();
    let (log, back, _) = open(dir.path());
    assert_eq!(back, written, "a spare left behind");
    // Removed at the open; the reopened writer may already be zero-filling a new one (its
    // active segment is half full), which has no header yet.
    let leftover = fs::read(dir.path().join(SPARE_NAME))
        .is_ok_and(|b| b.starts_with(&format::header_frame(100)));
    assert!(!leftover, "the spare left behind is gone");
    drop(log);

    // Between the two renames: the active segment sealed, no `journal.log`.
    fs::rename(dir.path().join(FILE_NAME), dir.path().join(sealed_name(74))).unwrap();
    let found = Found::inspect(dir.path()).unwrap();
    assert_eq!(found.payloads(), written, "dtc journal check reads it too");
    let (log, back, _) = open(dir.path());
    assert_eq!(back, written, "sealed segments only");
    append_all(&log, &records(100, 101)).await;
    drop(log);
    let found = Log::read(dir.path()).unwrap();
    assert_eq!(
        found.first_seq(),
        100,
        "the new active segment starts after them"
    );
    assert_eq!(found.payloads(), [written, records(100, 101)].concat());
}

#[tokio::test]
async fn a_format_1_journal_opens_as_its_first_segment_and_is_sealed_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    // A journal of the previous format: one file, a 20-byte header of version 1.
    let mut payload = format::MAGIC.to_vec();
    payload.extend_from_slice(&1u32.to_le_bytes());
    payload.extend_from_slice(&5u64.to_le_bytes());
    let mut bytes = frame::encode(&payload);
    let old = records(0, 20);
    old.iter().for_each(|r| frame::encode_into(r, &mut bytes));
    fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
    let (log, back, report) = open(dir.path());
    assert_eq!(back, old);
    assert_eq!(report, OpenReport::default());
    let new = records(20, 60);
    append_all(&log, &new).await;
    drop(log);
    assert_eq!(sealed_files(dir.path()), vec![sealed_name(5)]);
    let sealed = fs::read(dir.path().join(sealed_name(5))).unwrap();
    assert_eq!(&sealed[..bytes.len()], &bytes[..], "sealed as it was");
    let found = Log::read(dir.path()).unwrap();
    assert!(matches!(
        found.sealed[0].format,
        Format::V1 { version: 1, .. }
    ));
    assert!(matches!(
        found.format,
        Format::V1 { version: format::VERSION, first_seq, .. } if first_seq == 5 + found.sealed[0].records.len() as u64
    ));
    assert_eq!(found.payloads(), [old, new].concat());
}

#[tokio::test]
async fn damage_in_a_middle_segment_costs_only_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let written = chain(dir.path()).await;
    let middle = dir.path().join(sealed_name(37));
    let file = fs::OpenOptions::new().write(true).open(&middle).unwrap();
    // The payload of the segment's third record.
    file.write_all_at(b"#", 28 + 2 * 108 + 50).unwrap();
    let found = Log::read(dir.path()).unwrap();
    let damage: Vec<_> = found.all_damage().collect();
    assert_eq!(damage.len(), 1);
    assert_eq!(damage[0].0, Some(middle.as_path()));
    assert_eq!(damage[0].1.kind, DamageKind::Damaged, "a person judges it");
    let expected: Vec<Vec<u8>> = written
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 39)
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(
        found.payloads(),
        expected,
        "every later record, later segments too"
    );
    let (log, back, report) = Log::start(opts(dir.path(), Durability::Fsync), found).unwrap();
    assert_eq!(back, expected);
    assert_eq!(report.cut_bytes, 108);
    let side = &report.quarantined[0];
    assert!(
        side.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("{}.damaged-", sealed_name(37))),
        "{side:?}"
    );
    assert_eq!(fs::read(side).unwrap().len(), 108);
    drop(log);
    let (_, back, report) = open(dir.path());
    assert_eq!(
        back, expected,
        "repaired: the segment holds its intact records"
    );
    assert_eq!(report, OpenReport::default());
}

#[tokio::test]
async fn a_foreign_or_newer_or_overlapping_segment_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    chain(dir.path()).await;
    let stray = dir.path().join(sealed_name(500));
    fs::write(&stray, b"# not a journal\n").unwrap();
    let err = Log::read(dir.path()).unwrap_err();
    assert!(
        matches!(&err, JournalError::Foreign { path } if *path == stray),
        "{err}"
    );

    let mut payload = format::MAGIC.to_vec();
    payload.extend_from_slice(&(format::VERSION + 1).to_le_bytes());
    payload.extend_from_slice(&500u64.to_le_bytes());
    fs::write(&stray, frame::encode(&payload)).unwrap();
    let err = Log::read(dir.path()).unwrap_err();
    assert!(matches!(err, JournalError::FutureFormat { .. }), "{err}");
    fs::remove_file(&stray).unwrap();

    // A copy of a sealed segment under a later number: its records would be read twice.
    let copy = dir.path().join(sealed_name(40));
    fs::copy(dir.path().join(sealed_name(0)), &copy).unwrap();
    let before = fs::read(&copy).unwrap();
    let err = Log::read(dir.path()).unwrap_err();
    assert!(matches!(err, JournalError::Segments { .. }), "{err}");
    assert!(
        err.to_string().contains("move the stray segment aside"),
        "{err}"
    );
    assert_eq!(fs::read(&copy).unwrap(), before, "nothing changed");
}

#[tokio::test]
async fn a_disk_too_full_for_a_spare_still_cuts_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, _) = open(dir.path());
    // Room for a batch, not for a spare's zeros nor a chunk of them.
    log.faults().fail_writes_over(1024);
    let written = records(0, 100);
    append_all(&log, &written).await;
    assert_eq!(log.failures(), 0, "no record refused");
    assert_eq!(sealed_files(dir.path()).len(), 2);
    log.faults().clear();
    drop(log);
    let (_, back, report) = open(dir.path());
    assert_eq!(back, written);
    assert_eq!(report, OpenReport::default());
}

#[tokio::test]
async fn a_cut_short_sealed_segment_is_damage_not_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let written = chain(dir.path()).await;
    let first = dir.path().join(sealed_name(0));
    let len = fs::metadata(&first).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let found = Log::read(dir.path()).unwrap();
    let damage: Vec<_> = found.all_damage().map(|(_, d)| d.kind).collect();
    assert_eq!(
        damage,
        vec![DamageKind::Damaged],
        "it was synced before its seal"
    );
    assert_eq!(found.payloads(), [&written[..36], &written[37..]].concat());
}

#[tokio::test]
async fn a_removed_directory_is_written_anew_with_every_sealed_segment() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("journal");
    let (log, _, _) = Log::open(opts(&dir, Durability::GroupCommit)).unwrap();
    let written = records(0, 100);
    append_all(&log, &written).await;
    fs::remove_dir_all(&dir).unwrap();
    let path = dir.join(FILE_NAME);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(path.exists() && log.problem().is_none()) {
        assert!(tokio::time::Instant::now() < deadline, "never written anew");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    append_all(&log, &records(100, 101)).await;
    drop(log);
    assert_eq!(sealed_files(&dir), vec![sealed_name(0), sealed_name(37)]);
    let (_, back, report) = open(&dir);
    assert_eq!(back, [written, records(100, 101)].concat());
    assert_eq!(report, OpenReport::default());
}
