//! Which engine runner talks to, and how, resolved from the environment the
//! way the Docker CLI resolves it:
//!
//! 1. `DOCKER_HOST` (non-empty) wins, with TLS when `DOCKER_TLS_VERIFY` is
//!    non-empty and the host is `tcp://` (files `ca.pem`, `cert.pem`,
//!    `key.pem` in `DOCKER_CERT_PATH`, default `$DOCKER_CONFIG` or
//!    `~/.docker`);
//! 2. else the context named by `DOCKER_CONTEXT`, else the `currentContext`
//!    of `$DOCKER_CONFIG/config.json` (see [`super::context`]);
//! 3. else (or for the context `default`) the local socket.
//!
//! Everything that can be wrong here is the user's configuration: the CLI
//! resolves before connecting and answers exit 2 with the message.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

use super::context::{self, ContextError};
use super::host_form;
use super::tls::{BadTlsFile, TlsFiles};

/// The local engine socket.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// A resolved engine address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `unix:///…`, `tcp://…` or `http://…`.
    pub host: String,
    /// TLS material when the connection must be TLS (always verified).
    pub tls: Option<TlsFiles>,
    /// What chose it, for logs: `DOCKER_HOST`, `context 'x'`, `default`.
    pub source: String,
}

impl Endpoint {
    /// The local socket, nothing configured.
    pub fn local() -> Endpoint {
        Endpoint {
            host: DEFAULT_HOST.into(),
            tls: None,
            source: context::DEFAULT.into(),
        }
    }
}

/// A configuration that names no usable engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error(
        "DOCKER_HOST='{0}' is not an engine address; use {accepted} (or unset it for the local socket)",
        accepted = host_form::ACCEPTED
    )]
    BadHost(String),
    #[error("DOCKER_TLS_VERIFY is set: {file}; {origin} must hold ca.pem, cert.pem and key.pem")]
    TlsFile { file: BadTlsFile, origin: String },
    #[error(
        "DOCKER_TLS is set without DOCKER_TLS_VERIFY, which asks for TLS without checking the engine's certificate; \
         runner only talks to an engine it can verify: set DOCKER_TLS_VERIFY=1 (and DOCKER_CERT_PATH)"
    )]
    Unverified,
    #[error(
        "cannot find the Docker config directory: HOME is not set; set DOCKER_CONFIG or DOCKER_CERT_PATH"
    )]
    NoHome,
    #[error(transparent)]
    Context(#[from] ContextError),
}

/// The variables resolution reads, and the home directory: the process
/// environment, or a fixed set in tests.
#[derive(Debug, Clone, Default)]
pub struct EnvView {
    vars: HashMap<String, OsString>,
}

const VARS: [&str; 7] = [
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_TLS_VERIFY",
    "DOCKER_TLS",
    "DOCKER_CERT_PATH",
    "HOME",
];

impl EnvView {
    pub fn from_process() -> EnvView {
        EnvView {
            vars: VARS
                .iter()
                .filter_map(|k| Some((k.to_string(), std::env::var_os(k)?)))
                .collect(),
        }
    }

    pub fn from_pairs(pairs: &[(&str, &str)]) -> EnvView {
        EnvView {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), OsString::from(v)))
                .collect(),
        }
    }

    /// A non-empty value (the CLI treats empty as unset).
    fn get(&self, name: &'static str) -> Result<Option<String>, EndpointError> {
        match self.vars.get(name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.to_string()))
                .ok_or(EndpointError::NotUtf8(name)),
        }
    }

    /// `$DOCKER_CONFIG`, else `~/.docker`.
    fn config_dir(&self) -> Result<PathBuf, EndpointError> {
        if let Some(dir) = self.get("DOCKER_CONFIG")? {
            return Ok(PathBuf::from(dir));
        }
        let home = self.get("HOME")?.ok_or(EndpointError::NoHome)?;
        Ok(PathBuf::from(home).join(".docker"))
    }
}

