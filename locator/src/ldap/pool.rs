//! Connections to the directory server, kept in a deadpool pool.
//!
//! A connection is opened with ldap3 (`ldap://`, `ldaps://`, or StartTLS per
//! RFC 4511 §4.14), its I/O driven by a spawned task as ldap3 requires, and
//! bound with a simple bind (RFC 4513 §5.1.3) as the service DN. A pooled
//! connection is handed out again only if its driver is still running and,
//! after a quiet spell, if the server still answers a Who Am I? (RFC 4532):
//! idle connections are what servers and firewalls drop silently.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult};
use ldap3::exop::WhoAmI;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::DirectoryError;

/// Idle time after which a pooled connection is probed before reuse.
const PROBE_AFTER: Duration = Duration::from_secs(15);

/// How to open one connection: the part shared by the service pool and the
/// password-checking pool.
pub(crate) struct Connector {
    pub url: String,
    pub settings: LdapConnSettings,
    pub timeout: Duration,
}

impl Connector {
    /// Opens an unbound connection.
    pub async fn open(&self) -> Result<Ldap, DirectoryError> {
        let settings = self.settings.clone().set_conn_timeout(self.timeout);
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(|e| map_error(e, &format!("cannot connect to {}", self.url)))?;
        let url = self.url.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(url, error = %e, "LDAP connection ended");
            }
        });
        Ok(ldap)
    }
}

/// Creates connections bound as `bind` (anonymous when `None`), and checks
/// them before reuse.
pub(crate) struct Manager {
    pub connector: Arc<Connector>,
    pub bind: Option<(String, String)>,
}

impl managed::Manager for Manager {
    type Type = Ldap;
    type Error = DirectoryError;

    async fn create(&self) -> Result<Ldap, DirectoryError> {
        let mut ldap = self.connector.open().await?;
        if let Some((dn, password)) = &self.bind {
            let res = ldap
                .with_timeout(self.connector.timeout)
                .simple_bind(dn, password)
                .await
                .map_err(|e| map_error(e, &format!("bind as {dn}")))?;
            if res.rc != 0 {
                return Err(match res.rc {
                    49 => DirectoryError::Backend(format!(
                        "bind as {dn} refused: invalid credentials; check ldap.bind_dn and its password"
                    )),
                    _ => from_result(&res, &format!("bind as {dn}")),
                });
            }
        }
        Ok(ldap)
    }

    async fn recycle(&self, ldap: &mut Ldap, metrics: &Metrics) -> RecycleResult<DirectoryError> {
        if ldap.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        if metrics.last_used() > PROBE_AFTER {
            let alive = ldap
                .with_timeout(self.connector.timeout)
                .extended(WhoAmI)
                .await
                .is_ok_and(|r| r.1.rc == 0);
            if !alive {
                return Err(RecycleError::message("connection did not answer Who Am I?"));
            }
        }
        Ok(())
    }
}

/// A rustls client config trusting the CA certificates in the PEM file at
/// `path` (for servers with a private CA). The file is read off the runtime.
pub(crate) async fn tls_config(path: &Path) -> Result<Arc<ClientConfig>, DirectoryError> {
    let bad = |reason: String| {
        DirectoryError::Invalid(format!("ldap.tls_ca_file {}: {reason}", path.display()))
    };
    let pem = tokio::fs::read(path)
        .await
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(format!("not PEM certificates: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("unusable certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad(
            "no certificate found (expected PEM \"BEGIN CERTIFICATE\")".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DirectoryError::Backend(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub(crate) type Pool = managed::Pool<Manager>;
pub(crate) type Conn = Object<Manager>;

pub(crate) fn build(
    manager: Manager,
    size: usize,
    timeout: Duration,
) -> Result<Pool, DirectoryError> {
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(|e| DirectoryError::Backend(format!("cannot build the LDAP pool: {e}")))
}

/// A connection from `pool`, or why there is none.
pub(crate) async fn get(pool: &Pool) -> Result<Conn, DirectoryError> {
    pool.get().await.map_err(|e| match e {
        PoolError::Backend(e) => e,
        PoolError::Timeout(_) => DirectoryError::Unavailable(format!(
            "no LDAP connection within {:?}",
            pool.timeouts().wait.unwrap_or_default()
        )),
        PoolError::Closed => DirectoryError::Unavailable("the LDAP pool is closed".into()),
        other => DirectoryError::Backend(format!("LDAP pool: {other}")),
    })
}

/// Whether `e` means the connection itself is broken (as opposed to the
/// server refusing one operation): such a connection is not reused.
pub(crate) fn is_connection_error(e: &LdapError) -> bool {
    !matches!(
        e,
        LdapError::LdapResult { .. }
            | LdapError::FilterParsing
            | LdapError::AddNoValues
            | LdapError::DecodingUTF8
    )
}

/// Whether the request never left this process, so repeating it on another
/// connection cannot apply it twice.
pub(crate) fn never_sent(e: &LdapError) -> bool {
    matches!(e, LdapError::OpSend { .. })
}

/// Maps a client-side failure; `what` says what was being done.
pub(crate) fn map_error(e: LdapError, what: &str) -> DirectoryError {
    match e {
        LdapError::LdapResult { result } => from_result(&result, what),
        LdapError::UrlParsing { .. }
        | LdapError::UnknownScheme(_)
        | LdapError::DNSName { .. }
        | LdapError::FilterParsing
        | LdapError::AddNoValues
        | LdapError::DecodingUTF8 => DirectoryError::Backend(format!("{what}: {e}")),
        LdapError::Timeout { .. } => {
            DirectoryError::Unavailable(format!("{what}: the LDAP server did not answer in time"))
        }
        other => DirectoryError::Unavailable(format!("{what}: {other}")),
    }
}

/// Maps an LDAP result code (RFC 4511 Appendix A) that is not success.
/// Callers that expect a code (no such entry, already exists) replace the
/// message with one that names the account or domain.
pub(crate) fn from_result(r: &LdapResult, what: &str) -> DirectoryError {
    let msg = format!("{what}: {r}");
    match r.rc {
        32 => DirectoryError::NotFound(msg),
        68 => DirectoryError::Conflict(msg),
        66 => DirectoryError::Invalid(msg),
        // timeLimitExceeded, busy, unavailable: the server says try later.
        3 | 51 | 52 => DirectoryError::Unavailable(msg),
        _ => DirectoryError::Backend(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rc: u32) -> LdapResult {
        LdapResult {
            rc,
            matched: String::new(),
            text: "details".into(),
            refs: vec![],
            ctrls: vec![],
        }
    }

    #[test]
    fn result_codes() {
        for (rc, kind) in [
            (32, "not_found"),
            (68, "conflict"),
            (66, "invalid"),
            (51, "unavailable"),
            (52, "unavailable"),
            (3, "unavailable"),
            (50, "backend"),
            (65, "backend"),
            (80, "backend"),
        ] {
            let e = from_result(&result(rc), "doing x");
            assert_eq!(e.kind(), kind, "rc {rc}");
            let text = e.to_string();
            assert!(
                text.contains("doing x") && text.contains(&format!("rc={rc}")),
                "{text}"
            );
        }
    }

    #[test]
    fn client_errors() {
        let io = LdapError::Io {
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(is_connection_error(&io));
        assert!(map_error(io, "connect").is_transient());
        let rc = LdapError::LdapResult { result: result(32) };
        assert!(!is_connection_error(&rc));
        assert_eq!(map_error(rc, "x").kind(), "not_found");
        assert_eq!(map_error(LdapError::FilterParsing, "x").kind(), "backend");
    }
}
