//! One run: nodes, the real dtc on the shipped config, the clients, the outage, and the
//! reckoning afterwards.

use super::{Args, plan};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Keys the clients share.
const KEYS: usize = 64;

/// What one run came to.
pub struct Outcome {
    seed: u64,
    breaker: bool,
    writes: usize,
    completed: usize,
    refused_down: usize,
    refused_rolled_back: usize,
    refused_other: usize,
    /// Rollbacks whose check fenced their key, and the writes those fences refused.
    fences: usize,
    fenced: usize,
    /// From the node's return to the end of the first write completed after it.
    back_to_first_write: Option<Duration>,
    /// From the node's return to dtc's "node is up again" log line.
    back_to_up: Option<Duration>,
    outage: String,
    pub divergent: usize,
    elapsed: Duration,
}

impl Outcome {
    /// The table row.
    pub fn row(&self) -> String {
        let pct = |n: usize| 100.0 * n as f64 / self.writes.max(1) as f64;
        let ms = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{} ms", d.as_millis()));
        format!(
            "| {} | {} | {} | {:.1} % | {:.1} % ({} / {} / {}; {} fenced by {} rollbacks) | {} ({} down; dtc saw it up after {}) | {} | {:.0} s |",
            self.seed,
            if self.breaker { "on (shipped)" } else { "off" },
            self.writes,
            pct(self.completed),
            pct(self.writes - self.completed),
            self.refused_down,
            self.refused_rolled_back,
            self.refused_other,
            self.fenced,
            self.fences,
            ms(self.back_to_first_write),
            self.outage,
            ms(self.back_to_up),
            self.divergent,
            self.elapsed.as_secs_f64(),
        )
    }

    /// The share of writes completed, in percent.
    pub fn completed_pct(&self) -> f64 {
        100.0 * self.completed as f64 / self.writes.max(1) as f64
    }

    pub fn breaker(&self) -> bool {
        self.breaker
    }

    /// Writes refused by a rollback's late-write fence, and by how many distinct fences.
    pub fn fenced(&self) -> (usize, usize) {
        (self.fenced, self.fences)
    }
}

/// One client write and what came of it.
struct Op {
    start: Instant,
    end: Instant,
    completed: bool,
    /// `node_down`, `rolled_back`, or another state and the status (`failed 502`,
    /// `no_answer 0`), for refusals.
    refusal: Option<String>,
    /// The rolled-back transaction whose late-write check fenced the key, for such refusals.
    fence: Option<String>,
}

/// The dtc child process and what its log told.
struct Dtc {
    child: Child,
    proxy: String,
    admin: String,
    /// When dtc logged a node up again.
    ups: Arc<Mutex<Vec<Instant>>>,
}

