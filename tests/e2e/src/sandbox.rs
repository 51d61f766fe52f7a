//! One test sandbox: a container laid out like a NemoClaw sandbox (tmpfs /tmp, named
//! volume at /sandbox, no restart policy) that is removed with its volume when dropped,
//! also when the test panics.

use crate::cleanup;
use crate::engine::Engine;
use crate::slots::{self, Slot};
use crate::wait::{bounded, poll_until};
use anyhow::{Context, Result, bail};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, HostConfig,
    RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every container and volume the harness creates carries this label.
pub const E2E_LABEL: &str = "runner.e2e";
/// Unix seconds at creation, on volumes (whose CreatedAt is harder to parse).
const CREATED_LABEL: &str = "runner.e2e.created";

/// Leftovers older than this belong to a crashed run, not a running test.
const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

pub(crate) const API_TIMEOUT: Duration = Duration::from_secs(30);
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Real OpenClaw images take ~10 s to start but the slot wait covers other tests' whole
/// lifetimes, so it is generous.
const SLOT_TIMEOUT: Duration = Duration::from_secs(900);
/// At most this many OpenClaw containers (~1 GB RAM each) across all test processes.
pub const DEFAULT_MAX_OPENCLAW: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// PID 1 stages guards and respawns the gateway.
    Supervised,
    /// PID 1 launches once on first boot, then only sleeps (NemoClaw#2042).
    Keepalive,
}

impl Mode {
    /// Value of `SANDBOX_MODE` in the images.
    pub fn as_env(self) -> &'static str {
        match self {
            Mode::Supervised => "supervised",
            Mode::Keepalive => "keepalive",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub image: String,
    pub mode: Mode,
    pub env: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    /// Mount this existing named volume instead of creating one. A reused volume is
    /// left in place on drop: it belongs to whoever created it.
    pub volume: Option<String>,
    /// Cross-process slot (kind, max); `runner-test/openclaw` images get one implicitly.
    pub heavy: Option<(String, usize)>,
    /// Middle part of the container name; defaults to the image's short name.
    pub name_prefix: Option<String>,
    /// Substring of /proc/PID/cmdline that identifies the gateway; defaults by image.
    pub gateway_pattern: Option<String>,
    /// Container hostname; kept by `recreate_same_volume` (a pod recreated under
    /// its name). `None`: Docker's default, a new one for every container.
    pub hostname: Option<String>,
    /// Docker's restart policy; `no` unless a test asks (NemoClaw runs none).
    pub restart: RestartPolicyNameEnum,
    /// `--network`; `None` is the engine's default bridge.
    pub network: Option<String>,
}

impl SandboxSpec {
    pub fn new(image: impl Into<String>) -> SandboxSpec {
        SandboxSpec {
            image: image.into(),
            mode: Mode::Supervised,
            env: Vec::new(),
            labels: Vec::new(),
            volume: None,
            heavy: None,
            name_prefix: None,
            gateway_pattern: None,
            hostname: None,
            restart: RestartPolicyNameEnum::NO,
            network: None,
        }
    }

    /// `--restart POLICY` (`always`, `unless-stopped`: the engine brings it
    /// back after its own restart).
    pub fn restart(mut self, policy: RestartPolicyNameEnum) -> Self {
        self.restart = policy;
        self
    }

    /// `--network MODE` (`none`: loopback only).
    pub fn network(mut self, mode: impl Into<String>) -> Self {
        self.network = Some(mode.into());
        self
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }

    pub fn volume(mut self, name: impl Into<String>) -> Self {
        self.volume = Some(name.into());
        self
    }

    pub fn heavy(mut self, kind: impl Into<String>, max: usize) -> Self {
        self.heavy = Some((kind.into(), max));
        self
    }

    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = Some(prefix.into());
        self
    }

