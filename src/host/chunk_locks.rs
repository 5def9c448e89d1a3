//! Chunk locks a dead master left behind, released before the next master starts.
//!
//! mfsmaster logs a client's write as `WRITE(inode,index,...):chunk` the moment the client asks
//! for the chunk, and locks the chunk for 120 s (`LOCKTIMEOUT`, the same in 3.0 and 4.x); the
//! lock ends with `UNLOCK(chunk)` when the client reports the write done (or `ROLLBACK`, or
//! `TRUNC` ... `UNLOCK` for a truncation). When the master dies in between, `mfsmaster -a`
//! replays the `WRITE` and holds the same lock. The client resends the same request to the new
//! master, gets "locked", and MooseFS parks the request and looks at it again only every 30 s
//! (`CHUNK_WAIT_TIMEOUT`): a writer saw no acknowledged write for ~126 s after such a failover.
//!
//! So before `mfsmaster -a` starts on metadata whose master is gone, the host appends one line
//! per chunk whose last `WRITE`/`TRUNC` in the changelogs has no later `UNLOCK`, `ROLLBACK` or
//! `CHUNKDEL`, at the next consecutive change versions: `UNLOCK(chunk)`, exactly what the lock's
//! expiry would do two minutes later.
//!
//! Never `ROLLBACK`. An earlier version rolled back a chunk that the unfinished write had itself
//! made in a new file (so the client's retry would get a fresh chunk on the chunkservers alive,
//! instead of being refused for the new master's first 10 s because the chunk lost its copy on the
//! dead node). But the old master logs `WRITE` before it answers with the chunk's location: the
//! client may have had its answer, written its data to the chunkservers, and sent the write end
//! that the old master never answered. It resends it to the new master, which logs
//! `LENGTH(inode,3)` and `UNLOCK(chunk)` and acknowledges it, while the file no longer points at
//! the chunk: the fsync succeeded and the file read back as three zero bytes (the lab's
//! kill-leader drill, 3 records in ~210 runs). Only unlocked, the chunk stays in its file and the
//! resent write end finds it. Why this is safe:
//! - Only a master that is gone can have answered the locked write: [`release`] refuses to act
//!   while any process holds the data directory's `.mfsmaster.lock` (a frozen old master on a
//!   shared directory), and the agent only starts a master while it holds the lease, after the
//!   previous holder fenced itself.
//! - The write the lock protected was never acknowledged by the old master's `UNLOCK`; its
//!   client retries it against the new master, which bumps the chunk's version before handing the
//!   chunk out again, so a chunkserver still holding the dead write's data cannot take part.
//! - Only chunks that exist at the end of the replay get a line (`CHUNKDEL` removes one), because
//!   mfsmaster stops the whole replay at an `UNLOCK` of an unknown chunk; and nothing is appended
//!   after a torn last line, which mfsmaster skips (our next version would then be a hole).
//! - Only locks taken in the last [`LOCK_WINDOW_S`] seconds are released: older ones have expired
//!   by themselves (the window is wider than the 120 s lock to allow for clock differences).
//!
//! # Chunk ids after a takeover that may miss the old master's last changes
//! A metalogger (or a DRBD disk the dead node had not flushed to) can lack the old master's last
//! second of changes. Those may have made new chunks, numbered on from the metadata's next chunk
//! id, and their copies exist on chunkservers. The new master would number its own new chunks
//! from the same id, at the same version 1: a chunkserver's leftover copy of the old master's
//! chunk is then taken for a copy of the new master's, and a file can read back the other write
//! (the lab's metalogger drills read an acknowledged record back wrong in 3 of 100 runs). So
//! with `renumber_chunks`, [`release`] also appends `NEXTCHUNKID(n)` (replayed by 3.0 and 4.x),
//! `n` = [`CHUNK_ID_GAP`] past the highest next chunk id of the metadata files and the
//! changelogs: the new master's chunks can never share an id with one the old master made.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// How far a takeover moves the next chunk id past everything it knows of: far more chunks than
/// a master can make in the changes a metalogger may lack, far below the 10^9 past which
/// mfsmaster ignores a chunkserver's chunk ids as implausible.
pub const CHUNK_ID_GAP: u64 = 1_000_000;

