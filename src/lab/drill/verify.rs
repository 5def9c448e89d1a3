//! The drill's verifier: reads the acknowledged records back afterwards and tells records that
//! are lost from those it could not read.

use std::time::{Duration, Instant};

/// How long the verifier waits for the file system to answer before it calls the records it
/// could not read `unverified`.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// What reading the acknowledged records back found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readback {
    pub lost: u64,
    pub unverified: u64,
    /// Each lost record: its number and what was found (`missing`, or the content read).
    pub lost_records: Vec<(u64, String)>,
}

/// Reads every acknowledged record back from `dir` (`rec-NNNNNNNN` holding its number). A
/// record is lost only when the file system answers and it is missing or wrong; one that cannot
/// be read (no master answering, EIO, a hung mount) is retried until `timeout` and then counted
/// as unverified. The reads run on a thread of their own, so a hung mount cannot hang the drill.
pub fn read_back(dir: &std::path::Path, seqs: &[u64], timeout: Duration) -> Readback {
    let (tx, rx) = std::sync::mpsc::channel();
    let (dir, seqs_owned) = (dir.to_path_buf(), seqs.to_vec());
    let deadline = Instant::now() + timeout;
    std::thread::spawn(move || {
        for seq in seqs_owned {
            let path = dir.join(format!("rec-{seq:08}"));
            let verdict = loop {
                match std::fs::read_to_string(&path) {
                    Ok(t) if t.trim() == seq.to_string() => break Some(Ok(())),
                    Ok(t) => {
                        let shown: String = t.chars().take(40).collect();
                        break Some(Err(format!("content {shown:?} ({} bytes)", t.len())));
                    }
                    // The directory answers (the writer created the file through it): a missing
                    // record is a real loss.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if std::fs::read_dir(&dir).is_ok() {
                            break Some(Err("missing".to_string()));
                        }
                    }
                    Err(_) => {}
                }
                if Instant::now() >= deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(500));
            };
            if tx.send((seq, verdict)).is_err() {
                return;
            }
        }
    });
    let mut r = Readback::default();
    let mut seen = 0usize;
    while seen < seqs.len() {
        let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
        match rx.recv_timeout(left) {
            Ok((_, Some(Ok(())))) => {}
            Ok((seq, Some(Err(what)))) => {
                r.lost += 1;
                r.lost_records.push((seq, what));
            }
            Ok((_, None)) => r.unverified += 1,
            // The reader hangs in the file system: the rest cannot be told.
            Err(_) => {
                r.unverified += (seqs.len() - seen) as u64;
                break;
            }
        }
        seen += 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_back_tells_lost_from_unverified() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("rec-00000001"), "1\n").unwrap();
        std::fs::write(d.join("rec-00000002"), "x\n").unwrap();
        // 3 is missing. 4 cannot be read (a directory: EISDIR, not "not found").
        std::fs::create_dir(d.join("rec-00000004")).unwrap();
        let r = read_back(d, &[1, 2, 3, 4], Duration::from_millis(600));
        assert_eq!(
            r,
            Readback {
                lost: 2,
                unverified: 1,
                lost_records: vec![
                    (2, "content \"x\\n\" (2 bytes)".to_string()),
                    (3, "missing".to_string())
                ],
            }
        );
    }
}
