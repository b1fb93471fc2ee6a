//! Password hashes with Dovecot-style scheme prefixes, so that existing user
//! bases (Dovecot passdbs, OpenLDAP `userPassword`) import unchanged.
//!
//! A stored hash is `{SCHEME}data`. New passwords get `{ARGON2ID}` (PHC string,
//! as `doveadm pw -s ARGON2ID` writes). Verification is constant-time in the
//! secret: digests are compared with `subtle`, and `PLAIN` compares digests of
//! both sides so that not even the length leaks. An unknown or malformed scheme
//! is an error for the operator, never a successful login.
//!
//! Key derivation is slow on purpose; callers on an async runtime run
//! [`verify`] through [`crate::blocking`].

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Argon2id cost for new hashes: OWASP's 19 MiB, 2 passes, 1 lane. Dovecot's
/// own default (64 MiB, t=3) costs ~4x more per login; existing hashes keep
/// whatever parameters they were made with.
const ARGON2_M_KIB: u32 = 19 * 1024;
const ARGON2_T: u32 = 2;
const ARGON2_P: u32 = 1;

/// The schemes Tandem verifies. `scheme_name` gives the prefix spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Argon2id,
    Argon2i,
    Sha512Crypt,
    Sha256Crypt,
    BlfCrypt,
    /// `{CRYPT}`: the format is told by the `$id$` of the data.
    Crypt,
    Ssha512,
    Ssha256,
    Ssha,
    Sha512,
    Sha256,
    Sha1,
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password hash has no {{SCHEME}} prefix")]
    NoScheme,
    #[error("unknown password scheme {{{0}}}")]
    UnknownScheme(String),
    #[error("malformed {{{scheme}}} password hash: {reason}")]
    Malformed {
        scheme: &'static str,
        reason: String,
    },
    #[error("could not hash password: {0}")]
    Hash(String),
}

/// Binary digests may be stored base64 (Dovecot's default) or hex (`.HEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Base64,
    Hex,
}

