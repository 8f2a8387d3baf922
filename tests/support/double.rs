//! A node double that behaves like real servers do, where the reference node is kinder: it
//! serves the group API (`POST`/`DELETE /v1/group/`, `GET /v1/group/{id}/`) and each write takes
//! the next scripted behaviour: answer normally, shed load with a status without applying, apply
//! and then fail, or take the request, answer nothing, and apply it *later* — after the client
//! gave up (an overloaded server's queue). While such a late write is pending, the double can
//! answer every other write 503 (a load balancer shedding load in front of a busy backend). It
//! honours `Idempotency-Key` only when told to (most APIs do not), and it can lose data (come back
//! from a crash with an older state).
#![allow(dead_code)]

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the double does with one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Apply it and answer as the API does.
    Normal,
    /// Answer this status without applying (503: shedding load).
    Refuse(u16),
    /// Apply it, then answer this status (the answer is lost in a crash, a timeout, a proxy).
    ApplyThenFail(u16),
    /// Take it, never answer, and apply it after this long whatever became of the client.
    Late(Duration),
    /// Answer 504 at once, as a gateway that gave up on its backend does, and apply it after
    /// this long: the backend kept going.
    GatewayTimeout(Duration),
    /// Take it and never answer or apply it.
    Hang,
    /// Hold it until [`Double::release`], then apply it and answer normally.
    Held,
}

/// One write as the double received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub group: String,
    pub idempotency_key: Option<String>,
}

#[derive(Default)]
struct State {
    groups: BTreeSet<String>,
    /// `/items`: the node assigns ids (from 1).
    items: std::collections::BTreeMap<u64, serde_json::Value>,
    next_item: u64,
    script: VecDeque<Write>,
    /// Late writes taken and not applied yet.
    pending_late: usize,
    /// Reads of a group still to answer 500.
    fail_reads: usize,
    /// Faults drawn for writes the script does not cover.
    random: Option<(fastrand::Rng, Random)>,
    replies: HashMap<String, (u16, String)>,
    received: Vec<Received>,
}

/// A running double on `127.0.0.1:0`; stops when dropped.
pub struct Double {
    pub name: String,
    url: String,
    state: Arc<Mutex<State>>,
    honours_keys: bool,
    shed_while_late: bool,
    applied: Arc<AtomicUsize>,
    gate: Arc<Gate>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Where held writes wait.
struct Gate {
    open: tokio::sync::Semaphore,
    waiting: AtomicUsize,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            open: tokio::sync::Semaphore::new(0),
            waiting: AtomicUsize::new(0),
        }
    }
}

/// Seeded faults for every write the script does not cover, each with its probability.
#[derive(Debug, Clone, Copy, Default)]
pub struct Random {
    /// Shed with 503, not applied.
    pub refuse: f64,
    /// Applied, then answered 500.
    pub apply_then_fail: f64,
    /// Taken, never answered, applied up to `late_max` later.
    pub late: f64,
    pub late_max: Duration,
}

/// How a double is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Answer a write seen before with the same `Idempotency-Key` from its cache (non-5xx
    /// answers only), as an API that honours the header does.
    pub honours_keys: bool,
    /// While a late write is pending, answer every other write `503` without applying it.
    pub shed_while_late: bool,
    /// `POST /items` assigns ids from this one (0: from 1), as a node with its own sequence.
    pub first_item: u64,
    /// `POST /items` answers `201` with the new id in `Location` only and an empty body, as
    /// many APIs do.
    pub location_only: bool,
}

