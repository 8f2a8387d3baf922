//! A damaged record is not a torn tail (issue 22). With a failed transaction listed and its
//! resource fenced, a byte flipped in the first, a middle or the last record stops dtc from
//! starting on its own (the file untouched, the message saying what to do); told to go on, it
//! sets the damaged bytes aside in a side file and keeps every intact record after them. A
//! truncated last record is a torn write: cut, set aside, and dtc starts. `dtc journal
//! check|dump|repair` and `dtc run` give the exit codes of `src/exit.rs`.

use dtc::config::{DurabilityMode, JournalConfig};
use dtc::journal::Journal;
use dtc::journal::log::Log;
use dtc::journal::record::{Begin, now_ms};
use dtc::saga::TxnState;
use std::path::Path;
use std::process::Command;

fn cfg(dir: &Path) -> JournalConfig {
    JournalConfig {
        dir: dir.join("journal").display().to_string(),
        durability: DurabilityMode::Group,
        ..JournalConfig::default()
    }
}

fn begin(txn: &str) -> Begin {
    Begin {
        txn: txn.into(),
        at_ms: now_ms(),
        generation: 1,
        method: http::Method::POST,
        path: "/v1/group/".into(),
        key: format!("group/{txn}"),
        route: None,
        nodes: vec![("a".into(), "http://127.0.0.1:1".into())],
        headers: vec![],
        undo: vec![None],
        verify: None,
        pre: vec![],
        pre_restores: false,
        body_hash: None,
        idem: None,
        early: None,
    }
}

/// A journal holding t1 (succeeded), t2 (failed: its key `group/t2` fenced), t3 (succeeded):
/// records `begin t1, end t1, begin t2, end t2, begin t3, end t3`.
async fn journal_with_a_failed_transaction(dir: &Path) -> JournalConfig {
    let cfg = cfg(dir);
    let (journal, _) = Journal::open(&cfg).unwrap();
    for (txn, state) in [
        ("t1", TxnState::Succeeded),
        ("t2", TxnState::Failed),
        ("t3", TxnState::Succeeded),
    ] {
        journal.begin(begin(txn)).await.unwrap();
        journal.end(txn, state, None, vec![], None).await.unwrap();
    }
    journal.flush().await.unwrap();
    assert_eq!(journal.fence_of("group/t2").as_deref(), Some("t2"));
    cfg
}

fn log_file(cfg: &JournalConfig) -> std::path::PathBuf {
    Path::new(&cfg.dir).join("journal.log")
}

/// Flips a byte in the middle of record `i`'s payload.
fn flip_record(cfg: &JournalConfig, i: usize) {
    let found = Log::read(Path::new(&cfg.dir)).unwrap();
    let (at, payload) = &found.records[i];
    let path = log_file(cfg);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[*at as usize + 8 + payload.len() / 2] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
}

/// Opening refuses, changing nothing, and says what to do; returns the message.
fn refused(cfg: &JournalConfig) -> String {
    let before = std::fs::read(log_file(cfg)).unwrap();
    let err = Journal::open(cfg)
        .err()
        .expect("dtc refuses to start on it");
    let text = err.to_string();
    assert!(
        text.contains("dtc journal repair") && text.contains("--accept-journal-damage"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(log_file(cfg)).unwrap(),
        before,
        "nothing changed"
    );
    text
}

#[tokio::test]
async fn a_flipped_first_record_stops_the_start_and_loses_nothing_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = journal_with_a_failed_transaction(dir.path()).await;
    flip_record(&cfg, 0);
    let text = refused(&cfg);
    assert!(text.contains("no intent: t1"), "{text}");
    let (journal, report) = Journal::open_with(&cfg, true).unwrap();
    assert_eq!(journal.get("t2").map(|e| e.state), Some(TxnState::Failed));
    assert_eq!(
        journal.fence_of("group/t2").as_deref(),
        Some("t2"),
        "still fenced"
    );
    assert_eq!(
        journal.get("t3").map(|e| e.state),
        Some(TxnState::Succeeded)
    );
    let side = std::fs::read(&report.quarantined[0]).unwrap();
    assert_eq!(
        side.len() as u64,
        report.cut_bytes,
        "the damaged bytes are kept aside"
    );
    drop(journal);
    let (journal, report) = Journal::open(&cfg).expect("repaired: starts by itself");
    assert_eq!(report.cut_bytes, 0);
    assert_eq!(journal.counts(), (0, 1));
}

#[tokio::test]
async fn a_flipped_middle_or_last_record_stops_the_start_and_its_transaction_stays_in_doubt() {
    // Record 3 is t2's (failed) end, record 5 t3's end, the last one.
    for (record, txn) in [(3, "t2"), (5, "t3")] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = journal_with_a_failed_transaction(dir.path()).await;
        flip_record(&cfg, record);
        refused(&cfg);
        let (journal, _) = Journal::open_with(&cfg, true).unwrap();
        assert_eq!(
            journal.get(txn).map(|e| e.state),
            Some(TxnState::InDoubt),
            "record {record}: {txn} is in doubt (recovered at start), not gone"
        );
        assert!(journal.get("t1").is_some() && journal.get("t3").is_some());
    }
}

