//! The Linux host: the real VIP (rtnetlink, kernel lifetime, gratuitous ARP), the real MooseFS
//! daemons (mfsmaster, mfschunkserver, mfsmetalogger, mfsmount) and the replication backend's
//! steps. Every call is quick except stopping mfsmaster (SIGTERM, then SIGKILL at a deadline
//! inside the fencing budget).

mod metadata;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Host;
use super::chunk_locks;
use super::meta_disk::MetaDisk;
use super::mfs::{self, ChunkserverConfig, Daemon, DaemonSpec, MasterConfig, MetaloggerConfig};
use super::mount::{MfsMount, MountHealth};
use super::syn_hold::{self, SynHold};
use super::vip::VipDriver;
use crate::config::{Node, Rack, Replication, Role};
use crate::core::Instant;
use crate::core::plan::{Action, Observed, ReplicaRole};
use crate::core::roles::ReplicaState;
use metadata::{newest_change, own_replay_end, restore_metadata};

/// How many gratuitous ARPs announce a VIP, and how far apart (measured in the lab: without them clients took
/// 47 s to find the new master).
const ARP_COUNT: u32 = 5;
const ARP_SPACING: Duration = Duration::from_millis(200);

/// Where the DRBD metadata disk is mounted, under the node's `meta_dir`.
pub const DRBD_MOUNT_DIR: &str = "drbd";

/// The real host of one node.
pub struct LinuxHost {
    backend: Replication,
    vip: ipnet::Ipv4Net,
    interface: String,
    vip_driver: Option<VipDriver>,
    /// When the lifetime this agent last gave the VIP runs out (`None` after `VipDown`).
    vip_set: Option<Instant>,
    /// mfsmaster's data directory (the shared directory, or this node's meta_dir).
    master_data: PathBuf,
    metalogger_data: PathBuf,
    /// The chunkserver's working directory (lock file, stats), owned by the daemon user.
    chunkserver_data: PathBuf,
    /// Generated configs and daemon logs.
    cfg_dir: PathBuf,
    chunk_dirs: Vec<PathBuf>,
    is_chunkserver: bool,
    is_worker: bool,
    /// A master candidate: the only kind of node that ever holds the VIP.
    is_candidate: bool,
    stop_deadline: Duration,
    master: Option<Daemon>,
    master_unclean: bool,
    /// The data directory was just taken over from the metalogger: the next master start first
    /// replays it into a fresh `metadata.mfs` (`mfsmaster restore`), see `start_master`.
    restore_before_start: bool,
    /// The rule holding clients' connects while mfsmaster restarts (`hold_master_connects`).
    syn_hold: Option<SynHold>,
    chunkserver: Option<Daemon>,
    metalogger: Option<Daemon>,
    mount: Option<MfsMount>,
    /// The DRBD metadata disk (`drbd` backend), mounted at `master_data` while leading.
    meta_disk: Option<MetaDisk>,
    /// The last DRBD reading error, logged once until it changes.
    meta_disk_error: Option<String>,
    /// The worker mount's last health, logged when it changes.
    mount_health: Option<MountHealth>,
    /// Killed daemons not reaped yet (blocked in the kernel), kept to be reaped.
    dying: Vec<Daemon>,
    replica_primary: bool,
    provisioner: bool,
    /// Tells the runtime's PVC provisioner whether (and in which epoch) this node leads.
    leadership: Option<tokio::sync::watch::Sender<Option<u64>>>,
    /// The user the MooseFS daemons run as: `mfs` (Debian's packages create it), or root.
    user: String,
}

/// `mfs` if that user exists (it owns the data directories), else `root`.
fn daemon_user(dirs: &[&Path]) -> String {
    match nix::unistd::User::from_name("mfs") {
        Ok(Some(u)) => {
            for d in dirs {
                let _ = nix::unistd::chown(*d, Some(u.uid), Some(u.gid));
            }
            "mfs".into()
        }
        _ => "root".into(),
    }
}

