//! Creating and removing throwaway sandboxes (`runner demo`). Recovery
//! never creates a sandbox; this is for tooling around it.

use std::collections::HashMap;
use std::time::Duration;

use super::BackendError;

/// A sandbox to create from an image.
#[derive(Debug, Clone, Default)]
pub struct SandboxSpec {
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    /// Mount point → tmpfs options (`rw,mode=1777,size=16m`).
    pub tmpfs: HashMap<String, String>,
    /// A named volume (created on demand) → mount point.
    pub volumes: Vec<(String, String)>,
}

#[async_trait::async_trait]
pub trait Provision: Send + Sync {
    async fn image_exists(&self, image: &str) -> Result<bool, BackendError>;
    /// Create the sandbox and start it.
    async fn create_started(&self, spec: &SandboxSpec) -> Result<(), BackendError>;
    /// Stop it (waiting up to `grace` before killing) and start it again.
    async fn restart(&self, sandbox: &str, grace: Duration) -> Result<(), BackendError>;
    /// Remove the sandbox, running or not, and the named volumes; what is
    /// already gone is not an error.
    async fn remove(&self, sandbox: &str, volumes: &[String]) -> Result<(), BackendError>;
}