impl Double {
    pub async fn start(name: &str, behaviour: Behaviour) -> Double {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind double");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            next_item: behaviour.first_item.saturating_sub(1),
            ..State::default()
        }));
        let applied = Arc::new(AtomicUsize::new(0));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let gate = Arc::new(Gate::default());
        let shared = Shared {
            state: state.clone(),
            behaviour,
            applied: applied.clone(),
            gate: gate.clone(),
        };
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(c) => c, Err(_) => return },
                    _ = &mut stopped => return,
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, std::convert::Infallible>(shared.serve(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Double {
            name: name.to_string(),
            url,
            state,
            honours_keys: behaviour.honours_keys,
            shed_while_late: behaviour.shed_while_late,
            applied,
            gate,
            _stop: stop,
        }
    }

    /// Writes held now ([`Write::Held`]).
    pub fn held(&self) -> usize {
        self.gate.waiting.load(Ordering::SeqCst)
    }

    /// Lets every held write go.
    pub fn release(&self) {
        self.gate.open.add_permits(self.held().max(1));
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The next writes take these behaviours, in order; later ones are `Normal`.
    pub fn script(&self, writes: &[Write]) {
        self.state.lock().unwrap().script.extend(writes);
    }

    pub fn groups(&self) -> BTreeSet<String> {
        self.state.lock().unwrap().groups.clone()
    }

    /// Draws faults for unscripted writes from `seed`; `None` heals it.
    pub fn randomly(&self, seed: u64, faults: Option<Random>) {
        self.state.lock().unwrap().random = faults.map(|f| (fastrand::Rng::with_seed(seed), f));
    }

    /// The next `n` reads of a group answer 500.
    pub fn fail_reads(&self, n: usize) {
        self.state.lock().unwrap().fail_reads = n;
    }

    /// The items it holds, by its own ids.
    pub fn items(&self) -> std::collections::BTreeMap<u64, serde_json::Value> {
        self.state.lock().unwrap().items.clone()
    }

    pub fn has(&self, group: &str) -> bool {
        self.state.lock().unwrap().groups.contains(group)
    }

    /// Comes back from a crash without `group` (its last writes never reached its disk).
    pub fn lose(&self, group: &str) {
        self.state.lock().unwrap().groups.remove(group);
    }

    pub fn insert(&self, group: &str) {
        self.state.lock().unwrap().groups.insert(group.to_string());
    }

    /// Late writes taken and not applied yet.
    pub fn pending_late(&self) -> usize {
        self.state.lock().unwrap().pending_late
    }

    /// The writes received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Writes that changed the data (creates and deletes that applied).
    pub fn applied(&self) -> usize {
        self.applied.load(Ordering::SeqCst)
    }
}

impl super::At for Double {
    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl State {
    fn draw(&mut self) -> Write {
        let Some((rng, f)) = self.random.as_mut() else {
            return Write::Normal;
        };
        let x = rng.f64();
        if x < f.refuse {
            Write::Refuse(503)
        } else if x < f.refuse + f.apply_then_fail {
            Write::ApplyThenFail(500)
        } else if x < f.refuse + f.apply_then_fail + f.late {
            let max = f.late_max.as_millis().max(1) as u64;
            Write::Late(Duration::from_millis(rng.u64(1..=max)))
        } else {
            Write::Normal
        }
    }
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    behaviour: Behaviour,
    applied: Arc<AtomicUsize>,
    gate: Arc<Gate>,
}

impl Shared {
    async fn serve(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let path = parts.uri.path().trim_end_matches('/').to_string();
        if path == "/healthz" {
            return answer(200, "ok");
        }
        if path == "/items" || path.starts_with("/items/") {
            return self.items(&parts.method, &path, &body).await;
        }
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let Some(id) = path.strip_prefix("/v1/group/") else {
                return answer(404, r#"{"error":"not found"}"#);
            };
            let mut st = self.state.lock().unwrap();
            if st.fail_reads > 0 {
                st.fail_reads -= 1;
                return answer(500, r#"{"error":"read failed"}"#);
            }
            return match st.groups.contains(id) {
                true => answer(200, &format!(r#"{{"groupId":"{id}"}}"#)),
                false => answer(404, r#"{"error":"group not found"}"#),
            };
        }
        let Some(group) = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["groupId"].as_str().map(String::from))
        else {
            return answer(422, r#"{"error":"groupId missing"}"#);
        };
        let key = parts
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let behaviour = {
            let mut st = self.state.lock().unwrap();
            st.received.push(Received {
                method: parts.method.clone(),
                group: group.clone(),
                idempotency_key: key.clone(),
            });
            if let Some(k) = key.as_ref().filter(|_| self.behaviour.honours_keys)
                && let Some((status, body)) = st.replies.get(k)
            {
                return answer(*status, &body.clone());
            }
            if self.behaviour.shed_while_late && st.pending_late > 0 {
                return answer(503, r#"{"error":"overloaded"}"#);
            }
            match st.script.pop_front() {
                Some(w) => w,
                None => st.draw(),
            }
        };
        if behaviour == Write::Held {
            self.gate.waiting.fetch_add(1, Ordering::SeqCst);
            let permit = self.gate.open.acquire().await;
            self.gate.waiting.fetch_sub(1, Ordering::SeqCst);
            permit.expect("gate open").forget();
        }
        match behaviour {
            Write::Normal | Write::Held => {
                let (status, body) = self.apply(&parts.method, &group);
                if let Some(k) = key.filter(|_| self.behaviour.honours_keys) {
                    self.state
                        .lock()
                        .unwrap()
                        .replies
                        .insert(k, (status, body.clone()));
                }
                answer(status, &body)
            }
            Write::Refuse(status) => answer(status, r#"{"error":"refused (not applied)"}"#),
            Write::ApplyThenFail(status) => {
                self.apply(&parts.method, &group);
                answer(status, r#"{"error":"failed after applying"}"#)
            }
            Write::Late(after) => {
                self.apply_later(after, &parts.method, group);
                std::future::pending().await
            }
            Write::GatewayTimeout(after) => {
                self.apply_later(after, &parts.method, group);
                answer(504, r#"{"error":"gateway timeout"}"#)
            }
            Write::Hang => std::future::pending().await,
        }
    }

    /// Applies a write `after` this long, whatever became of its client (counted in
    /// [`Double::pending_late`] until then).
    fn apply_later(&self, after: Duration, method: &Method, group: String) {
        self.state.lock().unwrap().pending_late += 1;
        let me = self.clone();
        let method = method.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            me.apply(&method, &group);
            me.state.lock().unwrap().pending_late -= 1;
        });
    }

    /// `/items`: never honours `Idempotency-Key` (like most APIs): a create sent twice is two
    /// items. Writes take the script like group writes do.
    async fn items(&self, method: &Method, path: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let id = path
            .strip_prefix("/items/")
            .and_then(|s| s.parse::<u64>().ok());
        if *method == Method::GET {
            let st = self.state.lock().unwrap();
            return match id {
                None => answer(
                    200,
                    &serde_json::to_string(&st.items.values().collect::<Vec<_>>()).unwrap(),
                ),
                Some(id) => match st.items.get(&id) {
                    Some(v) => answer(200, &v.to_string()),
                    None => answer(404, r#"{"error":"item not found"}"#),
                },
            };
        }
        let behaviour = {
            let mut st = self.state.lock().unwrap();
            st.received.push(Received {
                method: method.clone(),
                group: path.to_string(),
                idempotency_key: None,
            });
            st.script.pop_front().unwrap_or(Write::Normal)
        };
        let apply = || {
            let mut st = self.state.lock().unwrap();
            match (method.clone(), id) {
                (Method::POST, None) => {
                    st.next_item += 1;
                    let n = st.next_item;
                    let mut v: serde_json::Value =
                        serde_json::from_slice(body).unwrap_or(serde_json::json!({}));
                    v["id"] = n.into();
                    st.items.insert(n, v.clone());
                    self.applied.fetch_add(1, Ordering::SeqCst);
                    match self.behaviour.location_only {
                        true => (201, format!("@/items/{n}")),
                        false => (201, v.to_string()),
                    }
                }
                (Method::DELETE, Some(id)) => match st.items.remove(&id) {
                    Some(v) => {
                        self.applied.fetch_add(1, Ordering::SeqCst);
                        (200, v.to_string())
                    }
                    None => (404, r#"{"error":"item not found"}"#.to_string()),
                },
                _ => (405, r#"{"error":"method not allowed"}"#.to_string()),
            }
        };
        match behaviour {
            Write::Normal => {
                let (status, body) = apply();
                match body.strip_prefix('@') {
                    // `Location` only, no body.
                    Some(location) => {
                        let mut resp = answer(status, "");
                        resp.headers_mut()
                            .insert(http::header::LOCATION, location.parse().unwrap());
                        resp
                    }
                    None => answer(status, &body),
                }
            }
            Write::Refuse(status) => answer(status, r#"{"error":"refused (not applied)"}"#),
            Write::ApplyThenFail(status) => {
                apply();
                answer(status, r#"{"error":"failed after applying"}"#)
            }
            Write::Late(_) | Write::GatewayTimeout(_) | Write::Hang | Write::Held => {
                std::future::pending().await
            }
        }
    }

    fn apply(&self, method: &Method, group: &str) -> (u16, String) {
        let mut st = self.state.lock().unwrap();
        let ok = format!(r#"{{"groupId":"{group}"}}"#);
        let changed = match *method {
            Method::POST => st.groups.insert(group.to_string()),
            Method::DELETE => st.groups.remove(group),
            _ => return (405, r#"{"error":"method not allowed"}"#.into()),
        };
        if changed {
            self.applied.fetch_add(1, Ordering::SeqCst);
        }
        match (method.clone(), changed) {
            (Method::POST, true) => (201, ok),
            (Method::POST, false) => (
                400,
                format!(r#"{{"error":"group {group} already exists"}}"#),
            ),
            (_, true) => (200, ok),
            (_, false) => (404, r#"{"error":"group not found"}"#.into()),
        }
    }
}

fn answer(status: u16, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A config for these doubles (and optionally reference nodes), as `support::test_config` makes
/// for reference nodes.
pub fn config_for(urls: &[(String, String)]) -> dtc::config::Config {
    let mut cfg = super::test_config(&[]);
    cfg.nodes = urls
        .iter()
        .map(|(name, url)| dtc::config::NodeConfig {
            name: name.clone(),
            url: url.clone(),
            tls: None,
        })
        .collect();
    cfg
}
