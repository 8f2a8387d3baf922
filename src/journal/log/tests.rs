//! Behaviour of the log as a caller sees it: what comes back after reopening, what is cut
//! and reported, and which errors surface.

use std::{fs, os::unix::fs::FileExt, path::Path};

use super::*;

fn opts(dir: &Path, durability: Durability) -> LogOptions {
    LogOptions::new(dir, durability)
}

fn records(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}-{i}").into_bytes())
        .collect()
}

async fn append_all(log: &Log, records: &[Vec<u8>]) {
    for r in records {
        log.append(r.clone()).await.expect("append");
    }
}

fn reopen(dir: &Path) -> (Log, Vec<Vec<u8>>, OpenReport) {
    Log::open(opts(dir, Durability::GroupCommit)).expect("reopen")
}

fn file_of(dir: &Path) -> std::path::PathBuf {
    dir.join(FILE_NAME)
}

/// Bytes the header and the frames of `records` take: where the records end in the file.
fn frames_len(records: &[Vec<u8>]) -> u64 {
    HEADER
        + records
            .iter()
            .map(|r| (frame::HEADER_LEN + r.len()) as u64)
            .sum::<u64>()
}

/// Bytes of the header frame.
const HEADER: u64 = 28;

/// Writes `n` records in a fresh log and returns the directory.
async fn log_with(n: usize) -> (tempfile::TempDir, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, found, _) = reopen(dir.path());
    assert!(found.is_empty());
    let written = records("rec", n);
    append_all(&log, &written).await;
    (dir, written)
}

#[tokio::test]
async fn round_trip_in_every_mode() {
    for mode in [Durability::Fsync, Durability::GroupCommit, Durability::None] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, found, tail) = Log::open(opts(dir.path(), mode)).expect("open");
        assert!(found.is_empty());
        assert_eq!(tail, OpenReport::default());
        let written = records("x", 5);
        append_all(&log, &written).await;
        log.flush().await.expect("flush");
        assert_eq!(log.size_bytes(), frames_len(&written));
        let on_disk = fs::read(file_of(dir.path())).unwrap();
        assert!(on_disk.len() as u64 >= log.size_bytes());
        assert!(
            on_disk[log.size_bytes() as usize..].iter().all(|&b| b == 0),
            "only zeros after the records"
        );
        drop(log);
        let (_, found, tail) = reopen(dir.path());
        assert_eq!(found, written, "mode {mode:?}");
        assert_eq!(tail.cut_bytes, 0);
    }
}

#[tokio::test]
async fn reopen_continues_after_existing_records() {
    let (dir, mut written) = log_with(3).await;
    let (log, found, _) = reopen(dir.path());
    assert_eq!(found, written);
    let more = records("more", 2);
    append_all(&log, &more).await;
    written.extend(more);
    assert_eq!(reopen(dir.path()).1, written);
}

#[tokio::test]
async fn torn_last_record_is_cut_and_reported() {
    let (dir, written) = log_with(3).await;
    let path = file_of(dir.path());
    let len = frames_len(&written);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 2)
        .unwrap();

    let (_, found, tail) = reopen(dir.path());
    assert_eq!(found, written[..2]);
    assert!(tail.cut_bytes > 0);
    assert!(
        tail.reason.as_deref().unwrap().contains("torn record"),
        "{tail:?}"
    );
    assert_eq!(fs::metadata(&path).unwrap().len(), len - 2 - tail.cut_bytes);
    assert_eq!(
        reopen(dir.path()).2,
        OpenReport::default(),
        "the cut is durable"
    );
}

#[tokio::test]
async fn zeros_the_file_was_grown_by_are_room_not_damage() {
    let (dir, written) = log_with(3).await;
    let path = file_of(dir.path());
    assert!(
        fs::metadata(&path).unwrap().len() >= prealloc::PREALLOCATE,
        "the file is grown ahead of its records"
    );
    let (log, found, tail) = reopen(dir.path());
    assert_eq!(found, written);
    assert_eq!(tail, OpenReport::default(), "nothing reported, nothing cut");
    log.append(b"next".to_vec()).await.unwrap();
    drop(log);
    let mut expected = written;
    expected.push(b"next".to_vec());
    let (_, found, tail) = reopen(dir.path());
    assert_eq!(
        found, expected,
        "the next record follows the last one, not the zeros"
    );
    assert_eq!(tail, OpenReport::default());
}

