//! The kernel's mount table (`/proc/self/mountinfo`), read in one place: what is mounted where,
//! with which file system type and device. The FUSE mount supervisor, the metadata disk and
//! first boot all ask it whether something is mounted.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The table of the calling process's mount namespace.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One line of `mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `MAJOR << 20 | MINOR` (the kernel's encoding; for FUSE it names the connection).
    pub device: Option<u64>,
    /// Where it is mounted (the kernel's `\ooo` escapes decoded).
    pub mount_point: PathBuf,
    /// The file system type (`ext4`, `fuse.mfsmount`, ...).
    pub fstype: String,
}

/// Parses `mountinfo` text; lines that do not parse are skipped.
pub fn parse(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ").unwrap_or((line, ""));
            let mut f = left.split(' ');
            let dev = f.nth(2)?;
            let mount_point = PathBuf::from(OsStr::from_bytes(&unescape(f.nth(1)?)));
            let device = dev.split_once(':').and_then(|(major, minor)| {
                Some((major.parse::<u64>().ok()? << 20) | minor.parse::<u64>().ok()?)
            });
            Some(Mount {
                device,
                mount_point,
                fstype: right.split(' ').next().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// Reads and parses the mount table of this process.
pub fn read() -> io::Result<Vec<Mount>> {
    Ok(parse(&std::fs::read_to_string(MOUNTINFO)?))
}

/// Whether `mounts` list `dir` as a mount point.
pub fn is_mount_point(mounts: &[Mount], dir: &Path) -> bool {
    mounts.iter().any(|m| m.mount_point == dir)
}

/// Decodes the kernel's `\ooo` octal escapes (space, tab, newline, backslash in mount points).
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let text = "36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext4 /dev/root rw\n\
                    37 35 0:52 / /mnt/moosefs rw - fuse.mfsmount mfs#10.0.0.1:9421 rw\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, Path::new("/mnt/a b"));
        assert_eq!(m[0].fstype, "ext4");
        assert_eq!(m[1].device, Some(52));
        assert!(is_mount_point(&m, Path::new("/mnt/moosefs")));
        assert!(!is_mount_point(&m, Path::new("/mnt")));
    }
}
