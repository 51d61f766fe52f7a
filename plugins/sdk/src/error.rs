//! The one error type plugins see from a capability call.
//!
//! The generated `cap-error` / `exec-error` types print as Rust debug text
//! (`ExecError::NoSuchBinary("…")`), which would reach operators through
//! summaries and refusals. This type keeps the kind for decisions and prints
//! the host's message as plain words.

use crate::{CapError, ExecError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The host refused the call (undeclared capability, other sandbox,
    /// mutation outside `repair`, path outside the sandbox, ...).
    Denied(String),
    Timeout(String),
    /// The backend cannot do this for this sandbox (e.g. no `/proc` access).
    Unavailable(String),
    Failed(String),
    /// The program to run does not exist in the sandbox or is not executable.
    NoSuchBinary(String),
    /// The user to run as does not exist in the sandbox.
    NoSuchUser(String),
}

impl Error {
    /// Name of the kind, for evidence.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Denied(_) => "denied",
            Error::Timeout(_) => "timeout",
            Error::Unavailable(_) => "unavailable",
            Error::Failed(_) => "failed",
            Error::NoSuchBinary(_) => "no-such-binary",
            Error::NoSuchUser(_) => "no-such-user",
        }
    }

    /// The host's own words, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::Denied(m)
            | Error::Timeout(m)
            | Error::Unavailable(m)
            | Error::Failed(m)
            | Error::NoSuchBinary(m)
            | Error::NoSuchUser(m) => m,
        }
    }

    /// Whether retrying the same call cannot succeed until something in the
    /// sandbox or the settings changes.
    pub fn is_deterministic(&self) -> bool {
        matches!(self, Error::NoSuchBinary(_) | Error::NoSuchUser(_))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.message();
        match self {
            Error::Denied(_) => write!(f, "denied by the host: {m}"),
            Error::Timeout(_) => write!(f, "timed out: {m}"),
            Error::Unavailable(_) => write!(f, "not available: {m}"),
            Error::Failed(_) | Error::NoSuchBinary(_) | Error::NoSuchUser(_) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<CapError> for Error {
    fn from(e: CapError) -> Self {
        match e {
            CapError::Denied(m) => Error::Denied(m),
            CapError::Timeout(m) => Error::Timeout(m),
            CapError::Unavailable(m) => Error::Unavailable(m),
            CapError::Failed(m) => Error::Failed(m),
        }
    }
}

impl From<ExecError> for Error {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Denied(m) => Error::Denied(m),
            ExecError::Timeout(m) => Error::Timeout(m),
            ExecError::Unavailable(m) => Error::Unavailable(m),
            ExecError::Failed(m) => Error::Failed(m),
            ExecError::NoSuchBinary(m) => Error::NoSuchBinary(m),
            ExecError::NoSuchUser(m) => Error::NoSuchUser(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_as_words_not_rust_debug_text() {
        let e: Error = ExecError::NoSuchBinary("'openclaw' was not found on PATH".into()).into();
        assert_eq!(e.to_string(), "'openclaw' was not found on PATH");
        assert!(e.is_deterministic());
        let e: Error = CapError::Timeout("GET /health after 3000 ms".into()).into();
        assert_eq!(e.to_string(), "timed out: GET /health after 3000 ms");
        assert!(!e.to_string().contains("CapError"));
        assert!(!e.is_deterministic());
    }
}