    pub fn gateway_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.gateway_pattern = Some(pattern.into());
        self
    }

    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// `fixture` for `runner-test/fixture:abc`.
    pub fn image_kind(&self) -> String {
        let repo = self
            .image
            .rsplit_once(':')
            .map_or(self.image.as_str(), |(r, tag)| {
                // A registry port (host:5000/x) is not a tag.
                if tag.contains('/') {
                    self.image.as_str()
                } else {
                    r
                }
            });
        repo.rsplit('/').next().unwrap_or(repo).to_string()
    }

    pub fn effective_heavy(&self) -> Option<(String, usize)> {
        if let Some(h) = &self.heavy {
            return Some(h.clone());
        }
        (self.image.starts_with("runner-test/openclaw:") || self.image == "runner-test/openclaw")
            .then(|| {
                let max = std::env::var("RUNNER_E2E_MAX_OPENCLAW")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(DEFAULT_MAX_OPENCLAW);
                ("openclaw".to_string(), max)
            })
    }

    pub fn effective_gateway_pattern(&self) -> String {
        if let Some(p) = &self.gateway_pattern {
            return p.clone();
        }
        match self.image_kind().as_str() {
            // /usr/local/bin/openclaw is the fixture gateway: `openclaw gateway run --port N`.
            "fixture" => "openclaw gateway run",
            "openclaw" => "openclaw-gateway",
            "hermes" => "hermes gateway run",
            _ => "gateway",
        }
        .to_string()
    }

    fn sanitized_prefix(&self) -> String {
        let raw = self
            .name_prefix
            .clone()
            .unwrap_or_else(|| self.image_kind());
        let mut p: String = raw
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        p.truncate(24);
        let p = p.trim_matches('-').to_string();
        if p.is_empty() { "sandbox".into() } else { p }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !filled {
        // Still unique enough per process and moment.
        let seed = u128::from(std::process::id()) << 64 | now_secs() as u128;
        buf.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (seed >> (i * 8 % 128)) as u8);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct Sandbox {
    engine: Engine,
    spec: SandboxSpec,
    name: String,
    id: String,
    volume: String,
    owns_volume: bool,
    removed: bool,
    // Declared last: released only after Drop::drop removed the container.
    _slot: Option<Slot>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("volume", &self.volume)
            .field("image", &self.spec.image)
            .finish()
    }
}

impl Sandbox {
    /// Creates and starts the container and waits until it runs. Anything created before
    /// a failure is removed again by `Drop`.
    pub async fn create(engine: &Engine, spec: SandboxSpec) -> Result<Sandbox> {
        sweep_once(engine).await;
        let slot = match spec.effective_heavy() {
            Some((kind, max)) => Some(slots::acquire(&kind, max, SLOT_TIMEOUT).await?),
            None => None,
        };
        let name = format!("rt-{}-{}", spec.sanitized_prefix(), random_hex(4));
        let docker = engine.docker();

        let (volume, owns_volume) = match &spec.volume {
            Some(v) => {
                bounded(
                    &format!("inspect volume {v}"),
                    API_TIMEOUT,
                    docker.inspect_volume(v),
                )
                .await?;
                (v.clone(), false)
            }
            None => {
                let v = format!("{name}-sandbox");
                let labels = HashMap::from([
                    (E2E_LABEL.to_string(), "1".to_string()),
                    (CREATED_LABEL.to_string(), now_secs().to_string()),
                ]);
                let req = VolumeCreateRequest {
                    name: Some(v.clone()),
                    labels: Some(labels),
                    ..Default::default()
                };
                bounded(
                    &format!("create volume {v}"),
                    API_TIMEOUT,
                    docker.create_volume(req),
                )
                .await?;
                (v, true)
            }
        };

        let mut sandbox = Sandbox {
            engine: engine.clone(),
            spec,
            id: name.clone(),
            name,
            volume,
            owns_volume,
            removed: false,
            _slot: slot,
        };
        sandbox.create_and_start().await?;
        Ok(sandbox)
    }

