//! The sandboxes `runner conformance` runs a plugin against: in memory, so
//! the suite needs no engine, no image and no agent, and certifies the same
//! way on every machine.
//!
//! - [`Scenario::Empty`]: a running sandbox with nothing in it — an empty
//!   root with `/tmp`, no processes, no listeners, no binaries. Writes land
//!   in memory and are visible to later calls, like a real filesystem.
//! - [`Scenario::Unreachable`]: every call fails with `unavailable`, as when
//!   the engine goes away mid-probe.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::backend::{
    Backend, BackendError, ExecResult, ExecSpec, FileContent, FileKind, FileStat, Listener,
    ProcessId, ProcessInfo, SandboxInfo, SandboxState, SealedOutput, Signal, SpawnSpec, Stream,
    WriteSpec,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Empty,
    Unreachable,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Empty => "empty sandbox",
            Scenario::Unreachable => "unreachable engine",
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    Dir { mode: u32 },
    File { data: Vec<u8>, stat: FileStat },
}

/// An in-memory sandbox named `name`.
pub struct SyntheticSandbox {
    name: String,
    scenario: Scenario,
    nodes: Mutex<BTreeMap<String, Node>>,
}

impl SyntheticSandbox {
    pub fn new(name: &str, scenario: Scenario) -> Self {
        let nodes = BTreeMap::from([
            ("/".to_string(), Node::Dir { mode: 0o755 }),
            ("/tmp".to_string(), Node::Dir { mode: 0o1777 }),
        ]);
        Self {
            name: name.to_string(),
            scenario,
            nodes: Mutex::new(nodes),
        }
    }

    /// Paths of the regular files written so far.
    pub fn files(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, n)| matches!(n, Node::File { .. }))
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Node>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The common gate: the right sandbox, and an engine that answers.
    fn reach(&self, sandbox: &str) -> Result<(), BackendError> {
        if sandbox != self.name {
            return Err(BackendError::SandboxMissing(sandbox.to_string()));
        }
        match self.scenario {
            Scenario::Empty => Ok(()),
            Scenario::Unreachable => Err(BackendError::Unavailable(
                "the engine does not answer (conformance scenario: unreachable engine)".into(),
            )),
        }
    }
}

/// `/a/b/../c` style paths are not normalised by real backends either; the
/// synthetic one only needs a canonical key without a trailing slash.
fn key(path: &str) -> Result<String, BackendError> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(BackendError::Denied(format!(
            "path '{path}' must be absolute"
        )));
    }
    if path.split('/').any(|part| part == "..") {
        return Err(BackendError::Denied(format!(
            "path '{path}' leaves its directory"
        )));
    }
    let trimmed = path.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    })
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