impl Scheme {
    pub fn parse(name: &str) -> Option<Scheme> {
        Some(match name.to_ascii_uppercase().as_str() {
            "ARGON2ID" => Scheme::Argon2id,
            "ARGON2I" => Scheme::Argon2i,
            "SHA512-CRYPT" => Scheme::Sha512Crypt,
            "SHA256-CRYPT" => Scheme::Sha256Crypt,
            "BLF-CRYPT" => Scheme::BlfCrypt,
            "CRYPT" => Scheme::Crypt,
            "SSHA512" => Scheme::Ssha512,
            "SSHA256" => Scheme::Ssha256,
            "SSHA" => Scheme::Ssha,
            "SHA512" => Scheme::Sha512,
            "SHA256" => Scheme::Sha256,
            "SHA" | "SHA1" => Scheme::Sha1,
            "PLAIN" | "CLEAR" | "CLEARTEXT" => Scheme::Plain,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Argon2id => "ARGON2ID",
            Scheme::Argon2i => "ARGON2I",
            Scheme::Sha512Crypt => "SHA512-CRYPT",
            Scheme::Sha256Crypt => "SHA256-CRYPT",
            Scheme::BlfCrypt => "BLF-CRYPT",
            Scheme::Crypt => "CRYPT",
            Scheme::Ssha512 => "SSHA512",
            Scheme::Ssha256 => "SSHA256",
            Scheme::Ssha => "SSHA",
            Scheme::Sha512 => "SHA512",
            Scheme::Sha256 => "SHA256",
            Scheme::Sha1 => "SHA",
            Scheme::Plain => "PLAIN",
        }
    }
}

/// Splits `{SCHEME[.ENC]}data`.
fn split(stored: &str) -> Result<(Scheme, Encoding, &str), PasswordError> {
    let rest = stored.strip_prefix('{').ok_or(PasswordError::NoScheme)?;
    let close = rest.find('}').ok_or(PasswordError::NoScheme)?;
    let (label, data) = (&rest[..close], &rest[close + 1..]);
    let (name, enc) = match label.rsplit_once('.') {
        Some((n, e)) if e.eq_ignore_ascii_case("HEX") => (n, Encoding::Hex),
        Some((n, e)) if e.eq_ignore_ascii_case("B64") || e.eq_ignore_ascii_case("BASE64") => {
            (n, Encoding::Base64)
        }
        _ => (label, Encoding::Base64),
    };
    let scheme = Scheme::parse(name).ok_or_else(|| PasswordError::UnknownScheme(label.into()))?;
    Ok((scheme, enc, data))
}

/// Checks whether `stored` is a hash Tandem can verify, without a password.
pub fn check_format(stored: &str) -> Result<Scheme, PasswordError> {
    let (scheme, enc, data) = split(stored)?;
    match scheme {
        Scheme::Argon2id | Scheme::Argon2i => {
            PasswordHash::new(data).map_err(|e| malformed(scheme, e))?;
        }
        Scheme::Sha512Crypt | Scheme::Sha256Crypt | Scheme::BlfCrypt | Scheme::Crypt => {
            match crypt_kind(scheme, data)? {
                CryptKind::Sha512 | CryptKind::Sha256 => {
                    parse_sha_crypt(scheme, data)?;
                }
                CryptKind::Bcrypt if data.len() != 60 => {
                    return Err(malformed(scheme, "bcrypt hashes are 60 characters"));
                }
                CryptKind::Argon2 => {
                    PasswordHash::new(data).map_err(|e| malformed(scheme, e))?;
                }
                CryptKind::Bcrypt => {}
            }
        }
        Scheme::Ssha512 | Scheme::Ssha256 | Scheme::Ssha => {
            let raw = decode(scheme, enc, data)?;
            if raw.len() <= digest_len(scheme) {
                return Err(malformed(scheme, "no salt after the digest"));
            }
        }
        Scheme::Sha512 | Scheme::Sha256 | Scheme::Sha1 => {
            if decode(scheme, enc, data)?.len() != digest_len(scheme) {
                return Err(malformed(scheme, "wrong digest length"));
            }
        }
        Scheme::Plain => {}
    }
    Ok(scheme)
}

/// Verifies `password` against a stored `{SCHEME}` hash. `Ok(false)` is a
/// wrong password; `Err` means the stored hash itself is unusable.
pub fn verify(password: &[u8], stored: &str) -> Result<bool, PasswordError> {
    let (scheme, enc, data) = split(stored)?;
    match scheme {
        Scheme::Argon2id | Scheme::Argon2i => verify_argon2(scheme, password, data),
        Scheme::Sha512Crypt | Scheme::Sha256Crypt | Scheme::BlfCrypt | Scheme::Crypt => {
            match crypt_kind(scheme, data)? {
                CryptKind::Sha512 => verify_sha_crypt(scheme, password, data, true),
                CryptKind::Sha256 => verify_sha_crypt(scheme, password, data, false),
                CryptKind::Bcrypt => {
                    bcrypt::verify(password, data).map_err(|e| malformed(scheme, e))
                }
                CryptKind::Argon2 => verify_argon2(scheme, password, data),
            }
        }
        Scheme::Ssha512 | Scheme::Ssha256 | Scheme::Ssha => {
            let raw = decode(scheme, enc, data)?;
            let n = digest_len(scheme);
            if raw.len() <= n {
                return Err(malformed(scheme, "no salt after the digest"));
            }
            let (want, salt) = raw.split_at(n);
            Ok(digest(scheme, &[password, salt]).ct_eq(want).into())
        }
        Scheme::Sha512 | Scheme::Sha256 | Scheme::Sha1 => {
            let raw = decode(scheme, enc, data)?;
            if raw.len() != digest_len(scheme) {
                return Err(malformed(scheme, "wrong digest length"));
            }
            Ok(digest(scheme, &[password]).ct_eq(&raw).into())
        }
        Scheme::Plain => {
            let a = Sha256::digest(password);
            let b = Sha256::digest(data.as_bytes());
            Ok(a.ct_eq(&b).into())
        }
    }
}

/// Hashes a new password with the default scheme, `{ARGON2ID}`.
pub fn hash(password: &[u8]) -> Result<String, PasswordError> {
    hash_with(Scheme::Argon2id, password)
}

/// Hashes with a chosen scheme; `PLAIN` and the unsalted digests are refused.
pub fn hash_with(scheme: Scheme, password: &[u8]) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let data = match scheme {
        Scheme::Argon2id | Scheme::Argon2i => {
            let params = argon2::Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None)
                .map_err(|e| PasswordError::Hash(e.to_string()))?;
            let alg = if scheme == Scheme::Argon2id {
                argon2::Algorithm::Argon2id
            } else {
                argon2::Algorithm::Argon2i
            };
            let a = argon2::Argon2::new(alg, argon2::Version::V0x13, params);
            let salt =
                SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
            a.hash_password(password, &salt)
                .map_err(|e| PasswordError::Hash(e.to_string()))?
                .to_string()
        }
        Scheme::Sha512Crypt | Scheme::Sha256Crypt => {
            // The crypt alphabet: 16 salt characters as glibc makes them.
            const ALPHABET: &[u8] =
                b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
            let salt: String = salt
                .iter()
                .map(|b| ALPHABET[(*b & 63) as usize] as char)
                .collect();
            let rounds = 5000;
            if scheme == Scheme::Sha512Crypt {
                let p = sha_crypt::Sha512Params::new(rounds)
                    .map_err(|e| PasswordError::Hash(format!("{e:?}")))?;
                let h = sha_crypt::sha512_crypt_b64(password, salt.as_bytes(), &p)
                    .map_err(|e| PasswordError::Hash(format!("{e:?}")))?;
                format!("$6${salt}${h}")
            } else {
                let p = sha_crypt::Sha256Params::new(rounds)
                    .map_err(|e| PasswordError::Hash(format!("{e:?}")))?;
                let h = sha_crypt::sha256_crypt_b64(password, salt.as_bytes(), &p)
                    .map_err(|e| PasswordError::Hash(format!("{e:?}")))?;
                format!("$5${salt}${h}")
            }
        }
        Scheme::BlfCrypt => bcrypt::hash_with_salt(password, 10, salt)
            .map_err(|e| PasswordError::Hash(e.to_string()))?
            .format_for_version(bcrypt::Version::TwoY),
        Scheme::Ssha512 | Scheme::Ssha256 | Scheme::Ssha => {
            let mut raw = digest(scheme, &[password, &salt]);
            raw.extend_from_slice(&salt);
            B64.encode(raw)
        }
        Scheme::Crypt | Scheme::Sha512 | Scheme::Sha256 | Scheme::Sha1 | Scheme::Plain => {
            return Err(PasswordError::Hash(format!(
                "{{{}}} is accepted for import but not used for new passwords",
                scheme.name()
            )));
        }
    };
    Ok(format!("{{{}}}{}", scheme.name(), data))
}