impl LinuxHost {
    /// Gives files the agent wrote for the daemons to their user (they run as `mfs` when it
    /// exists, and refuse metadata they cannot read with "can't find valid metadata file").
    fn give_to_daemon_user(&self, paths: impl IntoIterator<Item = PathBuf>) {
        if let Ok(Some(u)) = nix::unistd::User::from_name(&self.user) {
            for p in paths {
                if let Err(e) = nix::unistd::chown(&p, Some(u.uid), Some(u.gid)) {
                    tracing::warn!("cannot give {} to {}: {e}", p.display(), self.user);
                }
            }
        }
    }

    /// The host of `node` in `rack`; generated files go under `state_dir/mfs`.
    pub fn new(rack: &Rack, node: &Node, state_dir: &Path) -> anyhow::Result<Self> {
        let c = &rack.cluster;
        let master_data = match c.replication {
            Replication::SharedDir => c
                .shared_dir
                .clone()
                .unwrap_or_else(|| node.meta_dir.clone()),
            // Its own mount point: the chunkserver's and metalogger's directories stay in
            // meta_dir, visible whether or not the disk is mounted.
            Replication::Drbd => node.meta_dir.join(DRBD_MOUNT_DIR),
            Replication::Metalogger => node.meta_dir.clone(),
        };
        // Only master candidates touch DRBD: a worker or chunkserver on a node that also
        // carries a candidate (or sees its /proc/drbd) must never demote it.
        let candidate = node.has(Role::Master);
        let meta_disk = match (c.replication, &rack.drbd) {
            (Replication::Drbd, _) if !candidate => None,
            (Replication::Drbd, Some(d)) => Some(MetaDisk::new(d, &master_data)),
            (Replication::Drbd, None) => {
                anyhow::bail!("replication is \"drbd\" but the rack file has no [drbd] table")
            }
            _ => None,
        };
        let cfg_dir = state_dir.join("mfs");
        std::fs::create_dir_all(&cfg_dir)?;
        for d in node.chunk_dirs.iter().chain([&master_data, &node.meta_dir]) {
            std::fs::create_dir_all(d)?;
        }
        let mount = node.has(Role::Worker).then(|| {
            let mut m = MfsMount::new(&node.mount_path, &c.vip.addr().to_string(), 9421);
            m.log = cfg_dir.join("mfsmount.log");
            m
        });
        if let Some(m) = &mount {
            std::fs::create_dir_all(&m.mountpoint)?;
        }
        let metalogger_data = node.meta_dir.join("metalogger");
        let chunkserver_data = node.meta_dir.join("chunkserver");
        std::fs::create_dir_all(&metalogger_data)?;
        std::fs::create_dir_all(&chunkserver_data)?;
        let mut owned: Vec<&Path> = node.chunk_dirs.iter().map(PathBuf::as_path).collect();
        owned.extend([
            master_data.as_path(),
            node.meta_dir.as_path(),
            metalogger_data.as_path(),
            chunkserver_data.as_path(),
        ]);
        let user = daemon_user(&owned);
        let mut syn_hold = None;
        if node.has(Role::Master) && !c.hold_master_connects {
            syn_hold::remove();
        } else if node.has(Role::Master) {
            let ports = MasterConfig::new(&master_data);
            match SynHold::install(&[
                ports.metalogger_port,
                ports.chunkserver_port,
                ports.client_port,
            ]) {
                Ok(h) => {
                    tracing::info!(
                        "clients' connects to the master ports wait (not refused) while mfsmaster restarts: nftables table inet {} (owned by this agent, gone with it)",
                        syn_hold::TABLE
                    );
                    syn_hold = Some(h);
                }
                Err(e) => tracing::warn!(
                    "connects to a restarting mfsmaster are refused (clients retry after ~3 s): {e}"
                ),
            }
        }
        Ok(Self {
            backend: c.replication,
            vip: c.vip,
            interface: node.interface.clone(),
            vip_driver: None,
            vip_set: None,
            master_data,
            metalogger_data,
            chunkserver_data,
            cfg_dir,
            chunk_dirs: node.chunk_dirs.clone(),
            is_chunkserver: node.has(Role::Chunkserver),
            is_candidate: node.has(Role::Master),
            is_worker: node.has(Role::Worker),
            stop_deadline: Duration::from_millis(c.fence_budget_ms / 2),
            master: None,
            master_unclean: false,
            restore_before_start: false,
            syn_hold,
            chunkserver: None,
            metalogger: None,
            mount,
            meta_disk,
            meta_disk_error: None,
            mount_health: None,
            dying: Vec::new(),
            replica_primary: false,
            provisioner: false,
            leadership: None,
            user,
        })
    }

