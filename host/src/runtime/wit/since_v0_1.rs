//! The adapter for `runner:plugin@0.1.x` (`wit/v0.1`): the generated
//! bindings, their conversion to and from the host's own types, and the
//! import traits, each of which converts and hands the call to its
//! capability view. Nothing outside `runtime` sees these bindings.

use wasmtime::component::{InstancePre, Linker};
use wasmtime::{AsContextMut, Store};

use crate::capabilities::CapsView;
use crate::capabilities::exec::{Exec, ExecRequest, ExecView};
use crate::capabilities::files::{Files, FilesView};
use crate::capabilities::forward::{Forward, ForwardAsk, ForwardView};
use crate::capabilities::http::{self as cap_http, Http, HttpView};
use crate::capabilities::log::{Log, LogView};
use crate::capabilities::processes::{Processes, ProcessesView};
use crate::capabilities::spawn::{Spawn, SpawnRequest, SpawnView};
use crate::{backend, forward as host_forward, model, net};

wasmtime::component::bindgen!({
    path: "../wit/v0.1",
    world: "agent-plugin",
    imports: { default: async },
    exports: { default: async },
});

use self::runner::plugin::{exec, files, forward, http, log, processes, spawn, types};
use super::{Answer, Call};

/// Link every 0.1 import into `linker`, each interface through its view.
pub(crate) fn add_to_linker<T: CapsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    types::add_to_linker::<T, Log>(linker, |s| LogView::new(s.caps()))?;
    exec::add_to_linker::<T, Exec>(linker, |s| ExecView::new(s.caps()))?;
    spawn::add_to_linker::<T, Spawn>(linker, |s| SpawnView::new(s.caps()))?;
    files::add_to_linker::<T, Files>(linker, |s| FilesView::new(s.caps()))?;
    processes::add_to_linker::<T, Processes>(linker, |s| ProcessesView::new(s.caps()))?;
    http::add_to_linker::<T, Http>(linker, |s| HttpView::new(s.caps()))?;
    forward::add_to_linker::<T, Forward>(linker, |s| ForwardView::new(s.caps()))?;
    log::add_to_linker::<T, Log>(linker, |s| LogView::new(s.caps()))?;
    Ok(())
}

/// A 0.1 component, linked and ready to instantiate.
pub(crate) struct Pre<T: 'static>(AgentPluginPre<T>);

impl<T: Send + 'static> Pre<T> {
    pub(crate) fn new(pre: InstancePre<T>) -> wasmtime::Result<Self> {
        AgentPluginPre::new(pre).map(Self)
    }

    /// Instantiate in `store` and run one export.
    pub(crate) async fn call(&self, store: &mut Store<T>, call: Call) -> wasmtime::Result<Answer> {
        let instance = self.0.instantiate_async(store.as_context_mut()).await?;
        let api = instance.runner_plugin_plugin();
        Ok(match call {
            Call::Describe => Answer::Describe(api.call_describe(&mut *store).await?.into()),
            Call::Probe(target) => Answer::Probe(
                api.call_probe(&mut *store, &target.into())
                    .await?
                    .map(|reports| reports.into_iter().map(Into::into).collect()),
            ),
            Call::Repair(target, link) => Answer::Repair(
                api.call_repair(&mut *store, &target.into(), &link)
                    .await?
                    .into(),
            ),
        })
    }
}

// ---- the plugin's own types ----

impl From<types::Kv> for model::Kv {
    fn from(kv: types::Kv) -> Self {
        Self {
            key: kv.key,
            value: kv.value,
        }
    }
}

impl From<model::Kv> for types::Kv {
    fn from(kv: model::Kv) -> Self {
        Self {
            key: kv.key,
            value: kv.value,
        }
    }
}

fn kvs<A: Into<B>, B>(list: Vec<A>) -> Vec<B> {
    list.into_iter().map(Into::into).collect()
}