    fn container_body(&self) -> ContainerCreateBody {
        let mut env = vec![format!("SANDBOX_MODE={}", self.spec.mode.as_env())];
        env.extend(self.spec.env.iter().map(|(k, v)| format!("{k}={v}")));
        let mut labels: HashMap<String, String> = self.spec.labels.iter().cloned().collect();
        labels.insert(E2E_LABEL.into(), "1".into());
        ContainerCreateBody {
            image: Some(self.spec.image.clone()),
            hostname: self.spec.hostname.clone(),
            env: Some(env),
            labels: Some(labels),
            host_config: Some(HostConfig {
                tmpfs: Some(HashMap::from([(
                    "/tmp".to_string(),
                    "rw,mode=1777".to_string(),
                )])),
                binds: Some(vec![format!("{}:/sandbox", self.volume)]),
                restart_policy: Some(RestartPolicy {
                    name: Some(self.spec.restart),
                    maximum_retry_count: None,
                }),
                network_mode: self.spec.network.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    async fn create_and_start(&mut self) -> Result<()> {
        let docker = self.engine.docker();
        let opts = CreateContainerOptionsBuilder::default()
            .name(&self.name)
            .build();
        let created = bounded(
            &format!("create container {} from {}", self.name, self.spec.image),
            API_TIMEOUT,
            docker.create_container(Some(opts), self.container_body()),
        )
        .await?;
        self.id = created.id;
        self.start().await
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn volume(&self) -> &str {
        &self.volume
    }

    pub fn spec(&self) -> &SandboxSpec {
        &self.spec
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub async fn inspect(&self) -> Result<ContainerInspectResponse> {
        bounded(
            &format!("inspect {}", self.name),
            API_TIMEOUT,
            self.engine.docker().inspect_container(&self.name, None),
        )
        .await
    }

    pub async fn status(&self) -> Result<ContainerStateStatusEnum> {
        self.inspect()
            .await?
            .state
            .and_then(|s| s.status)
            .context("inspect has no state")
    }

    /// Host pid of the container's PID 1 (its namespaces live under /proc/PID/ns).
    pub async fn host_pid(&self) -> Result<u32> {
        let state = self
            .inspect()
            .await?
            .state
            .context("inspect has no state")?;
        match state.pid {
            Some(pid) if pid > 0 && state.running == Some(true) => Ok(pid as u32),
            _ => bail!("{} is not running (status {:?})", self.name, state.status),
        }
    }

    pub(crate) async fn wait_running(&self) -> Result<()> {
        poll_until(
            &format!("{} to run", self.name),
            START_TIMEOUT,
            Duration::from_millis(100),
            || async {
                let state = self.inspect().await?.state.context("no state")?;
                match state.status {
                    Some(ContainerStateStatusEnum::RUNNING) => Ok(Some(())),
                    Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD) => {
                        bail!(
                            "{} exited with code {:?} right after start",
                            self.name,
                            state.exit_code
                        )
                    }
                    _ => Ok(None),
                }
            },
        )
        .await
    }

    /// `docker rm -f` and create again with the same name, spec and volume: the pod
    /// recreate of NemoClaw#2042. The container id changes; /sandbox survives.
    pub async fn recreate_same_volume(&mut self) -> Result<()> {
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        bounded(
            &format!("remove {} for recreate", self.name),
            API_TIMEOUT,
            self.engine
                .docker()
                .remove_container(&self.name, Some(opts)),
        )
        .await?;
        self.create_and_start().await
    }

    /// Removes container and (owned) volume now, reporting errors; `Drop` then has
    /// nothing left to do.
    pub async fn remove(mut self) -> Result<()> {
        let docker = self.engine.docker();
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        match bounded(
            "remove container",
            API_TIMEOUT,
            docker.remove_container(&self.name, Some(opts)),
        )
        .await
        {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
        if self.owns_volume {
            let opts = RemoveVolumeOptionsBuilder::default().force(true).build();
            match bounded(
                "remove volume",
                API_TIMEOUT,
                docker.remove_volume(&self.volume, Some(opts)),
            )
            .await
            {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.removed = true;
        Ok(())
    }
}

pub(crate) fn is_not_found(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<bollard::errors::Error>(),
        Some(bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        })
    )
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let volume = self.owns_volume.then_some(self.volume.as_str());
        if let Err(e) = cleanup::remove_container_and_volume(self.engine.host(), &self.name, volume)
        {
            eprintln!(
                "runner-e2e: could not remove sandbox {} / volume {}: {e:#} (sweep_leftovers removes it after 1 h)",
                self.name, self.volume
            );
        }
    }
}

async fn sweep_once(engine: &Engine) {
    static SWEPT: OnceLock<()> = OnceLock::new();
    if SWEPT.set(()).is_ok()
        && let Err(e) = sweep_leftovers(engine).await
    {
        eprintln!("runner-e2e: sweeping leftovers failed: {e:#}");
    }
}

/// Removes `runner.e2e=1` containers created more than an hour ago (a crashed or killed
/// test run) and their dangling volumes. Returns how many objects were removed.
pub async fn sweep_leftovers(engine: &Engine) -> Result<usize> {
    let docker = engine.docker();
    let cutoff = now_secs().saturating_sub(LEFTOVER_AGE.as_secs());
    let label = HashMap::from([("label", vec![format!("{E2E_LABEL}=1")])]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&label)
        .build();
    let containers = bounded(
        "list e2e containers",
        API_TIMEOUT,
        docker.list_containers(Some(opts)),
    )
    .await?;
    let mut removed = 0;
    for c in containers {
        let (Some(id), Some(created)) = (c.id, c.created) else {
            continue;
        };
        if created as u64 >= cutoff {
            continue;
        }
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        match bounded(
            "remove leftover",
            API_TIMEOUT,
            docker.remove_container(&id, Some(opts)),
        )
        .await
        {
            Ok(()) => removed += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    let filters = HashMap::from([
        ("label", vec![format!("{E2E_LABEL}=1")]),
        ("dangling", vec!["true".to_string()]),
    ]);
    let opts = ListVolumesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let volumes = bounded(
        "list e2e volumes",
        API_TIMEOUT,
        docker.list_volumes(Some(opts)),
    )
    .await?;
    for v in volumes.volumes.unwrap_or_default() {
        let created: u64 = v
            .labels
            .get(CREATED_LABEL)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if created >= cutoff {
            continue;
        }
        let opts = RemoveVolumeOptionsBuilder::default().force(true).build();
        match bounded(
            "remove leftover volume",
            API_TIMEOUT,
            docker.remove_volume(&v.name, Some(opts)),
        )
        .await
        {
            Ok(()) => removed += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_kind_ignores_tag_and_registry_port() {
        assert_eq!(
            SandboxSpec::new("runner-test/fixture:0123abcd").image_kind(),
            "fixture"
        );
        assert_eq!(
            SandboxSpec::new("runner-test/openclaw").image_kind(),
            "openclaw"
        );
        assert_eq!(
            SandboxSpec::new("localhost:5000/x/hermes").image_kind(),
            "hermes"
        );
    }

    #[test]
    fn openclaw_images_take_a_slot_implicitly() {
        let s = SandboxSpec::new("runner-test/openclaw:abc");
        assert_eq!(
            s.effective_heavy().map(|h| h.0),
            Some("openclaw".to_string())
        );
        assert_eq!(
            SandboxSpec::new("runner-test/fixture:abc").effective_heavy(),
            None
        );
        let explicit = SandboxSpec::new("runner-test/fixture:abc").heavy("big", 1);
        assert_eq!(explicit.effective_heavy(), Some(("big".into(), 1)));
    }

    #[test]
    fn gateway_pattern_defaults_by_image() {
        assert_eq!(
            SandboxSpec::new("runner-test/fixture:a").effective_gateway_pattern(),
            "openclaw gateway run"
        );
        assert_eq!(
            SandboxSpec::new("runner-test/hermes:a").effective_gateway_pattern(),
            "hermes gateway run"
        );
        let custom = SandboxSpec::new("x").gateway_pattern("my-gw");
        assert_eq!(custom.effective_gateway_pattern(), "my-gw");
    }

    #[test]
    fn name_prefix_is_sanitized() {
        assert_eq!(
            SandboxSpec::new("a")
                .name_prefix("Kill 9/Lock!")
                .sanitized_prefix(),
            "kill-9-lock"
        );
        assert_eq!(
            SandboxSpec::new("a").name_prefix("!!!").sanitized_prefix(),
            "sandbox"
        );
    }

    #[test]
    fn random_names_differ() {
        assert_ne!(random_hex(4), random_hex(4));
        assert_eq!(random_hex(4).len(), 8);
    }
}
