use super::*;
use std::fs;
use std::os::unix::fs::symlink;
use tempfile::TempDir;
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(10);

fn start_on(dir: &TempDir, initial: &str) -> (ConfigWatcher, mpsc::Receiver<Change>) {
    ConfigWatcher::start(
        WatchOptions::new(dir.path().join("dtc.toml")),
        initial.to_owned(),
    )
    .expect("watcher starts")
}

async fn next(rx: &mut mpsc::Receiver<Change>) -> Change {
    timeout(DEADLINE, rx.recv())
        .await
        .expect("a change within 10s")
        .expect("watcher alive")
}

/// The one bounded wait that is itself the assertion: nothing is delivered for 500ms.
async fn assert_quiet(rx: &mut mpsc::Receiver<Change>, what: &str) {
    let got = timeout(Duration::from_millis(500), rx.recv()).await;
    assert!(got.is_err(), "{what} was delivered: {got:?}");
}

/// Writes `content` in place: truncate, then write, same inode.
fn write_in_place(path: &Path, content: &str) {
    fs::write(path, content).expect("write config");
}

fn file_with(content: &str) -> TempDir {
    let dir = TempDir::new().expect("tempdir");
    write_in_place(&dir.path().join("dtc.toml"), content);
    dir
}

/// Publishes `content` the way the kubelet updates a ConfigMap volume.
fn kubelet_publish(dir: &Path, stamp: &str, content: &str) {
    let data_dir = format!("..{stamp}");
    fs::create_dir(dir.join(&data_dir)).expect("timestamped dir");
    fs::write(dir.join(&data_dir).join("dtc.toml"), content).expect("real file");
    let old = fs::read_link(dir.join("..data")).ok();
    symlink(&data_dir, dir.join("..data_tmp")).expect("..data_tmp");
    fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
    if let Some(old) = old {
        fs::remove_dir_all(dir.join(old)).expect("remove old dir");
    } else {
        symlink("..data/dtc.toml", dir.join("dtc.toml")).expect("dtc.toml link");
    }
}

#[tokio::test]
async fn in_place_write_delivers_new_content() {
    let dir = file_with("a = 1\n");
    let (_watcher, mut rx) = start_on(&dir, "a = 1\n");
    write_in_place(&dir.path().join("dtc.toml"), "a = 2\n");
    let change = next(&mut rx).await;
    assert_eq!(
        (change.content.as_str(), change.trigger),
        ("a = 2\n", Trigger::FileEvent)
    );
}

#[tokio::test]
async fn atomic_rename_over_delivers_new_content() {
    let dir = file_with("a = 1\n");
    let (_watcher, mut rx) = start_on(&dir, "a = 1\n");
    let tmp = dir.path().join(".dtc.toml.tmp");
    fs::write(&tmp, "a = 2\n").unwrap();
    fs::rename(&tmp, dir.path().join("dtc.toml")).unwrap();
    assert_eq!(next(&mut rx).await.content, "a = 2\n");
}

#[tokio::test]
async fn configmap_symlink_swap_delivers_each_update() {
    let dir = TempDir::new().unwrap();
    kubelet_publish(dir.path(), "2026_11_29_15_00_00.123", "v = 1\n");
    let (_watcher, mut rx) = start_on(&dir, "v = 1\n");
    kubelet_publish(dir.path(), "2026_11_29_15_05_00.456", "v = 2\n");
    assert_eq!(next(&mut rx).await.content, "v = 2\n");
    kubelet_publish(dir.path(), "2026_11_29_15_10_00.789", "v = 3\n");
    assert_eq!(next(&mut rx).await.content, "v = 3\n");
}

#[tokio::test]
async fn identical_rewrite_delivers_nothing_but_a_real_change_does() {
    let dir = file_with("a = 1\n");
    let path = dir.path().join("dtc.toml");
    let (_watcher, mut rx) = start_on(&dir, "a = 1\n");
    write_in_place(&path, "a = 1\n");
    let file = fs::File::options().append(true).open(&path).unwrap();
    file.set_modified(std::time::SystemTime::now()).unwrap();
    assert_quiet(&mut rx, "unchanged content").await;
    write_in_place(&path, "a = 2\n");
    assert_eq!(next(&mut rx).await.content, "a = 2\n");
}

#[tokio::test]
async fn missing_or_empty_file_is_skipped_until_real_content_is_back() {
    let dir = file_with("a = 1\n");
    let path = dir.path().join("dtc.toml");
    let (_watcher, mut rx) = start_on(&dir, "a = 1\n");
    write_in_place(&path, "");
    assert_quiet(&mut rx, "an empty file").await;
    fs::remove_file(&path).unwrap();
    assert_quiet(&mut rx, "a missing file").await;
    write_in_place(&path, "a = 2\n");
    assert_eq!(next(&mut rx).await.content, "a = 2\n");
}

#[tokio::test]
async fn burst_of_writes_ends_with_final_content() {
    let dir = file_with("n = -1\n");
    let path = dir.path().join("dtc.toml");
    let (_watcher, mut rx) = start_on(&dir, "n = -1\n");
    for n in 0..50 {
        write_in_place(&path, &format!("n = {n}\n"));
    }
    // Intermediate contents may be delivered too; the final one must be the last word.
    while next(&mut rx).await.content != "n = 49\n" {}
}

#[tokio::test]
async fn sighup_rereads_changed_content() {
    let dir = file_with("a = 2\n");
    let opts = WatchOptions {
        sighup: true,
        ..WatchOptions::new(dir.path().join("dtc.toml"))
    };
    let (_watcher, mut rx) = ConfigWatcher::start(opts, "a = 1\n".into()).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let change = next(&mut rx).await;
    assert_eq!(
        (change.content.as_str(), change.trigger),
        ("a = 2\n", Trigger::Signal)
    );
}

#[tokio::test]
async fn dropping_the_watcher_ends_the_receiver() {
    let dir = file_with("a = 1\n");
    let (watcher, mut rx) = start_on(&dir, "a = 1\n");
    drop(watcher);
    let ended = timeout(DEADLINE, rx.recv()).await.expect("ends in 10s");
    assert!(ended.is_none(), "receiver still open after drop");
}

#[tokio::test]
async fn missing_directory_is_a_clear_error() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nope");
    let path = missing.join("dtc.toml");
    let Err(error) = ConfigWatcher::start(WatchOptions::new(&path), String::new()) else {
        panic!("watching {} should fail", path.display());
    };
    assert!(matches!(error, WatchError::DirMissing { .. }));
    let expected = format!(
        "cannot watch {}: its directory {} does not exist",
        path.display(),
        missing.display()
    );
    assert_eq!(error.to_string(), expected);
}
