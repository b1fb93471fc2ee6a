//! rustls server configuration from PEM files, with certificate reload.
//!
//! One crypto provider for the whole process (aws-lc-rs): binaries call
//! [`install_crypto_provider`] first thing in `main`. The certificate sits
//! behind a resolver that [`CertReloader::reload`] swaps atomically, so a
//! renewed certificate takes effect for new handshakes without a restart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read certificates: {reason}")]
    Certs { path: PathBuf, reason: String },
    #[error("{path}: no certificate found (expected PEM \"BEGIN CERTIFICATE\")")]
    NoCerts { path: PathBuf },
    #[error("{path}: cannot read private key: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("{cert} / {key}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// Installs aws-lc-rs as the process-wide rustls provider. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Reads a certificate chain and its private key from PEM files.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Certs {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certs {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCerts {
            path: cert.to_owned(),
        });
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(chain, der, &provider).map_err(|e| TlsError::Mismatch {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// A certificate that can be replaced while the server runs.
pub struct CertReloader {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertReloader")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

impl CertReloader {
    pub fn new(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let ck = load_certified_key(cert, key)?;
        Ok(Arc::new(CertReloader {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(ck)),
        }))
    }

    /// Re-reads both files; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let ck = Arc::new(load_certified_key(&self.cert, &self.key)?);
        match self.current.write() {
            Ok(mut g) => *g = ck,
            Err(poisoned) => *poisoned.into_inner() = ck,
        }
        Ok(())
    }

    /// Re-reads the files on every SIGHUP until `stop` fires; a failed
    /// reload is logged and the old certificate stays in use.
    pub fn reload_on_sighup(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot watch SIGHUP; certificates reload only on restart");
            return;
        };
        let certs = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = hup.recv() => match certs.reload() {
                        Ok(()) => tracing::info!(cert = %certs.cert.display(), "TLS certificate reloaded"),
                        Err(e) => tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one"),
                    },
                }
            }
        });
    }

    /// A server config (TLS 1.2 and 1.3, no client auth) over this certificate.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let mut cfg = ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }
}

impl ResolvesServerCert for CertReloader {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.current.read() {
            Ok(g) => Some(g.clone()),
            Err(poisoned) => Some(poisoned.into_inner().clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let e = load_certified_key(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("cert.pem"), "{e}");
        std::fs::write(&cert, "not a pem\n").unwrap();
        let e = load_certified_key(&cert, &key).unwrap_err().to_string();
        assert!(
            e.contains("cert.pem") && e.contains("no certificate"),
            "{e}"
        );
    }
}
