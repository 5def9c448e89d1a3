//! The keyring: the shared secret keys that seal and open every frame, read from a small text
//! file that is identical on every node of the rack (default `/etc/mooseherd/keyring`).
//!
//! Format: one key per line, `<key id 0-255> <64 hex chars>`; `#` starts a comment; blank lines
//! are ignored. The FIRST key seals outgoing frames; every key opens incoming frames. That order
//! is what makes rotation possible without downtime (see [`crate::wire`] and `docs/keyring.md`):
//! add the new key after the old one everywhere, then promote it to the first line everywhere,
//! then remove the old one everywhere.
//!
//! The file must not be accessible by group or others (like an ssh private key), must be a
//! regular file and is read with the bounded reader (at most 1 MiB). The editing functions
//! ([`keygen`], [`add_key`], [`promote_key`], [`remove_key`]) keep comments, rewrite the file with
//! [`crate::atomic_file::write_atomic`] and leave it mode 0600. A keyring that is a symbolic link
//! is edited through the link: the file it points at is replaced (in its own directory) and the
//! link stays, so a keyring kept elsewhere by configuration management stays there.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305};

/// Length of a key in bytes (XChaCha20-Poly1305 uses 256-bit keys).
pub const KEY_LEN: usize = 32;

/// Default location of the keyring file.
pub const DEFAULT_KEYRING_PATH: &str = "/etc/mooseherd/keyring";

