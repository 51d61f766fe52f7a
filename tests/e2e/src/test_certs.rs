//! TLS material for an engine test, made with `openssl` in a directory of
//! the test's own: a CA, a server certificate for 127.0.0.1 signed by it, a
//! client certificate signed by it, and a second, unrelated CA. Laid out
//! the way the Docker CLI reads `DOCKER_CERT_PATH` (`ca.pem`, `cert.pem`,
//! `key.pem`), once with the right CA and once with the wrong one.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug)]
pub struct TestCerts {
    dir: PathBuf,
}

/// EC keys: generated in milliseconds, and both dockerd and rustls take them.
const SCRIPT: &str = r#"
set -eu
cd "$1"
mkdir -p server client wrong-ca
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }
ca() {
  key "$1-key.pem"
  openssl req -x509 -new -key "$1-key.pem" -out "$1.pem" -days 2 -subj "/CN=$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # name cn extensions
  key "$1-key.pem"
  openssl req -new -key "$1-key.pem" -out "$1.csr" -subj "/CN=$2"
  printf '%b' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -out "$1-cert.pem" -days 2 -extfile "$1.ext" 2>/dev/null
}
ca ca runner-test-ca
ca other-ca runner-test-other-ca
leaf srv 127.0.0.1 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n'
leaf cli runner-test-client 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n'
cp ca.pem srv-cert.pem srv-key.pem server/
for d in client wrong-ca; do cp cli-cert.pem "$d/cert.pem"; cp cli-key.pem "$d/key.pem"; done
cp ca.pem client/ca.pem
cp other-ca.pem wrong-ca/ca.pem
"#;

impl TestCerts {
    /// Makes everything under `dir` (created if missing).
    pub fn make(dir: &Path) -> Result<TestCerts> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let out = Command::new("bash")
            .args(["-c", SCRIPT, "make-certs"])
            .arg(dir)
            .stdin(Stdio::null())
            .output()
            .context("run openssl (bash)")?;
        if !out.status.success() {
            bail!(
                "making test certificates failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(TestCerts {
            dir: dir.to_path_buf(),
        })
    }

    /// For dockerd: `--tlscacert`, `--tlscert`, `--tlskey`.
    pub fn server_args(&self) -> Vec<String> {
        let s = self.dir.join("server");
        vec![
            "--tlsverify".into(),
            format!("--tlscacert={}", s.join("ca.pem").display()),
            format!("--tlscert={}", s.join("srv-cert.pem").display()),
            format!("--tlskey={}", s.join("srv-key.pem").display()),
        ]
    }

    /// A `DOCKER_CERT_PATH` that works: the engine's CA and a client
    /// certificate it issued.
    pub fn client_dir(&self) -> PathBuf {
        self.dir.join("client")
    }

    /// A `DOCKER_CERT_PATH` whose `ca.pem` is another CA: the engine's
    /// certificate does not verify.
    pub fn wrong_ca_dir(&self) -> PathBuf {
        self.dir.join("wrong-ca")
    }
}
