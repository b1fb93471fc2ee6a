//! YAML configuration: one loader for every role, errors that name the file,
//! the field and what is wrong, and all problems reported at once.
//!
//! Each role's config struct is `#[serde(deny_unknown_fields)]` so that a typo
//! is an error rather than a silently ignored setting, and implements
//! [`Validate`] for the checks serde cannot express.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serializer};

/// Largest config file read; a config is a few kilobytes, anything near this
/// is a wrong path (a mailbox, a log).
const MAX_CONFIG_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One thing wrong with one field, named by its dotted path (`locator.cache.ttl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Checks serde cannot express. Implementations push every problem they find
/// rather than stopping at the first, prefixing fields with `at`.
pub trait Validate {
    fn validate(&self, at: &str, problems: &mut Problems);
}

/// Collects problems while a config is checked.
#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn push(&mut self, at: &str, field: &str, message: impl Into<String>) {
        self.0.push(Problem {
            field: join(at, field),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }
}

/// Joins a field path: `join("locator", "cache")` is `locator.cache`.
pub fn join(at: &str, field: &str) -> String {
    match (at.is_empty(), field.is_empty()) {
        (true, _) => field.to_owned(),
        (_, true) => at.to_owned(),
        _ => format!("{at}.{field}"),
    }
}

/// Reads, parses and validates a config file.
pub fn load<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigError> {
    let text = read(path)?;
    parse(path, &text)
}

/// Parses and validates config text; `path` is only used in messages.
pub fn parse<T: DeserializeOwned + Validate>(path: &Path, text: &str) -> Result<T, ConfigError> {
    let value: T = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut problems = Problems::default();
    value.validate("", &mut problems);
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems: problems.into_vec(),
        })
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    let err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(err(std::io::Error::other(format!(
            "file is {} bytes, more than a config can be ({MAX_CONFIG_BYTES})",
            meta.len()
        ))));
    }
    std::fs::read_to_string(path).map_err(err)
}

/// Parses `"90s"`, `"5m"`, `"1h"`, `"250ms"`, `"2d"` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (like 500ms, 30s, 5m, 1h, 2d)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {s:?} (ms, s, m, h, d)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Parses a byte size: `1048576`, `512K`, `100M`, `2G`, `1T` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (like 1048576, 512K, 100M, 2G)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        other => return Err(format!("unknown size unit {other:?} in {s:?} (K, M, G, T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(86_400_000) && ms > 0 {
        format!("{}d", ms / 86_400_000)
    } else if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `#[serde(with = "shared::config::size")]`: a byte size written as a
/// number or with a unit (`50M`).
pub mod size {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(n),
            Raw::Text(t) => super::parse_size(&t).map_err(serde::de::Error::custom),
        }
    }

    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*n)
    }
}

/// `#[serde(with = "shared::config::duration")]` for human durations.
pub mod duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(Duration::from_secs(n)),
            Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Debug, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        #[serde(with = "duration", default = "default_ttl")]
        ttl: Duration,
        size: u32,
    }

    fn default_ttl() -> Duration {
        Duration::from_secs(60)
    }

    impl Validate for Sample {
        fn validate(&self, at: &str, p: &mut Problems) {
            if self.size == 0 {
                p.push(at, "size", "must be at least 1");
            }
            if self.name.is_empty() {
                p.push(at, "name", "must not be empty");
            }
        }
    }

    #[test]
    fn durations() {
        for (s, want) in [
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("250ms", 250),
            ("2d", 172_800_000),
            ("7", 7000),
            ("1.5s", 1500),
        ] {
            assert_eq!(parse_duration(s).unwrap().as_millis(), want, "{s}");
            assert_eq!(
                parse_duration(&format_duration(parse_duration(s).unwrap()))
                    .unwrap()
                    .as_millis(),
                want
            );
        }
        for s in ["", "s", "5 parsecs", "-1s", "1e999s"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn sizes() {
        for (s, want) in [
            ("0", 0),
            ("1024", 1024),
            ("1K", 1024),
            ("100M", 100 << 20),
            ("2G", 2 << 30),
            ("1 TiB", 1 << 40),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
        for s in ["", "G", "1X", "-1", "99999999999T"] {
            assert!(parse_size(s).is_err(), "{s}");
        }
    }

    #[test]
    fn loads_and_names_problems() {
        let p = Path::new("/etc/tandem/x.yaml");
        let ok: Sample = parse(p, "name: a\nttl: 5m\nsize: 3\n").unwrap();
        assert_eq!(ok.ttl, Duration::from_secs(300));

        let e = parse::<Sample>(p, "name: ''\nsize: 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/tandem/x.yaml: "), "{e}");
        assert!(
            e.contains("size: must be at least 1") && e.contains("name: must not be empty"),
            "{e}"
        );

        let e = parse::<Sample>(p, "name: a\nsize: 1\nsizee: 2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.yaml") && e.contains("sizee"), "{e}");

        let e = parse::<Sample>(p, "name: a\nsize: 1\nttl: 5 parsecs\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("parsecs"), "{e}");
    }

    #[test]
    fn unreadable_file_named() {
        let e = load::<Sample>(Path::new("/nonexistent/tandem.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/tandem.yaml: cannot read"),
            "{e}"
        );
    }
}

/// The identity frontends log in to backends with (a Dovecot-style master
/// user) and its secret: `proxy_login` on backends, `backend_login` on
/// frontends.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyLogin {
    /// The SASL authcid frontends log in with.
    pub identity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Preferred over `secret`: keeps the secret out of the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
}

impl ProxyLogin {
    /// The secret, read from `secret_file` when given (trailing newline
    /// cut); errors name `at`, the section's place in the config.
    pub fn read_secret(&self, at: &str) -> Result<Vec<u8>, String> {
        match (&self.secret_file, &self.secret) {
            (Some(path), _) => std::fs::read(path)
                .map(|mut s| {
                    while s.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        s.pop();
                    }
                    s
                })
                .map_err(|e| format!("{at}.secret_file {}: {e}", path.display())),
            (None, Some(s)) => Ok(s.as_bytes().to_vec()),
            (None, None) => Err(format!("{at}: needs secret or secret_file")),
        }
    }
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}
