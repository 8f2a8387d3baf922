//! Raw sockets for hostile-input tests: bytes in, bytes out, no HTTP library in between, and
//! a raw node whose answers a test scripts byte by byte.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The HTTP/2 connection preface and an empty SETTINGS frame.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// An HTTP/2 frame header + payload.
pub fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Writes `bytes`, then reads until the peer closes or `limit` passes. The flag says whether
/// the peer closed.
pub async fn exchange(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> (Vec<u8>, bool) {
    stream.write_all(bytes).await.expect("write");
    read_until_closed(stream, limit).await
}

/// Reads until the peer closes (or resets) the connection or `limit` passes.
pub async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (out, closed)
}

/// How a [`RawNode`] answers anything but its health probe.
#[derive(Clone)]
pub enum Script {
    /// Send these bytes, then keep the connection open and silent.
    ThenStall(Vec<u8>),
    /// Send the head, then one body byte every `every`, forever.
    Drip(Vec<u8>, Duration),
}

/// A node that answers `GET /healthz` with 200 and everything else by its script; counts the
/// requests that were not probes.
pub struct RawNode {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
}

impl RawNode {
    pub async fn start(script: Script) -> RawNode {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind raw node");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, script.clone(), counted.clone()));
            }
        });
        RawNode { url, requests }
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, script: Script, counted: Arc<AtomicUsize>) {
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        if head.starts_with(b"GET /healthz ") {
            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
            if stream.write_all(ok).await.is_err() {
                return;
            }
            continue;
        }
        counted.fetch_add(1, Ordering::SeqCst);
        // A request body, if any, is left unread: the scripts answer at once.
        match &script {
            Script::ThenStall(bytes) => {
                let _ = stream.write_all(bytes).await;
                std::future::pending::<()>().await;
            }
            Script::Drip(head, every) => {
                let _ = stream.write_all(head).await;
                loop {
                    tokio::time::sleep(*every).await;
                    if stream.write_all(b"x").await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
