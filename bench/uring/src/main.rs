//! The io_uring evaluation of issue 12: one GET pass-through, written once against hyper 1,
//! run on three I/O engines, so the only difference between them is how sockets are driven.
//!
//! - `tokio`: a current-thread tokio runtime (epoll, readiness), as `dtc run --workers 1` runs;
//! - `monoio-uring`: monoio's io_uring driver (completion-based; submissions are batched per
//!   turn of its loop);
//! - `monoio-uring-coop`, `monoio-uring-defer`: the same with `IORING_SETUP_COOP_TASKRUN`, or with
//!   `SINGLE_ISSUER` + `DEFER_TASKRUN` (completions run on this thread, without an interrupt);
//! - `monoio-epoll`: monoio's legacy driver, to tell the runtime apart from io_uring itself.
//!
//! hyper drives readiness-style I/O (`hyper::rt::Read`/`Write`); on monoio it runs through
//! `monoio-compat`, the adapter that keeps hyper the one HTTP implementation on the data path,
//! which is the condition issue 12 sets for adopting io_uring. Each client connection gets its
//! own keep-alive connection to one upstream (round-robin by connection), as dtc's pool
//! effectively gives a GET at steady state.
//!
//! `dtc-uring-eval --runtime tokio|monoio-uring|monoio-uring-coop|monoio-uring-defer|monoio-epoll --listen ADDR --upstream A,B,C`

use std::{cell::RefCell, error::Error, future::Future, io, net::SocketAddr, rc::Rc};

use hyper::{
    Request, Response,
    body::Incoming,
    client::conn::http1::{self as client, SendRequest},
    server::conn::http1 as server,
    service::service_fn,
};
use hyper_util::rt::TokioIo;

type BoxError = Box<dyn Error + Send + Sync>;

/// What differs between the engines: how a connection is made and how a task is started.
trait Engine: 'static {
    type Io: hyper::rt::Read + hyper::rt::Write + Unpin + 'static;
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Io>>;
    fn spawn(task: impl Future<Output = ()> + 'static);
}

struct Tokio;

impl Engine for Tokio {
    type Io = TokioIo<tokio::net::TcpStream>;
    async fn connect(addr: SocketAddr) -> io::Result<Self::Io> {
        let s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(TokioIo::new(s))
    }
    fn spawn(task: impl Future<Output = ()> + 'static) {
        tokio::task::spawn_local(task);
    }
}

struct Monoio;

impl Engine for Monoio {
    type Io = TokioIo<monoio_compat::TcpStreamCompat>;
    async fn connect(addr: SocketAddr) -> io::Result<Self::Io> {
        let s = monoio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(TokioIo::new(monoio_compat::TcpStreamCompat::new(s)))
    }
    fn spawn(task: impl Future<Output = ()> + 'static) {
        monoio::spawn(task);
    }
}

/// One client connection: every request goes to `upstream` over one kept-alive connection,
/// opened on first use and again whenever it was closed.
async fn serve<E: Engine>(io: E::Io, upstream: SocketAddr) {
    let conn: Rc<RefCell<Option<SendRequest<Incoming>>>> = Rc::default();
    let svc = service_fn(move |req: Request<Incoming>| forward::<E>(conn.clone(), upstream, req));
    if let Err(e) = server::Builder::new().serve_connection(io, svc).await
        && !e.is_incomplete_message()
    {
        eprintln!("client connection: {e}");
    }
}

async fn forward<E: Engine>(
    conn: Rc<RefCell<Option<SendRequest<Incoming>>>>,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Incoming>, BoxError> {
    let kept = conn.borrow_mut().take().filter(|s| !s.is_closed());
    let mut sender = match kept {
        Some(s) => s,
        None => {
            let (s, c) = client::handshake(E::connect(upstream).await?).await?;
            E::spawn(async move {
                let _ = c.await;
            });
            s
        }
    };
    sender.ready().await?;
    let answer = sender.send_request(req).await;
    *conn.borrow_mut() = Some(sender);
    Ok(answer?)
}

struct Args {
    runtime: String,
    listen: SocketAddr,
    upstreams: Vec<SocketAddr>,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut runtime, mut listen, mut upstreams) = (None, None, Vec::new());
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--runtime" => runtime = Some(value),
            "--listen" => listen = Some(value.parse().map_err(|e| format!("--listen: {e}"))?),
            "--upstream" => {
                for a in value.split(',') {
                    upstreams.push(a.parse().map_err(|e| format!("--upstream {a}: {e}"))?);
                }
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let runtime = runtime.ok_or("--runtime tokio|monoio-uring|monoio-uring-coop|monoio-uring-defer|monoio-epoll is required")?;
    let listen = listen.ok_or("--listen ADDR is required")?;
    if upstreams.is_empty() {
        return Err("--upstream ADDR[,ADDR...] is required".into());
    }
    Ok(Args {
        runtime,
        listen,
        upstreams,
    })
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("dtc-uring-eval: {e}");
            std::process::exit(2);
        }
    };
    let result = match a.runtime.as_str() {
        "tokio" => run_tokio(a.listen, a.upstreams),
        "monoio-uring" => run_monoio_uring(io_uring::IoUring::builder(), a),
        // Completions handled as task work on this thread's next entry into the kernel, not
        // announced by an inter-processor interrupt (IORING_SETUP_COOP_TASKRUN).
        "monoio-uring-coop" => {
            let mut ring = io_uring::IoUring::builder();
            ring.setup_coop_taskrun();
            run_monoio_uring(ring, a)
        }
        // Completions handled only when the thread waits for them (IORING_SETUP_SINGLE_ISSUER
        // and IORING_SETUP_DEFER_TASKRUN).
        "monoio-uring-defer" => {
            let mut ring = io_uring::IoUring::builder();
            ring.setup_single_issuer().setup_defer_taskrun();
            run_monoio_uring(ring, a)
        }
        "monoio-epoll" => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .and_then(|mut rt| rt.block_on(run_monoio(a.listen, a.upstreams))),
        other => {
            eprintln!("dtc-uring-eval: unknown runtime {other}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("dtc-uring-eval: {e}");
        std::process::exit(1);
    }
}

fn run_tokio(listen: SocketAddr, upstreams: Vec<SocketAddr>) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    tokio::task::LocalSet::new().block_on(&rt, async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        for n in 0.. {
            let (s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            let up = upstreams[n % upstreams.len()];
            tokio::task::spawn_local(serve::<Tokio>(TokioIo::new(s), up));
        }
        Ok(())
    })
}

/// monoio on io_uring, with this ring set-up (`IoUring::builder()` is monoio's own default).
fn run_monoio_uring(ring: io_uring::Builder, a: Args) -> io::Result<()> {
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .uring_builder(ring)
        .build()
        .and_then(|mut rt| rt.block_on(run_monoio(a.listen, a.upstreams)))
}

async fn run_monoio(listen: SocketAddr, upstreams: Vec<SocketAddr>) -> io::Result<()> {
    let listener = monoio::net::TcpListener::bind(listen)?;
    for n in 0.. {
        let (s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        let up = upstreams[n % upstreams.len()];
        let io = TokioIo::new(monoio_compat::TcpStreamCompat::new(s));
        monoio::spawn(serve::<Monoio>(io, up));
    }
    Ok(())
}
