//! On-disk cache of compiled components, so a warm start skips Cranelift.
//!
//! A compiled artefact is native code: loading one is executing it. So an
//! entry is trusted by what it proves, never by its file name. Each entry is
//!
//! ```text
//! MAGIC (8 bytes) | HMAC-SHA256 tag (32 bytes) | artefact (Component::serialize)
//! ```
//!
//! and the tag is `HMAC(key, DOMAIN ‖ component sha256 ‖ engine fingerprint ‖
//! artefact)`. The engine fingerprint hashes wasmtime's
//! `Engine::precompile_compatibility_hash` and runner's version. The key is
//! a per-machine secret: 32 random bytes in `<cache dir>/mac.key`, created
//! once (exclusively, mode 0600) and refused when it is a symlink, not
//! owned by this user, or open to group or others (the cache is then
//! disabled for the run, with a warning). So an entry verifies only if a
//! runner holding this key compiled exactly this component with an engine
//! like this one: another plugin's valid artefact copied under this name,
//! one flipped byte, or an entry planted by anyone who cannot read the key
//! fails, is recompiled and replaced.
//!
//! The tag is checked over the bytes read once into memory, and the
//! component is deserialized from those same bytes, never by reopening the
//! path (which could have been swapped in between).
//!
//! The key sits with the entries it signs, so both share a lifetime (`rm -r`
//! of the cache resets both) and runners of one user that share a cache but
//! not a state dir stay warm. What protects it is its mode and owner, not
//! its place: a cache dir restored from elsewhere (a CI cache of `~/.cache`)
//! should leave `mac.key` out, and then only recompiles.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::safe_fs::{self, SafeFsError};

type HmacSha256 = Hmac<Sha256>;

/// Start of every entry (format version 1).
const MAGIC: &[u8; 8] = b"RUNCWv1\n";
/// Separates this MAC's inputs from any other use of the key.
const DOMAIN: &[u8] = b"runner compile cache v1\0";
const TAG_LEN: usize = 32;
const HEADER_LEN: usize = MAGIC.len() + TAG_LEN;
/// The key file, in the cache dir.
pub const KEY_FILE: &str = "mac.key";
const KEY_LEN: usize = 32;
/// Compiled code is a few times the size of its component; an entry larger
/// than this many times (plus slack) is not one of ours and is not read.
const ENTRY_PER_COMPONENT_BYTE: u64 = 16;
const ENTRY_SLACK: u64 = 16 << 20;
const ENTRY_MAX: u64 = 2 << 30;

/// A directory of `<sha256>-<engine fingerprint>.cwasm` files.
#[derive(Debug)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    /// sha256 of the engine's compatibility hash and runner's version.
    fingerprint: [u8; 32],
    /// Loaded (or created) on first use; `None`: the cache is off.
    key: OnceLock<Option<[u8; KEY_LEN]>>,
}

