//! Reading the engine's configuration files (config.json, a context's
//! meta.json, TLS material): small regular files only. A FIFO or device put
//! where a file is expected must fail at once, never block the connect, and
//! a huge file must not be read whole.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Larger than any real config.json, meta.json or PEM file.
pub const CAP: u64 = 1 << 20;

/// Why a file could not be used, in words for an error message.
#[derive(Debug, thiserror::Error)]
pub enum SmallFileError {
    #[error("it does not exist")]
    Missing,
    #[error("it cannot be read: {0}")]
    Io(#[from] std::io::Error),
    #[error("it is not a regular file")]
    NotRegular,
    #[error("it is larger than {CAP} bytes")]
    TooLarge,
}

/// The whole of `path` (symlinks followed: certificate directories are
/// often links), refused unless it is a regular file of at most [`CAP`].
pub fn read(path: &Path) -> Result<Vec<u8>, SmallFileError> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer; the type is checked on the opened file, so a swap between a
    // check and the open cannot slip one through.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SmallFileError::Missing),
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(SmallFileError::NotRegular);
    }
    if meta.len() > CAP {
        return Err(SmallFileError::TooLarge);
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(CAP + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > CAP {
        return Err(SmallFileError::TooLarge);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_everything_else_refused() {
        let dir = std::env::temp_dir().join(format!("runner-small-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok");
        std::fs::write(&ok, b"abc").unwrap();
        assert_eq!(read(&ok).unwrap(), b"abc");
        assert!(matches!(
            read(&dir.join("nope")),
            Err(SmallFileError::Missing)
        ));
        assert!(matches!(read(&dir), Err(SmallFileError::NotRegular)));
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(read(&fifo), Err(SmallFileError::NotRegular)));
        let huge = dir.join("huge");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(CAP + 1)
            .unwrap();
        assert!(matches!(read(&huge), Err(SmallFileError::TooLarge)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
