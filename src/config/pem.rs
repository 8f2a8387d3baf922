//! The TLS files a config names, read and judged: PEM certificates and keys, whether a key
//! belongs to its certificate, and how long a certificate stays valid. `dtc check`, every
//! reload and the node clients ([`crate::upstream`]) read them through here, so all three agree
//! on what a usable file is.
//!
//! Messages name the file and what is wrong with it, never its content: a key's bytes must not
//! reach a log line or `GET /config`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A certificate closer than this to its end is warned about.
pub(crate) const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// A TLS file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}`: {message}", path.display())]
pub(crate) struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

fn file_error(path: &Path, message: impl Into<String>) -> FileError {
    FileError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Every certificate of a PEM file (a chain, or a CA bundle); at least one.
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, FileError> {
    std::fs::metadata(path).map_err(|e| file_error(path, format!("cannot read it: {e}")))?;
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(path, "holds no `BEGIN CERTIFICATE` block"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, FileError> {
    std::fs::metadata(path).map_err(|e| file_error(path, format!("cannot read it: {e}")))?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        file_error(
            path,
            format!("holds no usable PEM private key (PKCS#8, RSA or EC): {e}"),
        )
    })
}

/// A client identity: a certificate chain and its private key.
pub(crate) type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// A certificate chain with its key, checked to belong together.
pub(crate) fn read_identity(cert: &Path, key: &Path) -> Result<Identity, FileError> {
    let chain = read_certs(cert)?;
    let der = read_key(key)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| file_error(key, format!("the key cannot sign: {e}")))?;
    match CertifiedKey::new(chain.clone(), signer).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok((chain, der))
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(file_error(
            key,
            format!(
                "the key does not match the certificate in `{}`",
                cert.display()
            ),
        )),
        // webpki's own refusals, e.g. an X.509 v1 certificate (`openssl x509 -req` without
        // extensions makes one).
        Err(e) => Err(file_error(
            cert,
            format!("the certificate cannot be used: {e}"),
        )),
    }
}

/// The system's CA certificates (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`), read
/// once per process. Empty when the system has none (the container image has none).
pub(crate) fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!(%error, "a system CA certificate could not be read");
        }
        found.certs
    })
}

/// How long a certificate is valid: its subject and its validity window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Validity {
    /// The subject, as `CN=...`.
    pub subject: String,
    /// Not valid before.
    pub not_before: SystemTime,
    /// Not valid after.
    pub not_after: SystemTime,
}

impl Validity {
    /// The validity of a DER certificate; `None` when it does not parse as X.509.
    pub(crate) fn of(cert: &CertificateDer<'_>) -> Option<Validity> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        let at = |secs: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        let validity = parsed.validity();
        Some(Validity {
            subject: parsed.subject().to_string(),
            not_before: at(validity.not_before.timestamp()),
            not_after: at(validity.not_after.timestamp()),
        })
    }

    /// What is wrong with the certificate at `now`: `Err` when it is not valid (expired, or
    /// not yet valid), `Ok(Some)` when it ends within [`EXPIRY_WARNING`].
    pub(crate) fn judge(&self, now: SystemTime) -> Result<Option<String>, String> {
        if now < self.not_before {
            return Err(format!(
                "certificate `{}` is not valid before {}",
                self.subject,
                date(self.not_before)
            ));
        }
        if now > self.not_after {
            return Err(format!(
                "certificate `{}` expired on {}",
                self.subject,
                date(self.not_after)
            ));
        }
        let left = self.not_after.duration_since(now).unwrap_or_default();
        Ok((left < EXPIRY_WARNING).then(|| {
            format!(
                "certificate `{}` expires on {} (in {} days): renew it",
                self.subject,
                date(self.not_after),
                left.as_secs() / 86_400
            )
        }))
    }
}

/// `2026-01-31 12:00:00 UTC`.
fn date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs))
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days: i64) -> SystemTime {
        let base = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        if days >= 0 {
            base + Duration::from_secs(days as u64 * 86_400)
        } else {
            base - Duration::from_secs((-days) as u64 * 86_400)
        }
    }

    #[test]
    fn a_certificate_is_refused_outside_its_window_and_warned_about_near_its_end() {
        let v = Validity {
            subject: "CN=node".into(),
            not_before: at(0),
            not_after: at(30),
        };
        assert!(v.judge(at(-1)).unwrap_err().contains("not valid before"));
        assert_eq!(v.judge(at(1)), Ok(None));
        let soon = v.judge(at(20)).unwrap().expect("a warning");
        assert!(
            soon.contains("in 10 days") && soon.contains("CN=node"),
            "{soon}"
        );
        let gone = v.judge(at(31)).unwrap_err();
        assert!(gone.contains("expired on"), "{gone}");
    }
}
