//! The engine the environment names (`DOCKER_HOST`, `DOCKER_TLS_VERIFY` +
//! `DOCKER_CERT_PATH`, `DOCKER_CONTEXT`, the CLI's current context),
//! resolved before connecting so a bad configuration is a usage error
//! (exit 2, nothing touched) instead of an unreachable engine (exit 3).

use crate::backend::docker::endpoint::{self, Endpoint, EnvView};

/// The endpoint to connect to, or the message for exit 2.
pub fn resolve_env() -> Result<Endpoint, String> {
    endpoint::resolve(&EnvView::from_process()).map_err(|e| e.to_string())
}
