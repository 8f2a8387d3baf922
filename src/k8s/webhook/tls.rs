//! The webhook's certificate and key, re-read when the files change.
//!
//! Kubernetes rotates a mounted Secret by swapping a symlink, and cert-manager
//! rewrites the files in place; both change the files' identity or mtime. On
//! every new connection [`CertReloader::acceptor`] compares the files'
//! metadata with what it loaded last and reloads when they differ. A reload
//! that fails (e.g. a new certificate next to the old key, mid-rotation) keeps
//! the last good certificate and is tried again on the next connection.

use crate::config::pem;
use rustls::ServerConfig;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_rustls::TlsAcceptor;

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read or holds no PEM block of the right type.
    #[error("cannot load {what} from `{path}`: {message}")]
    File {
        /// "the certificate" or "the private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The reason.
        message: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("the certificate `{cert}` and key `{key}` do not work together: {source}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

/// Identity of the two files at load time: device, inode, size, mtime.
type Fingerprint = [(u64, u64, u64, i64, i64); 2];

/// Serves the current certificate, reloading it when its files change.
pub struct CertReloader {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<(Option<Fingerprint>, TlsAcceptor)>,
}

impl CertReloader {
    /// Loads the certificate chain and key (PEM); fails if they are unusable.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let print = fingerprint(cert, key);
        let acceptor = acceptor(cert, key)?;
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: Mutex::new((print, acceptor)),
        })
    }

    /// The acceptor for a new connection, reloading the files if they changed.
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let print = fingerprint(&self.cert, &self.key);
        if print.is_some() && print != current.0 {
            match acceptor(&self.cert, &self.key) {
                Ok(fresh) => {
                    tracing::info!(cert = %self.cert.display(), "webhook certificate reloaded");
                    *current = (print, fresh);
                }
                Err(error) => {
                    tracing::warn!(%error, "keeping the previous webhook certificate");
                }
            }
        }
        current.1.clone()
    }
}

fn fingerprint(cert: &Path, key: &Path) -> Option<Fingerprint> {
    let one = |path: &Path| {
        let m = std::fs::metadata(path).ok()?;
        Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
    };
    Some([one(cert)?, one(key)?])
}

fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let file_error = |what| {
        move |e: pem::FileError| TlsError::File {
            what,
            path: e.path,
            message: e.message,
        }
    };
    let chain = pem::read_certs(cert).map_err(file_error("the certificate"))?;
    let private = pem::read_key(key).map_err(file_error("the private key"))?;
    let pair_error = |source| TlsError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(pair_error)?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(pair_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
