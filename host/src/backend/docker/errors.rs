//! Engine errors mapped to typed backend errors whose text names the fix.

use bollard::errors::Error as EngineError;

use super::endpoint::Endpoint;
use super::tls;
use crate::backend::BackendError;

const FIX_START: &str = "start the Docker engine (`systemctl start docker`, or run `dockerd` in the \
                         background) or point DOCKER_HOST at a running engine";
const FIX_PERMISSION: &str = "run runner as root, or add this user to the `docker` group and start a \
                              new login session";

/// An error from a call that names a container.
pub(crate) fn container_error(e: EngineError, sandbox: &str) -> BackendError {
    match &e {
        EngineError::DockerResponseServerError {
            status_code: 404,
            message,
        } if message.to_ascii_lowercase().contains("container") => {
            BackendError::SandboxMissing(sandbox.to_string())
        }
        EngineError::DockerResponseServerError {
            status_code: 409,
            message,
        } => BackendError::NotRunning {
            name: sandbox.to_string(),
            state: conflict_state(message).to_string(),
        },
        _ => engine_error(e),
    }
}

/// What a 409 says about the container.
fn conflict_state(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("paused") {
        "paused"
    } else if m.contains("restarting") {
        "restarting"
    } else {
        "not running"
    }
}

/// An error from any engine call.
pub(crate) fn engine_error(e: EngineError) -> BackendError {
    match &e {
        EngineError::DockerResponseServerError {
            status_code,
            message,
        } => BackendError::Failed(format!("engine answered {status_code}: {message}")),
        EngineError::JsonDataError { .. } | EngineError::JsonSerdeError { .. } => {
            BackendError::Failed(format!("unexpected engine answer: {e}"))
        }
        EngineError::RequestTimeoutError => {
            BackendError::Timeout("the engine did not answer within the client timeout".into())
        }
        _ => unreachable_error(&e),
    }
}

/// The engine cannot be reached: say why and how to fix it.
pub(crate) fn unreachable_error(e: &(dyn std::error::Error + 'static)) -> BackendError {
    let cause = chain(e);
    let lower = cause.to_ascii_lowercase();
    let fix = if lower.contains("permission denied") {
        FIX_PERMISSION
    } else {
        FIX_START
    };
    BackendError::EngineUnreachable {
        cause,
        fix: fix.to_string(),
    }
}

/// A failed connect to `endpoint`. A TLS handshake that failed is said to
/// be one, naming where the certificates came from: "unreachable" alone
/// would send the user looking for a stopped engine.
pub(crate) fn connect_error(endpoint: &Endpoint, e: &EngineError) -> BackendError {
    if let Some(files) = &endpoint.tls
        && let Some(why) = tls::handshake_failure(e)
    {
        return BackendError::EngineUnreachable {
            cause: format!(
                "TLS verification with {} failed: {why} (CA and client certificate from {})",
                endpoint.host, files.origin
            ),
            fix: format!(
                "check that {} holds the CA that signed this engine's certificate (ca.pem) and a client \
                 certificate and key it accepts (cert.pem, key.pem)",
                files.origin
            ),
        };
    }
    if endpoint.tls.is_none()
        && let EngineError::DockerResponseServerError { message, .. } = e
        && message.contains("HTTPS server")
    {
        return BackendError::EngineUnreachable {
            cause: format!("{} speaks TLS and runner sent plain HTTP ({message})", endpoint.host),
            fix: "set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to the directory with ca.pem, cert.pem and key.pem".into(),
        };
    }
    if let Some(why) = not_the_engine_api(e) {
        return BackendError::EngineUnreachable {
            cause: format!(
                "{} answered, but not with the Docker Engine API ({why})",
                endpoint.host
            ),
            fix: FIX_NOT_DOCKER_API.into(),
        };
    }
    unreachable_error(e)
}

const FIX_NOT_DOCKER_API: &str = "point DOCKER_HOST at dockerd's socket (unix:///var/run/docker.sock) or \
     Podman's Docker-compatible one (unix:///run/podman/podman.sock, `systemctl start podman.socket`; \
     rootless: unix://$XDG_RUNTIME_DIR/podman/podman.sock); containerd's own socket speaks gRPC, not the \
     Docker API";

/// Something listens and answers, but not HTTP/1 (containerd's gRPC
/// socket, an SSH or TLS port): hyper fails to parse the reply or gets
/// bytes it did not ask for. hyper names the second case only in its text.
fn not_the_engine_api(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_parse() || h.to_string().contains("unexpected message"))
        {
            return Some(h.to_string());
        }
        next = err.source();
    }
    None
}

pub(crate) fn unreachable(cause: String, permission: bool) -> BackendError {
    BackendError::EngineUnreachable {
        cause,
        fix: if permission {
            FIX_PERMISSION
        } else {
            FIX_START
        }
        .to_string(),
    }
}

/// `error: cause: cause` — bollard hides the io error in the source chain.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_404_and_409() {
        let missing = EngineError::DockerResponseServerError {
            status_code: 404,
            message: "No such container: nope".into(),
        };
        assert_eq!(
            container_error(missing, "nope"),
            BackendError::SandboxMissing("nope".into())
        );
        let paused = EngineError::DockerResponseServerError {
            status_code: 409,
            message: "Container abc is paused, unpause the container before exec".into(),
        };
        assert_eq!(
            container_error(paused, "c"),
            BackendError::NotRunning {
                name: "c".into(),
                state: "paused".into()
            }
        );
        let stopped = EngineError::DockerResponseServerError {
            status_code: 409,
            message: "Container abc is not running".into(),
        };
        assert!(matches!(
            container_error(stopped, "c"),
            BackendError::NotRunning { state, .. } if state == "not running"
        ));
    }

    #[test]
    fn unreachable_names_fix() {
        let io = std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "Permission denied (os error 13)",
        );
        let e = EngineError::IOError { err: io };
        match engine_error(e) {
            BackendError::EngineUnreachable { cause, fix } => {
                assert!(cause.contains("Permission denied"));
                assert!(fix.contains("docker` group"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
