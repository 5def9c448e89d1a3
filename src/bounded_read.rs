//! Reading a small file that a person (or a careless tool) put in place: the one reader of the
//! crate for the rack file, board files, the keyring, the agent's state file and the files first
//! boot takes from the boot partition.
//!
//! Such a path may name anything: `/dev/zero` (an endless read), a FIFO (an `open` that waits for a
//! writer forever), a directory, a symbolic link into another tree. [`read_regular`] opens with
//! `O_NONBLOCK` (so opening a FIFO returns at once), checks with `fstat` on the opened file that it
//! is a regular file, and reads at most `max` bytes; with [`Links::Refuse`] it also opens with
//! `O_NOFOLLOW`, so a symbolic link as the last component is refused instead of followed.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The size cap of every configuration file (rack file, board file, keyring, state file).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Whether a symbolic link as the file itself is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Read the file a link points at (the agent's own files under `/etc`).
    Follow,
    /// Refuse a link (files on the boot partition, files inside a root first boot prepares).
    Refuse,
}

/// Why a file was not read. The messages do not name the file: the caller does.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("does not exist")]
    NotFound,
    #[error("is a symbolic link; refusing to follow it (copy the file itself there)")]
    Symlink,
    #[error("is a {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is larger than {} KiB; this is not the file it should be", max / 1024)]
    TooLarge { max: u64 },
    #[error("{0}")]
    Io(io::Error),
}

impl ReadError {
    /// Whether the file is simply absent (callers often treat that as "nothing to do").
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::NotFound)
    }
}

/// What kind of file `meta` describes, for messages.
fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// Reads the regular file `path`, at most `max` bytes; returns its contents and its metadata
/// (taken from the opened file, so the mode and owner belong to what was read).
pub fn read_regular(path: &Path, max: u64, links: Links) -> Result<(Vec<u8>, Metadata), ReadError> {
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ReadError::NotFound),
        // O_NOFOLLOW on a link fails with ELOOP.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) && links == Links::Refuse => {
            return Err(ReadError::Symlink);
        }
        Err(e) => return Err(ReadError::Io(e)),
    };
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind(&meta)));
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge { max });
    }
    let bytes = read_at_most(file, max)?;
    Ok((bytes, meta))
}

/// Reads up to `max` bytes; more than that (a file that grew meanwhile) is an error.
fn read_at_most(file: File, max: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge { max });
    }
    Ok(bytes)
}

/// [`read_regular`] of a UTF-8 text file (`None` when it is missing), for callers that have no
/// position to report for invalid UTF-8.
pub fn read_text_opt(path: &Path, max: u64, links: Links) -> Result<Option<String>, ReadError> {
    match read_regular(path, max, links) {
        Ok((bytes, _)) => String::from_utf8(bytes).map(Some).map_err(|_| {
            ReadError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "is not UTF-8 text",
            ))
        }),
        Err(ReadError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn reads_a_regular_file_and_names_what_else_it_found() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        assert_eq!(read_regular(&f, 5, Links::Follow).unwrap().0, b"hello");
        let e = read_regular(&f, 4, Links::Follow).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { max: 4 }), "{e}");
        let e = read_regular(dir.path(), 100, Links::Follow).unwrap_err();
        assert_eq!(e.to_string(), "is a directory, not a regular file");
        let e = read_regular(&dir.path().join("nope"), 100, Links::Follow).unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(
            read_text_opt(&dir.path().join("nope"), 100, Links::Follow).unwrap(),
            None
        );
    }

    #[test]
    fn dev_zero_is_refused_without_reading_it() {
        let e = read_regular(Path::new("/dev/zero"), MAX_CONFIG_BYTES, Links::Follow).unwrap_err();
        assert_eq!(e.to_string(), "is a character device, not a regular file");
    }

    #[test]
    fn a_fifo_without_writer_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let start = Instant::now();
        let e = read_regular(&fifo, MAX_CONFIG_BYTES, Links::Follow).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(e.to_string(), "is a FIFO, not a regular file");
    }

    #[test]
    fn a_symlink_is_followed_or_refused_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"secret").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(
            read_regular(&link, 100, Links::Follow).unwrap().0,
            b"secret"
        );
        let e = read_regular(&link, 100, Links::Refuse).unwrap_err();
        assert!(matches!(e, ReadError::Symlink), "{e}");
    }
}