#[async_trait::async_trait]
impl Backend for SyntheticSandbox {
    fn kind(&self) -> &'static str {
        "conformance"
    }

    async fn inspect(&self, sandbox: &str) -> Result<SandboxInfo, BackendError> {
        self.reach(sandbox)?;
        Ok(SandboxInfo {
            id: format!("conformance-{}", self.name),
            name: self.name.clone(),
            state: SandboxState::Running,
            labels: vec![],
            started_at: None,
        })
    }

    async fn start(&self, sandbox: &str) -> Result<(), BackendError> {
        self.reach(sandbox)
    }

    async fn exec(&self, sandbox: &str, spec: ExecSpec) -> Result<ExecResult, BackendError> {
        self.reach(sandbox)?;
        Err(BackendError::NoSuchBinary(
            spec.argv.first().cloned().unwrap_or_default(),
        ))
    }

    /// Nothing runs in a synthetic sandbox, sealed or not.
    async fn exec_sealed(
        &self,
        sandbox: &str,
        spec: ExecSpec,
    ) -> Result<SealedOutput, BackendError> {
        self.exec(sandbox, spec).await.map(|output| SealedOutput {
            output,
            write_refused: false,
        })
    }

    async fn spawn_detached(
        &self,
        sandbox: &str,
        spec: SpawnSpec,
    ) -> Result<ProcessId, BackendError> {
        self.reach(sandbox)?;
        Err(BackendError::NoSuchBinary(
            spec.argv.first().cloned().unwrap_or_default(),
        ))
    }

    async fn stat(&self, sandbox: &str, path: &str) -> Result<Option<FileStat>, BackendError> {
        self.reach(sandbox)?;
        let path = key(path)?;
        Ok(self.lock().get(&path).map(|node| match node {
            Node::Dir { mode } => FileStat {
                kind: FileKind::Directory,
                mode: *mode,
                uid: 0,
                gid: 0,
                size: 4096,
                mtime: 0,
            },
            Node::File { stat, .. } => stat.clone(),
        }))
    }

    async fn read_file(
        &self,
        sandbox: &str,
        path: &str,
        max: usize,
    ) -> Result<FileContent, BackendError> {
        self.reach(sandbox)?;
        let path = key(path)?;
        match self.lock().get(&path) {
            Some(Node::File { data, .. }) => Ok(FileContent {
                data: data[..data.len().min(max)].to_vec(),
                truncated: data.len() > max,
            }),
            Some(Node::Dir { .. }) => {
                Err(BackendError::Failed(format!("read {path}: is a directory")))
            }
            None => Err(BackendError::Failed(format!(
                "read {path}: no such file or directory"
            ))),
        }
    }

    async fn write_file(&self, sandbox: &str, spec: WriteSpec) -> Result<(), BackendError> {
        self.reach(sandbox)?;
        let path = key(&spec.path)?;
        let mut nodes = self.lock();
        if !matches!(nodes.get(parent(&path)), Some(Node::Dir { .. })) {
            return Err(BackendError::Failed(format!(
                "write {path}: no such directory {}",
                parent(&path)
            )));
        }
        if matches!(nodes.get(&path), Some(Node::Dir { .. })) {
            return Err(BackendError::Failed(format!(
                "write {path}: is a directory"
            )));
        }
        let stat = FileStat {
            kind: FileKind::Regular,
            mode: spec.mode & 0o7777,
            uid: spec.uid,
            gid: spec.gid,
            size: spec.data.len() as u64,
            mtime: 0,
        };
        nodes.insert(
            path,
            Node::File {
                data: spec.data,
                stat,
            },
        );
        Ok(())
    }

    async fn remove_file_if(
        &self,
        sandbox: &str,
        path: &str,
        if_content: Option<Vec<u8>>,
    ) -> Result<bool, BackendError> {
        self.reach(sandbox)?;
        let path = key(path)?;
        let mut nodes = self.lock();
        let matches = match nodes.get(&path) {
            Some(Node::File { data, .. }) => if_content.as_ref().is_none_or(|c| c == data),
            _ => false,
        };
        if matches {
            nodes.remove(&path);
        }
        Ok(matches)
    }

    async fn list_dir(
        &self,
        sandbox: &str,
        path: &str,
        max: usize,
    ) -> Result<Option<Vec<String>>, BackendError> {
        self.reach(sandbox)?;
        let path = key(path)?;
        let nodes = self.lock();
        if !matches!(nodes.get(&path), Some(Node::Dir { .. })) {
            return Ok(None);
        }
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        Ok(Some(
            nodes
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .filter(|rest| !rest.is_empty() && !rest.contains('/'))
                .take(max)
                .map(str::to_string)
                .collect(),
        ))
    }

    async fn processes(&self, sandbox: &str) -> Result<Vec<ProcessInfo>, BackendError> {
        self.reach(sandbox)?;
        Ok(vec![])
    }

    async fn listeners(&self, sandbox: &str) -> Result<Vec<Listener>, BackendError> {
        self.reach(sandbox)?;
        Ok(vec![])
    }

    async fn signal(
        &self,
        sandbox: &str,
        _id: ProcessId,
        _signal: Signal,
    ) -> Result<bool, BackendError> {
        self.reach(sandbox)?;
        Ok(false)
    }

    async fn connect_loopback(
        &self,
        sandbox: &str,
        port: u16,
        _timeout: Duration,
    ) -> Result<Box<dyn Stream>, BackendError> {
        self.reach(sandbox)?;
        Err(BackendError::Failed(format!(
            "connection refused: nothing listens on 127.0.0.1:{port} in the sandbox"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &str, data: &[u8]) -> WriteSpec {
        WriteSpec {
            path: path.into(),
            data: data.to_vec(),
            mode: 0o644,
            uid: 1000,
            gid: 1000,
        }
    }

    #[tokio::test]
    async fn empty_sandbox_keeps_what_is_written_and_nothing_else() {
        let s = SyntheticSandbox::new("box", Scenario::Empty);
        assert_eq!(s.stat("box", "/tmp/a").await.unwrap(), None);
        assert_eq!(
            s.list_dir("box", "/", 10).await.unwrap(),
            Some(vec!["tmp".to_string()])
        );
        s.write_file("box", write("/tmp/a", b"x")).await.unwrap();
        let stat = s.stat("box", "/tmp/a").await.unwrap().unwrap();
        assert_eq!(
            (stat.kind, stat.mode, stat.uid, stat.size),
            (FileKind::Regular, 0o644, 1000, 1)
        );
        assert_eq!(s.read_file("box", "/tmp/a", 10).await.unwrap().data, b"x");
        assert!(
            s.write_file("box", write("/nope/a", b"x")).await.is_err(),
            "a missing parent directory is an error, as on a real filesystem"
        );
        assert!(
            !s.remove_file_if("box", "/tmp/a", Some(b"y".to_vec()))
                .await
                .unwrap()
        );
        assert!(
            s.remove_file_if("box", "/tmp/a", Some(b"x".to_vec()))
                .await
                .unwrap()
        );
        assert!(s.files().is_empty());
        assert!(matches!(
            s.exec("box", ExecSpec { argv: vec!["sh".into()], ..Default::default() }).await,
            Err(BackendError::NoSuchBinary(b)) if b == "sh"
        ));
        assert!(s.processes("box").await.unwrap().is_empty());
        assert!(
            s.connect_loopback("box", 80, Duration::from_secs(1))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn unreachable_engine_answers_nothing_and_other_sandboxes_do_not_exist() {
        let s = SyntheticSandbox::new("box", Scenario::Unreachable);
        assert!(matches!(
            s.stat("box", "/tmp").await,
            Err(BackendError::Unavailable(_))
        ));
        assert!(matches!(
            s.processes("box").await,
            Err(BackendError::Unavailable(_))
        ));
        let empty = SyntheticSandbox::new("box", Scenario::Empty);
        assert!(matches!(
            empty.stat("other", "/tmp").await,
            Err(BackendError::SandboxMissing(_))
        ));
    }
}
