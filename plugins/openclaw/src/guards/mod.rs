//! The `guards` link: the NemoClaw guard chain (NemoClaw#2478/#2701).
//!
//! Healthy when every guard preload is staged as a regular root:root 0444
//! file identical to its packaged source, and the env file the launch
//! sources is a regular root:root 0444 file that wires every staged guard
//! into NODE_OPTIONS as an exact `--require <path>` token (and, when a
//! packaged env file exists, is identical to it).
//!
//! Repair re-stages from the packaged sources only after checking they are
//! trusted (regular, not a symlink, root-owned, not group/world-writable),
//! and rebuilds an unsafe, missing or incomplete env file without ever
//! trusting (let alone sourcing) its old content.

mod assess;
mod plan;
#[cfg(test)]
mod tests;

use crate::config::Config;
use runner_plugin_sdk::{FileKind, FileStat, Report, Sandbox};

pub use assess::{assess, problems, source_refusal, unwired};
pub use plan::repair;

pub const LINK: &str = "guards";

/// Largest guard or env file read.
const MAX_FILE: u32 = 1024 * 1024;

/// A file as observed.
#[derive(Debug, Clone)]
pub struct FileFacts {
    pub path: String,
    pub stat: Option<FileStat>,
    /// Content, for regular files.
    pub data: Option<Vec<u8>>,
}

impl FileFacts {
    fn is_regular(&self) -> bool {
        self.stat
            .as_ref()
            .is_some_and(|s| s.kind == FileKind::Regular)
    }
}

#[derive(Debug, Clone)]
pub struct GuardFacts {
    pub staged: FileFacts,
    pub source: FileFacts,
}

/// Everything the link looks at.
#[derive(Debug, Clone)]
pub struct Facts {
    pub guards: Vec<GuardFacts>,
    pub env: FileFacts,
    /// The packaged env file, when configured.
    pub env_source: Option<FileFacts>,
}

impl Facts {
    fn staged_paths(&self) -> Vec<String> {
        self.guards.iter().map(|g| g.staged.path.clone()).collect()
    }
}

fn observe_file(sandbox: &Sandbox, path: &str) -> Result<FileFacts, String> {
    let stat = sandbox
        .stat(path)
        .map_err(|e| format!("cannot stat {path}: {e}"))?;
    let data = match &stat {
        Some(st) if st.kind == FileKind::Regular => Some(
            sandbox
                .read(path, MAX_FILE)
                .map_err(|e| format!("cannot read {path}: {e}"))?,
        ),
        _ => None,
    };
    Ok(FileFacts {
        path: path.to_string(),
        stat,
        data,
    })
}

pub fn observe(sandbox: &Sandbox, cfg: &Config) -> Result<Facts, String> {
    let mut guards = Vec::new();
    for (name, staged) in cfg.guards.iter().zip(cfg.staged_paths()) {
        guards.push(GuardFacts {
            staged: observe_file(sandbox, &staged)?,
            source: observe_file(sandbox, &cfg.source_path(name))?,
        });
    }
    let env = observe_file(sandbox, &cfg.env_file)?;
    let env_source = match &cfg.env_file_source {
        Some(p) => Some(observe_file(sandbox, p)?),
        None => None,
    };
    Ok(Facts {
        guards,
        env,
        env_source,
    })
}

pub fn probe(sandbox: &Sandbox, cfg: &Config) -> Report {
    match observe(sandbox, cfg) {
        Ok(f) => assess(&f),
        Err(e) => Report::unknown(LINK, format!("cannot inspect the guard chain: {e}")),
    }
}
