//! The smarthost client: RFC 5321 with EHLO, STARTTLS (RFC 3207) or
//! implicit TLS (RFC 8314), AUTH PLAIN (RFC 4954), then the transaction
//! shared with LMTP ([`super::transaction`]) with one reply after DATA.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::config::{Smarthost, SmarthostTls};
use super::dialogue::{Dialogue, DialogueError, Io};
use super::lmtp::defer_all;
use super::reply::Reply;
use super::transaction::{self, Flavour, Recorder, Transaction};

/// A configured smarthost, ready to connect.
pub struct Client {
    address: String,
    host: String,
    mode: SmarthostTls,
    tls: Option<TlsConnector>,
    /// `\0username\0password`, base64 (AUTH PLAIN's initial response).
    auth: Option<String>,
    hostname: String,
}

impl Client {
    /// Reads the CA and password files; errors name the field.
    pub fn new(cfg: &Smarthost, hostname: &str) -> Result<Client, String> {
        let host = cfg
            .address
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_owned())
            .ok_or_else(|| format!("address {:?}: expected host:port", cfg.address))?;
        let tls = match cfg.mode() {
            SmarthostTls::None => None,
            _ => Some(TlsConnector::from(Arc::new(client_config(cfg)?))),
        };
        let auth = match &cfg.auth {
            Some(a) => {
                let password = std::fs::read_to_string(&a.password_file).map_err(|e| {
                    format!("auth.password_file {}: {e}", a.password_file.display())
                })?;
                let password = password.trim_end_matches(['\r', '\n']);
                let plain = format!("\0{}\0{password}", a.username);
                Some(base64::engine::general_purpose::STANDARD.encode(plain))
            }
            None => None,
        };
        Ok(Client {
            address: cfg.address.clone(),
            host,
            mode: cfg.mode(),
            tls,
            auth,
            hostname: hostname.to_owned(),
        })
    }

    /// Relays `tx` through the smarthost; every recipient recorded once.
    pub async fn deliver<R: Recorder>(&self, timeout: Duration, tx: &Transaction<'_>, rec: &R) {
        match self.session(timeout).await {
            Ok((mut d, ehlo)) => {
                transaction::run(&mut d, &ehlo, Flavour::Smtp, tx, rec).await;
                d.quit().await;
            }
            Err(e) => {
                tracing::warn!(smarthost = %self.address, error = %e, "smarthost session failed");
                let why = format!("smarthost {}: {e}", self.address);
                defer_all(tx, rec, &why).await;
            }
        }
    }

    /// Connects and gets past greeting, EHLO, TLS and AUTH.
    async fn session(&self, timeout: Duration) -> Result<(Dialogue, Reply), DialogueError> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| DialogueError::Timeout(timeout))??;
        let _ = tcp.set_nodelay(true);
        let mut d = match (&self.tls, self.mode) {
            (Some(tls), SmarthostTls::Implicit) => {
                Dialogue::new(self.handshake(tls, Box::new(tcp), timeout).await?, timeout)
            }
            _ => Dialogue::new(Box::new(tcp), timeout),
        };
        d.expect("greeting", 2).await?;
        let mut ehlo = self.ehlo(&mut d).await?;
        if let (Some(tls), SmarthostTls::Starttls) = (&self.tls, self.mode) {
            if ehlo.extension("STARTTLS").is_none() {
                return Err(DialogueError::Refused(
                    "STARTTLS is required but not offered".into(),
                ));
            }
            let r = d.command("STARTTLS").await?;
            if r.code != 220 {
                return Err(DialogueError::Refused(format!(
                    "STARTTLS: {}",
                    r.one_line()
                )));
            }
            let io = self.handshake(tls, d.into_io()?, timeout).await?;
            d = Dialogue::new(io, timeout);
            ehlo = self.ehlo(&mut d).await?;
        }
        if let Some(auth) = &self.auth {
            let offered = ehlo
                .extension("AUTH")
                .is_some_and(|m| m.split(' ').any(|m| m.eq_ignore_ascii_case("PLAIN")));
            if !offered {
                return Err(DialogueError::Refused("AUTH PLAIN is not offered".into()));
            }
            let r = d.command(&format!("AUTH PLAIN {auth}")).await?;
            if !r.is_positive() {
                return Err(DialogueError::Refused(format!("AUTH: {}", r.one_line())));
            }
        }
        Ok((d, ehlo))
    }

    async fn ehlo(&self, d: &mut Dialogue) -> Result<Reply, DialogueError> {
        d.send(format!("EHLO {}\r\n", self.hostname).as_bytes())
            .await?;
        d.expect("EHLO", 2).await
    }

    async fn handshake(
        &self,
        tls: &TlsConnector,
        io: Box<dyn Io>,
        timeout: Duration,
    ) -> Result<Box<dyn Io>, DialogueError> {
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| DialogueError::Refused(format!("server name {:?}: {e}", self.host)))?;
        let stream = tokio::time::timeout(timeout, tls.connect(name, io))
            .await
            .map_err(|_| DialogueError::Timeout(timeout))??;
        Ok(Box::new(stream))
    }
}

impl Smarthost {
    fn mode(&self) -> SmarthostTls {
        self.tls
    }
}

fn client_config(cfg: &Smarthost) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    match &cfg.ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("ca_file {}: no certificate", path.display()));
            }
            Ok(builder.with_root_certificates(roots).with_no_client_auth())
        }
        None if cfg.insecure_skip_verify => Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()),
        None => Err("TLS needs ca_file or insecure_skip_verify: true".into()),
    }
}

/// `insecure_skip_verify: true`: any certificate is taken, signatures of
/// the handshake are still checked.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
