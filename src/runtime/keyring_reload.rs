//! SIGHUP (`systemctl reload mooseherd`): the keyring file is read again and, if it is valid,
//! replaces the keys in use at once; frame counters, incarnation and lease state are kept. The
//! log says what changed (keys added, removed, replaced or unchanged, and the sealing key), or
//! why the file was refused and that the old keyring stays in use.

use std::path::Path;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Tag, XNonce};
use tracing::{info, warn};

use crate::wire::{Endpoint, Keyring};

/// What a reload changed, by key id.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct KeyringChange {
    pub added: Vec<u8>,
    pub removed: Vec<u8>,
    /// Same id, other key material.
    pub replaced: Vec<u8>,
    pub unchanged: Vec<u8>,
    /// The sealing key before and after.
    pub sealing: (u8, u8),
}

impl std::fmt::Display for KeyringChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids = |v: &[u8]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
            }
        };
        write!(
            f,
            "keys added: {}; removed: {}; replaced: {}; unchanged: {}; ",
            ids(&self.added),
            ids(&self.removed),
            ids(&self.replaced),
            ids(&self.unchanged)
        )?;
        match self.sealing {
            (a, b) if a == b => write!(f, "sealing with key {b} as before"),
            (a, b) => write!(f, "now sealing with key {b} (was {a})"),
        }
    }
}

/// A value that tells two keys with the same id apart without showing either: the tag of an
/// empty message under a fixed nonce.
fn key_check(k: &Keyring, id: u8) -> Option<Tag> {
    let cipher = k.cipher(id)?;
    cipher
        .encrypt_inout_detached(
            &XNonce::default(),
            b"mooseherd keyring reload",
            (&mut [][..]).into(),
        )
        .ok()
}

/// What replacing `old` by `new` changes.
pub(super) fn change(old: &Keyring, new: &Keyring) -> KeyringChange {
    let (old_ids, new_ids) = (old.ids(), new.ids());
    let mut c = KeyringChange {
        sealing: (old.sealing_id(), new.sealing_id()),
        ..Default::default()
    };
    for id in &new_ids {
        if !old_ids.contains(id) {
            c.added.push(*id);
        } else if key_check(old, *id) == key_check(new, *id) {
            c.unchanged.push(*id);
        } else {
            c.replaced.push(*id);
        }
    }
    c.removed = old_ids
        .into_iter()
        .filter(|id| !new_ids.contains(id))
        .collect();
    c
}

/// Reads the keyring at `path` and puts it in use, or logs why not (the old one stays).
pub(super) fn reload(endpoint: &mut Endpoint, path: &Path) -> Option<KeyringChange> {
    match Keyring::load(path) {
        Ok(new) => {
            let c = change(endpoint.keyring(), &new);
            endpoint.set_keyring(new);
            info!("keyring reloaded from {}: {c}", path.display());
            if !c.replaced.is_empty() {
                warn!(
                    "keyring {}: key ids {:?} now hold other keys: nodes that still have the old ones cannot talk to this one (see docs/keyring.md)",
                    path.display(),
                    c.replaced
                );
            }
            Some(c)
        }
        Err(e) => {
            warn!(
                "keyring reload failed, keeping the old keyring (keys {:?}, sealing with {}): {e}",
                endpoint.keyring().ids(),
                endpoint.keyring().sealing_id()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::core::NodeId;

    fn endpoint(k: Keyring) -> Endpoint {
        Endpoint::new(NodeId(0), 2, 1, k, 5).expect("endpoint")
    }

    #[test]
    fn change_names_added_removed_replaced_and_sealing() {
        let old = Keyring::from_keys(&[(0, [1; 32]), (1, [2; 32]), (2, [3; 32])]).unwrap();
        let new = Keyring::from_keys(&[(1, [2; 32]), (2, [9; 32]), (3, [4; 32])]).unwrap();
        let c = change(&old, &new);
        assert_eq!(c.added, [3]);
        assert_eq!(c.removed, [0]);
        assert_eq!(c.replaced, [2]);
        assert_eq!(c.unchanged, [1]);
        assert_eq!(c.sealing, (0, 1));
        assert_eq!(
            c.to_string(),
            "keys added: 3; removed: 0; replaced: 2; unchanged: 1; now sealing with key 1 (was 0)"
        );
    }

    #[test]
    fn a_bad_file_keeps_the_old_keyring_and_a_good_one_replaces_it() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("keyring");
        let mut e = endpoint(Keyring::from_keys(&[(0, [1; 32])]).unwrap());
        assert_eq!(reload(&mut e, &path), None, "missing file");
        std::fs::write(&path, "0 zz\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(reload(&mut e, &path), None, "syntax error");
        assert_eq!(e.keyring().ids(), [0]);
        let line = |id: u8, b: u8| format!("{id} {}\n", hex::encode([b; 32]));
        std::fs::write(&path, line(0, 1) + &line(7, 8)).unwrap();
        let c = reload(&mut e, &path).expect("reloaded");
        assert_eq!((c.added, c.unchanged), (vec![7], vec![0]));
        assert_eq!(e.keyring().ids(), [0, 7]);
    }
}