/// Locks taken this many seconds (by the changelog's wall-clock stamps) before `now` or later
/// are released; MooseFS's own lock lasts 120 s.
pub const LOCK_WINDOW_S: u32 = 600;

/// Why no lock was released.
#[derive(Debug, thiserror::Error)]
pub enum LockReleaseError {
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "process {pid} holds {}: a master still runs on this metadata, its locks stay",
        path.display()
    )]
    MasterRunning { pid: i32, path: PathBuf },
    #[error(
        "{} ends in a torn line (the old master died while writing it): locks left to expire",
        path.display()
    )]
    TornTail { path: PathBuf },
    #[error("the next chunk id is not known ({cause}): nothing appended")]
    Metadata { cause: String },
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> LockReleaseError + 'a {
    move |source| LockReleaseError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// One change of a changelog: `VERSION: TIMESTAMP|OPERATION(ARGS)[:RESULT]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change<'a> {
    pub version: u64,
    pub ts: u32,
    /// `OPERATION(ARGS)[:RESULT]`.
    pub op: &'a str,
}

/// Parses one changelog line (without its newline); `None` for anything else.
pub fn parse_change(line: &str) -> Option<Change<'_>> {
    let (version, rest) = line.split_once(": ")?;
    let (ts, op) = rest.split_once('|')?;
    Some(Change {
        version: version.parse().ok()?,
        ts: ts.parse().ok()?,
        op,
    })
}

/// `NAME(a,b,...)` -> (`NAME`, [a, b, ...]) and the text after `):`, if any.
fn split_op(op: &str) -> Option<(&str, Vec<&str>, Option<&str>)> {
    let (name, rest) = op.split_once('(')?;
    let close = rest.rfind(')')?;
    let args = rest[..close].split(',').collect();
    let result = rest[close + 1..].strip_prefix(':');
    Some((name, args, result))
}

/// A decimal argument or result of a change (`None` when absent or not a number).
fn num(s: Option<&str>) -> Option<u64> {
    s.and_then(|s| s.trim().parse::<u64>().ok())
}

/// A chunk lock left by a write nobody finished, and how to end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenLock {
    pub chunk: u64,
    /// When the lock was taken (the changelog's wall-clock stamp).
    pub ts: u32,
}

/// The chunks a replay of `changes` (in version order) leaves locked by a write nobody finished.
pub fn unfinished_writes<'a>(changes: impl IntoIterator<Item = Change<'a>>) -> Vec<OpenLock> {
    let mut locked: BTreeMap<u64, OpenLock> = BTreeMap::new();
    for c in changes {
        let Some((name, args, result)) = split_op(c.op) else {
            continue;
        };
        match name {
            "WRITE" | "TRUNC" => {
                // Chunk 0 is "no chunk" (a truncation to a hole).
                if let Some(chunk) = num(result).filter(|&c| c != 0) {
                    locked.insert(chunk, OpenLock { chunk, ts: c.ts });
                }
            }
            "UNLOCK" | "CHUNKDEL" => {
                if let Some(chunk) = num(args.first().copied()) {
                    locked.remove(&chunk);
                }
            }
            // ROLLBACK(inode,index,previous chunk,chunk) unlocks the chunk it names last.
            "ROLLBACK" => {
                if let Some(chunk) = num(args.get(3).copied()) {
                    locked.remove(&chunk);
                }
            }
            _ => {}
        }
    }
    locked.into_values().collect()
}

