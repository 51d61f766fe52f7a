//! TLS to a `tcp://` engine: the three PEM files checked before connecting
//! (so a missing or broken one is a configuration error naming the file),
//! the crypto provider, and telling a failed TLS handshake apart from an
//! engine that is simply not there.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::small_file;

/// The CA that must have signed the engine's certificate, and the client
/// certificate and key runner presents, as the Docker CLI names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Where the files came from, for messages: `DOCKER_CERT_PATH=/x`,
    /// `context 'prod' (/root/.docker/contexts/tls/…/docker)`.
    pub origin: String,
}

/// One TLS file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS file {} cannot be used: {why}", path.display())]
pub struct BadTlsFile {
    pub path: PathBuf,
    pub why: String,
}

impl TlsFiles {
    /// `ca.pem`, `cert.pem` and `key.pem` in `dir`.
    pub fn in_dir(dir: &Path, origin: String) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            origin,
        }
    }

    /// Every file is a small regular file holding what its name says: the
    /// TLS client would otherwise skip an unreadable client key silently
    /// and fail later, at the engine, with a less useful message.
    pub fn check(&self) -> Result<(), BadTlsFile> {
        certificates(&self.ca)?;
        certificates(&self.cert)?;
        private_key(&self.key)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, BadTlsFile> {
    small_file::read(path).map_err(|e| BadTlsFile {
        path: path.to_path_buf(),
        why: format!("it {}", e.problem()),
    })
}

fn certificates(path: &Path) -> Result<(), BadTlsFile> {
    let pem = read(path)?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(()),
        Ok(_) => Err(BadTlsFile {
            path: path.to_path_buf(),
            why: "it holds no PEM certificate".into(),
        }),
        Err(e) => Err(BadTlsFile {
            path: path.to_path_buf(),
            why: format!("it is not valid PEM: {e}"),
        }),
    }
}

fn private_key(path: &Path) -> Result<(), BadTlsFile> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map(drop)
        .map_err(|e| BadTlsFile {
            path: path.to_path_buf(),
            why: format!("it holds no PEM private key ({e})"),
        })
}

/// The process-wide crypto provider bollard's TLS client uses. Installed
/// explicitly: rustls only picks one by itself when exactly one provider
/// feature is compiled in, which a dependency could change.
pub fn install_provider() {
    // Err means one is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The TLS failure inside an engine error, if that is what it is (as
/// opposed to a refused connection or a timeout). rustls errors reach
/// bollard wrapped in an `io::Error` (twice: tokio-rustls, then
/// hyper-rustls), whose `source()` skips the wrapped error, so io errors are
/// also unwrapped by hand.
pub fn handshake_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(tls) = rustls_in(err) {
            return Some(tls.to_string());
        }
        next = err.source();
    }
    None
}

fn rustls_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = err.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_in(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nAQIDBA==\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nAQIDBA==\n-----END PRIVATE KEY-----\n";

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("runner-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn complete_material_passes_and_each_bad_file_is_named() {
        let d = dir("files");
        let files = TlsFiles::in_dir(&d, "test".into());
        std::fs::write(&files.ca, CERT).unwrap();
        std::fs::write(&files.cert, CERT).unwrap();
        std::fs::write(&files.key, KEY).unwrap();
        assert_eq!(files.check(), Ok(()));

        std::fs::write(&files.key, CERT).unwrap();
        let e = files.check().unwrap_err();
        assert_eq!(e.path, files.key);
        assert!(e.why.contains("no PEM private key"), "{e}");

        std::fs::remove_file(&files.key).unwrap();
        let e = files.check().unwrap_err();
        assert_eq!(e.path, files.key);
        assert!(e.to_string().contains("does not exist"), "{e}");

        std::fs::write(&files.ca, "not pem").unwrap();
        let e = files.check().unwrap_err();
        assert_eq!(e.path, files.ca);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_wrapped_rustls_error_is_recognised_and_others_are_not() {
        // As hyper-rustls hands it on: io::Error::other(io::Error(rustls)).
        let tls = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        let found = handshake_failure(&tls).expect("a TLS failure");
        assert!(found.contains("invalid peer certificate"), "{found}");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(handshake_failure(&refused), None);
    }
}
