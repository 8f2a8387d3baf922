//! The log on a failing disk, through the fault seam: a write or sync that fails refuses
//! records (never acknowledging one that may not be on disk) until a probe has re-established
//! what is durable; then records are taken again, and a refused one never comes back.

use std::{fs, path::Path, time::Duration};

use super::*;

fn opts(dir: &Path, durability: Durability) -> LogOptions {
    LogOptions::new(dir, durability)
}

fn recs(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}-{i}").into_bytes())
        .collect()
}

/// Polls `ok` every 10 ms for up to 10 s.
async fn within_10s(what: &str, ok: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn eio_on_fdatasync_refuses_until_a_probe_repairs_and_the_refused_record_never_returns() {
    for mode in [Durability::GroupCommit, Durability::Fsync] {
        let dir = tempfile::tempdir().unwrap();
        let (log, _, _) = Log::open(opts(dir.path(), mode)).unwrap();
        let acked = recs("acked", 2);
        for r in &acked {
            log.append(r.clone()).await.unwrap();
        }
        log.faults().fail_syncs(Fault::Io);
        let err = log.append(b"refused".to_vec()).await.unwrap_err();
        assert!(
            matches!(
                err,
                JournalError::Write {
                    op: "fdatasync",
                    ..
                }
            ),
            "{err}"
        );
        let (cause, _) = log.problem().expect("a problem");
        assert!(cause.contains("Input/output error"), "{cause}");
        // Refused at once, without touching the file, while the disk fails.
        let err = log.append(b"also refused".to_vec()).await.unwrap_err();
        assert!(matches!(err, JournalError::Unavailable { .. }), "{err}");
        assert!(log.failures() >= 1);
        log.faults().clear();
        within_10s("the probe repairs the log", || log.problem().is_none()).await;
        let (generation, reread) = log.take_reread().expect("the records read back");
        assert_eq!((generation, reread), (1, acked.clone()), "{mode:?}");
        log.append(b"after".to_vec()).await.unwrap();
        drop(log);
        let (_, found, report) = Log::open(opts(dir.path(), mode)).unwrap();
        assert_eq!(found, [acked, vec![b"after".to_vec()]].concat(), "{mode:?}");
        assert_eq!(report, OpenReport::default());
    }
}

#[tokio::test]
async fn a_full_disk_refuses_then_resumes_in_none_mode_too() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, _) = Log::open(opts(dir.path(), Durability::None)).unwrap();
    log.append(b"one".to_vec()).await.unwrap();
    log.faults().fail_writes(Fault::NoSpace);
    // Bigger than what the file was grown by: the write must grow it, and fails.
    let big = vec![b'x'; (prealloc::PREALLOCATE + 1) as usize];
    let err = log.append(big).await.unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert!(log.append(b"two".to_vec()).await.is_err());
    log.faults().clear();
    within_10s("the probe repairs the log", || log.problem().is_none()).await;
    log.append(b"three".to_vec()).await.unwrap();
    drop(log);
    let (_, found, _) = Log::open(opts(dir.path(), Durability::None)).unwrap();
    assert_eq!(found, vec![b"one".to_vec(), b"three".to_vec()]);
}

#[tokio::test]
async fn with_hold_after_repair_records_wait_for_the_owner_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), Durability::GroupCommit);
    o.hold_after_repair = true;
    let (log, _, _) = Log::open(o).unwrap();
    log.append(b"one".to_vec()).await.unwrap();
    log.faults().fail_syncs(Fault::ReadOnly);
    assert!(log.append(b"two".to_vec()).await.is_err());
    log.faults().clear();
    within_10s("the probe repairs the log", || log.problem().is_none()).await;
    let err = log.append(b"early".to_vec()).await.unwrap_err();
    assert!(err.to_string().contains("re-reading"), "{err}");
    let (generation, records) = log.take_reread().unwrap();
    assert_eq!(records, vec![b"one".to_vec()]);
    log.resume(generation);
    log.append(b"three".to_vec()).await.unwrap();
}