impl Drop for Dtc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the plan of `seed` once, with the breaker on (the shipped config) or off.
pub async fn run(args: &Args, seed: u64, breaker: bool) -> Outcome {
    let nodes = plan::nodes(seed).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let dtc = spawn(args, &nodes, dir.path(), breaker);
    let stop = Arc::new(AtomicBool::new(false));
    for (i, n) in nodes.iter().enumerate() {
        tokio::spawn(plan::flap(n.clone(), seed * 100 + i as u64, stop.clone()));
    }
    let done = Arc::new(AtomicUsize::new(0));
    let outage = {
        let (nodes, done) = (nodes.clone(), done.clone());
        let (ops, down_for) = (args.ops, args.down_for);
        tokio::spawn(async move { plan::outage(&nodes, seed, ops, done, down_for).await })
    };
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..args.clients)
        .map(|c| {
            let url = format!("{}/v1/group/", dtc.proxy);
            let (next, done, ops) = (next.clone(), done.clone(), args.ops);
            tokio::spawn(client(url, seed * 1000 + c as u64, next, done, ops))
        })
        .collect();
    let mut ops = Vec::new();
    for c in clients {
        ops.extend(c.await.expect("a client"));
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (outage, down_at, back) = outage.await.expect("the outage");
    plan::heal(&nodes);
    settle(&dtc.admin).await;
    let divergent = divergent(&nodes, seed);
    let first = ops
        .iter()
        .filter(|o| o.completed && o.start > down_at && o.end > back)
        .map(|o| o.end - back)
        .min();
    let up = dtc
        .ups
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|t| **t > back)
        .map(|t| *t - back)
        .min();
    let count = |what: &str| {
        ops.iter()
            .filter(|o| o.refusal.as_deref() == Some(what))
            .count()
    };
    let completed = ops.iter().filter(|o| o.completed).count();
    let (down, rolled) = (count("node_down"), count("rolled_back"));
    let mut other = std::collections::BTreeMap::<&str, usize>::new();
    for r in ops.iter().filter_map(|o| o.refusal.as_deref()) {
        if r != "node_down" && r != "rolled_back" {
            *other.entry(r).or_default() += 1;
        }
    }
    if !other.is_empty() {
        eprintln!("chaos bench: seed {seed}, breaker {breaker}: other refusals {other:?}");
    }
    let (fenced, fences) = report_fences(seed, breaker, &ops, down_at, back);
    if std::env::var_os("CHAOS_DTC_LOG").is_some() {
        let counts: Vec<usize> = nodes.iter().map(|n| n.write_count()).collect();
        eprintln!(
            "chaos bench: seed {seed}, breaker {breaker}: writes each node received {counts:?}"
        );
    }
    if std::env::var_os("CHAOS_FENCE_DETAIL").is_some() {
        fence_detail(&dtc.admin, &ops, down_at, back).await;
    }
    drop(dtc);
    for n in nodes {
        n.shutdown().await;
    }
    Outcome {
        seed,
        breaker,
        writes: ops.len(),
        completed,
        refused_down: down,
        refused_rolled_back: rolled,
        refused_other: ops.len() - completed - down - rolled,
        fences,
        fenced,
        back_to_first_write: first,
        back_to_up: up,
        outage,
        divergent,
        elapsed,
    }
}

/// The shipped config with the nodes' addresses, free ports and a temporary journal; the
/// breaker (`writes.fail_fast`) on or off.
fn config(
    args: &Args,
    nodes: &[dtc::node::RefNode],
    dir: &std::path::Path,
    breaker: bool,
) -> String {
    let text = std::fs::read_to_string(&args.config).expect("the shipped config");
    let mut t: toml::Table = text.parse().expect("the shipped config parses");
    let listen = t["listen"].as_table_mut().expect("[listen]");
    listen.insert("address".into(), "127.0.0.1:0".into());
    listen.insert("admin".into(), "127.0.0.1:0".into());
    let list = t["nodes"].as_array_mut().expect("[[nodes]]");
    list.truncate(nodes.len());
    for (entry, node) in list.iter_mut().zip(nodes) {
        let e = entry.as_table_mut().expect("a node");
        e.insert("name".into(), node.name().into());
        e.insert("url".into(), node.url().into());
    }
    let journal = t.entry("journal").or_insert(toml::Table::new().into());
    let journal = journal.as_table_mut().expect("[journal]");
    let jdir = dir.join("journal").display().to_string();
    journal.insert("dir".into(), jdir.into());
    if !breaker {
        let writes = t.entry("writes").or_insert(toml::Table::new().into());
        let writes = writes.as_table_mut().expect("[writes]");
        writes.insert("fail_fast".into(), false.into());
    }
    toml::to_string(&t).expect("a config")
}