/// What went wrong reading or editing a keyring file. Every message names the file (and the line
/// when it is about the content) and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The file does not exist.
    #[error("keyring {} does not exist; create one with `mooseherd keygen {}` and copy it to every node", .path.display(), .path.display())]
    Missing {
        /// The keyring file.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("keyring {}: {what}: {cause}", .path.display())]
    Io {
        /// The keyring file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The operating system's error (in the message; not also a `source`, which `{:#}`
        /// would print a second time).
        cause: io::Error,
    },
    /// A line is not `<key id> <64 hex chars>`, or repeats an id.
    #[error("keyring {}:{line}: {message}", .path.display())]
    Syntax {
        /// The keyring file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// The file holds no key.
    #[error("keyring {} holds no key; add one line `<key id> <64 hex chars>` or create a new keyring with `mooseherd keygen`", .path.display())]
    Empty {
        /// The keyring file.
        path: PathBuf,
    },
    /// Group or others may read or write the file.
    #[error("keyring {} is accessible by group or others (mode {mode:04o}); run: chmod 600 {}", .path.display(), .path.display())]
    Permissions {
        /// The keyring file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path exists but is not a regular file, or is too large to be a keyring.
    #[error("keyring {} {reason}", .path.display())]
    NotAFile {
        /// The keyring file.
        path: PathBuf,
        /// What it is instead (from the bounded reader).
        reason: String,
    },
    /// `keygen` refuses to replace an existing keyring.
    #[error("keyring {} already exists; refusing to overwrite it (to rotate keys use add, promote and remove; see docs/keyring.md)", .path.display())]
    AlreadyExists {
        /// The keyring file.
        path: PathBuf,
    },
    /// The directory that should hold the keyring does not exist.
    #[error("keyring {}: directory {} does not exist; create it first (e.g. `install -d -m 700 {}`)", .path.display(), .dir.display(), .dir.display())]
    NoDirectory {
        /// The keyring file.
        path: PathBuf,
        /// Its missing parent directory.
        dir: PathBuf,
    },
    /// No key has the given id.
    #[error("keyring {} has no key with id {id} (ids: {ids})", .path.display())]
    NoSuchKey {
        /// The keyring file.
        path: PathBuf,
        /// The id asked for.
        id: u8,
        /// The ids present, for the message.
        ids: String,
    },
    /// Removing this key would leave the keyring empty.
    #[error("keyring {}: refusing to remove key {id}, the only key (add and promote a new key first)", .path.display())]
    LastKey {
        /// The keyring file.
        path: PathBuf,
        /// The id asked for.
        id: u8,
    },
    /// Removing the key that seals would leave frames sealed with a key others may lack.
    #[error("keyring {}: refusing to remove key {id}, it is the sealing (first) key; promote another key on every node first", .path.display())]
    SealingKey {
        /// The keyring file.
        path: PathBuf,
        /// The id asked for.
        id: u8,
    },
    /// All 256 ids are in use.
    #[error("keyring {} is full (256 keys); remove old keys first", .path.display())]
    Full {
        /// The keyring file.
        path: PathBuf,
    },
    /// A keyring built in code repeated an id or was empty.
    #[error("invalid keyring: {0}")]
    Invalid(&'static str),
    /// The operating system could not provide random bytes.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(getrandom::Error),
}

struct Entry {
    id: u8,
    cipher: XChaCha20Poly1305,
}

/// The keys this node seals and opens frames with. The first key seals; all keys open.
/// `Debug` shows only the key ids, never key material.
#[derive(Clone)]
pub struct Keyring {
    entries: std::sync::Arc<Vec<Entry>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("ids", &self.ids())
            .field("sealing", &self.sealing_id())
            .finish()
    }
}

impl Keyring {
    /// Builds a keyring from `(id, key)` pairs; the first one seals. Refuses an empty list and
    /// repeated ids. Meant for tests and tools; agents use [`Keyring::load`].
    pub fn from_keys(keys: &[(u8, [u8; KEY_LEN])]) -> Result<Keyring, KeyringError> {
        if keys.is_empty() {
            return Err(KeyringError::Invalid("no key"));
        }
        let mut entries = Vec::with_capacity(keys.len());
        for (i, (id, key)) in keys.iter().enumerate() {
            if keys[..i].iter().any(|(other, _)| other == id) {
                return Err(KeyringError::Invalid("a key id appears twice"));
            }
            entries.push(Entry {
                id: *id,
                cipher: XChaCha20Poly1305::new(&Key::from(*key)),
            });
        }
        Ok(Keyring {
            entries: std::sync::Arc::new(entries),
        })
    }

    /// Reads and checks a keyring file: it must exist, be a regular file not accessible by group
    /// or others, and hold at least one well-formed key with no repeated id.
    pub fn load(path: &Path) -> Result<Keyring, KeyringError> {
        let text = read_checked(path)?;
        Keyring::parse(&text, path)
    }

    /// Parses keyring text; `path` only names the source in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Keyring, KeyringError> {
        let lines = parse_lines(text, path)?;
        let keys: Vec<(u8, [u8; KEY_LEN])> = lines
            .iter()
            .filter_map(|l| match l {
                Line::Key { id, key, .. } => Some((*id, *key)),
                Line::Other(_) => None,
            })
            .collect();
        if keys.is_empty() {
            return Err(KeyringError::Empty {
                path: path.to_path_buf(),
            });
        }
        Keyring::from_keys(&keys)
    }

    /// Key ids in file order (the first one seals).
    pub fn ids(&self) -> Vec<u8> {
        self.entries.iter().map(|e| e.id).collect()
    }

    /// The id of the key that seals outgoing frames.
    pub fn sealing_id(&self) -> u8 {
        self.entries.first().map_or(0, |e| e.id)
    }

    /// The sealing key's id and cipher.
    pub(crate) fn sealing(&self) -> Option<(u8, &XChaCha20Poly1305)> {
        self.entries.first().map(|e| (e.id, &e.cipher))
    }

    /// The cipher of key `id`, if this keyring has it.
    pub(crate) fn cipher(&self, id: u8) -> Option<&XChaCha20Poly1305> {
        self.entries.iter().find(|e| e.id == id).map(|e| &e.cipher)
    }
}

/// One line of a keyring file, kept verbatim so edits preserve comments and layout.
enum Line {
    Key {
        id: u8,
        key: [u8; KEY_LEN],
        raw: String,
    },
    Other(String),
}

impl Line {
    fn raw(&self) -> &str {
        match self {
            Line::Key { raw, .. } | Line::Other(raw) => raw,
        }
    }
}

fn parse_lines(text: &str, path: &Path) -> Result<Vec<Line>, KeyringError> {
    let mut out = Vec::new();
    let mut first_line_of: [usize; 256] = [0; 256];
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |message: String| KeyringError::Syntax {
            path: path.to_path_buf(),
            line,
            message,
        };
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            out.push(Line::Other(raw.to_string()));
            continue;
        }
        let fields: Vec<&str> = content.split_whitespace().collect();
        let [id_text, hex_text] = fields[..] else {
            return Err(err(format!(
                "expected `<key id 0-255> <64 hex chars>`, found {} field(s)",
                fields.len()
            )));
        };
        let id: u8 = id_text.parse().map_err(|_| {
            err(format!(
                "key id `{id_text}` is not a whole number from 0 to 255"
            ))
        })?;
        if hex_text.len() != 2 * KEY_LEN {
            return Err(err(format!(
                "key {id} must be {} hex characters (32 bytes), found {} characters",
                2 * KEY_LEN,
                hex_text.len()
            )));
        }
        let mut key = [0u8; KEY_LEN];
        hex::decode_to_slice(hex_text, &mut key)
            .map_err(|e| err(format!("key {id} is not valid hex: {e}")))?;
        let seen = &mut first_line_of[usize::from(id)];
        if *seen != 0 {
            return Err(err(format!(
                "key id {id} appears twice (first on line {})",
                *seen
            )));
        }
        *seen = line;
        out.push(Line::Key {
            id,
            key,
            raw: raw.to_string(),
        });
    }
    Ok(out)
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> KeyringError + 'a {
    move |cause| KeyringError::Io {
        path: path.to_path_buf(),
        what,
        cause,
    }
}