#[tokio::test]
async fn a_removed_directory_is_written_anew_from_the_open_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("journal");
    let (log, _, _) = Log::open(opts(&dir, Durability::GroupCommit)).unwrap();
    let acked = recs("acked", 3);
    for r in &acked {
        log.append(r.clone()).await.unwrap();
    }
    fs::remove_dir_all(&dir).unwrap();
    let path = dir.join(FILE_NAME);
    within_10s("the file is back", || {
        path.exists() && log.problem().is_none()
    })
    .await;
    log.append(b"after".to_vec()).await.unwrap();
    drop(log);
    let (_, found, _) = Log::open(opts(&dir, Durability::GroupCommit)).unwrap();
    assert_eq!(found, [acked, vec![b"after".to_vec()]].concat());
}

#[tokio::test]
async fn a_replaced_file_is_refused_until_a_person_decides() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, _) = Log::open(opts(dir.path(), Durability::GroupCommit)).unwrap();
    log.append(b"one".to_vec()).await.unwrap();
    let other = dir.path().join("other");
    fs::write(&other, b"someone else's").unwrap();
    fs::rename(&other, dir.path().join(FILE_NAME)).unwrap();
    within_10s("the replacement is noticed and left to a person", || {
        log.problem()
            .is_some_and(|(cause, _)| cause.contains("replaced") && cause.contains("restart"))
    })
    .await;
    assert!(log.append(b"two".to_vec()).await.is_err());
    assert_eq!(
        fs::read(dir.path().join(FILE_NAME)).unwrap(),
        b"someone else's"
    );
}

#[tokio::test]
async fn a_disk_too_full_to_preallocate_appends_instead_of_refusing() {
    for mode in [Durability::GroupCommit, Durability::Fsync, Durability::None] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let (log, _, _) = Log::open(opts(dir.path(), mode)).unwrap();
        let mut written = vec![b"one".to_vec()];
        log.append(written[0].clone()).await.unwrap();
        // Room for a record, not for a chunk of zeros.
        log.faults().fail_writes_over(48 << 10);
        let big = |i: usize| [format!("big-{i}-").into_bytes(), vec![b'x'; 40 << 10]].concat();
        // More than the chunk the file was grown by: the records must grow it themselves.
        for i in 0..40 {
            log.append(big(i))
                .await
                .unwrap_or_else(|e| panic!("{mode:?} {i}: {e}"));
            written.push(big(i));
        }
        assert!(log.problem().is_none(), "{mode:?}: writes never stopped");
        let len = fs::metadata(&path).unwrap().len();
        assert!(
            len > prealloc::PREALLOCATE,
            "{mode:?}: past the first chunk"
        );
        assert_eq!(
            len,
            log.size_bytes(),
            "{mode:?}: appended, no zeros after the records"
        );
        log.faults().clear();
        // Once a chunk fits again (tried at most every second), the file is grown ahead again.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while fs::metadata(&path).unwrap().len() == log.size_bytes() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{mode:?}: never preallocates again"
            );
            let r = format!("after-{}", written.len()).into_bytes();
            log.append(r.clone()).await.unwrap();
            written.push(r);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(log);
        let (_, found, report) = Log::open(opts(dir.path(), mode)).unwrap();
        assert_eq!(found, written, "{mode:?}");
        assert_eq!(
            report,
            OpenReport::default(),
            "{mode:?}: the zeros are room, not damage"
        );
    }
}

#[tokio::test]
async fn a_probe_on_a_disk_too_full_for_a_chunk_resumes_by_appending() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, _) = Log::open(opts(dir.path(), Durability::GroupCommit)).unwrap();
    log.append(b"one".to_vec()).await.unwrap();
    log.faults().fail_writes(Fault::NoSpace);
    assert!(log.append(b"refused".to_vec()).await.is_err());
    // Some room comes back, less than a chunk of preallocation.
    log.faults().clear();
    log.faults().fail_writes_over(16 << 10);
    within_10s("the probe repairs the log", || log.problem().is_none()).await;
    let (_, reread) = log.take_reread().expect("the records read back");
    assert_eq!(reread, vec![b"one".to_vec()]);
    log.append(b"two".to_vec()).await.unwrap();
    drop(log);
    let (_, found, report) = Log::open(opts(dir.path(), Durability::GroupCommit)).unwrap();
    assert_eq!(found, vec![b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(report, OpenReport::default());
}