/// Spends the same effort as verifying a default hash, for logins to accounts
/// that do not exist: the response time must not tell them apart.
pub fn dummy_verify(password: &[u8]) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash(b"tandem-dummy").unwrap_or_default());
    let _ = verify(password, stored);
}

enum CryptKind {
    Sha512,
    Sha256,
    Bcrypt,
    Argon2,
}

fn crypt_kind(scheme: Scheme, data: &str) -> Result<CryptKind, PasswordError> {
    let kind = if data.starts_with("$6$") {
        CryptKind::Sha512
    } else if data.starts_with("$5$") {
        CryptKind::Sha256
    } else if ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|p| data.starts_with(p))
    {
        CryptKind::Bcrypt
    } else if data.starts_with("$argon2") {
        CryptKind::Argon2
    } else {
        return Err(malformed(
            scheme,
            "unsupported crypt format (expected $6$, $5$, $2y$ or $argon2)",
        ));
    };
    let consistent = matches!(
        (scheme, &kind),
        (Scheme::Crypt, _)
            | (Scheme::Sha512Crypt, CryptKind::Sha512)
            | (Scheme::Sha256Crypt, CryptKind::Sha256)
            | (Scheme::BlfCrypt, CryptKind::Bcrypt)
    );
    if !consistent {
        return Err(malformed(
            scheme,
            "crypt identifier does not match the scheme",
        ));
    }
    Ok(kind)
}

fn verify_argon2(scheme: Scheme, password: &[u8], data: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(data).map_err(|e| malformed(scheme, e))?;
    match argon2::Argon2::default().verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(malformed(scheme, e)),
    }
}

