//! Plugins compiled into the binary by `build.rs`, and how a `--plugin`
//! argument names a plugin.

use std::path::PathBuf;

use crate::runtime::errors::LoadError;
use crate::safe_fs;

/// A plugin file larger than this is refused before it is read. Real
/// plugins are well under 1 MiB; the cap only bounds what a wrong path (a
/// disk image, a sparse file) can cost.
pub const MAX_PLUGIN_BYTES: u64 = 256 << 20;

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// Names of the embedded plugins.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(name, _)| *name).collect()
}

/// Where a plugin's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    Builtin(&'static str),
    File(PathBuf),
}

impl PluginSource {
    /// A value with a `/` or a `.wasm` suffix is a path; anything else must
    /// name a built-in.
    pub fn parse(spec: &str) -> Result<Self, LoadError> {
        if spec.contains('/') || spec.ends_with(".wasm") {
            return Ok(PluginSource::File(PathBuf::from(spec)));
        }
        BUILTINS
            .iter()
            .find(|(name, _)| *name == spec)
            .map(|(name, _)| PluginSource::Builtin(name))
            .ok_or_else(|| LoadError::UnknownBuiltin {
                name: spec.to_string(),
                builtins: builtin_names().join(", "),
            })
    }

    /// For messages and reports.
    pub fn display_name(&self) -> String {
        match self {
            PluginSource::Builtin(name) => format!("built-in {name}"),
            PluginSource::File(path) => path.display().to_string(),
        }
    }

    pub fn read(&self) -> Result<std::borrow::Cow<'static, [u8]>, LoadError> {
        match self {
            PluginSource::Builtin(name) => Ok(BUILTINS
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, bytes)| std::borrow::Cow::Borrowed(*bytes))
                .expect("built-in names come from BUILTINS")),
            // A regular file (a link the user named may lead to one),
            // capped, read under a deadline: a FIFO or a sparse disk image
            // is refused at once instead of hanging or filling memory.
            PluginSource::File(path) => match safe_fs::read_user_file(path, MAX_PLUGIN_BYTES) {
                Ok(bytes) => Ok(std::borrow::Cow::Owned(bytes)),
                Err(e) if e.is_not_found() => Err(LoadError::NotFound(path.clone())),
                Err(e) => Err(LoadError::Unreadable {
                    path: path.clone(),
                    cause: e.problem(),
                }),
            },
        }
    }
}
