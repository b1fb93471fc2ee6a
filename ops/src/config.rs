//! The whole Tandem config file: one section per role. Every daemon and every
//! command reads the same file and uses the sections it needs.

use std::path::Path;

use locator::config::LocatorConfig;
use serde::{Deserialize, Serialize};
use shared::config::{ConfigError, Problems, Validate, join};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TandemConfig {
    /// Where accounts and clusters are looked up.
    pub locator: LocatorConfig,
}

impl Validate for TandemConfig {
    fn validate(&self, at: &str, p: &mut Problems) {
        self.locator.validate(&join(at, "locator"), p);
    }
}

pub fn load(path: &Path) -> Result<TandemConfig, ConfigError> {
    shared::config::load(path)
}
