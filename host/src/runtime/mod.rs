//! The plugin runtime: one wasmtime [`Engine`] per process, compiled
//! components cached on disk, an [`InstancePre`](wasmtime::component::InstancePre)
//! per plugin, and a fresh [`Store`] for every call so a trap, a deadline or a
//! memory bomb can never leak into the next call.

mod cache;
pub mod component_check;
pub mod contract;
pub mod engine;
pub mod errors;
mod limits;
pub(crate) mod state;
pub mod wit;

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use self::cache::CompileCache;
use self::component_check::WitVersion;
use self::errors::{LoadError, PluginFault};
use self::limits::MemoryCap;
use self::state::PluginState;
use self::wit::{Answer, Call, WorldPre};
use crate::capabilities::{CallRecord, CapContext};
use crate::model::{LinkReport, PluginInfo, RepairOutcome, Target};
use crate::plugins::PluginSource;

/// Default memory cap per plugin instance.
pub const DEFAULT_MEMORY_LIMIT: usize = 64 << 20;
/// Deadline for `describe`, which must not do I/O.
pub const DESCRIBE_DEADLINE: Duration = Duration::from_secs(2);
/// Longest single probe; a run's overall deadline usually bounds it first.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(30);
/// Longest single repair call.
pub const REPAIR_DEADLINE: Duration = Duration::from_secs(90);
/// Plugin stdout/stderr kept per call; the rest is dropped.
const OUTPUT_CAP: usize = 64 << 10;

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub memory_limit: usize,
    /// `None` disables the compile cache.
    pub cache_dir: Option<std::path::PathBuf>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            memory_limit: DEFAULT_MEMORY_LIMIT,
            cache_dir: Some(crate::paths::cache_dir().join("components")),
        }
    }
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Fault(#[from] PluginFault),
}

pub struct Runtime {
    engine: Engine,
    ticker: engine::EpochTicker,
    linker: Linker<PluginState>,
    cache: CompileCache,
    options: RuntimeOptions,
}