/// Resolve the engine from `env`, checking every file it names.
pub fn resolve(env: &EnvView) -> Result<Endpoint, EndpointError> {
    if let Some(host) = env.get("DOCKER_HOST")? {
        if !host_form::well_formed(&host) {
            return Err(EndpointError::BadHost(host.escape_debug().to_string()));
        }
        let tls = tls_from_env(env, &host)?;
        return Ok(Endpoint {
            host,
            tls,
            source: "DOCKER_HOST".into(),
        });
    }
    let named = match env.get("DOCKER_CONTEXT")? {
        Some(name) => Some((name, "DOCKER_CONTEXT".to_string())),
        // No HOME and no DOCKER_CONFIG (a bare service environment): no
        // config file to name a context, so the local socket, as before.
        None => match env.config_dir() {
            Err(EndpointError::NoHome) => None,
            dir => {
                let dir = dir?;
                context::current(&dir)?.map(|name| {
                    let from = format!("currentContext in {}", dir.join("config.json").display());
                    (name, from)
                })
            }
        },
    };
    match named {
        Some((name, from)) if name != context::DEFAULT => {
            let found = context::load(&env.config_dir()?, &name, &from)?;
            Ok(Endpoint {
                host: found.host,
                tls: found.tls,
                source: format!("context '{name}'"),
            })
        }
        // The default context is the local socket; TLS variables only ever
        // apply to a tcp:// DOCKER_HOST.
        _ => Ok(Endpoint::local()),
    }
}

