//! TLS to the store with rustls, as the URL's libpq parameters ask
//! ([`crate::config::store_tls`]): the CA file, the client certificate, and how much of the
//! store's certificate is checked. tokio-postgres-rustls makes the connections (and gives
//! SCRAM its channel binding). The files are read by [`crate::config::pem`], like the node
//! clients' ([`crate::upstream`]).

use crate::config::pem;
use crate::config::store_tls::{SslMode, StoreTls};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::Path;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why the store's TLS files cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsFileError {
    /// A file that cannot be used (`what` names its URL parameter; `why` names the file).
    #[error("{what} {why}")]
    File { what: &'static str, why: String },
    #[error("sslcert and sslkey do not work together: {0}")]
    Pair(String),
    #[error("{0}")]
    Rustls(String),
}

fn unusable(what: &'static str, why: impl std::fmt::Display) -> TlsFileError {
    TlsFileError::File {
        what,
        why: why.to_string(),
    }
}

/// The connector for `tls`, or why its files cannot be used.
pub fn connector(tls: &StoreTls) -> Result<MakeRustlsConnect, TlsFileError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (&tls.root_cert, tls.mode) {
        (Some(file), mode) if mode.verifies() => {
            let webpki = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(file)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| unusable("sslrootcert", format!("`{}`: {e}", file.display())))?;
            match mode {
                SslMode::VerifyCa => Arc::new(AnyName(webpki)),
                _ => webpki,
            }
        }
        _ => Arc::new(Unchecked(provider.clone())),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFileError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = pem::read_certs(cert).map_err(|e| unusable("sslcert", e))?;
            let key = pem::read_key(key).map_err(|e| unusable("sslkey", e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsFileError::Pair(e.to_string()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

fn roots(file: &Path) -> Result<RootCertStore, TlsFileError> {
    let mut roots = RootCertStore::empty();
    for cert in pem::read_certs(file).map_err(|e| unusable("sslrootcert", e))? {
        roots
            .add(cert)
            .map_err(|e| unusable("sslrootcert", format!("`{}`: {e}", file.display())))?;
    }
    Ok(roots)
}

/// Whether a connection error says the store's certificate was refused.
pub fn refused_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in [Some(err), inner].into_iter().flatten() {
            if let Some(rustls::Error::InvalidCertificate(_)) = candidate.downcast_ref() {
                return true;
            }
        }
        next = err.source();
    }
    false
}

/// `verify-ca`: the chain must lead to the CA; the name is not checked.
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
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
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

/// `prefer` and `require`: encrypted, the certificate not checked (libpq's meaning); the
/// handshake's signatures still are.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(dir: &Path, root: &str, cert: Option<&str>, key: Option<&str>) -> StoreTls {
        StoreTls {
            mode: SslMode::VerifyFull,
            root_cert: Some(dir.join(root)),
            cert: cert.map(|c| dir.join(c)),
            key: key.map(|k| dir.join(k)),
        }
    }

    #[test]
    fn an_unusable_file_is_named_with_its_url_parameter() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["db".into()]).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), ca.signing_key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("junk.pem"), "not pem").unwrap();
        let err = |t: StoreTls| connector(&t).err().expect("an error").to_string();

        let missing = err(tls(dir.path(), "gone.pem", None, None));
        assert!(
            missing.starts_with("sslrootcert `") && missing.contains("gone.pem"),
            "{missing}"
        );
        let junk = err(tls(dir.path(), "junk.pem", None, None));
        assert!(junk.starts_with("sslrootcert `"), "{junk}");
        let no_key = err(tls(dir.path(), "ca.pem", Some("ca.pem"), Some("ca.pem")));
        assert!(no_key.starts_with("sslkey `"), "{no_key}");
        let no_cert = err(tls(dir.path(), "ca.pem", Some("key.pem"), Some("key.pem")));
        assert!(no_cert.starts_with("sslcert `"), "{no_cert}");
        assert!(connector(&tls(dir.path(), "ca.pem", Some("ca.pem"), Some("key.pem"))).is_ok());
    }
}
