//! Nodes behind real TLS for the tests: a test PKI made with rcgen (CAs, server and client
//! certificates written as PEM files), and [`TlsFront`], a rustls server that terminates TLS
//! in front of a reference node and records what each connection negotiated.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// A certificate authority that issues test certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
}

/// A certificate and its key, PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses), common name `cn`, valid for a
    /// year from yesterday.
    pub fn issue(&self, cn: &str, names: &[&str]) -> Leaf {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        self.issue_valid(cn, names, now - day, now + 365 * day)
    }

    /// A certificate for `names`, valid from `not_before` to `not_after`.
    pub fn issue_valid(
        &self,
        cn: &str,
        names: &[&str],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// A self-signed certificate for `names` (no CA trusts it).
pub fn self_signed(names: &[&str]) -> Leaf {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let c = rcgen::generate_simple_self_signed(names).unwrap();
    Leaf {
        cert: c.cert.pem(),
        key: c.signing_key.serialize_pem(),
    }
}

/// Writes `text` to `dir/name` and returns the path as the config spells it.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// One accepted TLS connection, as the server saw it.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The ALPN protocol agreed on.
    pub alpn: Option<String>,
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// The common name of the client certificate, if one was presented.
    pub client_cn: Option<String>,
}

/// How the front's server is set up.
pub struct FrontTls {
    pub leaf: Leaf,
    /// Client certificates must be signed by this CA (PEM), when set.
    pub client_ca: Option<String>,
}

/// A TLS server in front of a plain-HTTP node: every connection is decrypted and piped to
/// `backend`. Records each connection; [`TlsFront::cut`] closes them all.
pub struct TlsFront {
    pub addr: SocketAddr,
    accepted: Arc<Mutex<Vec<Accepted>>>,
    conns: Arc<Mutex<JoinSet<()>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
        self.conns.lock().unwrap().abort_all();
    }
}

impl TlsFront {
    /// Starts a front on a free loopback port for `backend`.
    pub async fn start(tls: FrontTls, backend: SocketAddr) -> TlsFront {
        let acceptor = TlsAcceptor::from(Arc::new(server_config(&tls)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let (seen, set) = (accepted.clone(), conns.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                set.lock().unwrap().spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    seen.lock().unwrap().push(describe(tls.get_ref().1));
                    let Ok(mut plain) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront {
            addr,
            accepted,
            conns,
            task,
        }
    }

    /// `https://HOST:PORT` of this front, with `host` as the URL's host.
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.addr.port())
    }

    /// Every TLS connection accepted so far.
    pub fn accepted(&self) -> Vec<Accepted> {
        self.accepted.lock().unwrap().clone()
    }

    /// Closes every open connection.
    pub fn cut(&self) {
        self.conns.lock().unwrap().abort_all();
    }
}

fn describe(conn: &rustls::ServerConnection) -> Accepted {
    let client_cn = conn.peer_certificates().and_then(|c| c.first()).map(|c| {
        let (_, parsed) = x509_parser::parse_x509_certificate(c.as_ref()).unwrap();
        let cn = parsed.subject().iter_common_name().next();
        cn.and_then(|cn| cn.as_str().ok()).unwrap_or("").to_string()
    });
    Accepted {
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        sni: conn.server_name().map(String::from),
        client_cn,
    }
}

fn server_config(tls: &FrontTls) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(tls.leaf.cert.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(tls.leaf.key.as_bytes()).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// A directory laid out like a mounted Kubernetes Secret: `NAME -> ..data/NAME`, `..data` a
/// symlink to a timestamped directory, swapped by rename on every update.
pub struct SecretDir {
    pub dir: PathBuf,
    version: usize,
}

impl SecretDir {
    /// A Secret mount in `dir` holding `files` (name, content).
    pub fn new(dir: &Path, files: &[(&str, &str)]) -> SecretDir {
        let mut s = SecretDir {
            dir: dir.to_path_buf(),
            version: 0,
        };
        s.update(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        s
    }

    /// The path of file `name` (through the symlinks).
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Writes a new version of every file and swaps `..data` to it at once, as the kubelet does.
    pub fn update(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        std::fs::create_dir(self.dir.join(&version)).unwrap();
        for (name, text) in files {
            std::fs::write(self.dir.join(&version).join(name), text).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}