/// The fields of `$6$[rounds=N$]salt$hash`, with glibc's clamping applied.
fn parse_sha_crypt(scheme: Scheme, data: &str) -> Result<(usize, &[u8], &str), PasswordError> {
    let mut parts = data.split('$').skip(2);
    let mut next = parts.next().ok_or_else(|| malformed(scheme, "no salt"))?;
    let rounds = match next.strip_prefix("rounds=") {
        Some(n) => {
            let r: usize = n.parse().map_err(|_| malformed(scheme, "bad rounds"))?;
            next = parts.next().ok_or_else(|| malformed(scheme, "no salt"))?;
            r
        }
        None => 5000,
    };
    let salt = next;
    let hash = parts.next().ok_or_else(|| malformed(scheme, "no hash"))?;
    if parts.next().is_some() || hash.is_empty() {
        return Err(malformed(scheme, "no hash or trailing fields"));
    }
    // glibc clamps rounds into [1000, 999999999] and salts to 16 characters.
    let salt = &salt.as_bytes()[..salt.len().min(16)];
    Ok((rounds.clamp(1000, 999_999_999), salt, hash))
}

/// Compares crypt-base64 strings in constant time.
fn verify_sha_crypt(
    scheme: Scheme,
    password: &[u8],
    data: &str,
    sha512: bool,
) -> Result<bool, PasswordError> {
    let (rounds, salt, want) = parse_sha_crypt(scheme, data)?;
    let got = if sha512 {
        let p = sha_crypt::Sha512Params::new(rounds)
            .map_err(|e| malformed(scheme, format!("{e:?}")))?;
        sha_crypt::sha512_crypt_b64(password, salt, &p)
    } else {
        let p = sha_crypt::Sha256Params::new(rounds)
            .map_err(|e| malformed(scheme, format!("{e:?}")))?;
        sha_crypt::sha256_crypt_b64(password, salt, &p)
    }
    .map_err(|e| malformed(scheme, format!("{e:?}")))?;
    Ok(got.as_bytes().ct_eq(want.as_bytes()).into())
}

fn digest_len(scheme: Scheme) -> usize {
    match scheme {
        Scheme::Ssha512 | Scheme::Sha512 => 64,
        Scheme::Ssha256 | Scheme::Sha256 => 32,
        _ => 20,
    }
}

fn digest(scheme: Scheme, parts: &[&[u8]]) -> Vec<u8> {
    match scheme {
        Scheme::Ssha512 | Scheme::Sha512 => {
            let mut h = Sha512::new();
            parts.iter().for_each(|p| h.update(p));
            h.finalize().to_vec()
        }
        Scheme::Ssha256 | Scheme::Sha256 => {
            let mut h = Sha256::new();
            parts.iter().for_each(|p| h.update(p));
            h.finalize().to_vec()
        }
        _ => {
            let mut h = Sha1::new();
            parts.iter().for_each(|p| h.update(p));
            h.finalize().to_vec()
        }
    }
}