fn tls_from_env(env: &EnvView, host: &str) -> Result<Option<TlsFiles>, EndpointError> {
    if !host_form::is_network(host) {
        return Ok(None);
    }
    if env.get("DOCKER_TLS_VERIFY")?.is_none() {
        return match env.get("DOCKER_TLS")? {
            Some(_) => Err(EndpointError::Unverified),
            None => Ok(None),
        };
    }
    let (dir, origin) = match env.get("DOCKER_CERT_PATH")? {
        Some(dir) => (PathBuf::from(&dir), format!("DOCKER_CERT_PATH={dir}")),
        None => {
            let dir = env.config_dir()?;
            let origin = format!("DOCKER_CERT_PATH (unset, so {})", dir.display());
            (dir, origin)
        }
    };
    let files = TlsFiles::in_dir(&dir, origin.clone());
    files
        .check()
        .map_err(|file| EndpointError::TlsFile { file, origin })?;
    Ok(Some(files))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::path::Path;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nAQIDBA==\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nAQIDBA==\n-----END PRIVATE KEY-----\n";

    struct Home(PathBuf);

    impl Home {
        fn new(tag: &str) -> Home {
            let d =
                std::env::temp_dir().join(format!("runner-endpoint-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(d.join(".docker")).unwrap();
            Home(d)
        }
        fn docker(&self) -> PathBuf {
            self.0.join(".docker")
        }
        fn home(&self) -> &str {
            self.0.to_str().unwrap()
        }
        fn certs(&self, dir: &Path) {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("ca.pem"), CERT).unwrap();
            std::fs::write(dir.join("cert.pem"), CERT).unwrap();
            std::fs::write(dir.join("key.pem"), KEY).unwrap();
        }
        /// A context as `docker context create NAME --docker host=HOST` writes it.
        fn context(&self, name: &str, host: &str, skip_verify: bool, tls: bool) {
            let id = hex::encode(Sha256::digest(name.as_bytes()));
            let meta = self.docker().join("contexts/meta").join(&id);
            std::fs::create_dir_all(&meta).unwrap();
            std::fs::write(
                meta.join("meta.json"),
                serde_json::json!({
                    "Name": name,
                    "Metadata": {"Description": ""},
                    "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_verify}}
                })
                .to_string(),
            )
            .unwrap();
            if tls {
                self.certs(&self.docker().join("contexts/tls").join(&id).join("docker"));
            }
        }
        fn current(&self, name: &str) {
            std::fs::write(
                self.docker().join("config.json"),
                serde_json::json!({"auths": {}, "currentContext": name}).to_string(),
            )
            .unwrap();
        }
    }

    impl Drop for Home {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn nothing_set_is_the_local_socket() {
        let h = Home::new("none");
        let e = resolve(&EnvView::from_pairs(&[
            ("HOME", h.home()),
            ("DOCKER_HOST", ""),
        ]))
        .unwrap();
        assert_eq!(e, Endpoint::local());
    }

    #[test]
    fn no_home_and_no_docker_config_is_still_the_local_socket() {
        assert_eq!(
            resolve(&EnvView::from_pairs(&[])).unwrap(),
            Endpoint::local()
        );
        // ... but TLS material must then be named explicitly.
        let err = resolve(&EnvView::from_pairs(&[
            ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
        ]))
        .unwrap_err();
        assert_eq!(err, EndpointError::NoHome);
    }

    #[test]
    fn plain_tcp_without_tls_variables_stays_plain() {
        let h = Home::new("plain");
        let e = resolve(&EnvView::from_pairs(&[
            ("HOME", h.home()),
            ("DOCKER_HOST", "tcp://127.0.0.1:2375"),
        ]))
        .unwrap();
        assert_eq!(e.host, "tcp://127.0.0.1:2375");
        assert_eq!(e.tls, None);
    }

    #[test]
    fn tls_verify_uses_cert_path_and_defaults_to_dot_docker() {
        let h = Home::new("tls");
        let certs = h.0.join("certs");
        h.certs(&certs);
        let e = resolve(&EnvView::from_pairs(&[
            ("HOME", h.home()),
            ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", certs.to_str().unwrap()),
        ]))
        .unwrap();
        let tls = e.tls.expect("TLS");
        assert_eq!(tls.key, certs.join("key.pem"));
        assert!(tls.origin.contains("DOCKER_CERT_PATH="), "{}", tls.origin);

        h.certs(&h.docker());
        let e = resolve(&EnvView::from_pairs(&[
            ("HOME", h.home()),
            ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
        ]))
        .unwrap();
        assert_eq!(e.tls.expect("TLS").ca, h.docker().join("ca.pem"));
    }

    #[test]
    fn a_missing_key_is_a_configuration_error_naming_the_file() {
        let h = Home::new("nokey");
        let certs = h.0.join("certs");
        h.certs(&certs);
        std::fs::remove_file(certs.join("key.pem")).unwrap();
        let err = resolve(&EnvView::from_pairs(&[
            ("HOME", h.home()),
            ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", certs.to_str().unwrap()),
        ]))
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(certs.join("key.pem").to_str().unwrap()),
            "{text}"
        );
        assert!(text.contains("DOCKER_CERT_PATH"), "{text}");
    }

    #[test]
    fn unverified_tls_is_refused() {
        let h = Home::new("unverified");
        let err = resolve(&EnvView::from_pairs(&[
            ("HOME", h.home()),
            ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
            ("DOCKER_TLS", "1"),
        ]))
        .unwrap_err();
        assert_eq!(err, EndpointError::Unverified);
    }

    #[test]
    fn tls_variables_do_not_apply_to_a_unix_socket() {
        let h = Home::new("unixtls");
        let e = resolve(&EnvView::from_pairs(&[
            ("HOME", h.home()),
            ("DOCKER_HOST", "unix:///run/x.sock"),
            ("DOCKER_TLS_VERIFY", "1"),
        ]))
        .unwrap();
        assert_eq!(e.tls, None);
    }

    #[test]
    fn a_context_gives_its_host_and_tls_material() {
        let h = Home::new("ctx");
        h.context("remote", "tcp://10.0.0.5:2376", false, true);
        let e = resolve(&EnvView::from_pairs(&[
            ("HOME", h.home()),
            ("DOCKER_CONTEXT", "remote"),
        ]))
        .unwrap();
        assert_eq!(e.host, "tcp://10.0.0.5:2376");
        assert_eq!(e.source, "context 'remote'");
        let tls = e.tls.expect("TLS from the context store");
        assert!(tls.ca.starts_with(h.docker().join("contexts/tls")));
        assert!(tls.ca.ends_with("docker/ca.pem"));
    }

    #[test]
    fn the_current_context_comes_from_config_json_under_docker_config() {
        let h = Home::new("current");
        let elsewhere = h.0.join("cfg");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let env_config = [
            ("HOME", h.home()),
            ("DOCKER_CONFIG", elsewhere.to_str().unwrap()),
        ];
        // Written under DOCKER_CONFIG, not ~/.docker (which stays empty).
        std::fs::write(
            elsewhere.join("config.json"),
            r#"{"currentContext":"side"}"#,
        )
        .unwrap();
        let id = hex::encode(Sha256::digest(b"side"));
        let meta = elsewhere.join("contexts/meta").join(id);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            r#"{"Name":"side","Endpoints":{"docker":{"Host":"unix:///run/side.sock","SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        let e = resolve(&EnvView::from_pairs(&env_config)).unwrap();
        assert_eq!(e.host, "unix:///run/side.sock");
        assert_eq!(e.tls, None);
    }

    #[test]
    fn docker_context_overrides_current_and_docker_host_overrides_both() {
        let h = Home::new("precedence");
        h.context("one", "unix:///run/one.sock", false, false);
        h.context("two", "unix:///run/two.sock", false, false);
        h.current("one");
        let base = [("HOME", h.home())];
        assert_eq!(
            resolve(&EnvView::from_pairs(&base)).unwrap().host,
            "unix:///run/one.sock"
        );
        let ctx = [("HOME", h.home()), ("DOCKER_CONTEXT", "two")];
        assert_eq!(
            resolve(&EnvView::from_pairs(&ctx)).unwrap().host,
            "unix:///run/two.sock"
        );
        let host = [
            ("HOME", h.home()),
            ("DOCKER_CONTEXT", "two"),
            ("DOCKER_HOST", "unix:///run/env.sock"),
        ];
        let e = resolve(&EnvView::from_pairs(&host)).unwrap();
        assert_eq!(
            (e.host.as_str(), e.source.as_str()),
            ("unix:///run/env.sock", "DOCKER_HOST")
        );
        // "default" is the local socket even when config.json names another.
        let default = [("HOME", h.home()), ("DOCKER_CONTEXT", "default")];
        assert_eq!(
            resolve(&EnvView::from_pairs(&default)).unwrap(),
            Endpoint::local()
        );
    }

    #[test]
    fn unusable_contexts_are_refused_with_the_reason() {
        let h = Home::new("bad");
        let err = |name: &str| {
            resolve(&EnvView::from_pairs(&[
                ("HOME", h.home()),
                ("DOCKER_CONTEXT", name),
            ]))
            .unwrap_err()
            .to_string()
        };
        let unknown = err("nosuch");
        assert!(
            unknown.contains("'nosuch'") && unknown.contains("does not exist"),
            "{unknown}"
        );
        assert!(unknown.contains("DOCKER_CONTEXT"), "{unknown}");
        assert!(err("../etc").contains("not a valid context name"));

        h.context("insecure", "tcp://10.0.0.5:2376", true, false);
        assert!(err("insecure").contains("SkipTLSVerify"));
        h.context("ssh", "ssh://me@box", false, false);
        assert!(err("ssh").contains("not an address runner can use"));
        h.context("half", "tcp://10.0.0.5:2376", false, true);
        let id = hex::encode(Sha256::digest(b"half"));
        std::fs::remove_file(
            h.docker()
                .join("contexts/tls")
                .join(id)
                .join("docker/key.pem"),
        )
        .unwrap();
        let half = err("half");
        assert!(
            half.contains("incomplete") && half.contains("ca.pem, cert.pem"),
            "{half}"
        );
    }

    #[test]
    fn a_current_context_that_is_gone_or_a_broken_config_is_refused() {
        let h = Home::new("gone");
        h.current("vanished");
        let text = resolve(&EnvView::from_pairs(&[("HOME", h.home())]))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("'vanished'") && text.contains("currentContext in"),
            "{text}"
        );
        std::fs::write(h.docker().join("config.json"), "{not json").unwrap();
        let text = resolve(&EnvView::from_pairs(&[("HOME", h.home())]))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("config.json") && text.contains("not valid JSON"),
            "{text}"
        );
    }

    #[test]
    fn a_malformed_docker_host_is_refused_naming_the_forms() {
        let err = resolve(&EnvView::from_pairs(&[("DOCKER_HOST", "bogus")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("unix:///") && text.contains("tcp://"),
            "{text}"
        );
    }
}