/// Starts `dtc run`; returns once both listeners are up.
fn spawn(args: &Args, nodes: &[dtc::node::RefNode], dir: &std::path::Path, breaker: bool) -> Dtc {
    let path = dir.join("dtc.toml");
    std::fs::write(&path, config(args, nodes, dir, breaker)).expect("write the config");
    let mut child = Command::new(&args.dtc)
        .args(["--log-format", "json", "run", "--config"])
        .arg(&path)
        .env(
            "RUST_LOG",
            "warn,dtc::app=info,dtc::admin=info,dtc::upstream=info",
        )
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dtc");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (mut proxy, mut admin) = (None, None);
    while proxy.is_none() || admin.is_none() {
        let line = lines
            .next()
            .expect("dtc exited before listening")
            .expect("a line");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let addr = v["fields"]["addr"].as_str().map(|a| format!("http://{a}"));
        match v["fields"]["message"].as_str() {
            Some("dtc listening") => proxy = addr,
            Some("admin listening") => admin = addr,
            _ => {}
        }
    }
    let ups = Arc::new(Mutex::new(Vec::new()));
    let seen = ups.clone();
    // Keep draining the log, so dtc never blocks on a full pipe; note when a node came back.
    std::thread::spawn(move || {
        let show = std::env::var_os("CHAOS_DTC_LOG").is_some();
        for line in lines.map_while(Result::ok) {
            if show && line.contains("dtc::upstream") {
                eprintln!("dtc: {line}");
            }
            if line.contains("node is up again") {
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Instant::now());
            }
        }
    });
    Dtc {
        child,
        proxy: proxy.unwrap_or_default(),
        admin: admin.unwrap_or_default(),
        ups,
    }
}

/// One client: takes the next write until `ops` were sent; honours `Retry-After`.
async fn client(
    url: String,
    seed: u64,
    next: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    ops: usize,
) -> Vec<Op> {
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::new();
    while next.fetch_add(1, Ordering::Relaxed) < ops {
        let key = format!("k{}", rng.usize(..KEYS));
        let create = rng.bool();
        let method = if create { Method::POST } else { Method::DELETE };
        let req = Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!(r#"{{"groupId": "{key}"}}"#))))
            .expect("a request");
        let start = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(30), http.request(req)).await;
        let (status, state, retry_after, body) = match answer {
            Ok(Ok(resp)) => {
                let h = resp.headers();
                let header = |name: &str| {
                    h.get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let state = header("x-dtc-state").unwrap_or_else(|| "-".into());
                let retry = header("retry-after").and_then(|v| v.parse::<u64>().ok());
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await.map(|b| b.to_bytes());
                (status, state, retry, body.unwrap_or_default())
            }
            _ => (0, "no_answer".to_string(), None, Bytes::new()),
        };
        let end = Instant::now();
        let already = if create { 400 } else { 404 };
        let completed = (200..300).contains(&status) || status == already;
        let refusal = (!completed).then(|| {
            let text = String::from_utf8_lossy(&body);
            match state.as_str() {
                "to_be_retried" if text.contains("is down") => "node_down".to_string(),
                "rolled_back" => "rolled_back".to_string(),
                other => format!("{other} {status} ({})", detail_head(&text)),
            }
        });
        let fence = (!completed)
            .then(|| fencing_transaction(&String::from_utf8_lossy(&body)))
            .flatten();
        out.push(Op {
            start,
            end,
            completed,
            refusal,
            fence,
        });
        done.fetch_add(1, Ordering::Relaxed);
        if !completed {
            tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1))).await;
        }
    }
    out
}

/// Waits until dtc has nothing failed or in doubt (the re-drive and late-write checks done), at
/// most a minute.
async fn settle(admin: &str) {
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let req = Request::get(format!("{admin}/status"))
            .body(Full::new(Bytes::new()))
            .expect("a request");
        if let Ok(resp) = http.request(req).await
            && let Ok(body) = resp.into_body().collect().await
        {
            let v: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap_or_default();
            if v["failed"] == 0 && v["in_doubt"] == 0 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("chaos bench: dtc still has failed or in-doubt transactions after a minute");
}

/// Keys on which the nodes differ.
fn divergent(nodes: &[dtc::node::RefNode], seed: u64) -> usize {
    let held: Vec<_> = nodes.iter().map(|n| n.groups()).collect();
    let differing = (0..KEYS)
        .map(|k| format!("k{k}"))
        .filter(|k| !held.iter().all(|h| h.contains(k) == held[0].contains(k)))
        .collect::<Vec<_>>();
    if !differing.is_empty() {
        eprintln!("chaos bench: seed {seed}: keys differ across nodes: {differing:?}");
    }
    differing.len()
}

/// The first words of a problem answer's `detail`, to tell refusals of one state apart.
fn detail_head(body: &str) -> String {
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_string))
        .unwrap_or_default();
    let words: Vec<&str> = detail
        .split_whitespace()
        .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
        .take(7)
        .collect();
    words.join(" ")
}

