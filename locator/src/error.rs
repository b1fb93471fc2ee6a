//! Directory errors, typed by who is at fault and whether a retry may help.

/// An error from a [`crate::Directory`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The directory could not be reached or did not answer in time. Retrying
    /// later may help; lookups fall back to stale cache entries.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The thing named does not exist (an unknown domain, cluster, account).
    #[error("{0}")]
    NotFound(String),
    /// The thing to add exists already, or an address is taken.
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong (bad name, removing a non-empty domain).
    #[error("{0}")]
    Invalid(String),
    /// The directory answered something Tandem cannot use (a corrupt entry,
    /// an unknown password scheme, a schema mismatch).
    #[error("directory error: {0}")]
    Backend(String),
}

impl DirectoryError {
    /// Whether the same request may succeed later without anyone changing it.
    pub fn is_transient(&self) -> bool {
        matches!(self, DirectoryError::Unavailable(_))
    }

    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DirectoryError::Unavailable(_) => "unavailable",
            DirectoryError::NotFound(_) => "not_found",
            DirectoryError::Conflict(_) => "conflict",
            DirectoryError::Invalid(_) => "invalid",
            DirectoryError::Backend(_) => "backend",
        }
    }
}

impl From<crate::model::InvalidName> for DirectoryError {
    fn from(e: crate::model::InvalidName) -> Self {
        DirectoryError::Invalid(e.0)
    }
}

impl From<shared::AddressError> for DirectoryError {
    fn from(e: shared::AddressError) -> Self {
        DirectoryError::Invalid(e.to_string())
    }
}