fn pair_kvs(pairs: Vec<(String, String)>) -> Vec<types::Kv> {
    pairs
        .into_iter()
        .map(|(key, value)| types::Kv { key, value })
        .collect()
}

impl From<types::Health> for model::Health {
    fn from(h: types::Health) -> Self {
        match h {
            types::Health::Healthy => Self::Healthy,
            types::Health::Broken => Self::Broken,
            types::Health::Unknown => Self::Unknown,
        }
    }
}

impl From<model::Target> for types::Target {
    fn from(t: model::Target) -> Self {
        Self {
            sandbox: t.sandbox,
            backend: t.backend,
            settings: kvs(t.settings),
        }
    }
}

impl From<types::PluginInfo> for model::PluginInfo {
    fn from(i: types::PluginInfo) -> Self {
        Self {
            name: i.name,
            version: i.version,
            agent_kinds: i.agent_kinds,
            links: i
                .links
                .into_iter()
                .map(|l| model::LinkSpec {
                    id: l.id,
                    summary: l.summary,
                    depends_on: l.depends_on,
                })
                .collect(),
            settings: i
                .settings
                .into_iter()
                .map(|s| model::SettingSpec {
                    key: s.key,
                    default: s.default,
                    description: s.description,
                })
                .collect(),
            capabilities: i.capabilities,
        }
    }
}

impl From<types::LinkReport> for model::LinkReport {
    fn from(r: types::LinkReport) -> Self {
        Self {
            id: r.id,
            health: r.health.into(),
            summary: r.summary,
            evidence: kvs(r.evidence),
            repairable: r.repairable,
        }
    }
}

impl From<types::RepairOutcome> for model::RepairOutcome {
    fn from(o: types::RepairOutcome) -> Self {
        match o {
            types::RepairOutcome::Repaired(m) => Self::Repaired(m),
            types::RepairOutcome::Refused(m) => Self::Refused(m),
            types::RepairOutcome::Failed(m) => Self::Failed(m),
            types::RepairOutcome::NotNeeded(m) => Self::NotNeeded(m),
        }
    }
}

impl From<types::ProcessId> for model::ProcessId {
    fn from(id: types::ProcessId) -> Self {
        Self {
            pid: id.pid,
            start_time: id.start_time,
        }
    }
}

impl From<model::ProcessId> for types::ProcessId {
    fn from(id: model::ProcessId) -> Self {
        Self {
            pid: id.pid,
            start_time: id.start_time,
        }
    }
}

impl From<model::CapError> for types::CapError {
    fn from(e: model::CapError) -> Self {
        match e {
            model::CapError::Denied(m) => Self::Denied(m),
            model::CapError::Timeout(m) => Self::Timeout(m),
            model::CapError::Unavailable(m) => Self::Unavailable(m),
            model::CapError::Failed(m) => Self::Failed(m),
        }
    }
}

impl From<model::ExecError> for exec::ExecError {
    fn from(e: model::ExecError) -> Self {
        match e {
            model::ExecError::Denied(m) => Self::Denied(m),
            model::ExecError::Timeout(m) => Self::Timeout(m),
            model::ExecError::Unavailable(m) => Self::Unavailable(m),
            model::ExecError::Failed(m) => Self::Failed(m),
            model::ExecError::NoSuchBinary(m) => Self::NoSuchBinary(m),
            model::ExecError::NoSuchUser(m) => Self::NoSuchUser(m),
        }
    }
}

// ---- imports: convert, then delegate to the capability's view ----

impl types::Host for LogView<'_> {}

impl exec::Host for ExecView<'_> {
    async fn run(
        &mut self,
        sandbox: String,
        req: exec::ExecRequest,
    ) -> Result<exec::ExecOutput, exec::ExecError> {
        let req = ExecRequest {
            argv: req.argv,
            user: req.user,
            env: kvs(req.env),
            stdin: req.stdin,
            workdir: req.workdir,
            timeout_ms: req.timeout_ms,
            max_output: req.max_output,
        };
        let out = ExecView::run(self, &sandbox, req).await?;
        Ok(exec::ExecOutput {
            exit_code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
            truncated: out.truncated,
        })
    }
}