fn decode(scheme: Scheme, enc: Encoding, data: &str) -> Result<Vec<u8>, PasswordError> {
    match enc {
        Encoding::Base64 => B64.decode(data.trim()).map_err(|e| malformed(scheme, e)),
        Encoding::Hex => {
            let d = data.trim();
            if !d.len().is_multiple_of(2) {
                return Err(malformed(scheme, "odd hex length"));
            }
            (0..d.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(d.get(i..i + 2).unwrap_or("zz"), 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| malformed(scheme, "bad hex digit"))
        }
    }
}

fn malformed(scheme: Scheme, reason: impl std::fmt::Display) -> PasswordError {
    PasswordError::Malformed {
        scheme: scheme.name(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes of "secret" made by Debian 12's `doveadm pw -s SCHEME -p secret`
    /// (Dovecot 2.3.19) and, for the second {SSHA}, by `slappasswd -h {SSHA}`.
    const KNOWN: &[&str] = &[
        "{PLAIN}secret",
        "{CLEARTEXT}secret",
        "{SHA512-CRYPT}$6$akqTtQFzRdl2iele$LAd/FKX9gfHWe31KfsDSePAVirhzn2pkCXtFZR2iTxwI1QoudOjyPXaQhk501p0t6tpf1CiqhAh/2S/x8.vQV.",
        "{SHA256-CRYPT}$5$TUXudF3KUSW3UnbM$qsPy82s8sxWuWu6bd06f7SxSmhflWzbZvOLV7ZKyvb3",
        "{BLF-CRYPT}$2y$05$XWzLMMOcHI7M5FHKmHSM1uf9ribU7RGRm5qbBqi865LPfbUYFcLpC",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$A9eSqgprLaIlNeXjgtEDaA$jxyArAVwcb2kCCjgJXeqDbdHDFcDkjLrLai2+M48eSE",
        "{SSHA512}mFaSG3NmwleavsHLeiVGQGuxa8MherNeRnBJYxvs/+roVicX1hkBFNAqPf50vtTkYq/zCtD1cR8b49cksTQpE47DfBY=",
        "{SSHA}3vn/9kWETgHqErQG5T4hn50Hu6mmatuT",
        "{SSHA}h7rohN+JR6XxPRxD9XEe5L9dSdxioHJ3",
        "{CRYPT}$6$akqTtQFzRdl2iele$LAd/FKX9gfHWe31KfsDSePAVirhzn2pkCXtFZR2iTxwI1QoudOjyPXaQhk501p0t6tpf1CiqhAh/2S/x8.vQV.",
        "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",
        "{SHA256}K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=",
    ];

    #[test]
    fn known_hashes_verify() {
        for stored in KNOWN {
            assert_eq!(verify(b"secret", stored), Ok(true), "{stored}");
            assert_eq!(verify(b"Secret", stored), Ok(false), "{stored}");
            assert_eq!(verify(b"", stored), Ok(false), "{stored}");
            assert!(check_format(stored).is_ok(), "{stored}");
        }
    }

    #[test]
    fn round_trips_every_hashing_scheme() {
        for scheme in [
            Scheme::Argon2id,
            Scheme::Argon2i,
            Scheme::Sha512Crypt,
            Scheme::Sha256Crypt,
            Scheme::BlfCrypt,
            Scheme::Ssha512,
            Scheme::Ssha256,
            Scheme::Ssha,
        ] {
            let h = hash_with(scheme, "pässwörd".as_bytes()).unwrap();
            assert!(h.starts_with(&format!("{{{}}}", scheme.name())), "{h}");
            assert_eq!(verify("pässwörd".as_bytes(), &h), Ok(true), "{h}");
            assert_eq!(verify(b"passwoerd", &h), Ok(false), "{h}");
            assert_eq!(check_format(&h), Ok(scheme));
        }
    }

    #[test]
    fn default_is_argon2id() {
        let h = hash(b"x").unwrap();
        assert!(
            h.starts_with("{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$"),
            "{h}"
        );
    }

    #[test]
    fn ssha_hex_and_salt_layout() {
        // digest || salt, as OpenLDAP and Dovecot lay {SSHA} out.
        let salt = b"NaCl";
        let mut raw = Sha1::digest([b"secret".as_slice(), salt].concat()).to_vec();
        raw.extend_from_slice(salt);
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            verify(b"secret", &format!("{{SSHA}}{}", B64.encode(&raw))),
            Ok(true)
        );
        assert_eq!(verify(b"secret", &format!("{{SSHA.HEX}}{hex}")), Ok(true));
        assert_eq!(verify(b"secreT", &format!("{{SSHA.HEX}}{hex}")), Ok(false));
    }

    #[test]
    fn unusable_hashes_are_errors_not_logins() {
        let bad = [
            ("secret", PasswordError::NoScheme),
            (
                "{MD5-CRYPT}$1$abc$def",
                PasswordError::UnknownScheme("MD5-CRYPT".into()),
            ),
            ("{NOPE}secret", PasswordError::UnknownScheme("NOPE".into())),
        ];
        for (stored, want) in bad {
            assert_eq!(verify(b"secret", stored), Err(want), "{stored}");
        }
        for stored in [
            "{SSHA}!!!notbase64",
            "{SSHA}AAAA",
            "{SHA512-CRYPT}$5$abc$def",
            "{BLF-CRYPT}$6$abc$def",
            "{ARGON2ID}garbage",
            "{CRYPT}$1$md5$hash",
            "{SHA512-CRYPT}$6$",
            "{SHA256}AAAA",
            "{SSHA.HEX}abc",
        ] {
            assert!(
                matches!(
                    verify(b"secret", stored),
                    Err(PasswordError::Malformed { .. })
                ),
                "{stored}"
            );
            assert!(check_format(stored).is_err(), "{stored}");
        }
    }

    #[test]
    fn plain_and_unsalted_are_not_made() {
        assert!(hash_with(Scheme::Plain, b"x").is_err());
        assert!(hash_with(Scheme::Sha1, b"x").is_err());
    }
}
