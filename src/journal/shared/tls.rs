//! TLS to the store with rustls, as the URL's libpq parameters ask
//! ([`crate::config::store_tls`]): the CA file, the client certificate, and how much of the
//! store's certificate is checked. tokio-postgres-rustls makes the connections (and gives
//! SCRAM its channel binding).

use crate::config::store_tls::{SslMode, StoreTls};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::Path;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why the store's TLS files cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsFileError {
    /// A certificate file that cannot be read or parsed (`what` names its URL parameter).
    #[error("{what} `{file}`: {why}")]
    Unreadable {
        what: &'static str,
        file: String,
        why: String,
    },
    #[error("{what} `{file}` holds no PEM certificate")]
    NoCertificate { what: &'static str, file: String },
    #[error("sslkey `{file}`: no usable private key ({why})")]
    Key { file: String, why: String },
    #[error("sslcert and sslkey do not work together: {0}")]
    Pair(String),
    #[error("{0}")]
    Rustls(String),
}

fn unreadable(what: &'static str, file: &Path, why: impl std::fmt::Display) -> TlsFileError {
    TlsFileError::Unreadable {
        what,
        file: file.display().to_string(),
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
            .map_err(|e| unreadable("sslrootcert", file, e))?;
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
            let chain = certificates(cert, "sslcert")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsFileError::Key {
                file: key.display().to_string(),
                why: e.to_string(),
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsFileError::Pair(e.to_string()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

fn certificates(
    file: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unreadable(what, file, e))?;
    if certs.is_empty() {
        return Err(TlsFileError::NoCertificate {
            what,
            file: file.display().to_string(),
        });
    }
    Ok(certs)
}

fn roots(file: &Path) -> Result<RootCertStore, TlsFileError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(file, "sslrootcert")? {
        roots
            .add(cert)
            .map_err(|e| unreadable("sslrootcert", file, e))?;
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