impl spawn::Host for SpawnView<'_> {
    async fn detached(
        &mut self,
        sandbox: String,
        req: spawn::SpawnRequest,
    ) -> Result<types::ProcessId, exec::ExecError> {
        let req = SpawnRequest {
            argv: req.argv,
            user: req.user,
            env: kvs(req.env),
            workdir: req.workdir,
            log_file: req.log_file,
        };
        SpawnView::detached(self, &sandbox, req)
            .await
            .map_err(Into::into)
            .map(Into::into)
    }
}

impl files::Host for FilesView<'_> {
    async fn stat(
        &mut self,
        sandbox: String,
        path: String,
    ) -> Result<Option<files::FileStat>, types::CapError> {
        let stat = FilesView::stat(self, &sandbox, path).await?;
        Ok(stat.map(|s| files::FileStat {
            kind: match s.kind {
                backend::FileKind::Regular => files::FileKind::Regular,
                backend::FileKind::Directory => files::FileKind::Directory,
                backend::FileKind::Symlink => files::FileKind::Symlink,
                backend::FileKind::Other => files::FileKind::Other,
            },
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            size: s.size,
            mtime: s.mtime,
        }))
    }

    async fn read(
        &mut self,
        sandbox: String,
        path: String,
        max_bytes: u32,
    ) -> Result<files::FileContent, types::CapError> {
        let content = FilesView::read(self, &sandbox, path, max_bytes).await?;
        Ok(files::FileContent {
            data: content.data,
            truncated: content.truncated,
        })
    }

    async fn write(
        &mut self,
        sandbox: String,
        req: files::WriteRequest,
    ) -> Result<(), types::CapError> {
        let req = backend::WriteSpec {
            path: req.path,
            data: req.data,
            mode: req.mode,
            uid: req.uid,
            gid: req.gid,
        };
        FilesView::write(self, &sandbox, req)
            .await
            .map_err(Into::into)
    }

    async fn remove_if(
        &mut self,
        sandbox: String,
        path: String,
        if_content: Option<Vec<u8>>,
    ) -> Result<bool, types::CapError> {
        FilesView::remove_if(self, &sandbox, path, if_content)
            .await
            .map_err(Into::into)
    }

    async fn list_dir(
        &mut self,
        sandbox: String,
        path: String,
        max_entries: u32,
    ) -> Result<Option<Vec<String>>, types::CapError> {
        FilesView::list_dir(self, &sandbox, path, max_entries)
            .await
            .map_err(Into::into)
    }
}

impl processes::Host for ProcessesView<'_> {
    async fn all(
        &mut self,
        sandbox: String,
    ) -> Result<Vec<processes::ProcessInfo>, types::CapError> {
        let list = ProcessesView::all(self, &sandbox).await?;
        Ok(list
            .into_iter()
            .map(|p| processes::ProcessInfo {
                id: p.id.into(),
                ppid: p.ppid,
                uid: p.uid,
                state: p.state,
                comm: p.comm,
                cmdline: p.cmdline,
            })
            .collect())
    }

    async fn listeners(
        &mut self,
        sandbox: String,
    ) -> Result<Vec<processes::Listener>, types::CapError> {
        let list = ProcessesView::listeners(self, &sandbox).await?;
        Ok(list
            .into_iter()
            .map(|l| processes::Listener {
                address: l.address,
                port: l.port,
                owner: l.owner.map(Into::into),
            })
            .collect())
    }

    async fn send_signal(
        &mut self,
        sandbox: String,
        id: types::ProcessId,
        sig: processes::Signal,
    ) -> Result<bool, types::CapError> {
        let signal = match sig {
            processes::Signal::Term => backend::Signal::Term,
            processes::Signal::Kill => backend::Signal::Kill,
            processes::Signal::Int => backend::Signal::Int,
            processes::Signal::Hup => backend::Signal::Hup,
            processes::Signal::Cont => backend::Signal::Cont,
        };
        ProcessesView::send_signal(self, &sandbox, id.into(), signal)
            .await
            .map_err(Into::into)
    }
}

