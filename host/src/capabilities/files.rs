//! `files.*`: stat, capped read, atomic write, compare-and-delete, list.

use crate::backend::{FileKind as BFileKind, WriteSpec};
use crate::runtime::bindings::runner::plugin::files::{
    FileContent, FileKind, FileStat, Host, WriteRequest,
};
use crate::runtime::bindings::runner::plugin::types::CapError;
use crate::runtime::state::PluginState;

use super::{Access, Capability, cap_error, clamp_bytes};

fn absolute(path: &str) -> Result<(), CapError> {
    if path.starts_with('/') && !path.contains('\0') {
        Ok(())
    } else {
        Err(CapError::Denied(format!("path '{path}' must be absolute")))
    }
}

impl Host for PluginState {
    async fn stat(&mut self, sandbox: String, path: String) -> Result<Option<FileStat>, CapError> {
        let backend = self
            .caps
            .admit(Capability::Files, &sandbox, Access::Read)
            .map_err(CapError::Denied)?;
        absolute(&path)?;
        let stat = backend.stat(&sandbox, &path).await.map_err(cap_error)?;
        Ok(stat.map(|s| FileStat {
            kind: match s.kind {
                BFileKind::Regular => FileKind::Regular,
                BFileKind::Directory => FileKind::Directory,
                BFileKind::Symlink => FileKind::Symlink,
                BFileKind::Other => FileKind::Other,
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
    ) -> Result<FileContent, CapError> {
        let backend = self
            .caps
            .admit(Capability::Files, &sandbox, Access::Read)
            .map_err(CapError::Denied)?;
        absolute(&path)?;
        let max = clamp_bytes(
            max_bytes,
            self.caps.limits.read_default,
            self.caps.limits.read_max,
        );
        let content = backend
            .read_file(&sandbox, &path, max)
            .await
            .map_err(cap_error)?;
        Ok(FileContent {
            data: content.data,
            truncated: content.truncated,
        })
    }

    async fn write(&mut self, sandbox: String, req: WriteRequest) -> Result<(), CapError> {
        let backend = self
            .caps
            .admit(Capability::Files, &sandbox, Access::Mutate)
            .map_err(CapError::Denied)?;
        absolute(&req.path)?;
        if req.mode > 0o7777 {
            return Err(CapError::Denied(format!(
                "mode {:o} is not a permission mode",
                req.mode
            )));
        }
        let detail = format!(
            "{} ({} bytes, mode {:o}, owner {}:{})",
            req.path,
            req.data.len(),
            req.mode,
            req.uid,
            req.gid
        );
        self.caps.begin(Capability::Files, "write", &detail);
        let result = backend
            .write_file(
                &sandbox,
                WriteSpec {
                    path: req.path,
                    data: req.data,
                    mode: req.mode,
                    uid: req.uid,
                    gid: req.gid,
                },
            )
            .await;
        let outcome = match &result {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        self.caps
            .record(Capability::Files, "write", detail, outcome);
        result.map_err(cap_error)
    }

    async fn remove_if(
        &mut self,
        sandbox: String,
        path: String,
        if_content: Option<Vec<u8>>,
    ) -> Result<bool, CapError> {
        let backend = self
            .caps
            .admit(Capability::Files, &sandbox, Access::Mutate)
            .map_err(CapError::Denied)?;
        absolute(&path)?;
        let detail = match &if_content {
            Some(c) => format!("{path} (if content is the {} bytes read)", c.len()),
            None => path.clone(),
        };
        self.caps.begin(Capability::Files, "remove-if", &detail);
        let result = backend.remove_file_if(&sandbox, &path, if_content).await;
        let outcome = match &result {
            Ok(true) => "removed".to_string(),
            Ok(false) => "kept (absent or changed)".to_string(),
            Err(e) => format!("error: {e}"),
        };
        // Only an actual removal changed the sandbox.
        let changed = !matches!(result, Ok(false));
        self.caps
            .finish(Capability::Files, "remove-if", detail, outcome, changed);
        result.map_err(cap_error)
    }

    async fn list_dir(
        &mut self,
        sandbox: String,
        path: String,
        max_entries: u32,
    ) -> Result<Option<Vec<String>>, CapError> {
        let backend = self
            .caps
            .admit(Capability::Files, &sandbox, Access::Read)
            .map_err(CapError::Denied)?;
        absolute(&path)?;
        let max = clamp_bytes(max_entries, self.caps.limits.list_default, 65_536);
        backend
            .list_dir(&sandbox, &path, max)
            .await
            .map_err(cap_error)
    }
}
