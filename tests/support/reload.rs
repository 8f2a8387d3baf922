//! Hot reload helpers: config text for a node list, a proxy running from a config file in a
//! temporary directory, and the three ways a config file gets replaced (in place, rename-over,
//! the kubelet's ConfigMap symlink swap).

use super::{Answer, DEADLINE};
use dtc::app::App;
use dtc::config::Config;
use dtc::node::RefNode;
use dtc::runtime::reload::ReloadHandle;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// The file text of [`test_config`](super::test_config) for `nodes`, after `tweak`.
pub fn config_with(nodes: &[&RefNode], tweak: impl FnOnce(&mut Config)) -> String {
    let nodes: Vec<RefNode> = nodes.iter().map(|&n| n.clone()).collect();
    let mut cfg = super::test_config(&nodes);
    tweak(&mut cfg);
    toml::to_string(&cfg).expect("a config serializes")
}

/// The file text of [`test_config`](super::test_config) for `nodes`.
pub fn config_of(nodes: &[&RefNode]) -> String {
    config_with(nodes, |_| {})
}

/// A proxy running from a config file, with hot reload on. Stops when dropped.
pub struct ReloadingProxy {
    /// The running app (its `current` and `reload` status).
    pub app: App,
    /// Base URL of the proxy, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The config file.
    pub path: PathBuf,
    _dir: TempDir,
    _reload: ReloadHandle,
    _stop: oneshot::Sender<()>,
}

impl ReloadingProxy {
    /// Writes `text` to `dtc.toml` in a new temporary directory and starts on it.
    pub async fn start(text: &str) -> ReloadingProxy {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("dtc.toml");
        fs::write(&path, text).expect("write config");
        ReloadingProxy::start_on(dir, path).await
    }

    /// Starts on the config file `path` inside `dir` (it may be a symlink).
    pub async fn start_on(dir: TempDir, path: PathBuf) -> ReloadingProxy {
        let (settings, text) = dtc::config::load_file(&path).expect("valid initial config");
        let app = App::builder(settings)
            .config_file(path.clone(), text)
            .without_journal()
            .start()
            .await
            .expect("app builds");
        let reload = app.start_reload().expect("watch starts").expect("a file");
        let listeners = app.listen().await.expect("bind the proxy");
        let url = format!("http://{}", listeners.client.local_addr().expect("bound"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.clone().serve(listeners, async {
            let _ = stopped.await;
        }));
        ReloadingProxy {
            app,
            url,
            path,
            _dir: dir,
            _reload: reload,
            _stop: stop,
        }
    }

    /// Waits until config generation `n` (or later) serves new transactions.
    pub async fn wait_generation(&self, n: u64) {
        let mut rx = self.app.current.subscribe();
        let reached = tokio::time::timeout(DEADLINE, rx.wait_for(|g| *g >= n)).await;
        let status = self.app.reload.get();
        assert!(
            matches!(reached, Ok(Ok(_))),
            "generation {n} not reached: {status:?}"
        );
    }

    /// The generation in effect.
    pub fn generation(&self) -> u64 {
        self.app.current.load().generation
    }

    /// `POST /v1/group/` through the proxy.
    pub async fn create_group(&self, group: &str) -> Answer {
        super::create_group(&self.url, group).await
    }

    /// The URL of the group collection on the proxy.
    pub fn groups_url(&self) -> String {
        format!("{}/v1/group/", self.url)
    }
}

/// Rewrites the file in place (truncate and write, same inode), as `echo > file` does.
pub fn write_in_place(path: &Path, text: &str) {
    fs::write(path, text).expect("write config in place");
}

/// Writes a temporary file next to `path` and renames it over `path`, as editors do.
pub fn rename_over(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    fs::write(&tmp, text).expect("write temp config");
    fs::rename(&tmp, path).expect("rename over config");
}

/// Publishes `text` the way the kubelet updates a ConfigMap volume: a new timestamped
/// directory, a `..data_tmp` symlink to it renamed over `..data`, the old directory removed.
/// The first publish also creates `dtc.toml -> ..data/dtc.toml`.
pub fn kubelet_publish(dir: &Path, stamp: &str, text: &str) {
    let data_dir = format!("..{stamp}");
    fs::create_dir(dir.join(&data_dir)).expect("timestamped dir");
    fs::write(dir.join(&data_dir).join("dtc.toml"), text).expect("real file");
    let old = fs::read_link(dir.join("..data")).ok();
    symlink(&data_dir, dir.join("..data_tmp")).expect("..data_tmp");
    fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
    match old {
        Some(old) => fs::remove_dir_all(dir.join(old)).expect("remove old dir"),
        None => symlink("..data/dtc.toml", dir.join("dtc.toml")).expect("dtc.toml link"),
    }
}

/// Applies `cfg` to a running in-process proxy as a hot reload of its file would (the journal
/// directory kept: a reload cannot move it).
pub fn apply(dtc: &super::Dtc, mut cfg: Config) {
    use dtc::runtime::reload::{Applied, ReloadStatus, Reloader};
    use std::sync::Arc;
    let now = dtc.app.current.load();
    cfg.journal.dir = now.settings.config.journal.dir.clone();
    let status = Arc::new(ReloadStatus::new(now.generation));
    let r = Reloader::new("dtc.toml".into(), dtc.app.current.clone(), status);
    let text = toml::to_string(&cfg).expect("a config serializes");
    assert!(matches!(r.apply(&text), Applied::Swapped(_)), "reloaded");
}

/// Whether node `name` of a running proxy is joining (takes writes, serves no reads yet).
pub fn joining(dtc: &super::Dtc, name: &str) -> bool {
    let rt = dtc.app.current.load();
    let n = rt.nodes.all().iter().find(|n| n.name() == name);
    !n.expect("a node of that name").catch_up.readable()
}