/// The next chunk id a replay of `changes` leaves, as far as the changes tell (chunks made by
/// `WRITE` and `TRUNC`, chunks a chunkserver reported (`CHUNKADD`), `NEXTCHUNKID`); 0 when
/// they make none.
pub fn changelog_next_chunk_id<'a>(changes: impl IntoIterator<Item = Change<'a>>) -> u64 {
    let mut next = 0u64;
    for c in changes {
        let Some((name, args, result)) = split_op(c.op) else {
            continue;
        };
        let seen = match name {
            "WRITE" | "TRUNC" => num(result).map(|id| id.saturating_add(1)),
            "CHUNKADD" => num(args.first().copied()).map(|id| id.saturating_add(1)),
            "NEXTCHUNKID" => num(args.first().copied()),
            _ => None,
        };
        next = next.max(seen.unwrap_or(0));
    }
    next
}

/// The lines that end `locks`, then (with `next_chunk_id`) move the next chunk id, numbered on
/// from `last_version`, stamped `now`.
pub fn release_lines(
    last_version: u64,
    now: u32,
    locks: &[OpenLock],
    next_chunk_id: Option<u64>,
) -> String {
    locks
        .iter()
        .map(|l| format!("UNLOCK({})", l.chunk))
        .chain(next_chunk_id.map(|n| format!("NEXTCHUNKID({n})")))
        .zip(last_version + 1..)
        .map(|(op, v)| format!("{v}: {now}|{op}\n"))
        .collect()
}

/// What [`release`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Released {
    /// The locks ended, in the order of their new lines.
    pub locks: Vec<OpenLock>,
    /// The next chunk id set after them, if the chunks were renumbered.
    pub next_chunk_id: Option<u64>,
    /// The file the lines went to, and the first new version.
    pub appended_to: Option<(PathBuf, u64)>,
}

/// Which process holds mfsmaster's lock file in `data_dir`, if any.
fn lock_holder(data_dir: &Path) -> Result<Option<(i32, PathBuf)>, LockReleaseError> {
    let path = data_dir.join(".mfsmaster.lock");
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    // A write lock over the whole file: F_GETLK says who holds a conflicting one.
    let mut fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_GETLK(&mut fl))
        .map_err(|e| io_err("test the lock of", &path)(e.into()))?;
    Ok((fl.l_type != libc::F_UNLCK as libc::c_short).then_some((fl.l_pid, path)))
}

/// One changelog file as mfsmaster's merger reads it: its changes up to the first line that is
/// not one, and whether the file ends in a newline.
fn read_changelog(path: &Path) -> Result<(String, bool), LockReleaseError> {
    let bytes = fs::read(path).map_err(io_err("read", path))?;
    let ends_clean = bytes.is_empty() || bytes.last() == Some(&b'\n');
    Ok((String::from_utf8_lossy(&bytes).into_owned(), ends_clean))
}