/// Reads the file after checking it exists, is regular, small, and private to its owner.
fn read_checked(path: &Path) -> Result<String, KeyringError> {
    use crate::bounded_read::{Links, MAX_CONFIG_BYTES, ReadError, read_regular};
    let (bytes, meta) = match read_regular(path, MAX_CONFIG_BYTES, Links::Follow) {
        Ok(read) => read,
        Err(ReadError::NotFound) => {
            return Err(KeyringError::Missing {
                path: path.to_path_buf(),
            });
        }
        Err(ReadError::Io(e)) => return Err(io_err(path, "cannot read")(e)),
        Err(e) => {
            return Err(KeyringError::NotAFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyringError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    String::from_utf8(bytes).map_err(|_| {
        io_err(path, "cannot read")(io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
    })
}

fn random_key() -> Result<[u8; KEY_LEN], KeyringError> {
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(KeyringError::Random)?;
    Ok(key)
}

fn key_line(id: u8, key: &[u8; KEY_LEN]) -> String {
    format!("{id} {}", hex::encode(key))
}

const HEADER_COMMENT: &str = "\
# mooseherd keyring: one key per line, `<key id 0-255> <64 hex chars>`.
# The FIRST key seals outgoing frames; every key opens incoming ones.
# Keep this file mode 0600 and identical on every node. Rotation: see docs/keyring.md.
";

/// The directory holding `path` ("." for a bare file name); errors if it does not exist.
fn parent_dir(path: &Path) -> Result<PathBuf, KeyringError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(KeyringError::NoDirectory {
            path: path.to_path_buf(),
            dir,
        });
    }
    Ok(dir)
}

fn sync_dir(dir: &Path, path: &Path) -> Result<(), KeyringError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(path, "cannot fsync the directory"))
}

/// Creates a new keyring at `path` holding one random key with id 0, mode 0600. Refuses to
/// overwrite an existing file and does not create missing directories. Returns the new key's id.
pub fn keygen(path: &Path) -> Result<u8, KeyringError> {
    let dir = parent_dir(path)?;
    let key = random_key()?;
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(KeyringError::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io_err(path, "cannot create")(e)),
    };
    let text = format!("{HEADER_COMMENT}{}\n", key_line(0, &key));
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err(path, "cannot write"))?;
    sync_dir(&dir, path)?;
    Ok(0)
}

/// Appends a new random key AFTER the existing ones: every node can open frames sealed with it,
/// but nobody seals with it yet. Returns its id (one above the highest id, wrapping past 255 to
/// the lowest free id). Copy the resulting file to every node before [`promote_key`].
pub fn add_key(path: &Path) -> Result<u8, KeyringError> {
    let mut lines = load_lines(path)?;
    let used: Vec<u8> = key_ids(&lines);
    let start = used.iter().copied().max().map_or(0, |m| m.wrapping_add(1));
    let id = (0..=255u8)
        .map(|k| start.wrapping_add(k))
        .find(|c| !used.contains(c))
        .ok_or_else(|| KeyringError::Full {
            path: path.to_path_buf(),
        })?;
    let key = random_key()?;
    lines.push(Line::Key {
        id,
        key,
        raw: key_line(id, &key),
    });
    write_lines(path, &lines)?;
    Ok(id)
}

/// Moves key `id` to the first key line, so this node starts sealing with it. Do this only once
/// every node has the key (after [`add_key`] was copied everywhere).
pub fn promote_key(path: &Path, id: u8) -> Result<(), KeyringError> {
    let mut lines = load_lines(path)?;
    let at = find_key(path, &lines, id)?;
    let first = lines
        .iter()
        .position(|l| matches!(l, Line::Key { .. }))
        .unwrap_or(at);
    if first == at {
        return Ok(());
    }
    let line = lines.remove(at);
    lines.insert(first, line);
    write_lines(path, &lines)
}