    /// Drives `leadership` on StartProvisioner / StopProvisioner (see [`crate::provisioner`]).
    pub fn with_leadership(mut self, tx: tokio::sync::watch::Sender<Option<u64>>) -> Self {
        self.leadership = Some(tx);
        self
    }

    fn vip(&mut self) -> Result<&mut VipDriver, String> {
        if self.vip_driver.is_none() {
            self.vip_driver =
                Some(VipDriver::new(&self.interface, self.vip).map_err(|e| e.to_string())?);
        }
        self.vip_driver
            .as_mut()
            .ok_or_else(|| "no VIP driver".to_string())
    }

    fn drbd(&self) -> Result<&MetaDisk, String> {
        self.meta_disk
            .as_ref()
            .ok_or_else(|| "no DRBD metadata disk configured ([drbd] table)".to_string())
    }

    fn local_probe(port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
    }

    fn start_master(&mut self, recover: bool) -> Result<(), String> {
        let created = if self.backend != Replication::Drbd {
            // The first start on an empty data directory creates the filesystem.
            mfs::create_filesystem(&self.master_data).map_err(|e| e.to_string())?
        } else {
            self.check_drbd_metadata()?
        };
        if created {
            tracing::info!(
                "created a new MooseFS filesystem in {}",
                self.master_data.display()
            );
            let _ = nix::unistd::User::from_name(&self.user)
                .ok()
                .flatten()
                .map(|u| {
                    let _ = nix::unistd::chown(
                        &self.master_data.join("metadata.mfs"),
                        Some(u.uid),
                        Some(u.gid),
                    );
                });
        }
        let mut cfg = MasterConfig::new(&self.master_data);
        cfg.working_user = self.user.clone();
        cfg.working_group = self.user.clone();
        let dir = self.cfg_dir.join("master");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = cfg.write(&dir).map_err(|e| e.to_string())?;
        let probe = Self::local_probe(cfg.client_port);
        if created && self.backend == Replication::Metalogger {
            // A new filesystem has no metadata backup for metaloggers to download until the master
            // first saves: start it, stop it cleanly, and start it again (MooseFS 3.0 behaviour).
            let mut first = Daemon::spawn(DaemonSpec::master(&path, false).with_probe(probe))
                .map_err(|e| e.to_string())?;
            let t0 = std::time::Instant::now();
            while !first.ready() && t0.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = first.stop(Duration::from_secs(10));
        }
        let mut recover = (recover || self.master_unclean) && !created;
        if recover {
            self.release_stale_chunk_locks();
        }
        if recover && std::mem::take(&mut self.restore_before_start) {
            // After a metalogger takeover the data directory has the metalogger's
            // `metadata_ml.mfs.back` and changelogs but no `metadata.mfs.back`, which is what
            // mfsmaster hands to metaloggers: started with `-a` on those files, the master could
            // not give the next standby's metalogger any metadata until its first hourly save,
            // and that standby could not take over. `restore` replays everything into
            // `metadata.mfs` (about 1 s more here); the master then starts from it without `-a`.
            match restore_metadata(&path, &self.cfg_dir.join("master").join("mfsmaster.log")) {
                Ok(took) => {
                    tracing::info!(
                        "metadata replayed into metadata.mfs in {} ms (mfsmaster restore): metaloggers can download it",
                        took.as_millis()
                    );
                    recover = false;
                }
                Err(e) => tracing::warn!(
                    "mfsmaster restore failed ({e}): starting with -a; metaloggers get no metadata until the master's first save"
                ),
            }
        }
        let spec = DaemonSpec::master(&path, recover).with_probe(probe);
        self.master = Some(Daemon::spawn(spec).map_err(|e| e.to_string())?);
        Ok(())
    }

