//! On-disk cache of compiled components, keyed by the engine's compatibility
//! hash, runner's version and the component's sha256, so a warm start skips
//! Cranelift entirely.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of `<sha256>-<engine key>.cwasm` files.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl CompileCache {
    /// `dir = None` disables the cache (every load compiles).
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Self {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    fn entry(&self, sha256: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{sha256}-{}.cwasm", self.engine_key)))
    }

    /// Compiled component for `bytes`, from the cache when present. A cache
    /// entry that fails to load is recompiled and replaced, never trusted.
    pub fn load(&self, engine: &Engine, sha256: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        if let Some(path) = self.entry(sha256).filter(|p| p.is_file()) {
            // SAFETY: entries are only written by `store` below, into a
            // directory owned by this user, named by the content hash and the
            // engine compatibility hash; a corrupt entry fails validation in
            // `deserialize_file` and is recompiled.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "discarding unusable compile cache entry")
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(path) = self.entry(sha256)
            && let Err(e) = store(&path, &component)
        {
            tracing::debug!(path = %path.display(), error = %e, "could not write compile cache entry");
        }
        Ok(component)
    }
}

/// Atomic write: temp file in the cache dir, then rename.
fn store(path: &Path, component: &Component) -> std::io::Result<()> {
    let dir = path.parent().expect("cache entry has a parent");
    std::fs::create_dir_all(dir)?;
    let bytes = component
        .serialize()
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