/// Releases the locks of writes a dead master never finished, in the master data directory
/// `data_dir` (see the module docs), before `mfsmaster -a` starts there; with `renumber_chunks`
/// (a takeover that may lack the old master's last changes) also moves the next chunk id
/// [`CHUNK_ID_GAP`] on. `now` is the wall clock in seconds since the epoch.
pub fn release(
    data_dir: &Path,
    now: u32,
    renumber_chunks: bool,
) -> Result<Released, LockReleaseError> {
    if let Some((pid, path)) = lock_holder(data_dir)? {
        return Err(LockReleaseError::MasterRunning { pid, path });
    }
    let mut names: Vec<String> = fs::read_dir(data_dir)
        .map_err(io_err("list", data_dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| crate::host::mfs::changelog_name(n))
        .collect();
    names.sort();
    let mut texts = Vec::with_capacity(names.len());
    for n in &names {
        let path = data_dir.join(n);
        let (text, clean) = read_changelog(&path)?;
        texts.push((path, text, clean));
    }
    // Every change once, in version order (files overlap: a metalogger's and a master's copy).
    let mut changes: BTreeMap<u64, Change<'_>> = BTreeMap::new();
    // The file holding the newest change, and whether it ends cleanly.
    let mut tail: Option<(u64, usize)> = None;
    for (i, (_, text, _)) in texts.iter().enumerate() {
        for line in text.lines() {
            let Some(c) = parse_change(line) else { break };
            if tail.is_none_or(|(v, _)| c.version > v) {
                tail = Some((c.version, i));
            }
            changes.entry(c.version).or_insert(c);
        }
    }
    let Some((last_version, file)) = tail else {
        return Ok(Released::default());
    };
    let oldest = now.saturating_sub(LOCK_WINDOW_S);
    let locks: Vec<OpenLock> = unfinished_writes(changes.values().copied())
        .into_iter()
        .filter(|l| l.ts >= oldest)
        .collect();
    let next_chunk_id = if renumber_chunks {
        // A metadata file that cannot be read would make the line a guess: a NEXTCHUNKID below
        // the loaded one stops mfsmaster's whole replay. No line then (logged by the caller).
        let stored = crate::host::mfs::max_next_chunk_id(data_dir).map_err(|e| {
            LockReleaseError::Metadata {
                cause: e.to_string(),
            }
        })?;
        let logged = changelog_next_chunk_id(changes.values().copied());
        Some(
            stored
                .unwrap_or(1)
                .max(logged)
                .max(1)
                .saturating_add(CHUNK_ID_GAP),
        )
    } else {
        None
    };
    if locks.is_empty() && next_chunk_id.is_none() {
        return Ok(Released::default());
    }
    let (path, _, clean) = &texts[file];
    if !clean {
        return Err(LockReleaseError::TornTail { path: path.clone() });
    }
    let mut f = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io_err("open for append", path))?;
    f.write_all(release_lines(last_version, now, &locks, next_chunk_id).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io_err("append to", path))?;
    Ok(Released {
        locks,
        next_chunk_id,
        appended_to: Some((path.clone(), last_version + 1)),
    })
}