impl CompileCache {
    /// `dir = None` disables the cache (every load compiles).
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            fingerprint: engine_fingerprint(engine),
            key: OnceLock::new(),
        }
    }

    fn entry(&self, sha256: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| {
            d.join(format!(
                "{sha256}-{}.cwasm",
                hex::encode(&self.fingerprint[..8])
            ))
        })
    }

    fn key(&self) -> Option<&[u8; KEY_LEN]> {
        self.key
            .get_or_init(|| {
                let dir = self.dir.as_ref()?;
                match load_or_create_key(dir) {
                    Ok(key) => Some(key),
                    Err(e) => {
                        tracing::warn!("compile cache disabled: key {e}");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Compiled component for `bytes` (whose sha256 is `sha256`), from the
    /// cache when an entry there proves it was compiled from exactly these
    /// bytes by this engine; otherwise compiled, and the entry replaced.
    pub fn load(&self, engine: &Engine, sha256: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        debug_assert_eq!(hex::encode(digest), sha256);
        let cap = entry_cap(bytes.len());
        let usable = self.entry(sha256).zip(self.key());
        if let Some((path, key)) = &usable {
            match safe_fs::read_regular(path, cap) {
                Ok(file) => match verify(key, &digest, &self.fingerprint, &file) {
                    Some(artefact) => {
                        // SAFETY: `artefact` is the in-memory copy whose MAC
                        // was just verified with this machine's key: it is
                        // what `Component::serialize` produced in a runner
                        // holding the key, for a component with exactly
                        // this sha256, on an engine with this compatibility
                        // hash and runner version. It is not re-read from
                        // disk.
                        match unsafe { Component::deserialize(engine, artefact) } {
                            Ok(component) => return Ok(component),
                            Err(e) => {
                                tracing::warn!(path = %path.display(), "discarding an unusable compile cache entry: {e:#}")
                            }
                        }
                    }
                    None => tracing::warn!(
                        path = %path.display(),
                        "compile cache entry fails its MAC check (not compiled from this component by this runner); recompiling"
                    ),
                },
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!("compile cache entry {e}; recompiling"),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some((path, key)) = usable
            && let Err(e) = self.store(key, &digest, &path, &component, cap)
        {
            tracing::debug!(path = %path.display(), "could not write compile cache entry: {e}");
        }
        Ok(component)
    }

    fn store(
        &self,
        key: &[u8; KEY_LEN],
        digest: &[u8; 32],
        path: &Path,
        component: &Component,
        cap: u64,
    ) -> Result<(), String> {
        let artefact = component.serialize().map_err(|e| format!("{e:#}"))?;
        let entry = seal(key, digest, &self.fingerprint, &artefact);
        if entry.len() as u64 > cap {
            return Err(format!(
                "{} bytes is over the {cap}-byte entry cap",
                entry.len()
            ));
        }
        safe_fs::write_atomic(path, &entry, 0o600).map_err(|e| e.to_string())
    }
}

/// sha256 over wasmtime's compatibility hash (everything that decides
/// whether an artefact fits this engine) and runner's version.
fn engine_fingerprint(engine: &Engine) -> [u8; 32] {
    use std::hash::Hash;
    struct Feed(Sha256);
    impl std::hash::Hasher for Feed {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0 // never asked: the digest is the result
        }
    }
    let mut feed = Feed(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut feed);
    feed.0.update(b"\0runner ");
    feed.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    feed.0.finalize().into()
}

fn entry_cap(component_len: usize) -> u64 {
    (component_len as u64)
        .saturating_mul(ENTRY_PER_COMPONENT_BYTE)
        .saturating_add(ENTRY_SLACK)
        .min(ENTRY_MAX)
}

fn mac(
    key: &[u8; KEY_LEN],
    digest: &[u8; 32],
    fingerprint: &[u8; 32],
    artefact: &[u8],
) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(DOMAIN);
    mac.update(digest);
    mac.update(fingerprint);
    mac.update(artefact);
    mac
}

/// An entry: header and tag, then the artefact.
fn seal(
    key: &[u8; KEY_LEN],
    digest: &[u8; 32],
    fingerprint: &[u8; 32],
    artefact: &[u8],
) -> Vec<u8> {
    let tag = mac(key, digest, fingerprint, artefact)
        .finalize()
        .into_bytes();
    let mut entry = Vec::with_capacity(HEADER_LEN + artefact.len());
    entry.extend_from_slice(MAGIC);
    entry.extend_from_slice(&tag);
    entry.extend_from_slice(artefact);
    entry
}

/// The artefact of `entry` if its tag proves it was sealed with `key` for
/// this component and engine (checked in constant time).
fn verify<'a>(
    key: &[u8; KEY_LEN],
    digest: &[u8; 32],
    fingerprint: &[u8; 32],
    entry: &'a [u8],
) -> Option<&'a [u8]> {
    let rest = entry.strip_prefix(MAGIC.as_slice())?;
    if rest.len() < TAG_LEN {
        return None;
    }
    let (tag, artefact) = rest.split_at(TAG_LEN);
    mac(key, digest, fingerprint, artefact)
        .verify_slice(tag)
        .ok()
        .map(|()| artefact)
}

/// The cache's key: read if there (and private to this user), else made
/// from 32 random bytes and published exclusively (a concurrent runner's
/// key wins and is read back).
fn load_or_create_key(dir: &Path) -> Result<[u8; KEY_LEN], SafeFsError> {
    safe_fs::ensure_dir(dir, 0o700)?;
    let path = dir.join(KEY_FILE);
    let read = |path: &Path| {
        safe_fs::read_private(path, KEY_LEN as u64).map(|bytes| {
            let mut key = [0u8; KEY_LEN];
            key.copy_from_slice(&bytes);
            key
        })
    };
    match read(&path) {
        Ok(key) => return Ok(key),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let mut key = [0u8; KEY_LEN];
    let mut filled = 0;
    while filled < KEY_LEN {
        filled +=
            rustix::rand::getrandom(&mut key[filled..], rustix::rand::GetRandomFlags::empty())
                .map_err(|e| SafeFsError::Io {
                    path: path.clone(),
                    op: "created (no random bytes)",
                    source: e.into(),
                })?;
    }
    if safe_fs::create_new(&path, &key, 0o600)? {
        Ok(key)
    } else {
        read(&path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const KEY: [u8; KEY_LEN] = [9; KEY_LEN];
    const OTHER_KEY: [u8; KEY_LEN] = [8; KEY_LEN];
    const SHA: [u8; 32] = [1; 32];
    const OTHER_SHA: [u8; 32] = [2; 32];
    const FP: [u8; 32] = [3; 32];
    const OTHER_FP: [u8; 32] = [4; 32];

    #[test]
    fn an_entry_verifies_only_for_its_key_component_and_engine() {
        let artefact = b"compiled code".to_vec();
        let entry = seal(&KEY, &SHA, &FP, &artefact);
        assert_eq!(verify(&KEY, &SHA, &FP, &entry), Some(artefact.as_slice()));
        // Another component's entry copied under this name.
        assert_eq!(verify(&KEY, &OTHER_SHA, &FP, &entry), None);
        // Another engine or runner version.
        assert_eq!(verify(&KEY, &SHA, &OTHER_FP, &entry), None);
        // Sealed by someone without this machine's key.
        assert_eq!(verify(&OTHER_KEY, &SHA, &FP, &entry), None);
        // Every single flipped bit anywhere: magic, tag or artefact.
        for i in 0..entry.len() {
            for bit in 0..8 {
                let mut forged = entry.clone();
                forged[i] ^= 1 << bit;
                assert_eq!(verify(&KEY, &SHA, &FP, &forged), None, "byte {i} bit {bit}");
            }
        }
        // Truncated, or a bare artefact (the old format).
        assert_eq!(verify(&KEY, &SHA, &FP, &entry[..HEADER_LEN - 1]), None);
        assert_eq!(verify(&KEY, &SHA, &FP, &entry[..entry.len() - 1]), None);
        assert_eq!(verify(&KEY, &SHA, &FP, &artefact), None);
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("runner-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_key_is_made_once_private_and_refused_when_not_private() {
        let dir = tempdir("key");
        let key = load_or_create_key(&dir).unwrap();
        assert_ne!(key, [0; KEY_LEN]);
        assert_eq!(
            load_or_create_key(&dir).unwrap(),
            key,
            "read back, not remade"
        );
        let path = dir.join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_key(&dir).unwrap_err().to_string();
        assert!(err.contains("open to group or others"), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            key,
            "a refused key is left alone"
        );

        std::fs::remove_file(&path).unwrap();
        let elsewhere = dir.join("elsewhere");
        std::fs::write(&elsewhere, [5u8; KEY_LEN]).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        let err = load_or_create_key(&dir).unwrap_err().to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn concurrent_first_uses_agree_on_one_key() {
        let dir = tempdir("race");
        let keys: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || load_or_create_key(&dir).unwrap())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert!(keys.iter().all(|k| *k == keys[0]));
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "temp files left: {names:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn entry_caps_scale_with_the_component_and_stay_bounded() {
        assert_eq!(entry_cap(0), ENTRY_SLACK);
        assert_eq!(entry_cap(1 << 20), (16 << 20) + ENTRY_SLACK);
        assert_eq!(entry_cap(usize::MAX), ENTRY_MAX);
    }
}
