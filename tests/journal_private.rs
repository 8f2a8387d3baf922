//! The journal is private (issue 14, finding 2): it holds client requests and their
//! `Authorization` headers, so its directory is 0700 and its files 0600 (after a compaction's
//! rename too), a shared directory is refused, and only the headers an undo needs are kept.

mod support;

use dtc::journal::{Durability, Log, LogOptions};
use http::Method;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use support::*;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o777
}

#[tokio::test]
async fn the_journal_is_0700_and_0600_and_stays_so_after_a_rewrite() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("journal");
    let opts = || LogOptions::new(dir.clone(), Durability::Fsync);
    let (log, _, _) = Log::open(opts()).unwrap();
    log.append(b"one".to_vec()).await.unwrap();
    let file = dir.join(dtc::journal::log::FILE_NAME);
    assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));
    // Someone (an old dtc, a restore) left them open: dtc closes them again.
    drop(log);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let (log, records, _) = Log::open(opts()).unwrap();
    assert_eq!(records, vec![b"one".to_vec()]);
    assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));
    log.rewrite(vec![b"two".to_vec()]).await.unwrap();
    assert_eq!(
        mode(&file),
        0o600,
        "the compacted file that replaced the log"
    );
}

#[test]
fn a_journal_in_a_directory_others_own_and_can_enter_is_refused() {
    // A shared directory of another user: made so when the test may chown (as root), else
    // `/tmp` (1777, root's).
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    let dir = match std::os::unix::fs::chown(&shared, Some(65534), Some(65534)) {
        Ok(()) => shared,
        Err(_) => Path::new("/tmp").to_path_buf(),
    };
    let me = fs::metadata("/proc/self").unwrap().uid();
    assert_ne!(
        me,
        fs::metadata(&dir).unwrap().uid(),
        "the directory is another user's"
    );
    let err = Log::open(LogOptions::new(dir.clone(), Durability::Fsync)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("open to other users") && text.contains("journal.dir"),
        "{text}"
    );
    assert!(
        !dir.join(dtc::journal::log::FILE_NAME).exists(),
        "nothing was written there"
    );
}

#[tokio::test]
async fn the_journal_keeps_only_the_headers_named_in_journal_headers() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("journal");
    let (_nodes, dtc) = cluster_with(|c| c.journal.dir = dir.display().to_string()).await;
    let headers = [
        ("authorization", "Bearer t0ken"),
        ("x-tenant", "acme-secret"),
    ];
    let a = send(
        Method::POST,
        &dtc.at("/v1/group/"),
        Some(&group("g1")),
        &headers,
    )
    .await;
    assert_eq!(a.status(), 201);
    let held = fs::read(dir.join(dtc::journal::log::FILE_NAME)).unwrap();
    let held = String::from_utf8_lossy(&held);
    assert!(
        held.contains("Bearer t0ken"),
        "an undo after a restart needs it"
    );
    assert!(
        !held.contains("acme-secret"),
        "x-tenant is not in journal.headers"
    );
}