/// Wall-clock seconds since the epoch, as mfsmaster stamps its changelog.
pub fn wall_seconds() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(text: &str) -> Vec<Change<'_>> {
        text.lines().map_while(parse_change).collect()
    }

    fn lock(chunk: u64, ts: u32) -> OpenLock {
        OpenLock { chunk, ts }
    }

    #[test]
    fn a_write_without_its_unlock_stays_locked() {
        // From a lab changelog: the master was killed between WRITE and UNLOCK of chunk 25,
        // which that write created in file 26, made by the same changelog.
        let log = "\
124: 1796587453|LENGTH(24,3,0)
125: 1796587453|UNLOCK(23)
126: 1796587453|CREATE(4,rec-00000020,1,420,18,0,0,0):25
127: 1796587453|ACQUIRE(1,25)
128: 1796587453|WRITE(25,0,1,0):24
129: 1796587453|LENGTH(25,3,0)
130: 1796587453|UNLOCK(24)
131: 1796587453|CREATE(4,rec-00000021,1,420,18,0,0,0):26
132: 1796587453|ACQUIRE(1,26)
133: 1796587453|WRITE(26,0,1,0):25
";
        assert_eq!(unfinished_writes(changes(log)), vec![lock(25, 1796587453)]);
    }

    #[test]
    fn unlock_rollback_and_chunkdel_end_a_lock_and_truncations_take_one() {
        let log = "\
1: 100|WRITE(2,0,1):7
2: 100|WRITE(3,0,1,1):8
3: 100|WRITE(4,0,1,1):9
4: 100|TRUNC(5,0):10
5: 100|TRUNC(6,1):0
6: 101|UNLOCK(7)
7: 101|ROLLBACK(3,0,0,8)
8: 101|CHUNKDEL(9,1)
";
        assert_eq!(unfinished_writes(changes(log)), vec![lock(10, 100)]);
    }

    #[test]
    fn a_chunk_the_unfinished_write_made_is_unlocked_never_rolled_back() {
        // From the lab changelog of a kill-leader run that lost an acknowledged record: the old
        // master logged WRITE for record 21's new chunk 2191 and died; the takeover appended
        // line 12865 (a ROLLBACK, in that version); the client then resent its write end, which
        // the new master logged (12866-12867) and acknowledged, while the file no longer
        // pointed at the chunk: the record read back as three zero bytes.
        let log = "\
12862: 1796604479|CREATE(2137,rec-00000021,1,420,18,0,0,0):2159
12863: 1796604479|ACQUIRE(2,2159)
12864: 1796604479|WRITE(2159,0,1,0):2191
";
        let locks = unfinished_writes(changes(log));
        assert_eq!(locks, vec![lock(2191, 1796604479)]);
        let lines = release_lines(12864, 1796604482, &locks, None);
        assert_eq!(lines, "12865: 1796604482|UNLOCK(2191)\n");
        assert!(!lines.contains("ROLLBACK"), "{lines}");
    }

    #[test]
    fn release_lines_continue_the_versions() {
        assert_eq!(
            release_lines(133, 1796587500, &[lock(25, 1), lock(30, 1)], None),
            "134: 1796587500|UNLOCK(25)\n135: 1796587500|UNLOCK(30)\n"
        );
        assert_eq!(
            parse_change("134: 1796587500|UNLOCK(25)"),
            Some(Change {
                version: 134,
                ts: 1796587500,
                op: "UNLOCK(25)"
            })
        );
        assert_eq!(parse_change("garbage"), None);
        assert_eq!(parse_change("12: x|UNLOCK(1)"), None);
    }

    #[test]
    fn release_appends_to_the_newest_file_only_recent_locks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // An old master copy (versions to 3) and the metalogger's newer one (to 6).
        fs::write(
            d.join("changelog.0.mfs"),
            "1: 900|WRITE(2,0,1,0):5\n2: 900|UNLOCK(5)\n3: 990|WRITE(2,0,1,0):6\n",
        )
        .unwrap();
        fs::write(
            d.join("changelog_ml.0.mfs"),
            "3: 990|WRITE(2,0,1,0):6\n4: 10|WRITE(3,0,1,0):7\n5: 995|CREATE(1,x,1,420,0,0,0,0):4\n6: 995|WRITE(4,0,1,0):8\n",
        )
        .unwrap();
        let r = release(d, 1000, false).unwrap();
        // Chunk 7's lock (stamped 10) is long expired and left alone.
        assert_eq!(r.locks, vec![lock(6, 990), lock(8, 995)]);
        assert_eq!(r.appended_to, Some((d.join("changelog_ml.0.mfs"), 7)));
        let ml = fs::read_to_string(d.join("changelog_ml.0.mfs")).unwrap();
        assert!(
            ml.ends_with("6: 995|WRITE(4,0,1,0):8\n7: 1000|UNLOCK(6)\n8: 1000|UNLOCK(8)\n"),
            "{ml}"
        );
        // Nothing left to release: a second call changes nothing.
        assert_eq!(release(d, 1000, false).unwrap(), Released::default());
    }

    #[test]
    fn a_torn_last_line_leaves_the_locks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("changelog.0.mfs"), "1: 990|WRITE(2,0,1,0):6\n2: 99").unwrap();
        assert!(matches!(
            release(d, 1000, false),
            Err(LockReleaseError::TornTail { .. })
        ));
        fs::write(d.join("changelog.0.mfs"), "1: 990|WRITE(2,0,1,0):6\n").unwrap();
        // An unlocked lock file is no master (a held one is seen in the lab's freeze drills).
        fs::write(d.join(".mfsmaster.lock"), "123").unwrap();
        assert_eq!(release(d, 1000, false).unwrap().locks, vec![lock(6, 990)]);
    }

    /// A metadata file as mfsmaster writes it: header, a session section, `CHNK` starting with
    /// the next chunk id, the end marker.
    fn metadata_file(version: u64, next_chunk: u64) -> Vec<u8> {
        let mut b = b"MFSM 2.0".to_vec();
        b.extend(version.to_be_bytes());
        b.extend(0x1234u64.to_be_bytes());
        for (name, body) in [
            (&b"SESS 1.2"[..], vec![7u8; 13]),
            (&b"CHNK 1.1"[..], next_chunk.to_be_bytes().to_vec()),
        ] {
            b.extend(name);
            b.extend((body.len() as u64).to_be_bytes());
            b.extend(body);
        }
        b.extend(b"[MFS EOF MARKER]");
        b
    }

    #[test]
    fn the_next_chunk_id_counts_every_chunk_the_changes_make() {
        let log = "\
1: 100|WRITE(2,0,1,0):7
2: 100|TRUNC(5,0):12
3: 100|CHUNKADD(40,1,0)
4: 100|LENGTH(2,3,0)
";
        assert_eq!(changelog_next_chunk_id(changes(log)), 41);
        assert_eq!(
            changelog_next_chunk_id(changes("1: 1|NEXTCHUNKID(500)\n")),
            500
        );
        assert_eq!(changelog_next_chunk_id(changes("1: 1|ACCESS(1)\n")), 0);
        assert_eq!(
            release_lines(9, 1000, &[lock(6, 990)], Some(1_000_045)),
            "10: 1000|UNLOCK(6)\n11: 1000|NEXTCHUNKID(1000045)\n"
        );
    }

    #[test]
    fn a_takeover_that_may_lack_changes_moves_the_next_chunk_id_past_all_it_knows() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The metalogger's metadata says chunks go on from 45; its changelog made chunk 50.
        fs::write(d.join("metadata_ml.mfs.back"), metadata_file(3, 45)).unwrap();
        fs::write(d.join("metadata.crc"), b"not metadata").unwrap();
        fs::write(
            d.join("changelog_ml.0.mfs"),
            "3: 990|WRITE(2,0,1,0):50\n4: 990|LENGTH(2,3,0)\n5: 990|UNLOCK(50)\n",
        )
        .unwrap();
        assert_eq!(
            crate::host::mfs::read_next_chunk_id(&d.join("metadata_ml.mfs.back")).unwrap(),
            Some(45)
        );
        let r = release(d, 1000, true).unwrap();
        assert_eq!(r.locks, vec![]);
        assert_eq!(r.next_chunk_id, Some(51 + CHUNK_ID_GAP));
        let ml = fs::read_to_string(d.join("changelog_ml.0.mfs")).unwrap();
        assert!(
            ml.ends_with("5: 990|UNLOCK(50)\n6: 1000|NEXTCHUNKID(1000051)\n"),
            "{ml}"
        );
        // A newer metadata file that has gone further wins; a shared directory's takeover
        // (nothing can be missing) appends nothing.
        fs::write(d.join("metadata.mfs.back"), metadata_file(4, 2_000_000)).unwrap();
        assert_eq!(
            release(d, 1000, true).unwrap().next_chunk_id,
            Some(2_000_000 + CHUNK_ID_GAP)
        );
        let before = fs::read_to_string(d.join("changelog_ml.0.mfs")).unwrap();
        assert_eq!(release(d, 1000, false).unwrap(), Released::default());
        assert_eq!(
            fs::read_to_string(d.join("changelog_ml.0.mfs")).unwrap(),
            before
        );
    }

    #[test]
    fn a_metadata_file_that_cannot_be_walked_leaves_the_chunk_ids_alone() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut m = metadata_file(3, 45);
        // The session section's length now points past the end marker.
        m[32..40].copy_from_slice(&u64::MAX.to_be_bytes());
        fs::write(d.join("metadata.mfs"), m).unwrap();
        fs::write(d.join("changelog.0.mfs"), "3: 990|WRITE(2,0,1,0):50\n").unwrap();
        assert!(matches!(
            release(d, 1000, true),
            Err(LockReleaseError::Metadata { .. })
        ));
        assert!(
            !fs::read_to_string(d.join("changelog.0.mfs"))
                .unwrap()
                .contains("NEXTCHUNKID")
        );
    }
}