#[tokio::test]
async fn a_truncated_last_record_is_a_torn_write_cut_without_asking() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = journal_with_a_failed_transaction(dir.path()).await;
    let found = Log::read(Path::new(&cfg.dir)).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(log_file(&cfg))
        .unwrap();
    file.set_len(found.end - 3).unwrap();
    let (journal, report) = Journal::open(&cfg).expect("a torn write does not stop dtc");
    assert!(
        report.cut_bytes > 0 && report.quarantined.len() == 1,
        "{report:?}"
    );
    assert_eq!(journal.get("t3").map(|e| e.state), Some(TxnState::InDoubt));
    assert_eq!(journal.fence_of("group/t2").as_deref(), Some("t2"));
}

fn dtc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dtc"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtc_journal_check_dump_repair_and_run_say_what_the_journal_holds() {
    let root = tempfile::tempdir().unwrap();
    let cfg = journal_with_a_failed_transaction(root.path()).await;
    let dir = cfg.dir.as_str();
    let (code, out, _) = dtc(&["journal", "check", dir]);
    assert_eq!(code, 1, "a failed transaction needs attention: {out}");
    assert!(out.contains("failed      1 t2"), "{out}");

    flip_record(&cfg, 0);
    let (code, out, _) = dtc(&["journal", "check", dir]);
    assert_eq!(code, 65, "{out}");
    assert!(out.contains("needs a person"), "{out}");
    let (code, out, _) = dtc(&["journal", "dump", dir]);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["format"], 2, "format 2: segments");
    assert_eq!(lines[1]["damaged"]["kind"], "damaged", "{out}");
    assert_eq!(
        lines[2]["record"]["t"], "end",
        "the record after the damage: {out}"
    );

    let mut config = dtc::config::Config::default();
    config.listen.address = "127.0.0.1:0".into();
    config.listen.admin = String::new();
    config.journal.dir = dir.to_string();
    config.nodes = vec![dtc::config::NodeConfig {
        name: "a".into(),
        url: "http://127.0.0.1:9".into(),
        tls: None,
    }];
    let config_path = root.path().join("dtc.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let (code, _, err) = dtc(&["run", "--config", config_path.to_str().unwrap()]);
    assert_eq!(code, 65, "dtc run refuses a damaged journal: {err}");
    assert!(err.contains("dtc journal repair"), "{err}");

    let (code, out, err) = dtc(&["journal", "repair", dir]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("set aside") && out.contains("t1"), "{out}");
    let (code, out, _) = dtc(&["journal", "check", dir]);
    assert_eq!(code, 1, "repaired; t2 still failed: {out}");
    assert!(out.contains("damage      none"), "{out}");
    let (code, _, _) = dtc(&[
        "journal",
        "check",
        root.path().join("none").to_str().unwrap(),
    ]);
    assert_eq!(code, 66);
}

/// Issue 29: the journal in segments. A flipped record in a sealed segment stops the start
/// like one in the active segment, names the segment, and, told to go on, keeps every record
/// after it, in that segment and the later ones: the failed transaction stays fenced.
#[tokio::test]
async fn a_flipped_record_in_a_sealed_segment_stops_the_start_and_loses_nothing_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_bytes: 1024,
        ..cfg(dir.path())
    };
    let (journal, _) = Journal::open(&cfg).unwrap();
    for i in 0..12 {
        let txn = format!("t{i}");
        let state = if i == 10 {
            TxnState::Failed
        } else {
            TxnState::Succeeded
        };
        journal.begin(begin(&txn)).await.unwrap();
        journal.end(&txn, state, None, vec![], None).await.unwrap();
    }
    journal.flush().await.unwrap();
    drop(journal);
    let found = Log::read(Path::new(&cfg.dir)).unwrap();
    assert!(
        found.sealed.len() >= 2,
        "{} sealed segments",
        found.sealed.len()
    );
    // t0's end, in the first sealed segment.
    let first = &found.sealed[0];
    let (at, payload) = &first.records[1];
    let mut bytes = std::fs::read(&first.path).unwrap();
    bytes[*at as usize + 8 + payload.len() / 2] ^= 0x01;
    std::fs::write(&first.path, bytes).unwrap();
    let name = first
        .path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let text = Journal::open(&cfg).err().expect("refused").to_string();
    assert!(
        text.contains(&name) && text.contains("dtc journal repair"),
        "{text}"
    );
    let (journal, report) = Journal::open_with(&cfg, true).unwrap();
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(journal.get("t0").map(|e| e.state), Some(TxnState::InDoubt));
    assert_eq!(journal.fence_of("group/t10").as_deref(), Some("t10"));
    assert_eq!(
        journal.get("t11").map(|e| e.state),
        Some(TxnState::Succeeded)
    );
}
