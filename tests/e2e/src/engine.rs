//! The Docker engine the tests run against. A missing engine is a test failure with the
//! fix in the message, never a skip: a suite that passes by skipping proves nothing.

use anyhow::{Context, Result, anyhow};
use bollard::Docker;
use std::time::Duration;
use tokio::time::timeout;

pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Backstop for any single API call; the harness puts tighter limits around each wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("host", &self.host).finish()
    }
}

impl Engine {
    /// The engine named by `DOCKER_HOST`, else the default local socket.
    pub async fn connect() -> Result<Engine> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        Self::connect_to(&host).await
    }

    pub async fn connect_to(host: &str) -> Result<Engine> {
        let unreachable = |why: String| {
            anyhow!("no Docker engine reachable at {host} ({why}); run `tests/engine.sh ensure`")
        };
        let docker = Docker::connect_with_host(host)
            .map_err(|e| unreachable(e.to_string()))?
            .with_timeout(REQUEST_TIMEOUT);
        // bollard 0.21 sends unversioned paths, so this mostly records the daemon's API
        // version (1.41 for Debian's 20.10); it is also the first round trip.
        let docker = timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| unreachable(e.to_string()))?;
        timeout(CONNECT_TIMEOUT, docker.ping())
            .await
            .map_err(|_| unreachable("ping timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Engine {
            docker,
            host: host.to_string(),
        })
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// As given to `connect_to`, e.g. `unix:///var/run/docker.sock`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The socket path for a `unix://` host.
    pub fn socket_path(&self) -> Option<&str> {
        self.host.strip_prefix("unix://")
    }

    pub async fn image_exists(&self, image: &str) -> Result<bool> {
        match timeout(Duration::from_secs(10), self.docker.inspect_image(image))
            .await
            .context("inspect image timed out")?
        {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("inspect image {image}")),
        }
    }
}