    /// Before `mfsmaster -a`: the chunk locks of writes the previous master never finished are
    /// released in the changelog (see `chunk_locks`), so its clients' retried writes are not
    /// parked for two minutes. Never fatal: what is not released expires by itself.
    fn release_stale_chunk_locks(&self) {
        // A metalogger, or a DRBD disk the dead node had not flushed to, may lack the old
        // master's last changes (and the chunks they made): its chunk ids are moved on.
        let renumber = self.backend != Replication::SharedDir;
        match chunk_locks::release(&self.master_data, chunk_locks::wall_seconds(), renumber) {
            Ok(r) => match &r.appended_to {
                Some((file, from)) => {
                    let mut did = Vec::new();
                    if !r.locks.is_empty() {
                        did.push(format!(
                            "unlocked the chunks of {} write(s) the previous master never finished ({})",
                            r.locks.len(),
                            r.locks
                                .iter()
                                .map(|l| l.chunk.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    if let Some(n) = r.next_chunk_id {
                        did.push(format!(
                            "numbered new chunks from {n}, past any the previous master may have made in changes this copy lacks"
                        ));
                    }
                    tracing::info!(
                        "{}: changes {from}.. appended to {}",
                        did.join("; "),
                        file.display()
                    )
                }
                None => tracing::debug!("no unfinished write holds a chunk lock"),
            },
            // mfsmaster will say the same and be retried; its locks stay until then.
            Err(e @ chunk_locks::LockReleaseError::MasterRunning { .. }) => {
                tracing::info!("chunk locks not released: {e}")
            }
            Err(e) => tracing::warn!("chunk locks not released: {e}"),
        }
    }

    /// The DRBD metadata disk must already hold MooseFS metadata (the rack's set-up puts an
    /// empty filesystem there): an empty disk here means the wrong disk or a lost one, and a new
    /// filesystem would hide the rack's data. (An "only in the first election" rule does not
    /// work: a first round that fails leaves the first leader at epoch 2.)
    fn check_drbd_metadata(&self) -> Result<bool, String> {
        match mfs::newest_metadata(&self.master_data).map_err(|e| e.to_string())? {
            Some(_) => Ok(false),
            None => Err(format!(
                "the DRBD metadata disk mounted on {} holds no MooseFS metadata (metadata.mfs*); \
                 a new rack's disk needs one made once: cp /var/lib/mfs/metadata.mfs.empty {}/metadata.mfs",
                self.master_data.display(),
                self.master_data.display()
            )),
        }
    }

    fn start_chunkserver(&mut self) -> Result<(), String> {
        let dir = self.cfg_dir.join("chunkserver");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut cfg = ChunkserverConfig::new(
            self.chunkserver_data.clone(),
            self.chunk_dirs.clone(),
            &self.vip.addr().to_string(),
        );
        cfg.working_user = self.user.clone();
        cfg.working_group = self.user.clone();
        std::fs::create_dir_all(&cfg.data_path).map_err(|e| e.to_string())?;
        let path = cfg.write(&dir).map_err(|e| e.to_string())?;
        self.chunkserver =
            Some(Daemon::spawn(DaemonSpec::chunkserver(&path)).map_err(|e| e.to_string())?);
        Ok(())
    }

    fn start_metalogger(&mut self) -> Result<(), String> {
        let dir = self.cfg_dir.join("metalogger");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&self.metalogger_data).map_err(|e| e.to_string())?;
        let mut cfg = MetaloggerConfig::new(&self.metalogger_data, &self.vip.addr().to_string());
        cfg.working_user = self.user.clone();
        cfg.working_group = self.user.clone();
        let path = cfg.write(&dir).map_err(|e| e.to_string())?;
        self.metalogger =
            Some(Daemon::spawn(DaemonSpec::metalogger(&path)).map_err(|e| e.to_string())?);
        Ok(())
    }

    /// Whether this node's replica is primary and its metadata disk mounted. With DRBD both are
    /// read from the kernel (an agent restarted on a primary must see it to fence); the other
    /// backends have no disk to mount and keep the role in memory.
    fn replica_and_mount(&mut self) -> (bool, bool) {
        let Some(disk) = &self.meta_disk else {
            return (self.replica_primary, false);
        };
        let read = disk
            .status()
            .and_then(|s| Ok((s.is_primary(), disk.mounted()?)));
        match read {
            Ok(v) => {
                self.meta_disk_error = None;
                v
            }
            Err(e) => {
                // Unknown is reported as secondary and unmounted: a leader then asks for
                // primary, which fails with DRBD's own words; a standby has nothing to undo.
                let msg = e.to_string();
                if self.meta_disk_error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!("cannot read the DRBD metadata disk: {msg}");
                    self.meta_disk_error = Some(msg);
                }
                (false, false)
            }
        }
    }

    fn running(d: &mut Option<Daemon>) -> bool {
        match d {
            Some(daemon) => matches!(daemon.status(), mfs::DaemonStatus::Running),
            None => false,
        }
    }
}

impl Host for LinuxHost {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn replica(&mut self) -> ReplicaState {
        match self.backend {
            // One directory for every candidate: always current.
            Replication::SharedDir => ReplicaState::UpToDate,
            Replication::Drbd => match self.meta_disk.as_ref().map(MetaDisk::status) {
                Some(Ok(s)) => s.replica_state(),
                Some(Err(e)) => {
                    tracing::warn!("cannot read the DRBD state: {e}");
                    ReplicaState::Unknown
                }
                None => ReplicaState::Unknown,
            },
            Replication::Metalogger => {
                // The leader's copy is its running master's; a standby's is what its metalogger
                // would give a takeover (or its own earlier master copy, if it has no newer one).
                let own = if self.replica_primary {
                    mfs::newest_metadata(&self.master_data)
                        .map(|h| h.map(|h| (h.metaid, h.version)))
                } else {
                    mfs::metalogger_version(&self.metalogger_data)
                };
                match own {
                    Ok(Some((metaid, version))) => ReplicaState::Version { metaid, version },
                    Ok(None) => ReplicaState::Version {
                        metaid: 0,
                        version: 0,
                    },
                    Err(e) => {
                        tracing::warn!("cannot read the metadata version: {e}");
                        ReplicaState::Unknown
                    }
                }
            }
        }
    }

    fn observe(&mut self, now: Instant) -> Observed {
        self.dying.retain_mut(|d| {
            let gone = matches!(d.status(), mfs::DaemonStatus::Exited(_));
            if gone {
                tracing::info!("the killed {} has exited", d.spec().program.display());
            }
            !gone
        });
        if self.syn_hold.as_mut().is_some_and(|h| !h.alive()) {
            tracing::warn!(
                "the nft -i holding table inet {} exited: connects to a restarting mfsmaster are refused again (clients retry after ~3 s) until the agent restarts",
                syn_hold::TABLE
            );
            self.syn_hold = None;
        }
        // Only a candidate looks for the VIP: a node that can never lead never added it, and
        // one sharing an interface with a candidate (two agents on one host in the VM tier)
        // would otherwise remove the leader's address as its own stale VIP.
        // The kernel reports the lifetime left in whole seconds, rounded up: right after a 1 s
        // refresh it still says 1 s 0.9 s later, so a deadline read from it alone looked fresh
        // until the address was gone (the VIP vanished for ~0.1 s every few seconds, seen by
        // the lab's monitor). The deadline this agent set itself is exact: the earlier counts.
        let vip_until = if self.is_candidate {
            self.vip()
                .ok()
                .and_then(|v| v.state().ok().flatten())
                .map(|left| {
                    let kernel = now + left;
                    self.vip_set.map_or(kernel, |set| kernel.min(set))
                })
        } else {
            None
        };
        // A master that died by itself (crash, OOM, lock held) is gone: the next start needs -a.
        if let Some(m) = &mut self.master
            && let mfs::DaemonStatus::Exited(exit) = m.status()
        {
            if let Some(why) = m.start_failure() {
                tracing::warn!("mfsmaster did not start: {why:?} (it is retried)");
            } else {
                tracing::warn!("mfsmaster exited: {exit:?}");
            }
            self.master = None;
            self.master_unclean = true;
        }
        let master = mfs::master_state(self.master.as_mut());
        let chunkserver_running = Self::running(&mut self.chunkserver);
        let metalogger = Self::running(&mut self.metalogger);
        // Only a dead mount is remounted (mfsmount gone, ENOTCONN, not mounted). A mount that does
        // not answer right now (`Hung`) is waiting for the master, e.g. during a failover:
        // mfsmount reconnects by itself, and remounting would break every open file of the pods.
        // One still coming up (`Starting`) is given its time: killing it mid-start can leave a
        // FUSE connection nobody serves.
        let mount_healthy = match self
            .mount
            .as_mut()
            .map(|m| (m.health(Duration::from_millis(300)), m))
        {
            None => false,
            Some((h, m)) => {
                if self.mount_health.as_ref() != Some(&h) {
                    let at = m.mountpoint.display();
                    match &h {
                        MountHealth::Healthy => tracing::info!("MooseFS mount at {at}: healthy"),
                        MountHealth::Starting => {
                            tracing::info!("MooseFS mount at {at}: mfsmount is starting")
                        }
                        MountHealth::Hung => tracing::info!(
                            "MooseFS mount at {at}: statfs does not answer (master unreachable; mfsmount reconnects by itself)"
                        ),
                        other => {
                            tracing::warn!("MooseFS mount at {at}: {other:?} (it is remounted)")
                        }
                    }
                    self.mount_health = Some(h.clone());
                }
                matches!(
                    h,
                    MountHealth::Healthy | MountHealth::Hung | MountHealth::Starting
                )
            }
        };
        let (replica_primary, meta_mounted) = self.replica_and_mount();
        Observed {
            replica: if replica_primary {
                ReplicaRole::Primary
            } else {
                ReplicaRole::Secondary
            },
            meta_mounted,
            master,
            master_unclean: self.master_unclean,
            vip_until,
            provisioner: self.provisioner,
            metalogger,
            chunkserver_running: chunkserver_running || !self.is_chunkserver,
            mount_healthy: mount_healthy || !self.is_worker,
        }
    }

    fn leader_changed(&mut self, epoch: u64, down: &[std::net::IpAddr]) {
        // Mounts, chunkservers and metaloggers all reach the master at the VIP.
        crate::host::client_reset::after_leader_change(epoch, self.vip.addr(), 9421, down.to_vec());
    }

    fn member_down(&mut self, addr: std::net::IpAddr) {
        crate::host::client_reset::member_down(addr);
    }

    fn execute(&mut self, action: Action, now: Instant) -> Result<Observed, String> {
        match action {
            Action::ReplicaPrimary { epoch } => match self.backend {
                Replication::SharedDir => self.replica_primary = true,
                Replication::Metalogger => {
                    if let Some(m) = &mut self.metalogger {
                        let _ = m.stop(Duration::from_secs(2));
                    }
                    self.metalogger = None;
                    let ml = self.metalogger_data.join(mfs::METALOGGER_METADATA).exists();
                    let own = mfs::newest_metadata(&self.master_data).map_err(|e| e.to_string())?;
                    match (ml, own) {
                        (true, _) => {
                            let info =
                                mfs::metalogger_takeover(&self.metalogger_data, &self.master_data)
                                    .map_err(|e| e.to_string())?;
                            self.give_to_daemon_user(
                                info.copied.iter().map(|n| self.master_data.join(n)),
                            );
                            self.restore_before_start = true;
                            tracing::info!(
                                "metadata taken over from the metalogger: metaid {:x}, mfsmaster -a continues from version {} (file {}, changelogs to {:?})",
                                info.metaid,
                                info.version,
                                info.file_version,
                                info.last_change
                            );
                        }
                        (false, Some(h)) => {
                            // Its own copy is from when it last led. If its metalogger has seen
                            // newer changes since (it followed a later master but never got that
                            // master's metadata file), the rack moved on without this copy:
                            // starting from it would roll the filesystem back.
                            let own_end = own_replay_end(&self.master_data, h.version)?;
                            if let Some(seen) = newest_change(&self.metalogger_data)
                                && seen > own_end
                            {
                                return Err(format!(
                                    "this node's own metadata reaches change {own_end} only, but its metalogger has seen change {seen}: \
                                     another master ran since, and starting from this copy would lose its changes; \
                                     this node waits for its metalogger to download the rack's metadata"
                                ));
                            }
                            tracing::info!(
                                "no metalogger copy: starting from this node's own metadata (metaid {:x}, version {}, changes to {})",
                                h.metaid,
                                h.version,
                                own_end
                            )
                        }
                        // Only the rack's first election may create a filesystem: eligibility
                        // kept this node out if any alive candidate had metadata, and epoch 1
                        // means no node has held the lease (so run a master) before.
                        (false, None) if epoch == 1 => tracing::info!(
                            "no metadata anywhere and epoch 1: this is a new rack, mfsmaster creates a new filesystem"
                        ),
                        (false, None) => {
                            return Err(format!(
                                "no metadata to take over (this node's metalogger has not downloaded any) and epoch {epoch} > 1: \
                                 a master ran before, so a new empty filesystem would hide the rack's data; \
                                 bring back a node with metadata"
                            ));
                        }
                    }
                    self.replica_primary = true;
                }
                Replication::Drbd => self.drbd()?.promote().map_err(|e| e.to_string())?,
            },
            Action::MountMeta { .. } => {
                self.drbd()?.mount().map_err(|e| e.to_string())?;
                // mfsmaster runs as the daemon user and writes into the disk's root.
                self.give_to_daemon_user([self.master_data.clone()]);
            }
            Action::UnmountMeta => {
                if let Some(d) = &self.meta_disk {
                    d.unmount().map_err(|e| e.to_string())?;
                }
            }
            Action::StartMaster { recover, .. } => self.start_master(recover)?,
            Action::VipUp {
                valid_s, announce, ..
            } => {
                self.vip()?.up(valid_s).map_err(|e| e.to_string())?;
                self.vip_set = Some(now + Duration::from_secs(u64::from(valid_s)));
                if announce {
                    // Spaced announcements run on their own thread: the host thread stays free
                    // for the next action (a fence must never wait behind ARP).
                    let announcer = self.vip()?.announcer().map_err(|e| e.to_string())?;
                    let vip = self.vip;
                    std::thread::spawn(move || {
                        if let Err(e) = announcer.announce(ARP_COUNT, ARP_SPACING) {
                            tracing::warn!("gratuitous ARP for {vip}: {e}");
                        }
                    });
                }
            }
            Action::StartProvisioner { epoch } => {
                if let Some(tx) = &self.leadership {
                    tx.send_replace(Some(epoch));
                }
                self.provisioner = true;
            }
            Action::StopProvisioner => {
                // The provisioner's task is aborted on the runtime; every step it takes is
                // idempotent, so whatever it was doing the next leader finishes.
                if let Some(tx) = &self.leadership {
                    tx.send_replace(None);
                }
                self.provisioner = false;
            }
            Action::VipDown => {
                self.vip_set = None;
                self.vip()?.down().map_err(|e| e.to_string())?
            }
            Action::StopMaster => {
                if let Some(mut m) = self.master.take() {
                    // If DRBD freezes IO (the peer is gone and our fence-peer handler refused: we
                    // no longer hold the lease), before or while mfsmaster stops, mfsmaster hangs
                    // on it until SIGKILL and past it. That IO is failed at once, so its writes
                    // fail fast and never land.
                    let mut released = false;
                    m.begin_stop().map_err(|e| e.to_string())?;
                    let stopped = loop {
                        if !released
                            && let Some(d) = &self.meta_disk
                            && d.status().is_ok_and(|s| s.suspended)
                        {
                            d.fail_frozen_io().map_err(|e| e.to_string())?;
                            released = true;
                        }
                        if let Some(s) = m.poll_stop(self.stop_deadline) {
                            break s;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    };
                    self.master_unclean = !stopped.clean;
                    if stopped.exited {
                        tracing::info!(
                            "mfsmaster stopped in {:?} ({})",
                            stopped.took,
                            if stopped.clean {
                                "clean"
                            } else {
                                "killed: next start uses -a"
                            }
                        );
                    } else {
                        tracing::warn!(
                            "mfsmaster killed after {:?} but not exited yet: blocked in the kernel (IO?); it serves no one and dies when its IO is released",
                            stopped.took
                        );
                        self.dying.push(m);
                    }
                }
            }
            Action::ReplicaSecondary => {
                if let Some(d) = &self.meta_disk {
                    d.demote().map_err(|e| e.to_string())?;
                }
                self.replica_primary = false;
            }
            Action::StartMetalogger => self.start_metalogger()?,
            Action::StopMetalogger => {
                if let Some(mut m) = self.metalogger.take() {
                    let _ = m.stop(Duration::from_secs(2));
                }
            }
            Action::StartChunkserver => self.start_chunkserver()?,
            Action::Remount => {
                if let Some(m) = &mut self.mount {
                    m.remount().map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(self.observe(now))
    }
}

impl Drop for LinuxHost {
    /// An agent that exits stops what it started (systemd's cgroup kill does the same on a crash).
    fn drop(&mut self) {
        if let Some(tx) = &self.leadership {
            tx.send_replace(None);
        }
        for d in [
            &mut self.master,
            &mut self.chunkserver,
            &mut self.metalogger,
        ]
        .into_iter()
        .flatten()
        {
            let _ = d.stop(Duration::from_millis(500));
        }
        if let Some(m) = &mut self.mount {
            let _ = m.lazy_unmount();
        }
        if let Some(v) = &mut self.vip_driver {
            let _ = v.down();
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HostChecks, Rack};

    /// The core's provisioner actions reach the runtime's `leadership` channel (and a host that
    /// goes away says "not leader").
    #[test]
    fn provisioner_actions_drive_the_leadership_channel() {
        let dir = tempfile::tempdir().unwrap();
        let text = crate::lab::rack_toml(dir.path(), &crate::lab::node_names(3), "shared-dir");
        let (rack, _) = Rack::parse(&text, Path::new("lab.toml"), HostChecks::NONE).unwrap();
        let node = rack.node_by_name("pi1").unwrap().clone();
        let (tx, rx) = tokio::sync::watch::channel(None);
        let mut host = LinuxHost::new(&rack, &node, &dir.path().join("state"))
            .unwrap()
            .with_leadership(tx);
        let now = Instant::from_micros(0);
        let obs = host
            .execute(Action::StartProvisioner { epoch: 9 }, now)
            .unwrap();
        assert!(obs.provisioner);
        assert_eq!(*rx.borrow(), Some(9));
        let obs = host.execute(Action::StopProvisioner, now).unwrap();
        assert!(!obs.provisioner);
        assert_eq!(*rx.borrow(), None);
        host.execute(Action::StartProvisioner { epoch: 10 }, now)
            .unwrap();
        drop(host);
        assert_eq!(*rx.borrow(), None, "a host that is gone still says leader");
    }
}
