//! The Docker CLI's context store, read the way the CLI reads it:
//! `$DOCKER_CONFIG/config.json` names the current context, and a context
//! `NAME` lives in `contexts/meta/<sha256(NAME)>/meta.json` (its Docker
//! endpoint: `Endpoints.docker.Host`, `SkipTLSVerify`) with its TLS
//! material in `contexts/tls/<sha256(NAME)>/docker/{ca,cert,key}.pem`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::host_form;
use super::small_file;
use super::tls::TlsFiles;

/// The context that means "no context": `DOCKER_HOST` or the local socket.
pub const DEFAULT: &str = "default";

/// Why a context cannot be used; every case is a configuration error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error(
        "Docker context '{name}' (from {from}) does not exist: no {}; list contexts with `docker context ls`, or set DOCKER_HOST",
        meta.display()
    )]
    Unknown {
        name: String,
        from: String,
        meta: PathBuf,
    },
    #[error("Docker context name '{name}' (from {from}) is not a valid context name")]
    BadName { name: String, from: String },
    #[error("Docker context '{name}' cannot be used: {why}")]
    Unusable { name: String, why: String },
    #[error("cannot read the current context from {}: {why}; fix the file, or set DOCKER_HOST or DOCKER_CONTEXT", path.display())]
    Config { path: PathBuf, why: String },
}

/// A context's Docker endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEndpoint {
    pub host: String,
    pub tls: Option<TlsFiles>,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(rename = "currentContext", default)]
    current_context: String,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Endpoints", default)]
    endpoints: Endpoints,
}

#[derive(Deserialize, Default)]
struct Endpoints {
    docker: Option<DockerEndpoint>,
}

#[derive(Deserialize)]
struct DockerEndpoint {
    #[serde(rename = "Host", default)]
    host: String,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// `currentContext` of `config_dir/config.json`; `None` when the file does
/// not exist or names none.
pub fn current(config_dir: &Path) -> Result<Option<String>, ContextError> {
    let path = config_dir.join("config.json");
    let bytes = match small_file::read(&path) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => {
            return Err(ContextError::Config {
                path,
                why: format!("it {}", e.problem()),
            });
        }
    };
    let config: ConfigFile = serde_json::from_slice(&bytes).map_err(|e| ContextError::Config {
        path: path.clone(),
        why: format!("it is not valid JSON: {e}"),
    })?;
    Ok(Some(config.current_context).filter(|c| !c.is_empty()))
}

/// The Docker endpoint of context `name` in the store under `config_dir`;
/// `from` says who named it (`DOCKER_CONTEXT`, the config file).
pub fn load(config_dir: &Path, name: &str, from: &str) -> Result<ContextEndpoint, ContextError> {
    if !valid_name(name) {
        return Err(ContextError::BadName {
            name: name.escape_debug().to_string(),
            from: from.to_string(),
        });
    }
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    let contexts = config_dir.join("contexts");
    let meta_path = contexts.join("meta").join(&id).join("meta.json");
    let unusable = |why: String| ContextError::Unusable {
        name: name.to_string(),
        why,
    };
    let bytes = match small_file::read(&meta_path) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            return Err(ContextError::Unknown {
                name: name.to_string(),
                from: from.to_string(),
                meta: meta_path,
            });
        }
        Err(e) => return Err(unusable(e.to_string())),
    };
    let meta: Meta = serde_json::from_slice(&bytes)
        .map_err(|e| unusable(format!("{} is not valid JSON: {e}", meta_path.display())))?;
    if meta.name != name {
        return Err(unusable(format!(
            "{} is for context '{}'",
            meta_path.display(),
            meta.name.escape_debug()
        )));
    }
    let docker = meta
        .endpoints
        .docker
        .ok_or_else(|| unusable("it has no Docker endpoint".into()))?;
    if !host_form::well_formed(&docker.host) {
        return Err(unusable(format!(
            "its host '{}' is not an address runner can use ({})",
            docker.host.escape_debug(),
            host_form::ACCEPTED
        )));
    }
    if docker.skip_tls_verify {
        // The CLI would connect without checking the engine's certificate;
        // runner repairs (mutates) what it reaches, so it never does.
        return Err(unusable(
            "it sets SkipTLSVerify, and runner does not talk to an engine whose certificate it cannot verify; \
             store the engine's CA in the context (`docker context update --docker ca=…`)"
                .into(),
        ));
    }
    let tls_dir = contexts.join("tls").join(&id).join("docker");
    let tls = tls_material(&tls_dir, name).map_err(unusable)?;
    Ok(ContextEndpoint {
        host: docker.host,
        tls,
    })
}

/// The context's TLS files: none (plain), or all three.
fn tls_material(dir: &Path, name: &str) -> Result<Option<TlsFiles>, String> {
    let files = TlsFiles::in_dir(dir, format!("context '{name}' ({})", dir.display()));
    let present: Vec<&Path> = [&files.ca, &files.cert, &files.key]
        .into_iter()
        .map(PathBuf::as_path)
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .collect();
    match present.len() {
        0 => Ok(None),
        3 => {
            files.check().map_err(|e| e.to_string())?;
            Ok(Some(files))
        }
        _ => Err(format!(
            "its TLS material in {} is incomplete: runner needs ca.pem, cert.pem and key.pem, found only {}",
            dir.display(),
            present
                .iter()
                .filter_map(|p| p.file_name()?.to_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The CLI's rule: `^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_cli_rule() {
        for ok in ["prod", "my-ctx", "a.b+c_d", "x1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "x", "-x", "../x", "a/b", "a b", "é1"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_store_path_is_the_sha256_of_the_name() {
        // As `docker context inspect -f '{{.Storage.MetadataPath}}' default`
        // would compute it for "prod".
        let id = hex::encode(Sha256::digest(b"prod"));
        assert_eq!(id.len(), 64);
        let dir = std::env::temp_dir().join(format!("runner-ctx-path-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let e = load(&dir, "prod", "DOCKER_CONTEXT").unwrap_err();
        match e {
            ContextError::Unknown { meta, .. } => {
                assert_eq!(meta, dir.join("contexts/meta").join(id).join("meta.json"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