/// A loaded, validated plugin, ready to be instantiated many times.
pub struct Plugin {
    pub source: PluginSource,
    pub sha256: String,
    pub wit_version: WitVersion,
    pub size: usize,
    pub info: PluginInfo,
    pre: WorldPre<PluginState>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.info.name)
            .field("source", &self.source)
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.info.name
    }
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> anyhow::Result<Self> {
        let (engine, ticker) = engine::build().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut linker = Linker::<PluginState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        wit::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let cache = CompileCache::new(&engine, options.cache_dir.clone());
        Ok(Self {
            engine,
            ticker,
            linker,
            cache,
            options,
        })
    }

    /// Read, check, compile (or fetch from cache), link and describe a plugin.
    pub async fn load(&self, source: &PluginSource) -> Result<Plugin, LoadFailure> {
        let source_name = source.display_name();
        let bytes = source.read()?;
        let facts = component_check::check(&source_name, &bytes)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let started = Instant::now();
        let component = self
            .cache
            .load(&self.engine, &sha256, &bytes)
            .map_err(|e| LoadError::Compile {
                source_name: source_name.clone(),
                cause: format!("{e:#}"),
            })?;
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::Link {
                    source_name: source_name.clone(),
                    cause: format!("{e:#}"),
                })?;
        let pre = WorldPre::new(&facts.wit_version, instance_pre).map_err(|e| LoadError::Link {
            source_name: source_name.clone(),
            cause: format!("{e:#}"),
        })?;
        tracing::debug!(plugin = %source_name, ms = started.elapsed().as_secs_f64() * 1e3, "component ready");
        let mut plugin = Plugin {
            source: source.clone(),
            sha256,
            wit_version: facts.wit_version,
            size: bytes.len(),
            info: PluginInfo::default(),
            pre,
        };
        plugin.info = self.describe(&plugin).await?;
        Ok(plugin)
    }

    /// Call `describe` and validate the answer.
    pub async fn describe(&self, plugin: &Plugin) -> Result<PluginInfo, PluginFault> {
        let caps = CapContext::for_describe(&plugin.source.display_name());
        let (answer, _) = self
            .call(plugin, Call::Describe, caps, DESCRIBE_DEADLINE)
            .await;
        let Answer::Describe(info) = answer? else {
            unreachable!("describe answers describe")
        };
        contract::check_info(&info).map_err(|detail| PluginFault::Contract {
            plugin: plugin_label(plugin, &info.name),
            function: "describe".into(),
            detail,
        })?;
        Ok(info)
    }

    /// Call `probe`. The outer `Result` is a fault; the inner one is the
    /// plugin's own "could not probe" answer.
    pub async fn probe(
        &self,
        plugin: &Plugin,
        target: Target,
        caps: CapContext,
        deadline: Duration,
    ) -> (
        Result<Result<Vec<LinkReport>, String>, PluginFault>,
        CallRecord,
    ) {
        let (answer, record) = self.call(plugin, Call::Probe(target), caps, deadline).await;
        let result = answer.and_then(|a| {
            let Answer::Probe(reports) = a else {
                unreachable!("probe answers probe")
            };
            if let Ok(reports) = &reports {
                contract::check_reports(&plugin.info, reports).map_err(|detail| {
                    PluginFault::Contract {
                        plugin: plugin.name().to_string(),
                        function: "probe".into(),
                        detail,
                    }
                })?;
            }
            Ok(reports)
        });
        (result, record)
    }

    /// Call `repair` for one link.
    pub async fn repair(
        &self,
        plugin: &Plugin,
        target: Target,
        link: &str,
        caps: CapContext,
        deadline: Duration,
    ) -> (Result<RepairOutcome, PluginFault>, CallRecord) {
        let (answer, record) = self
            .call(
                plugin,
                Call::Repair(target, link.to_string()),
                caps,
                deadline,
            )
            .await;
        let result = answer.map(|a| {
            let Answer::Repair(outcome) = a else {
                unreachable!("repair answers repair")
            };
            outcome
        });
        (result, record)
    }

    /// Run one exported function in a fresh store. Wasm time is bounded by
    /// the epoch deadline; host-call time by a wall-clock timeout around the
    /// whole call (epochs only advance inside wasm).
    async fn call(
        &self,
        plugin: &Plugin,
        call: Call,
        mut caps: CapContext,
        deadline: Duration,
    ) -> (Result<Answer, PluginFault>, CallRecord) {
        let function = call.name();
        caps.set_deadline(Instant::now() + deadline);
        let stdout = MemoryOutputPipe::new(OUTPUT_CAP);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAP);
        // Locked down: no preopened dirs, no env, no args, no network; only
        // clocks, random and the captured output streams.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        let mut store = Store::new(
            &self.engine,
            PluginState {
                wasi,
                table: ResourceTable::new(),
                memory: MemoryCap::new(self.options.memory_limit),
                caps,
            },
        );
        store.limiter(|s| &mut s.memory);
        // Held until the store is done with: the deadline counts ticks.
        let _ticking = self.ticker.running();
        store.set_epoch_deadline(engine::ticks_for(deadline));
        store.epoch_deadline_trap();

        let started = Instant::now();
        let outcome = {
            let run = plugin.pre.call(&mut store, call);
            // A little grace so an epoch trap, which is more precise, wins
            // over the wall clock when the time is spent inside wasm.
            tokio::time::timeout(deadline + Duration::from_millis(250), run).await
        };
        let elapsed = started.elapsed();
        let label = plugin_label(plugin, plugin.name());
        let stderr_text = String::from_utf8_lossy(&stderr.contents()).into_owned();
        let sandbox = store.data().caps.grant().sandbox();
        forward_output(&label, sandbox, "stderr", &stderr_text);
        forward_output(
            &label,
            sandbox,
            "stdout",
            &String::from_utf8_lossy(&stdout.contents()),
        );

        let result = match outcome {
            Ok(Ok(answer)) => Ok(answer),
            Err(_elapsed) => Err(PluginFault::Deadline {
                plugin: label.clone(),
                function: function.into(),
                limit_ms: deadline.as_millis() as u64,
            }),
            Ok(Err(error)) => Err(classify(
                &label,
                function,
                &error,
                store.data(),
                deadline,
                &stderr_text,
            )),
        };
        if let Err(fault) = &result {
            tracing::error!(plugin = %label, function, ms = elapsed.as_secs_f64() * 1e3, "plugin fault: {fault}");
        } else {
            tracing::debug!(plugin = %label, function, ms = elapsed.as_secs_f64() * 1e3, "plugin call done");
        }
        let record = store.into_data().caps.into_record();
        (result, record)
    }
}

fn plugin_label(plugin: &Plugin, name: &str) -> String {
    if name.is_empty() {
        plugin.source.display_name()
    } else {
        name.to_string()
    }
}

/// Turn a wasmtime error into a typed fault. Log with `{:#}`: plain `{}`
/// hides the cause ("wasm trap: interrupt").
fn classify(
    plugin: &str,
    function: &str,
    error: &wasmtime::Error,
    state: &PluginState,
    deadline: Duration,
    stderr: &str,
) -> PluginFault {
    if state.memory.was_hit() {
        return PluginFault::MemoryLimit {
            plugin: plugin.into(),
            function: function.into(),
            limit_bytes: state.memory.limit(),
        };
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return PluginFault::Deadline {
            plugin: plugin.into(),
            function: function.into(),
            limit_ms: deadline.as_millis() as u64,
        };
    }
    let mut detail = format!("{error:#}");
    // A Rust panic prints its message to stderr and then traps with
    // `unreachable`; the message is what a human needs.
    if let Some(panic) = stderr.lines().find(|l| l.contains("panicked at")) {
        let message: Vec<&str> = stderr
            .lines()
            .skip_while(|l| !l.contains("panicked at"))
            .take(3)
            .collect();
        detail = format!(
            "{} ({detail})",
            if message.len() > 1 {
                message.join(" ")
            } else {
                panic.to_string()
            }
        );
    }
    PluginFault::Trap {
        plugin: plugin.into(),
        function: function.into(),
        detail,
    }
}

/// Plugin output goes to the log, one event per line, tagged.
fn forward_output(plugin: &str, sandbox: &str, stream: &str, text: &str) {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        tracing::warn!(plugin, sandbox, stream, "plugin {stream}: {line}");
    }
}
