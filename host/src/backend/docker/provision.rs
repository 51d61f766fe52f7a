//! [`Provision`] for Docker: create, restart and remove containers.

use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    RestartContainerOptionsBuilder,
};

use super::{DockerBackend, ENGINE_CALL, errors};
use crate::backend::BackendError;
use crate::backend::provision::{Provision, SandboxSpec};

/// Creating a container can pull nothing here, but a busy engine is slow.
const CREATE_DEADLINE: Duration = Duration::from_secs(60);

async fn bounded<T>(
    what: &str,
    limit: Duration,
    call: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, bollard::errors::Error> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r,
        Err(_) => {
            tracing::debug!(what, "engine call timed out");
            Err(bollard::errors::Error::RequestTimeoutError)
        }
    }
}

fn is_missing(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[async_trait::async_trait]
impl Provision for DockerBackend {
    async fn image_exists(&self, image: &str) -> Result<bool, BackendError> {
        match bounded(
            "inspect image",
            ENGINE_CALL,
            self.docker.inspect_image(image),
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(errors::engine_error(e)),
        }
    }

    async fn create_started(&self, spec: &SandboxSpec) -> Result<(), BackendError> {
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            labels: Some(spec.labels.clone()),
            env: Some(spec.env.clone()),
            host_config: Some(HostConfig {
                tmpfs: Some(spec.tmpfs.clone()),
                binds: Some(
                    spec.volumes
                        .iter()
                        .map(|(volume, at)| format!("{volume}:{at}"))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        bounded(
            "create",
            CREATE_DEADLINE,
            self.docker.create_container(Some(options), body),
        )
        .await
        .map_err(errors::engine_error)?;
        bounded(
            "start",
            ENGINE_CALL,
            self.docker.start_container(&spec.name, None),
        )
        .await
        .map_err(|e| errors::container_error(e, &spec.name))
    }

    async fn restart(&self, sandbox: &str, grace: Duration) -> Result<(), BackendError> {
        let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = RestartContainerOptionsBuilder::default().t(t).build();
        bounded(
            "restart",
            ENGINE_CALL + grace,
            self.docker.restart_container(sandbox, Some(options)),
        )
        .await
        .map_err(|e| errors::container_error(e, sandbox))
    }

    async fn remove(&self, sandbox: &str, volumes: &[String]) -> Result<(), BackendError> {
        let force = RemoveContainerOptionsBuilder::default().force(true).build();
        match bounded(
            "remove",
            ENGINE_CALL,
            self.docker.remove_container(sandbox, Some(force)),
        )
        .await
        {
            Ok(()) => {}
            Err(e) if is_missing(&e) => {}
            Err(e) => return Err(errors::container_error(e, sandbox)),
        }
        for volume in volumes {
            let force = RemoveVolumeOptionsBuilder::default().force(true).build();
            match bounded(
                "remove volume",
                ENGINE_CALL,
                self.docker.remove_volume(volume, Some(force)),
            )
            .await
            {
                Ok(()) => {}
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(errors::engine_error(e)),
            }
        }
        Ok(())
    }
}
