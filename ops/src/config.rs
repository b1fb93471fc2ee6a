//! The whole Tandem config file: one section per role. Every daemon and every
//! command reads the same file and uses the sections it needs.

use std::path::Path;

use backend::config::BackendConfig;
use frontend::config::FrontendConfig;
use locator::config::LocatorConfig;
use serde::{Deserialize, Serialize};
use shared::config::{ConfigError, Problems, Validate, join};
use shared::etcd::EtcdConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TandemConfig {
    /// Where accounts and clusters are looked up.
    pub locator: LocatorConfig,
    /// This node, when it is a backend node (`tandem backend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendConfig>,
    /// This host's proxies, when it is a frontend (`tandem frontend`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend: Option<FrontendConfig>,
    /// The etcd cluster coordinating the nodes of dynamic clusters; without
    /// it every backend cluster has one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdConfig>,
}

impl Validate for TandemConfig {
    fn validate(&self, at: &str, p: &mut Problems) {
        self.locator.validate(&join(at, "locator"), p);
        if let Some(b) = &self.backend {
            b.validate(&join(at, "backend"), p);
        }
        if let Some(f) = &self.frontend {
            f.validate(&join(at, "frontend"), p);
        }
        if let Some(e) = &self.etcd {
            e.validate(&join(at, "etcd"), p);
        }
    }
}

pub fn load(path: &Path) -> Result<TandemConfig, ConfigError> {
    shared::config::load(path)
}