fn route(r: http::Route) -> cap_http::Route {
    match r {
        http::Route::SandboxLoopback(port) => cap_http::Route::SandboxLoopback(port),
        http::Route::HostForward(port) => cap_http::Route::HostForward(port),
    }
}

impl http::Host for HttpView<'_> {
    async fn send(
        &mut self,
        sandbox: String,
        req: http::Request,
    ) -> Result<http::Response, types::CapError> {
        let req = cap_http::HttpCall {
            route: route(req.route),
            method: req.method,
            path: req.path,
            headers: kvs(req.headers),
            body: req.body,
            timeout_ms: req.timeout_ms,
            max_body: req.max_body,
        };
        let response = HttpView::send(self, &sandbox, req).await?;
        Ok(http::Response {
            status: response.status,
            headers: pair_kvs(response.headers),
            body: response.body,
            truncated: response.truncated,
        })
    }

    async fn websocket(
        &mut self,
        sandbox: String,
        req: http::WsRequest,
    ) -> Result<http::WsTranscript, types::CapError> {
        let req = cap_http::WsCall {
            route: route(req.route),
            path: req.path,
            headers: kvs(req.headers),
            steps: req
                .steps
                .into_iter()
                .map(|s| match s {
                    http::WsStep::Send(text) => net::WsStep::Send(text),
                    http::WsStep::Receive => net::WsStep::Receive,
                })
                .collect(),
            timeout_ms: req.timeout_ms,
        };
        let t = HttpView::websocket(self, &sandbox, req).await?;
        Ok(http::WsTranscript {
            upgrade_status: t.upgrade_status,
            received: t.received,
            close_code: t.close_code,
            close_reason: t.close_reason,
        })
    }
}

fn forward_ask(spec: &forward::ForwardSpec) -> ForwardAsk {
    ForwardAsk {
        host_port: spec.host_port,
        sandbox_port: spec.sandbox_port,
        bind: spec.bind.clone(),
    }
}

/// The status as the plugin sees it: its own spec echoed back.
fn forward_status(
    status: host_forward::ForwardStatus,
    spec: forward::ForwardSpec,
) -> forward::ForwardStatus {
    forward::ForwardStatus {
        state: match status.state {
            host_forward::ForwardState::Owned => forward::ForwardState::Owned,
            host_forward::ForwardState::Absent => forward::ForwardState::Absent,
            host_forward::ForwardState::Stale => forward::ForwardState::Stale,
            host_forward::ForwardState::Foreign => forward::ForwardState::Foreign,
        },
        spec,
        pid: status.pid,
        evidence: pair_kvs(status.evidence),
    }
}

impl forward::Host for ForwardView<'_> {
    async fn status(
        &mut self,
        sandbox: String,
        spec: forward::ForwardSpec,
    ) -> Result<forward::ForwardStatus, types::CapError> {
        let status = ForwardView::status(self, &sandbox, &forward_ask(&spec)).await?;
        Ok(forward_status(status, spec))
    }

    async fn ensure(
        &mut self,
        sandbox: String,
        spec: forward::ForwardSpec,
    ) -> Result<forward::ForwardStatus, types::CapError> {
        let status = ForwardView::ensure(self, &sandbox, &forward_ask(&spec)).await?;
        Ok(forward_status(status, spec))
    }
}

impl log::Host for LogView<'_> {
    async fn write(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => tracing::Level::TRACE,
            log::Level::Debug => tracing::Level::DEBUG,
            log::Level::Info => tracing::Level::INFO,
            log::Level::Warn => tracing::Level::WARN,
            log::Level::Error => tracing::Level::ERROR,
        };
        LogView::write(self, level, message);
    }
}
