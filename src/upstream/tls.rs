//! TLS to one https node: the rustls client settings built from its [`TlsSpec`], rebuilt when
//! the files they came from change.
//!
//! A Kubernetes Secret mount rotates its files by swapping the `..data` symlink, cert-manager
//! rewrites them in place; both change what `stat` says of a file (device, inode, size,
//! mtime). Before each new connection [`NodeTls::config`] compares that with what it loaded
//! last and reloads when it differs, so the next connection uses the rotated certificate;
//! connections already open keep theirs. A reload that fails (a new certificate beside the old
//! key, mid-rotation) keeps the last good settings, says so once, and is tried again when the
//! files change again.
//!
//! Why not the config watcher: the files are not the config file, and may live in another
//! directory each; one `stat` per file per new connection (not per request: connections are
//! pooled) is all this costs.

use crate::config::pem;
use crate::config::tls::{TlsSpec, TlsVersion};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What `stat` says of each file: device, inode, size, mtime (`None`: missing).
type Fingerprint = Vec<Option<(u64, u64, u64, i64, i64)>>;

/// The TLS client of one node.
/// Why a node's TLS settings cannot be used; each names the file or setting to fix.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum NodeTlsError {
    #[error("CA file {0}")]
    CaFile(String),
    #[error("no usable CA certificate in `{0}`")]
    NoCaIn(String),
    #[error(
        "no usable CA certificate in the system (/etc/ssl/certs, SSL_CERT_FILE): set `tls.ca_file`"
    )]
    NoSystemCa,
    #[error("cannot verify node certificates: {0}")]
    Verifier(String),
    /// The client certificate or key files.
    #[error("{0}")]
    Identity(String),
    #[error("client certificate: {0}")]
    ClientCert(String),
    #[error("{0}")]
    Rustls(String),
}

pub(crate) struct NodeTls {
    node: String,
    spec: Arc<TlsSpec>,
    /// The name sent as SNI and verified.
    server_name: ServerName<'static>,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    print: Fingerprint,
    /// The settings in use, or why there are none yet.
    config: Result<Arc<ClientConfig>, NodeTlsError>,
}

impl NodeTls {
    /// Loads the node's TLS settings. A file that cannot be used now is not fatal: each
    /// connection then fails with the reason until the files are fixed.
    pub(crate) fn new(node: &str, spec: Arc<TlsSpec>) -> NodeTls {
        if !spec.verify_hostname {
            tracing::warn!(node, server_name = %spec.server_name,
                "TLS hostname verification is OFF for this node: any certificate its CA signed is accepted, whatever name it carries; use this only in tests");
        }
        let server_name = ServerName::try_from(spec.server_name.clone())
            .unwrap_or_else(|_| ServerName::try_from("invalid").expect("a valid DNS name"));
        let print = fingerprint(&spec.files());
        let config = client_config(&spec).map(Arc::new);
        if let Err(error) = &config {
            tracing::error!(node, %error, "node TLS settings unusable; its connections fail until the files are fixed");
        }
        NodeTls {
            node: node.to_string(),
            spec,
            server_name,
            loaded: Mutex::new(Loaded { print, config }),
        }
    }

    /// The name sent as SNI and verified.
    pub(crate) fn server_name(&self) -> ServerName<'static> {
        self.server_name.clone()
    }

    /// The client settings for a new connection, reloaded first if a file changed.
    pub(crate) fn config(&self) -> Result<Arc<ClientConfig>, NodeTlsError> {
        let print = fingerprint(&self.spec.files());
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if print != loaded.print {
            loaded.print = print;
            match client_config(&self.spec) {
                Ok(fresh) => {
                    tracing::info!(node = %self.node, "node TLS files changed: reloaded, new connections use them");
                    loaded.config = Ok(Arc::new(fresh));
                }
                Err(error) if loaded.config.is_ok() => {
                    tracing::warn!(node = %self.node, %error, "node TLS files changed but are unusable: keeping the previous ones");
                }
                Err(error) => loaded.config = Err(error),
            }
        }
        loaded.config.clone()
    }
}

fn fingerprint(files: &[&PathBuf]) -> Fingerprint {
    files
        .iter()
        .map(|path| {
            let m = std::fs::metadata(path).ok()?;
            Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
        })
        .collect()
}

/// rustls client settings for `spec`: its roots, versions, client certificate and ALPN.
fn client_config(spec: &TlsSpec) -> Result<ClientConfig, NodeTlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = roots(spec)?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| NodeTlsError::Verifier(e.to_string()))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match spec.min_version {
        TlsVersion::V12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V13 => &[&rustls::version::TLS13],
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| NodeTlsError::Rustls(e.to_string()))?;
    let builder = match spec.verify_hostname {
        true => builder.with_webpki_verifier(verifier),
        false => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(verifier))),
    };
    let mut config = match &spec.identity {
        Some((cert, key)) => {
            let (chain, key) =
                pem::read_identity(cert, key).map_err(|e| NodeTlsError::Identity(e.to_string()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| NodeTlsError::ClientCert(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = spec.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(config)
}

fn roots(spec: &TlsSpec) -> Result<RootCertStore, NodeTlsError> {
    let mut roots = RootCertStore::empty();
    match &spec.ca_file {
        Some(path) => {
            let certs = pem::read_certs(path).map_err(|e| NodeTlsError::CaFile(e.to_string()))?;
            roots.add_parsable_certificates(certs);
        }
        None => {
            roots.add_parsable_certificates(pem::system_roots().iter().cloned());
        }
    }
    if roots.is_empty() {
        return Err(match &spec.ca_file {
            Some(path) => NodeTlsError::NoCaIn(path.display().to_string()),
            None => NodeTlsError::NoSystemCa,
        });
    }
    Ok(roots)
}

/// Verifies the chain as webpki does, but accepts a certificate issued for another name
/// (`verify_hostname = false`).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        // webpki checks the name last: an error about the name means the rest held.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