#[tokio::test]
async fn garbage_after_the_records_is_cut_and_reported() {
    let (dir, written) = log_with(3).await;
    let garbage = b"\x07\x00\x00\x00not a frame at all";
    let file = fs::OpenOptions::new()
        .write(true)
        .open(file_of(dir.path()))
        .unwrap();
    // Right after the records, in the zeros the file was grown by.
    file.write_all_at(garbage, frames_len(&written)).unwrap();

    let (log, found, tail) = reopen(dir.path());
    assert_eq!(found, written);
    assert_eq!(tail.cut_bytes, garbage.len() as u64);
    assert!(tail.reason.is_some());
    // Appends after the cut land right after the intact records.
    log.append(b"after".to_vec()).await.unwrap();
    let mut expected = written;
    expected.push(b"after".to_vec());
    assert_eq!(reopen(dir.path()).1, expected);
}

#[tokio::test]
async fn a_flipped_record_in_the_middle_costs_only_itself_and_is_quarantined() {
    let (dir, written) = log_with(3).await;
    let path = file_of(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let second_payload = HEADER as usize + 2 * frame::HEADER_LEN + written[0].len() + 1;
    bytes[second_payload] ^= 0x40;
    fs::write(&path, &bytes).unwrap();

    let found = Log::read(dir.path()).unwrap();
    assert_eq!(found.damage.len(), 1);
    assert_eq!(found.damage[0].kind, DamageKind::Damaged);
    let (_, records, report) =
        Log::start(opts(dir.path(), Durability::GroupCommit), found).unwrap();
    assert_eq!(
        records,
        vec![written[0].clone(), written[2].clone()],
        "the record after the damage is kept"
    );
    let first_frame = HEADER + (frame::HEADER_LEN + written[0].len()) as u64;
    let damaged_len = (frame::HEADER_LEN + written[1].len()) as u64;
    assert_eq!(report.cut_bytes, damaged_len);
    let reason = report.reason.unwrap();
    assert!(
        reason.contains("checksum mismatch") && reason.contains(&format!("offset {first_frame}")),
        "{reason}"
    );
    let side = fs::read(&report.quarantined[0]).unwrap();
    let at = first_frame as usize;
    assert_eq!(
        side,
        bytes[at..at + damaged_len as usize],
        "the damaged bytes are kept aside"
    );
    let (_, again, clean) = reopen(dir.path());
    assert_eq!(again, records);
    assert_eq!(clean, OpenReport::default(), "the file was rewritten clean");
}

#[tokio::test]
async fn a_file_without_a_header_opens_and_gets_one() {
    let dir = tempfile::tempdir().unwrap();
    let written = records("old", 3);
    let mut bytes = Vec::new();
    written
        .iter()
        .for_each(|r| frame::encode_into(r, &mut bytes));
    fs::write(file_of(dir.path()), &bytes).unwrap();
    let (log, found, report) = reopen(dir.path());
    assert_eq!(found, written);
    assert!(report.upgraded);
    log.append(b"new".to_vec()).await.unwrap();
    drop(log);
    let on_disk = fs::read(file_of(dir.path())).unwrap();
    assert_eq!(&on_disk[8..16], &format::MAGIC, "a header now");
    let (_, found, report) = reopen(dir.path());
    assert_eq!(found, [written, vec![b"new".to_vec()]].concat());
    assert!(!report.upgraded);
}

#[test]
fn a_foreign_file_and_a_newer_format_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_of(dir.path());
    fs::write(&path, b"2026-12-01 some other program's log\n").unwrap();
    let err = Log::read(dir.path()).unwrap_err();
    assert!(matches!(err, JournalError::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("not a dtc journal"), "{err}");
    let mut payload = format::MAGIC.to_vec();
    payload.extend_from_slice(&9u32.to_le_bytes());
    payload.extend_from_slice(&0u64.to_le_bytes());
    fs::write(&path, frame::encode(&payload)).unwrap();
    let err = Log::read(dir.path()).unwrap_err();
    assert!(
        matches!(err, JournalError::FutureFormat { version: 9, .. }),
        "{err}"
    );
    assert_eq!(
        fs::read(&path).unwrap(),
        frame::encode(&payload),
        "nothing changed"
    );
}

#[tokio::test]
async fn rewrite_then_appends_survive_reopen_exactly() {
    // `none` runs on the caller's thread, the others on the writer thread: same outcome.
    for mode in [Durability::GroupCommit, Durability::None] {
        let (dir, _) = log_with(10).await;
        let (log, _, _) = Log::open(opts(dir.path(), mode)).expect("open");
        let kept = records("kept", 2);
        let before = log.size_bytes();
        log.rewrite(kept.clone()).await.expect("rewrite");
        assert!(log.size_bytes() < before);
        let new = records("new", 3);
        append_all(&log, &new).await;
        drop(log);

        let (_, found, tail) = reopen(dir.path());
        assert_eq!(found, [kept, new].concat(), "{mode:?}");
        assert_eq!(tail.cut_bytes, 0);
        assert!(!writer::tmp_path(&file_of(dir.path())).exists());
    }
}

#[tokio::test]
async fn appends_enqueued_before_a_rewrite_are_replaced_and_later_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, _) = reopen(dir.path());
    // Enqueued back to back without awaiting: the file must follow the enqueue order.
    let a = log.append(b"old".to_vec());
    let r = log.rewrite(vec![b"kept".to_vec()]);
    let b = log.append(b"new".to_vec());
    let (a, r, b) = tokio::join!(a, r, b);
    for result in [a, r, b] {
        result.expect("every command succeeds");
    }
    assert_eq!(
        reopen(dir.path()).1,
        vec![b"kept".to_vec(), b"new".to_vec()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_group_commit_appends_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, _) = reopen(dir.path());
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move { append_all(&log, &records(&format!("t{t}"), 50)).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    drop(log);

    let (_, mut found, tail) = reopen(dir.path());
    let mut expected: Vec<_> = (0..32)
        .flat_map(|t| records(&format!("t{t}"), 50))
        .collect();
    found.sort();
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(tail.cut_bytes, 0);
}

#[tokio::test]
async fn dir_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("journal");
    fs::write(&not_a_dir, b"").unwrap();
    let err = Log::open(opts(&not_a_dir, Durability::GroupCommit)).unwrap_err();
    assert!(matches!(err, JournalError::CreateDir { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&not_a_dir.display().to_string()),
        "{message}"
    );
    assert!(message.contains("writable directory"), "{message}");
}

#[tokio::test]
async fn failed_rewrite_keeps_the_old_log_in_service() {
    let (dir, written) = log_with(2).await;
    let (log, _, _) = reopen(dir.path());
    // A directory where the rewrite's temporary file must go makes the rewrite fail.
    fs::create_dir(writer::tmp_path(&file_of(dir.path()))).unwrap();
    let err = log.rewrite(records("kept", 1)).await.unwrap_err();
    assert!(matches!(err, JournalError::Rewrite { .. }), "{err:?}");
    assert!(err.to_string().contains("previous log is kept"), "{err}");
    log.append(b"still".to_vec())
        .await
        .expect("append after a failed rewrite");
    drop(log);
    fs::remove_dir(writer::tmp_path(&file_of(dir.path()))).unwrap();
    assert_eq!(
        reopen(dir.path()).1,
        [written, vec![b"still".to_vec()]].concat()
    );
}

#[tokio::test]
async fn bad_records_are_refused_before_reaching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, _) = reopen(dir.path());
    assert!(matches!(
        log.append(Vec::new()).await,
        Err(JournalError::EmptyRecord)
    ));
    let huge = vec![0u8; frame::MAX_RECORD + 1];
    let err = log.rewrite(vec![huge]).await.unwrap_err();
    assert!(
        matches!(err, JournalError::RecordTooLarge { .. }),
        "{err:?}"
    );
    assert_eq!(log.size_bytes(), HEADER, "only the header");
}

#[tokio::test]
async fn writer_gone_is_an_error_not_a_hang() {
    let (tx, rx) = mpsc::channel();
    drop(rx);
    let log = Log {
        inner: Arc::new(Inner {
            engine: Engine::Thread(tx),
            path: "gone/journal.log".into(),
            shared: Arc::default(),
            faults: Arc::default(),
        }),
    };
    let err = log.append(b"x".to_vec()).await.unwrap_err();
    assert!(matches!(err, JournalError::WriterGone { .. }), "{err:?}");
    assert!(err.to_string().contains("gone/journal.log"));
}

#[test]
fn durability_reads_its_config_names() {
    let parse = |s: &str| serde_json::from_str::<Durability>(&format!("\"{s}\"")).unwrap();
    assert_eq!(parse("fsync"), Durability::Fsync);
    assert_eq!(parse("group"), Durability::GroupCommit);
    assert_eq!(parse("none"), Durability::None);
    assert!(serde_json::from_str::<Durability>("\"groupcommit\"").is_err());
    assert_eq!(Durability::default(), Durability::GroupCommit);
}
