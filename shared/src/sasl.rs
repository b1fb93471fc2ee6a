//! SASL PLAIN (RFC 4616), the one mechanism every tier speaks: users to
//! frontends, and frontends to backends as a trusted proxy (authzid = the
//! user, authcid = the proxy identity, like a Dovecot master user).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Longest base64 PLAIN response accepted (three 255-byte fields and slack).
pub const MAX_PLAIN: usize = 2048;

#[derive(Clone, PartialEq, Eq)]
pub struct Plain {
    /// Whom to act as; empty for "myself".
    pub authzid: String,
    /// Who is logging in.
    pub authcid: String,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plain")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .finish_non_exhaustive()
    }
}

impl Plain {
    /// The identity the session is for: authzid when given, else authcid.
    pub fn user(&self) -> &str {
        if self.authzid.is_empty() {
            &self.authcid
        } else {
            &self.authzid
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("response too long")]
    TooLong,
    #[error("invalid base64")]
    Base64,
    #[error("malformed PLAIN response")]
    Malformed,
    #[error("authentication cancelled")]
    Cancelled,
}

/// Decodes a base64 PLAIN response (`*` is the client cancelling).
pub fn decode_plain(b64: &[u8]) -> Result<Plain, SaslError> {
    if b64 == b"*" {
        return Err(SaslError::Cancelled);
    }
    if b64.len() > MAX_PLAIN {
        return Err(SaslError::TooLong);
    }
    let raw = STANDARD.decode(b64).map_err(|_| SaslError::Base64)?;
    parse_plain(&raw)
}

/// Parses a decoded PLAIN response (`authzid NUL authcid NUL password`),
/// for protocol parsers that already took the base64 off.
pub fn parse_plain(raw: &[u8]) -> Result<Plain, SaslError> {
    if raw.len() > MAX_PLAIN {
        return Err(SaslError::TooLong);
    }
    let mut parts = raw.splitn(3, |&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    if authcid.is_empty() || password.contains(&0) {
        return Err(SaslError::Malformed);
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SaslError::Malformed);
    Ok(Plain {
        authzid: text(authzid)?,
        authcid: text(authcid)?,
        password: password.to_vec(),
    })
}

/// Encodes a PLAIN response, base64, for a client (the frontend's proxy).
pub fn encode_plain(authzid: &str, authcid: &str, password: &[u8]) -> String {
    let mut raw = Vec::with_capacity(authzid.len() + authcid.len() + password.len() + 2);
    raw.extend_from_slice(authzid.as_bytes());
    raw.push(0);
    raw.extend_from_slice(authcid.as_bytes());
    raw.push(0);
    raw.extend_from_slice(password);
    STANDARD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok = |z: &str, c: &str, p: &[u8]| {
            let d = decode_plain(encode_plain(z, c, p).as_bytes()).unwrap();
            assert_eq!(
                (d.authzid.as_str(), d.authcid.as_str(), &d.password[..]),
                (z, c, p)
            );
        };
        ok("", "alice@example.com", b"pw");
        ok("bob@example.com", "proxy", b"s3cret with spaces");
        let bad: &[(&[u8], SaslError)] = &[
            (b"*", SaslError::Cancelled),
            (b"!!!", SaslError::Base64),
            (b"YWxpY2U=", SaslError::Malformed), // "alice": no NULs
            (b"AABwdw==", SaslError::Malformed), // empty authcid
            (b"AGEAcAB3", SaslError::Malformed), // NUL in password
            (&[b'A'; MAX_PLAIN + 4], SaslError::TooLong),
        ];
        for (input, want) in bad {
            assert_eq!(decode_plain(input).unwrap_err(), *want, "{input:?}");
        }
        let d = decode_plain(encode_plain("", "a", b"hunter2").as_bytes()).unwrap();
        assert_eq!(d.user(), "a");
        assert!(
            !format!("{d:?}").contains("hunter2"),
            "passwords stay out of logs"
        );
    }
}