/// Removes key `id`. Refuses to remove the only key, and the sealing (first) key: promote
/// another key first, so this node never seals with a key it just forgot.
pub fn remove_key(path: &Path, id: u8) -> Result<(), KeyringError> {
    let mut lines = load_lines(path)?;
    let at = find_key(path, &lines, id)?;
    let ids = key_ids(&lines);
    if ids.len() == 1 {
        return Err(KeyringError::LastKey {
            path: path.to_path_buf(),
            id,
        });
    }
    if ids.first() == Some(&id) {
        return Err(KeyringError::SealingKey {
            path: path.to_path_buf(),
            id,
        });
    }
    lines.remove(at);
    write_lines(path, &lines)
}

fn load_lines(path: &Path) -> Result<Vec<Line>, KeyringError> {
    let text = read_checked(path)?;
    let lines = parse_lines(&text, path)?;
    if key_ids(&lines).is_empty() {
        return Err(KeyringError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(lines)
}

fn key_ids(lines: &[Line]) -> Vec<u8> {
    lines
        .iter()
        .filter_map(|l| match l {
            Line::Key { id, .. } => Some(*id),
            Line::Other(_) => None,
        })
        .collect()
}

fn find_key(path: &Path, lines: &[Line], id: u8) -> Result<usize, KeyringError> {
    lines
        .iter()
        .position(|l| matches!(l, Line::Key { id: k, .. } if *k == id))
        .ok_or_else(|| KeyringError::NoSuchKey {
            path: path.to_path_buf(),
            id,
            ids: key_ids(lines)
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Replaces the keyring atomically and durably, mode 0600, keeping its owner. Through a
/// symbolic link: the file the link points at is replaced and the link stays.
fn write_lines(path: &Path, lines: &[Line]) -> Result<(), KeyringError> {
    let target = fs::canonicalize(path).map_err(io_err(path, "cannot resolve"))?;
    let mut text = String::new();
    for l in lines {
        text.push_str(l.raw());
        text.push('\n');
    }
    crate::atomic_file::write_atomic(&target, text.as_bytes(), 0o600, None)
        .map_err(io_err(path, "cannot rewrite"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_mode(path: &Path, text: &str, mode: u32) {
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    const K1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const K2: &str = "abababababababababababababababababababababababababababababababab";

    #[test]
    fn parses_comments_blank_lines_and_order() {
        let text = format!("# hello\n\n7 {K1}  # new\n  3 {K2}\n");
        let k = Keyring::parse(&text, Path::new("/k")).unwrap();
        assert_eq!(k.ids(), vec![7, 3]);
        assert_eq!(k.sealing_id(), 7);
        assert!(k.cipher(3).is_some() && k.cipher(4).is_none());
    }

    #[test]
    fn debug_shows_ids_not_keys() {
        let k = Keyring::from_keys(&[(1, [0xAB; 32]), (2, [0xCD; 32])]).unwrap();
        let d = format!("{k:?}");
        assert_eq!(d, "Keyring { ids: [1, 2], sealing: 1 }");
        assert!(!d.to_lowercase().contains("abab"));
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let p = Path::new("/etc/mooseherd/keyring");
        let cases = [
            (
                format!("7 {K1}\n# c\n7 {K2}\n"),
                "keyring /etc/mooseherd/keyring:3: key id 7 appears twice (first on line 1)",
            ),
            (
                format!("1 {}\n", &K1[..62]),
                "keyring /etc/mooseherd/keyring:1: key 1 must be 64 hex characters (32 bytes), found 62 characters",
            ),
            (
                format!("1 {}zz\n", &K1[..62]),
                "keyring /etc/mooseherd/keyring:1: key 1 is not valid hex: Invalid character 'z' at position 62",
            ),
            (
                format!("\n256 {K1}\n"),
                "keyring /etc/mooseherd/keyring:2: key id `256` is not a whole number from 0 to 255",
            ),
            (
                format!("1 {K1} extra\n"),
                "keyring /etc/mooseherd/keyring:1: expected `<key id 0-255> <64 hex chars>`, found 3 field(s)",
            ),
            (
                "# only comments\n\n".to_string(),
                "keyring /etc/mooseherd/keyring holds no key; add one line `<key id> <64 hex chars>` or create a new keyring with `mooseherd keygen`",
            ),
        ];
        for (text, want) in cases {
            let e = Keyring::parse(&text, p).unwrap_err();
            assert_eq!(e.to_string(), want);
        }
        assert!(Keyring::from_keys(&[]).is_err());
        assert!(Keyring::from_keys(&[(1, [0; 32]), (1, [1; 32])]).is_err());
    }

    #[test]
    fn file_checks_missing_permissions_and_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keyring");
        let e = Keyring::load(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "keyring {0} does not exist; create one with `mooseherd keygen {0}` and copy it to every node",
                p.display()
            )
        );

        write_mode(&p, &format!("1 {K1}\n"), 0o644);
        let e = Keyring::load(&p).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "keyring {0} is accessible by group or others (mode 0644); run: chmod 600 {0}",
                p.display()
            )
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Keyring::load(&p).unwrap().ids(), vec![1]);

        let e = keygen(&p).unwrap_err();
        assert!(matches!(e, KeyringError::AlreadyExists { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("already exists; refusing to overwrite")
        );
        assert_eq!(fs::read_to_string(&p).unwrap(), format!("1 {K1}\n"));

        let nested = dir.path().join("missing/keyring");
        let e = keygen(&nested).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "keyring {}: directory {1} does not exist; create it first (e.g. `install -d -m 700 {1}`)",
                nested.display(),
                dir.path().join("missing").display()
            )
        );
        assert!(!dir.path().join("missing").exists());

        let e = Keyring::load(dir.path()).unwrap_err();
        assert!(matches!(e, KeyringError::NotAFile { .. }), "{e}");
    }

    #[test]
    fn keygen_add_promote_remove_cycle() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keyring");
        assert_eq!(keygen(&p).unwrap(), 0);
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k0 = Keyring::load(&p).unwrap();
        assert_eq!(k0.ids(), vec![0]);

        assert_eq!(add_key(&p).unwrap(), 1);
        assert_eq!(Keyring::load(&p).unwrap().ids(), vec![0, 1]);
        assert_eq!(Keyring::load(&p).unwrap().sealing_id(), 0);

        let e = remove_key(&p, 0).unwrap_err();
        assert!(matches!(e, KeyringError::SealingKey { id: 0, .. }), "{e}");
        let e = promote_key(&p, 9).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("keyring {} has no key with id 9 (ids: 0, 1)", p.display())
        );

        promote_key(&p, 1).unwrap();
        assert_eq!(Keyring::load(&p).unwrap().ids(), vec![1, 0]);
        promote_key(&p, 1).unwrap();
        assert_eq!(Keyring::load(&p).unwrap().ids(), vec![1, 0]);
        remove_key(&p, 0).unwrap();
        assert_eq!(Keyring::load(&p).unwrap().ids(), vec![1]);
        let e = remove_key(&p, 1).unwrap_err();
        assert!(matches!(e, KeyringError::LastKey { id: 1, .. }), "{e}");

        // Comments survive, the file stays private, no temporary files are left behind.
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("# mooseherd keyring"), "{text}");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn add_key_through_a_symlink_edits_the_target_and_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("secrets");
        fs::create_dir(&real_dir).unwrap();
        let real = real_dir.join("keyring");
        write_mode(&real, &format!("1 {K1}\n"), 0o600);
        let link = dir.path().join("keyring");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(add_key(&link).unwrap(), 2);
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(Keyring::load(&real).unwrap().ids(), vec![1, 2]);
        let mode = fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_keyring_that_is_no_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("keyring");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = Keyring::load(&fifo).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("keyring {} is a FIFO, not a regular file", fifo.display())
        );
        let e = Keyring::load(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(e, KeyringError::NotAFile { .. }), "{e}");
    }

    #[test]
    fn io_errors_print_their_cause_once() {
        let e = io_err(Path::new("/k"), "cannot read")(io::Error::other("boom"));
        let shown = format!("{:#}", anyhow::Error::new(e));
        assert_eq!(shown.matches("boom").count(), 1, "{shown}");
    }

    #[test]
    fn add_key_wraps_ids_and_refuses_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keyring");
        write_mode(&p, &format!("255 {K1}\n0 {K2}\n"), 0o600);
        assert_eq!(add_key(&p).unwrap(), 1);
        let all: String = (0..=255u16).map(|i| format!("{i} {K1}\n")).collect();
        write_mode(&p, &all, 0o600);
        assert!(matches!(
            add_key(&p).unwrap_err(),
            KeyringError::Full { .. }
        ));
    }
}
