//! `files.*`: stat, capped read, atomic write, compare-and-delete, list.

use crate::backend::{FileContent, FileStat, WriteSpec};
use crate::model::CapError;

use super::{Access, Capability, cap_error, clamp_bytes, interface_view};

interface_view!(
    /// The `files` interface.
    Files,
    FilesView
);

fn absolute(path: &str) -> Result<(), CapError> {
    if path.starts_with('/') && !path.contains('\0') {
        Ok(())
    } else {
        Err(CapError::Denied(format!("path '{path}' must be absolute")))
    }
}

impl FilesView<'_> {
    pub async fn stat(
        &mut self,
        sandbox: &str,
        path: String,
    ) -> Result<Option<FileStat>, CapError> {
        let backend = self
            .cx
            .admit(Capability::Files, sandbox, Access::Read)
            .map_err(CapError::Denied)?;
        absolute(&path)?;
        backend.stat(sandbox, &path).await.map_err(cap_error)
    }

    pub async fn read(
        &mut self,
        sandbox: &str,
        path: String,
        max_bytes: u32,
    ) -> Result<FileContent, CapError> {
        let backend = self
            .cx
            .admit(Capability::Files, sandbox, Access::Read)
            .map_err(CapError::Denied)?;
        absolute(&path)?;
        let max = clamp_bytes(
            max_bytes,
            self.cx.limits.read_default,
            self.cx.limits.read_max,
        );
        backend
            .read_file(sandbox, &path, max)
            .await
            .map_err(cap_error)
    }

    pub async fn write(&mut self, sandbox: &str, req: WriteSpec) -> Result<(), CapError> {
        let backend = self
            .cx
            .admit(Capability::Files, sandbox, Access::Mutate)
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
        self.cx.begin(Capability::Files, "write", &detail);
        let result = backend.write_file(sandbox, req).await;
        let outcome = match &result {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        self.cx.record(Capability::Files, "write", detail, outcome);
        result.map_err(cap_error)
    }

    pub async fn remove_if(
        &mut self,
        sandbox: &str,
        path: String,
        if_content: Option<Vec<u8>>,
    ) -> Result<bool, CapError> {
        let backend = self
            .cx
            .admit(Capability::Files, sandbox, Access::Mutate)
            .map_err(CapError::Denied)?;
        absolute(&path)?;
        let detail = match &if_content {
            Some(c) => format!("{path} (if content is the {} bytes read)", c.len()),
            None => path.clone(),
        };
        self.cx.begin(Capability::Files, "remove-if", &detail);
        let result = backend.remove_file_if(sandbox, &path, if_content).await;
        let outcome = match &result {
            Ok(true) => "removed".to_string(),
            Ok(false) => "kept (absent or changed)".to_string(),
            Err(e) => format!("error: {e}"),
        };
        // Only an actual removal changed the sandbox.
        let changed = !matches!(result, Ok(false));
        self.cx
            .finish(Capability::Files, "remove-if", detail, outcome, changed);
        result.map_err(cap_error)
    }

    pub async fn list_dir(
        &mut self,
        sandbox: &str,
        path: String,
        max_entries: u32,
    ) -> Result<Option<Vec<String>>, CapError> {
        let backend = self
            .cx
            .admit(Capability::Files, sandbox, Access::Read)
            .map_err(CapError::Denied)?;
        absolute(&path)?;
        let max = clamp_bytes(max_entries, self.cx.limits.list_default, 65_536);
        backend
            .list_dir(sandbox, &path, max)
            .await
            .map_err(cap_error)
    }
}
