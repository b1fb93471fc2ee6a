//! What differs between the SQL databases Tandem runs on: URL schemes,
//! placeholder syntax, connection set-up, and which errors are transient.
//!
//! Queries are written once with `?` placeholders and rewritten to `$1..$n`
//! for PostgreSQL when the directory is opened; values are always bound,
//! never formatted into the text.

use sqlx::error::DatabaseError;

use crate::error::DirectoryError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

impl Dialect {
    pub fn from_url(url: &str) -> Result<Dialect, DirectoryError> {
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Ok(Dialect::Sqlite),
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            "mysql" | "mariadb" => Ok(Dialect::MySql),
            _ => Err(DirectoryError::Invalid(format!(
                "unsupported database URL scheme {scheme:?}: use sqlite://, postgres:// or mysql://"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
        }
    }

    /// Rewrites `?` placeholders for this dialect. Our queries contain no
    /// string literals, so every `?` is a placeholder.
    pub fn rewrite(self, sql: &str) -> String {
        if self != Dialect::Postgres {
            return sql.to_owned();
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Normalises a connection URL: SQLite files are created on first use,
    /// `mariadb://` is spelled the way the driver expects.
    pub fn connect_url(self, url: &str) -> String {
        match self {
            Dialect::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            Dialect::MySql if url.starts_with("mariadb:") => {
                format!("mysql:{}", &url["mariadb:".len()..])
            }
            _ => url.to_owned(),
        }
    }

    /// The database file of a SQLite URL, so its directory can be created.
    pub fn sqlite_path(url: &str) -> Option<&str> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && path != ":memory:").then_some(path)
    }
}

/// Maps a driver error to what a caller can act on.
pub fn map_error(e: sqlx::Error) -> DirectoryError {
    match e {
        sqlx::Error::Database(db) => map_database_error(db.as_ref()),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => DirectoryError::Unavailable(e.to_string()),
        other => DirectoryError::Backend(other.to_string()),
    }
}

fn map_database_error(db: &dyn DatabaseError) -> DirectoryError {
    if db.is_unique_violation() {
        return DirectoryError::Conflict(format!("already exists ({})", db.message()));
    }
    if db.is_foreign_key_violation() {
        return DirectoryError::NotFound(format!(
            "refers to something that does not exist ({})",
            db.message()
        ));
    }
    // Busy/locked (SQLite), too many connections (MySQL 1040, PostgreSQL
    // 53300), shutting down (57P01..57P03), read-only replica (25006).
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let transient = [
        "5", "6", "517", "1040", "1205", "1213", "53300", "57P01", "57P02", "57P03", "25006",
    ];
    if transient.contains(&code.as_str()) {
        DirectoryError::Unavailable(db.message().to_owned())
    } else {
        DirectoryError::Backend(format!("{} (code {code})", db.message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let q = "SELECT a FROM t WHERE x = ? AND y = ?";
        assert_eq!(Dialect::Sqlite.rewrite(q), q);
        assert_eq!(Dialect::MySql.rewrite(q), q);
        assert_eq!(
            Dialect::Postgres.rewrite(q),
            "SELECT a FROM t WHERE x = $1 AND y = $2"
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            Dialect::from_url("sqlite:///var/lib/x.db"),
            Ok(Dialect::Sqlite)
        );
        assert_eq!(
            Dialect::from_url("postgresql://h/db"),
            Ok(Dialect::Postgres)
        );
        assert_eq!(Dialect::from_url("mariadb://h/db"), Ok(Dialect::MySql));
        assert!(Dialect::from_url("oracle://h").is_err());
        assert_eq!(
            Dialect::Sqlite.connect_url("sqlite:///x.db"),
            "sqlite:///x.db?mode=rwc"
        );
        assert_eq!(
            Dialect::MySql.connect_url("mariadb://u@h/d"),
            "mysql://u@h/d"
        );
        assert_eq!(
            Dialect::sqlite_path("sqlite:///var/lib/t/l.db?mode=rwc"),
            Some("/var/lib/t/l.db")
        );
        assert_eq!(Dialect::sqlite_path("sqlite::memory:"), None);
    }
}
