//! The writer thread of a drill: it appends numbered records (one new file each, fsynced) to a
//! worker's mfsmount and logs which were acknowledged, and when.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared between the writer thread and the drill.
#[derive(Default)]
pub(super) struct WriterLog {
    /// Acknowledged records: sequence number, when the write started, when fsync returned.
    pub(super) acked: Vec<(u64, Instant, Instant)>,
    pub(super) errors: u64,
    /// When each failed write started.
    pub(super) failed: Vec<Instant>,
}

pub(super) fn writer(dir: PathBuf, stop: Arc<AtomicBool>, log: Arc<Mutex<WriterLog>>) {
    // Every record is a new file (create, write, fsync, close): each one needs the master, so the
    // first acknowledged record after a fault says when the master serves again. (Appending to an
    // open file inside one chunk needs only the chunkservers and goes on through a failover.)
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let path = dir.join(format!("rec-{seq:08}"));
        let ok = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o644)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(format!("{seq}\n").as_bytes())
                    .and_then(|()| f.sync_all())
            })
            .is_ok();
        if let Ok(mut l) = log.lock() {
            if ok {
                l.acked.push((seq, started, Instant::now()));
            } else {
                // Not acknowledged: it does not count, whether it landed or not.
                l.errors += 1;
                l.failed.push(started);
            }
        }
        seq += 1;
        std::thread::sleep(Duration::from_millis(if ok { 20 } else { 100 }));
    }
}
