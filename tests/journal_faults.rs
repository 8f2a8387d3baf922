//! A journal that survives its disk (issue 22): a failed fdatasync (through the log writer's
//! fault seam) and a full disk (a real 3 MB tmpfs, mounted inside `unshare -m` when the test
//! runs as root) refuse writes with 503 `to_be_retried` naming the cause and make `/readyz`
//! answer 503, while reads go on; no refused write leaves an in-doubt entry behind; writes
//! resume by themselves once the disk works, without a restart, and nothing acknowledged is lost.

mod support;

use dtc::journal::log::Fault;
use dtc::saga::TxnState;
use http::Method;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;
use tokio::time::Instant;

/// `{"groupId": id, "pad": "xxx…"}` with `pad` bytes of padding: a big journal record.
fn padded_group(id: &str, pad: usize) -> String {
    format!(r#"{{"groupId": "{id}", "pad": "{}"}}"#, "x".repeat(pad))
}

async fn create_padded(dtc: &Dtc, id: &str, pad: usize) -> Answer {
    let body = padded_group(id, pad);
    send(Method::POST, &dtc.at("/v1/group/"), Some(&body), &[]).await
}

async fn get(url: String) -> Answer {
    send(Method::GET, &url, None, &[]).await
}

/// Asserts a write was refused because the journal could not take it, naming `cause`.
fn assert_refused_by_the_journal(a: &Answer, cause: &str) {
    assert_eq!(a.status(), 503, "{a:?}");
    assert_eq!(a.state(), "to_be_retried");
    let detail = a.problem()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        detail.contains("journal") && detail.contains(cause),
        "{detail}"
    );
}

/// While the journal refuses records: `/readyz` 503 naming `cause`, `dtc_journal_writable 0`,
/// no phantom in-doubt entry in `/status`, and reads still served.
async fn assert_degraded(dtc: &Dtc, admin: &str, cause: &str, readable: &str) {
    let ready = get(format!("{admin}/readyz")).await;
    assert_eq!(ready.status(), 503);
    assert!(ready.text().contains(cause), "{}", ready.text());
    let metrics = get(format!("{admin}/metrics")).await.text();
    assert!(
        metrics.lines().any(|l| l == "dtc_journal_writable 0"),
        "{metrics}"
    );
    let status = get(format!("{admin}/status")).await.json();
    assert_eq!(status["in_doubt"], 0, "no phantom in-doubt entry: {status}");
    assert!(
        status["journal"]["problem"]
            .as_str()
            .unwrap_or_default()
            .contains(cause),
        "{status}"
    );
    assert_eq!(read_group(dtc, readable).await.status(), 200, "reads go on");
}

