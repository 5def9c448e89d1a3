//! Real MooseFS in network namespaces this test creates (`mhmfs-*`, 10.214.0.1 on a veth pair
//! inside the namespace): master, chunkserver, metalogger and mfsmount. Skipped with a message
//! (not failed) when not root or when MooseFS, nsenter or /dev/fuse is missing. Every process,
//! mount and namespace is released by Drop guards, also when an assertion fails. Lines starting
//! with `TIMING` are the measured figures (run with `--nocapture`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::*;
use crate::core::plan::MasterState;
use crate::host::mount::{MfsMount, MountHealth};

const IP: Ipv4Addr = Ipv4Addr::new(10, 214, 0, 1);
const BOUND: Duration = Duration::from_secs(15);

fn find_bin(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn skip(tag: &str, why: &str) -> Option<Lab> {
    crate::test_support::cannot_run(&format!("mfs lab {tag}"), why)
}

/// One network namespace with 10.214.0.1/24, and a scratch directory.
struct Lab {
    name: String,
    netns: PathBuf,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new(tag: &str) -> Option<Lab> {
        if !nix::unistd::geteuid().is_root() {
            return skip(tag, "needs root (network namespaces, FUSE mounts)");
        }
        for bin in [
            "mfsmaster",
            "mfschunkserver",
            "mfsmetalogger",
            "mfsmount",
            "nsenter",
            "ip",
        ] {
            if find_bin(bin).is_none() {
                return skip(
                    tag,
                    &format!(
                        "{bin} not installed (apt install moosefs-master moosefs-chunkserver moosefs-metalogger moosefs-client)"
                    ),
                );
            }
        }
        if !Path::new("/dev/fuse").exists() {
            return skip(tag, "no /dev/fuse");
        }
        let name = format!("mhmfs-{tag}-{}", std::process::id());
        ip(&["netns", "add", &name]);
        // From here on, Drop deletes the namespace even if a step below panics.
        let lab = Lab {
            netns: PathBuf::from("/run/netns").join(&name),
            name,
            dir: tempfile::Builder::new()
                .prefix("mhmfs-")
                .tempdir()
                .expect("tempdir"),
        };
        let n = lab.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&[
            "-n", n, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ]);
        ip(&["-n", n, "addr", "add", "10.214.0.1/24", "dev", "v0"]);
        ip(&["-n", n, "link", "set", "v0", "up"]);
        ip(&["-n", n, "link", "set", "v1", "up"]);
        Some(lab)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn master_cfg(&self, data: &str) -> PathBuf {
        let mut c = MasterConfig::new(self.path(data));
        c.listen_host = IP.to_string();
        c.working_user = "root".into();
        c.working_group = "root".into();
        c.chunks_loop_min_time = Some(60);
        c.replications_delay_init = Some(0);
        create_filesystem(&c.data_path).expect("create fs");
        c.write(&self.path(&format!("{data}-cfg")))
            .expect("write master cfg")
    }

    fn spawn_master(&self, cfg: &Path, recover: bool) -> Daemon {
        let spec = DaemonSpec::master(cfg, recover)
            .in_netns(&self.netns)
            .with_probe(SocketAddr::from((IP, 9421)));
        Daemon::spawn(spec).expect("spawn mfsmaster")
    }

    /// Starts a master and waits until it accepts connections; returns it and the time taken.
    fn master(&self, cfg: &Path, recover: bool) -> (Daemon, Duration) {
        let t = StdInstant::now();
        let mut m = self.spawn_master(cfg, recover);
        while m.state() != MasterState::Ready {
            assert!(
                m.status() == DaemonStatus::Running,
                "mfsmaster exited: {:?}\n{}",
                m.start_failure(),
                m.log_text()
            );
            assert!(t.elapsed() < BOUND, "mfsmaster not ready: {}", m.log_text());
            std::thread::sleep(Duration::from_millis(10));
        }
        (m, t.elapsed())
    }

    /// Starts a chunkserver and waits until it has registered its disk with the master.
    fn chunkserver(&self) -> Daemon {
        let mut c =
            ChunkserverConfig::new(self.path("cs"), vec![self.path("hdd")], &IP.to_string());
        c.listen_host = IP.to_string();
        c.leave_space = "0".into();
        c.working_user = "root".into();
        c.working_group = "root".into();
        std::fs::create_dir_all(self.path("hdd")).expect("hdd dir");
        let cfg = c.write(&self.path("cs-cfg")).expect("cs cfg");
        let spec = DaemonSpec::chunkserver(&cfg)
            .in_netns(&self.netns)
            .with_probe(SocketAddr::from((IP, 9422)));
        let mut d = Daemon::spawn(spec).expect("spawn chunkserver");
        let t = StdInstant::now();
        loop {
            let log = d.log_text();
            if d.ready() && log.contains("connected to Master") && log.contains("complete") {
                return d;
            }
            assert!(
                d.status() == DaemonStatus::Running,
                "chunkserver exited: {log}"
            );
            assert!(t.elapsed() < BOUND, "chunkserver not registered: {log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn mount(&self) -> MfsMount {
        let mut m = MfsMount::new(self.path("mnt"), &IP.to_string(), 9421);
        m.netns = Some(self.netns.clone());
        m.mount().expect("mfsmount");
        assert!(
            m.wait_mounted(BOUND),
            "not mounted: {}",
            std::fs::read_to_string(&m.log).unwrap_or_default()
        );
        m
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `f` in a thread; panics if it takes longer than `BOUND` (a hung FUSE call).
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(BOUND)
        .unwrap_or_else(|_| panic!("{what}: no answer within {BOUND:?}"))
}

fn write_fsync(path: PathBuf, data: Vec<u8>) -> std::io::Result<()> {
    bounded("write", move || {
        use std::io::Write;
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&data)?;
        f.sync_all()
    })
}

fn read(path: PathBuf) -> std::io::Result<Vec<u8>> {
    bounded("read", move || std::fs::read(path))
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn lab_write_and_read_back() {
    let Some(lab) = Lab::new("rw") else { return };
    let cfg = lab.master_cfg("m");
    assert_eq!(master_state(None), MasterState::Stopped);
    let (mut master, took) = lab.master(&cfg, false);
    eprintln!("TIMING master start (new fs): {took:?}");
    assert_eq!(master_state(Some(&mut master)), MasterState::Ready);
    let _cs = lab.chunkserver();
    let mnt = lab.mount();
    let data = pattern(1 << 20);
    let f = mnt.mountpoint.join("f1");
    write_fsync(f.clone(), data.clone()).expect("write");
    assert_eq!(read(f).expect("read"), data);
}

#[test]
fn lab_kill9_lock_and_recover() {
    let Some(lab) = Lab::new("k9") else { return };
    let cfg = lab.master_cfg("m");
    let (mut master, _) = lab.master(&cfg, false);
    let _cs = lab.chunkserver();
    let mnt = lab.mount();
    let f = mnt.mountpoint.join("kept");
    write_fsync(f.clone(), b"survives kill -9".to_vec()).expect("write");

    // A second master on the same data directory is refused while the first holds the lock.
    let mut second = lab.spawn_master(&cfg, true);
    let t = StdInstant::now();
    while second.status() == DaemonStatus::Running {
        assert!(t.elapsed() < BOUND, "second master still running");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        second.start_failure(),
        Some(StartFailure::LockHeld),
        "{}",
        second.log_text()
    );
    assert_eq!(second.state(), MasterState::Stopped);
    assert_eq!(
        master.state(),
        MasterState::Ready,
        "the first master was not disturbed"
    );

    // kill -9: a start without -a is refused, one with -a recovers.
    kill(Pid::from_raw(master.pid() as i32), Signal::SIGKILL).expect("kill -9");
    let stopped = master.stop(Duration::from_secs(1)).expect("reap");
    assert!(
        !stopped.clean && stopped.exit == Exit::Signal(9),
        "{stopped:?}"
    );
    let mut plain = lab.spawn_master(&cfg, false);
    let t = StdInstant::now();
    while plain.status() == DaemonStatus::Running {
        assert!(t.elapsed() < BOUND, "plain start neither failed nor ...");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        plain.start_failure(),
        Some(StartFailure::NeedsRecover),
        "{}",
        plain.log_text()
    );
    let (_master, took) = lab.master(&cfg, true);
    eprintln!("TIMING master start -a after kill -9: {took:?}");
    let t = StdInstant::now();
    assert_eq!(read(f).expect("read after recovery"), b"survives kill -9");
    eprintln!(
        "TIMING first read through the old mount after -a ready: {:?}",
        t.elapsed()
    );
}

#[test]
fn lab_stop_deadline_clean_and_killed() {
    let Some(lab) = Lab::new("stop") else { return };
    let cfg = lab.master_cfg("m");
    let (mut master, _) = lab.master(&cfg, false);
    master.begin_stop().expect("sigterm");
    assert_eq!(master.state(), MasterState::Stopping);
    let s = master.stop(Duration::from_secs(10)).expect("stop");
    eprintln!("TIMING clean stop (SIGTERM to exit): {:?}", s.took);
    assert!(s.clean && !s.killed && s.exit == Exit::Code(0), "{s:?}");
    assert_eq!(master.state(), MasterState::Stopped);

    // Clean, so it starts without -a; then a frozen master is killed at the deadline.
    let (mut master, took) = lab.master(&cfg, false);
    eprintln!("TIMING master start after clean stop: {took:?}");
    master.signal(Signal::SIGSTOP).expect("sigstop");
    let deadline = Duration::from_millis(500);
    let s = master.stop(deadline).expect("stop");
    assert!(s.killed && !s.clean && s.took >= deadline, "{s:?}");
    assert!(s.took < deadline + Duration::from_millis(500), "{s:?}");
    let mut plain = lab.spawn_master(&cfg, false);
    let t = StdInstant::now();
    while plain.status() == DaemonStatus::Running {
        assert!(t.elapsed() < BOUND);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(plain.start_failure(), Some(StartFailure::NeedsRecover));
}

#[test]
fn lab_dead_mount_detected_and_remounted() {
    let Some(lab) = Lab::new("mnt") else { return };
    let cfg = lab.master_cfg("m");
    let (_master, _) = lab.master(&cfg, false);
    let _cs = lab.chunkserver();
    let mut mnt = lab.mount();
    let f = mnt.mountpoint.join("f");
    write_fsync(f.clone(), b"still here".to_vec()).expect("write");
    assert_eq!(mnt.health(Duration::from_secs(2)), MountHealth::Healthy);

    let pid = mnt.pid().expect("mfsmount runs");
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill mfsmount");
    let t = StdInstant::now();
    while mnt.health(Duration::from_millis(200)) != MountHealth::ProcessGone {
        assert!(t.elapsed() < BOUND);
        std::thread::sleep(Duration::from_millis(10));
    }
    // statfs always reaches the (dead) FUSE server; stat may be served from the attribute cache.
    let err = nix::sys::statfs::statfs(&mnt.mountpoint).expect_err("dead mount");
    assert_eq!(err, nix::errno::Errno::ENOTCONN);
    assert!(!mnt.is_healthy(Duration::from_millis(200)));

    let t = StdInstant::now();
    mnt.remount().expect("remount");
    assert!(mnt.wait_mounted(BOUND));
    assert_eq!(read(f).expect("read after remount"), b"still here");
    eprintln!(
        "TIMING lazy unmount + remount + first read: {:?}",
        t.elapsed()
    );
    assert_eq!(mnt.health(Duration::from_secs(2)), MountHealth::Healthy);
    mnt.unmount(Duration::from_secs(2)).expect("unmount");
    assert!(!mnt.is_mounted());
}

/// A mount whose master cannot be reached yet (no one has the VIP: a rack coming up) is killed
/// and remounted again and again, at different points of its start. Killing mfsmount while its
/// own mountpoint check waits on FUSE used to leave that thread unkillable, holding the
/// connection, so every later `stat` there hung for good (seen in the DRBD VM tier). Each killed
/// mfsmount must be gone (reaped) and the mountpoint must answer.
#[test]
fn lab_killed_mount_leaves_no_hung_connection() {
    let Some(lab) = Lab::new("kill") else { return };
    // In the namespace's subnet, but nobody has it: connects wait for ARP.
    let mut mnt = MfsMount::new(lab.path("mnt"), "10.214.0.99", 9421);
    mnt.netns = Some(lab.netns.clone());
    mnt.mount().expect("mfsmount");
    for wait_ms in [50, 300, 700, 1500, 2500] {
        std::thread::sleep(Duration::from_millis(wait_ms));
        let pid = mnt.pid().expect("mfsmount runs");
        mnt.remount().expect("remount");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "mfsmount {pid} killed {wait_ms} ms after its start is not gone: {}",
            std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()
        );
    }
    assert!(mnt.wait_mounted(BOUND));
    // The mount answers (statfs of a mount without master returns, at most after a connect try).
    let (tx, rx) = mpsc::channel();
    let p = mnt.mountpoint.clone();
    std::thread::spawn(move || {
        let _ = tx.send(nix::sys::statfs::statfs(&p).map(drop));
    });
    assert!(
        rx.recv_timeout(BOUND).is_ok(),
        "statfs of the remounted mountpoint hangs"
    );
    mnt.unmount(Duration::from_secs(2)).expect("unmount");
}

#[test]
fn lab_metalogger_takeover() {
    let Some(lab) = Lab::new("ml") else { return };
    let cfg = lab.master_cfg("m");
    // A new filesystem has nothing for a metalogger to download until a first save: clean
    // stop and start once (see `create_filesystem`).
    let (mut master, _) = lab.master(&cfg, false);
    assert!(master.stop(Duration::from_secs(10)).expect("stop").clean);
    let (mut master, _) = lab.master(&cfg, false);
    let mut mlc = MetaloggerConfig::new(lab.path("ml"), &IP.to_string());
    mlc.working_user = "root".into();
    mlc.working_group = "root".into();
    let mlcfg = mlc.write(&lab.path("ml-cfg")).expect("ml cfg");
    let mut ml =
        Daemon::spawn(DaemonSpec::metalogger(&mlcfg).in_netns(&lab.netns)).expect("spawn ml");
    let t = StdInstant::now();
    while !lab.path("ml").join(METALOGGER_METADATA).exists() {
        assert!(
            t.elapsed() < BOUND,
            "metalogger got no metadata: {}",
            ml.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _cs = lab.chunkserver();
    let mnt = lab.mount();
    for i in 0..5 {
        write_fsync(
            mnt.mountpoint.join(format!("g{i}")),
            format!("hello {i}").into_bytes(),
        )
        .expect("write");
    }
    std::fs::create_dir(mnt.mountpoint.join("last")).expect("mkdir");
    // The metalogger has the last change before we pull the plug.
    let t = StdInstant::now();
    while !std::fs::read_to_string(lab.path("ml").join("changelog_ml.0.mfs"))
        .unwrap_or_default()
        .contains("CREATE(1,last,")
    {
        assert!(t.elapsed() < BOUND, "metalogger lags");
        std::thread::sleep(Duration::from_millis(10));
    }

    let failover = StdInstant::now();
    master.kill_now();
    let s = ml.stop(Duration::from_secs(5)).expect("stop metalogger");
    assert!(s.clean, "{s:?}");
    let t = StdInstant::now();
    let info = metalogger_takeover(&lab.path("ml"), &lab.path("m2")).expect("takeover");
    let took_takeover = t.elapsed();
    let cfg2 = lab.master_cfg("m2");
    let (mut master2, took) = lab.master(&cfg2, true);
    let ready = failover.elapsed();
    write_fsync(mnt.mountpoint.join("after"), b"new master".to_vec())
        .expect("write after failover");
    eprintln!(
        "TIMING metalogger failover by hand: metalogger stop {:?}, takeover copy {took_takeover:?}, \
         master -a start {took:?}, kill -9 to ready {ready:?}, to first fsync'd write {:?}",
        s.took,
        failover.elapsed()
    );
    eprintln!("TAKEOVER {info:?}\nmetalogger stop {s:?}");
    assert!(
        info.metaid != 0 && info.version > info.file_version,
        "{info:?}"
    );
    for i in 0..5 {
        assert_eq!(
            read(mnt.mountpoint.join(format!("g{i}"))).expect("read"),
            format!("hello {i}").into_bytes()
        );
    }
    assert!(mnt.mountpoint.join("last").is_dir());

    // The version predicted is where the recovered master went on: its clean-stop metadata
    // is at least that (a few changes of its own follow: the chunkserver, the session, "after").
    let s = master2.stop(Duration::from_secs(10)).expect("stop");
    assert!(s.clean, "{s:?}");
    let h = read_metadata_header(&lab.path("m2").join("metadata.mfs")).expect("header");
    assert_eq!(h.metaid, info.metaid);
    assert!(h.version >= info.version, "{h:?} vs {info:?}");
    let log = master2.log_text();
    assert!(log.contains("metadata file has been loaded"), "{log}");
}
