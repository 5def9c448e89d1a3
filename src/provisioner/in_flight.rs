//! Directories being provisioned right now. The controller checks a new path against the PVs the
//! apiserver lists, but claims are reconciled concurrently: two claims whose paths nest (two
//! classes, say) could both pass that check before either PV exists. A path is therefore held
//! here from before the check until its PV is created; a claim whose path overlaps a held one
//! waits and tries again. The leader is the only provisioner, so one process-wide set suffices.

use std::sync::Mutex;

use super::path::{RelPath, overlaps};

/// The paths held, in no order.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<Vec<RelPath>>);

/// A held path, released when dropped.
#[derive(Debug)]
pub struct Hold<'a> {
    set: &'a InFlight,
    path: RelPath,
}

impl InFlight {
    /// Holds `path`, or returns the held path it overlaps (the same, inside or around it).
    pub fn hold(&self, path: &RelPath) -> Result<Hold<'_>, RelPath> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(other) = held.iter().find(|h| overlaps(h, path)) {
            return Err(other.clone());
        }
        held.push(path.clone());
        Ok(Hold {
            set: self,
            path: path.clone(),
        })
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let mut held = self.set.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = held.iter().position(|h| *h == self.path) {
            held.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_paths_wait_for_each_other_until_released() {
        let r = |s: &str| RelPath::parse(s).unwrap();
        let set = InFlight::default();
        let a = set.hold(&r("ns/db")).unwrap();
        assert_eq!(set.hold(&r("ns/db/pvc-1")).unwrap_err(), r("ns/db"));
        assert_eq!(set.hold(&r("ns")).unwrap_err(), r("ns/db"));
        assert_eq!(set.hold(&r("ns/db")).unwrap_err(), r("ns/db"));
        let b = set.hold(&r("ns/web")).unwrap();
        drop(a);
        let c = set.hold(&r("ns/db/pvc-1")).unwrap();
        drop((b, c));
        assert!(set.hold(&r("ns")).is_ok());
    }
}