/// Polls until a create of `id` succeeds; returns how long that took.
async fn until_a_write_succeeds(dtc: &Dtc, id: &str) -> Duration {
    let start = Instant::now();
    loop {
        let a = create_group(dtc, id).await;
        if a.status() == 201 {
            return start.elapsed();
        }
        assert_eq!(a.status(), 503, "{a:?}");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "writes never resumed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reopens the journal of a stopped dtc: the transactions it holds, by id.
fn reopened(cfg: &dtc::config::JournalConfig) -> std::sync::Arc<dtc::journal::Journal> {
    dtc::journal::Journal::open(cfg)
        .expect("the journal reopens")
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eio_on_fdatasync_refuses_writes_then_they_resume_without_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("journal");
    let (nodes, dtc) = cluster_with(|c| c.journal.dir = dir.display().to_string()).await;
    let cfg = dtc.app.current.load().settings.config.journal.clone();
    let admin = dtc.serve_admin().await;
    let acked = create_group(&dtc, "g1").await;
    assert_eq!(acked.status(), 201);
    let journal = dtc.app.journal().unwrap().clone();
    let faults = journal.log().expect("a local log").faults().clone();

    faults.fail_syncs(Fault::Io);
    let refused = create_group(&dtc, "g2").await;
    assert_refused_by_the_journal(&refused, "Input/output error");
    let refused_again = create_group(&dtc, "g3").await;
    assert_refused_by_the_journal(&refused_again, "Input/output error");
    assert!(
        nodes
            .iter()
            .all(|n| !n.groups().contains("g2") && !n.groups().contains("g3")),
        "a refused write touches no node"
    );
    assert_degraded(&dtc, &admin, "Input/output error", "g1").await;
    assert_eq!(journal.counts(), (0, 0));

    faults.clear();
    until_a_write_succeeds(&dtc, "g4").await;
    let ready = get(format!("{admin}/readyz")).await;
    assert_eq!(ready.status(), 200, "{}", ready.text());
    let metrics = get(format!("{admin}/metrics")).await.text();
    assert!(metrics.lines().any(|l| l == "dtc_journal_writable 1"));
    assert!(
        metrics
            .lines()
            .any(|l| l == "dtc_journal_write_failures_total 1"),
        "{metrics}"
    );

    drop(dtc);
    let journal = reopened(&cfg);
    assert_eq!(
        journal.get(acked.txn()).map(|e| e.state),
        Some(TxnState::Succeeded)
    );
    for gone in [&refused, &refused_again] {
        assert!(
            journal.get(gone.txn()).is_none(),
            "a refused intent never comes back"
        );
    }
    assert_eq!(journal.counts(), (0, 0));
}

/// Whether this process runs as root (the effective uid in `/proc/self/status`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

fn sh(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd).args(args).status().expect(cmd);
    assert!(status.success(), "{cmd} {args:?}");
}

/// Fills the filesystem of `dir` with a file until it is full; returns the file.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![7u8; 64 << 10];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

/// Runs [`disk_full_inside_a_mount_namespace`] in a mount namespace of its own (`unshare -m`),
/// so the small tmpfs it mounts disappears with it. Needs root; skipped otherwise.
#[test]
fn a_full_disk_refuses_writes_until_space_returns() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs for a full disk needs root (CI runs as root)");
        return;
    }
    let usable = Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        eprintln!("skipped: `unshare -m` is not available here");
        return;
    }
    let status = Command::new("unshare")
        .args(["-m", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "disk_full_inside_a_mount_namespace",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DTC_TEST_IN_MOUNT_NS", "1")
        .status()
        .unwrap();
    assert!(status.success(), "the full-disk run failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_full_disk_refuses_writes_until_space_returns, in its own mount namespace"]
async fn disk_full_inside_a_mount_namespace() {
    assert!(
        std::env::var_os("DTC_TEST_IN_MOUNT_NS").is_some(),
        "run through a_full_disk_refuses_writes_until_space_returns"
    );
    let root = tempfile::tempdir().unwrap();
    let mnt = root.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mnt_s = mnt.display().to_string();
    sh("mount", &["-t", "tmpfs", "-o", "size=3m", "tmpfs", &mnt_s]);
    let dir = mnt.join("journal");
    let (_nodes, dtc) = cluster_with(|c| c.journal.dir = dir.display().to_string()).await;
    let cfg = dtc.app.current.load().settings.config.journal.clone();
    let admin = dtc.serve_admin().await;
    let mut acked = Vec::new();
    let first = create_group(&dtc, "g0").await;
    assert_eq!(first.status(), 201);
    acked.push(first.txn().to_string());

    let filler = fill(&mnt);
    // The journal's file was grown ahead of its records: big writes use that room up.
    let refused = loop {
        let a = create_padded(&dtc, &format!("p{}", acked.len()), 100 << 10).await;
        if a.status() != 201 {
            break a;
        }
        acked.push(a.txn().to_string());
        assert!(acked.len() < 40, "the disk never filled");
    };
    assert_refused_by_the_journal(&refused, "No space left on device");
    assert_degraded(&dtc, &admin, "No space left on device", "g0").await;

    // Some room comes back, less than the journal's chunk of preallocation: writes resume,
    // appended instead of written into preallocated room.
    let filled = std::fs::metadata(&filler).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    file.set_len(filled - (256 << 10)).unwrap();
    let resumed_after = until_a_write_succeeds(&dtc, "little-room").await;
    eprintln!("measured: writes resumed {resumed_after:?} after 256 KiB came back");
    assert_eq!(get(format!("{admin}/readyz")).await.status(), 200);

    std::fs::remove_file(&filler).unwrap();
    let resumed_after = until_a_write_succeeds(&dtc, "after-space").await;
    eprintln!("measured: writes resumed {resumed_after:?} after the space returned");
    assert_eq!(get(format!("{admin}/readyz")).await.status(), 200);

    drop(dtc);
    let journal = reopened(&cfg);
    for txn in &acked {
        assert_eq!(
            journal.get(txn).map(|e| e.state),
            Some(TxnState::Succeeded),
            "{txn}: nothing acknowledged is lost"
        );
    }
    assert!(journal.get(refused.txn()).is_none());
    assert_eq!(journal.counts(), (0, 0));
}

/// An end record the log fails to write leaves its transaction in doubt on the disk (the client
/// is told `failed`, never `succeeded`); once the disk works again the repaired log is read back,
/// the transaction is open and fenced again — and the background worker decides it from the
/// nodes without waiting for a restart, which lifts the fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_the_disk_refused_is_decided_once_it_works_again_without_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("journal");
    let (nodes, dtc) = cluster_with(|c| c.journal.dir = dir.display().to_string()).await;
    let admin = dtc.serve_admin().await;
    let journal = dtc.app.journal().unwrap().clone();
    let faults = journal.log().expect("a local log").faults().clone();
    for n in &nodes {
        n.set_delay(Duration::from_millis(300));
    }

    let url = dtc.at("/v1/group/");
    let write =
        tokio::spawn(async move { send(Method::POST, &url, Some(&group("g1")), &[]).await });
    // The intent is durable (it is in memory only then), the nodes are still answering: the
    // disk fails before the end is written.
    let deadline = Instant::now() + Duration::from_secs(10);
    while journal.open_entries().is_empty() {
        assert!(Instant::now() < deadline, "the intent was never journaled");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    faults.fail_syncs(Fault::Io);
    let answer = write.await.unwrap();
    assert_eq!(answer.state(), "failed", "{answer:?}");
    assert!(answer.status().is_server_error(), "{answer:?}");
    let txn = answer.txn().to_owned();
    for n in &nodes {
        n.set_delay(Duration::ZERO);
        assert!(n.groups().contains("g1"), "the write landed on every node");
    }

    faults.clear();
    eventually(
        "the transaction whose end was lost is decided",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let journal = journal.clone();
            let txn = txn.clone();
            async move {
                // Any write wakes the log's repair; a read of the journal folds it in.
                journal.log_problem().is_none()
                    && journal.get(&txn).map(|e| e.state) == Some(TxnState::Succeeded)
            }
        },
    )
    .await;
    assert_eq!(journal.counts(), (0, 0));
    let status = get(format!("{admin}/status")).await.json();
    assert_eq!(status["in_doubt"], 0, "{status}");
    let deleted = delete_group(&dtc, "g1").await;
    assert_eq!(
        deleted.status(),
        200,
        "the key is no longer fenced: {deleted:?}"
    );
}
