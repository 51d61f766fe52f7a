//! The bound sandbox, as a handle whose methods call the host capabilities.
//!
//! Every capability takes the sandbox name so that an instance can only ever
//! name its own target: the host denies any other.

use crate::bindings::runner::plugin::{
    exec, files, forward, http, processes, spawn,
    types::{Kv, ProcessId},
};
use crate::{Error, ExecOutput, FileStat, ForwardSpec, ForwardStatus, HttpResponse};

/// Handle on the target sandbox of this call.
#[derive(Debug, Clone)]
pub struct Sandbox {
    name: String,
    /// `Some` for a probe-time snapshot: the process table and listeners are
    /// read at most once through this handle (see [`Sandbox::snapshot`]).
    snapshot: Option<Snapshot>,
}

type Cached<T> = std::cell::RefCell<Option<Result<Vec<T>, Error>>>;

#[derive(Debug, Clone, Default)]
struct Snapshot {
    processes: Cached<processes::ProcessInfo>,
    listeners: Cached<processes::Listener>,
}

fn cached<T: Clone>(
    cell: &Cached<T>,
    read: impl FnOnce() -> Result<Vec<T>, Error>,
) -> Result<Vec<T>, Error> {
    if let Some(r) = cell.borrow().as_ref() {
        return r.clone();
    }
    let r = read();
    *cell.borrow_mut() = Some(r.clone());
    r
}

impl Sandbox {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            snapshot: None,
        }
    }

    /// A handle for one probe: `processes()` and `listeners()` are scanned
    /// once and the same answer is reused by every link the probe checks
    /// (each scan walks the host's process table). Never use it where the
    /// sandbox changes under the handle (repairs signal and spawn).
    pub fn snapshot(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            snapshot: Some(Snapshot::default()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Start building a command; see [`Command`].
    pub fn command<I, S>(&self, argv: I) -> Command<'_>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            sandbox: self,
            req: exec::ExecRequest {
                argv: argv.into_iter().map(Into::into).collect(),
                user: None,
                env: Vec::new(),
                stdin: None,
                workdir: None,
                timeout_ms: 0,
                max_output: 0,
            },
        }
    }

    /// Launch a detached process appending its output to `log_file`.
    pub fn spawn(
        &self,
        argv: &[String],
        user: Option<&str>,
        env: &[(String, String)],
        log_file: &str,
    ) -> Result<ProcessId, Error> {
        Ok(spawn::detached(
            &self.name,
            &spawn::SpawnRequest {
                argv: argv.to_vec(),
                user: user.map(str::to_string),
                env: env.iter().map(|(k, v)| crate::kv(k.clone(), v)).collect(),
                workdir: None,
                log_file: log_file.to_string(),
            },
        )?)
    }

    pub fn stat(&self, path: &str) -> Result<Option<FileStat>, Error> {
        Ok(files::stat(&self.name, path)?)
    }

    /// Read a whole file of at most `max` bytes; a longer file is an error,
    /// so callers never act on a silently cut document.
    pub fn read(&self, path: &str, max: u32) -> Result<Vec<u8>, Error> {
        let content = files::read(&self.name, path, max)?;
        if content.truncated {
            return Err(Error::Failed(format!("{path} is larger than {max} bytes")));
        }
        Ok(content.data)
    }

    /// Read at most `max` bytes; `truncated` tells whether the file is
    /// longer. For logs and other files where the head is enough.
    pub fn read_head(&self, path: &str, max: u32) -> Result<files::FileContent, Error> {
        Ok(files::read(&self.name, path, max)?)
    }

    pub fn write(
        &self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(), Error> {
        Ok(files::write(
            &self.name,
            &files::WriteRequest {
                path: path.into(),
                data: data.to_vec(),
                mode,
                uid,
                gid,
            },
        )?)
    }

    pub fn remove_if(&self, path: &str, if_content: Option<&[u8]>) -> Result<bool, Error> {
        Ok(files::remove_if(&self.name, path, if_content)?)
    }

    pub fn list_dir(&self, path: &str) -> Result<Option<Vec<String>>, Error> {
        Ok(files::list_dir(&self.name, path, 0)?)
    }

    pub fn processes(&self) -> Result<Vec<processes::ProcessInfo>, Error> {
        match &self.snapshot {
            Some(s) => cached(&s.processes, || Ok(processes::all(&self.name)?)),
            None => Ok(processes::all(&self.name)?),
        }
    }

    pub fn listeners(&self) -> Result<Vec<processes::Listener>, Error> {
        match &self.snapshot {
            Some(s) => cached(&s.listeners, || Ok(processes::listeners(&self.name)?)),
            None => Ok(processes::listeners(&self.name)?),
        }
    }

    pub fn signal(&self, id: ProcessId, sig: processes::Signal) -> Result<bool, Error> {
        Ok(processes::send_signal(&self.name, id, sig)?)
    }

    /// `GET path` on the sandbox's loopback `port`, no extra headers.
    pub fn http_get(&self, port: u16, path: &str, timeout_ms: u32) -> Result<HttpResponse, Error> {
        self.http(
            http::Route::SandboxLoopback(port),
            "GET",
            path,
            &[],
            timeout_ms,
        )
    }

    pub fn http(
        &self,
        route: http::Route,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        timeout_ms: u32,
    ) -> Result<HttpResponse, Error> {
        Ok(http::send(
            &self.name,
            &http::Request {
                route,
                method: method.into(),
                path: path.into(),
                headers: to_kvs(headers),
                body: None,
                timeout_ms,
                max_body: 0,
            },
        )?)
    }

    pub fn websocket(
        &self,
        route: http::Route,
        path: &str,
        headers: &[(&str, &str)],
        steps: Vec<http::WsStep>,
        timeout_ms: u32,
    ) -> Result<http::WsTranscript, Error> {
        Ok(http::websocket(
            &self.name,
            &http::WsRequest {
                route,
                path: path.into(),
                headers: to_kvs(headers),
                steps,
                timeout_ms,
            },
        )?)
    }

    pub fn forward_status(&self, spec: ForwardSpec) -> Result<ForwardStatus, Error> {
        Ok(forward::status(&self.name, &spec)?)
    }

    pub fn forward_ensure(&self, spec: ForwardSpec) -> Result<ForwardStatus, Error> {
        Ok(forward::ensure(&self.name, &spec)?)
    }
}

fn to_kvs(pairs: &[(&str, &str)]) -> Vec<Kv> {
    pairs.iter().map(|(k, v)| crate::kv(*k, v)).collect()
}

/// A command being built for [`Sandbox::command`].
pub struct Command<'a> {
    sandbox: &'a Sandbox,
    req: exec::ExecRequest,
}

impl Command<'_> {
    pub fn user(mut self, user: &str) -> Self {
        self.req.user = Some(user.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.req.env.push(crate::kv(key, value));
        self
    }

    pub fn stdin(mut self, data: &[u8]) -> Self {
        self.req.stdin = Some(data.to_vec());
        self
    }

    pub fn workdir(mut self, dir: &str) -> Self {
        self.req.workdir = Some(dir.into());
        self
    }

    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.req.timeout_ms = ms;
        self
    }

    pub fn max_output(mut self, bytes: u32) -> Self {
        self.req.max_output = bytes;
        self
    }

    pub fn run(self) -> Result<ExecOutput, Error> {
        Ok(exec::run(&self.sandbox.name, &self.req)?)
    }
}