/// The transaction named by a "rolled back while a node's answer was unknown … wait for its
/// check" refusal (`Reason::Checking`), if the answer is one.
fn fencing_transaction(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let detail = v["detail"].as_str()?;
    if !detail.contains("on the same resource was rolled back while") {
        return None;
    }
    let mut words = detail.split_whitespace();
    (words.next() == Some("transaction")).then_some(())?;
    words.next().map(str::to_string)
}

/// Prints where the writes refused by late-write fences fall against the outage (before it,
/// during it, within 10 s of the node's return, later) and how many each fence refused: a
/// fence lasts `journal.verify_after` (10 s) from its rollback, so this tells the fences the
/// outage made from the others. Returns the writes fences refused and how many fences.
fn report_fences(
    seed: u64,
    breaker: bool,
    ops: &[Op],
    down_at: Instant,
    back: Instant,
) -> (usize, usize) {
    let mut when = [0usize; 4];
    let mut per = std::collections::BTreeMap::<&str, usize>::new();
    for o in ops {
        let Some(fence) = o.fence.as_deref() else {
            continue;
        };
        let i = if o.start < down_at {
            0
        } else if o.start < back {
            1
        } else if o.start < back + Duration::from_secs(10) {
            2
        } else {
            3
        };
        when[i] += 1;
        *per.entry(fence).or_default() += 1;
    }
    if per.is_empty() {
        return (0, 0);
    }
    eprintln!(
        "chaos bench: seed {seed}, breaker {breaker}: fenced writes before / during / within 10 s after / later than the outage {when:?}; per fence {:?}",
        per.values().collect::<Vec<_>>()
    );
    (per.values().sum(), per.len())
}

/// For each fence: when its transaction started and ended against the outage (ms from the
/// node going down), and its nodes' outcomes, from the admin's `/transactions/{id}`.
async fn fence_detail(admin: &str, ops: &[Op], down_at: Instant, back: Instant) {
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let wall_down = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
        - down_at.elapsed().as_millis() as i64;
    let back_ms = (back - down_at).as_millis();
    let mut seen = std::collections::BTreeSet::new();
    for o in ops {
        let Some(id) = o.fence.as_deref() else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        let refused: Vec<i64> = ops
            .iter()
            .filter(|x| x.fence.as_deref() == Some(id))
            .map(|x| (x.start - down_at).as_millis() as i64)
            .collect();
        let req = Request::get(format!("{admin}/transactions/{id}"))
            .body(Full::new(Bytes::new()))
            .expect("a request");
        let mut v = serde_json::Value::Null;
        if let Ok(resp) = http.request(req).await
            && let Ok(body) = resp.into_body().collect().await
        {
            v = serde_json::from_slice(&body.to_bytes()).unwrap_or_default();
        }
        let at = |f: &str| v[f].as_i64().map(|t| t - wall_down);
        eprintln!(
            "chaos fence: back at {back_ms} ms; txn {id} started {:?} ended {:?} ms; refused at {refused:?}; {}",
            at("started_ms"),
            at("finished_ms"),
            serde_json::to_string(&v["nodes"]).unwrap_or_default()
        );
        if std::env::var_os("CHAOS_FENCE_FULL").is_some() {
            eprintln!("{v}");
        }
    }
}
