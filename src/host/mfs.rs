//! MooseFS daemons as the agent's host thread drives them: configuration files written from
//! explicit fields, `mfsmaster` / `mfschunkserver` / `mfsmetalogger` run in the foreground as
//! supervised children, readiness probed over TCP, stops by the child's own PID with a deadline,
//! and the metalogger takeover that turns a standby's metalogger files into a master data
//! directory. Every call returns quickly (spawn, signal, one short TCP probe) except
//! [`Daemon::stop`], which blocks up to the deadline it is given, and [`metalogger_takeover`],
//! which copies the metalogger's files once per promotion.
//!
//! # MooseFS 3.0 and 4.x
//! Checked against the upstream sources of 3.0.117 and 4.59.2 (only 3.0 runs here):
//! - Flags `-c CFG`, `-f` (foreground), `-a` (recover from changelogs), `-t`, `-x`, `-i`, `-u`,
//!   `-n` and the `start` action are the same. `-d` is NOT: in 3.0 it is a deprecated alias of
//!   `-f`, in 4.x it allows `DANGEROUS_*` options. This module never passes `-d`. 4.x adds `-e`
//!   (Pro only). Always use the `start` action: `restart` (the default action when none is
//!   given) and `stop` SIGTERM whatever PID the lock file names, which on a shared data
//!   directory can be another node's master.
//! - The lock is an `fcntl` lock on `DATA_PATH/.mfsmaster.lock` in both; a second `start` exits
//!   with status 1 and prints `can't start: lockfile is already locked by another process` in
//!   both (4.x also logs it to syslog). [`StartFailure::LockHeld`] detects it.
//! - Metadata files have the same names and format in both: `metadata.mfs` (clean stop),
//!   `metadata.mfs.back[.N]`, `changelog.N.mfs`, header `MFSM 2.0` + version (u64 BE) + metaid
//!   (u64 BE), trailer `[MFS EOF MARKER]`; a new filesystem is the 8 bytes `MFSM NEW` (both ship
//!   it as `/var/lib/mfs/metadata.mfs.empty`). The metalogger keeps `metadata_ml.mfs.back[.N]`,
//!   `changelog_ml.N.mfs` and `changelog_ml_back.{0,1}.mfs` in both, and `mfsmaster -a` reads
//!   every file named `metadata*` and all three changelog name patterns in both, so a takeover
//!   keeps the metalogger's names.
//! - 4.x refuses a start WITHOUT `-a` when `metadata_ml.mfs.back` or `metadata.mfs.back` in the
//!   data directory is newer than `metadata.mfs` (or has another metaid), or when `metadata.mfs`
//!   is `MFSM NEW` while a backup exists; 3.0 only checks `metadata.mfs.back`. After a takeover
//!   the agent starts with `-a` anyway (the plan asks `recover` for every non-DRBD backend).
//! - Config keys written here exist with the same meaning in both. 4.x warns when a key is
//!   defined twice (each is written once), drops `LIMIT_GLIBC_MALLOC_ARENAS` (not written), and
//!   deprecates `mingoal/maxgoal` in exports (not written). `CHUNKS_LOOP_MIN_TIME` is clamped to
//!   at least 60 s by both.
//!
//! # Measured here (3.0.117, 2 cores, namespaces; `cargo test --lib host::mfs -- --nocapture`)
//! Master start on an empty filesystem ~0.1 s, `-a` after kill -9 ~0.2 s (up to 1.7 s while
//! other tests start masters on the same 2 cores); clean stop (SIGTERM to exit) 2.3-3.0 s.
//! After a new master is ready, clients wait for mfsmount's fixed 2 s reconnect loop and for
//! chunkservers to re-register (`MASTER_RECONNECTION_DELAY`, default 5 s: set to 1 here, which
//! brought the first read after `-a` from 11.8 s to 1.8 s).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant as StdInstant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::core::plan::MasterState;

/// What the Debian/upstream packages install as a new, empty filesystem.
pub const EMPTY_METADATA_PATH: &str = "/var/lib/mfs/metadata.mfs.empty";
/// The content of that file in 3.0 and 4.x alike: written directly when the file is absent.
pub const EMPTY_METADATA: &[u8; 8] = b"MFSM NEW";
/// The master's lock file inside `DATA_PATH` (3.0 and 4.x).
pub const MASTER_LOCK_FILE: &str = ".mfsmaster.lock";
/// The metalogger's newest metadata file.
pub const METALOGGER_METADATA: &str = "metadata_ml.mfs.back";
/// Where [`metalogger_takeover`] moves the data directory's previous metadata files.
pub const PRE_TAKEOVER_DIR: &str = "pre-takeover";

const EOF_MARKER: &[u8; 16] = b"[MFS EOF MARKER]";
/// mfsmaster's merger treats an id jump of this size or more inside one file as garbage.
const MAX_ID_HOLE: u64 = 10_000;
/// How much of a daemon's log a failure diagnosis reads (from its end).
const LOG_TAIL: u64 = 64 * 1024;
/// How long a SIGKILLed daemon is waited for. One blocked in the kernel (IO that DRBD froze, a
/// dead FUSE mount) outlives SIGKILL; it is left to be reaped later.
const KILL_REAP: Duration = Duration::from_secs(2);

/// Errors of the MooseFS drivers.
#[derive(Debug, thiserror::Error)]
pub enum MfsError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("unrecognised version output from {program}: {output:?}")]
    Version { program: String, output: String },
    #[error("config value for {key} contains a line break or is empty")]
    BadConfigValue { key: String },
    #[error("{path}: not usable MooseFS metadata ({reason})")]
    BadMetadata { path: PathBuf, reason: &'static str },
    #[error(
        "metalogger metadata has metaid {metalogger:016X} but the data directory holds metaid \
         {data:016X}: another filesystem"
    )]
    MetaIdMismatch { data: u64, metalogger: u64 },
    #[error(
        "changelogs have a hole: metadata file at version {file_version}, change {missing} is \
         missing, next change found is {next}"
    )]
    ChangelogGap {
        file_version: u64,
        missing: u64,
        next: u64,
    },
    #[error("signal to pid {pid}: {source}")]
    Signal { pid: u32, source: nix::Error },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MfsError + 'a {
    move |source| MfsError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Version

/// The MooseFS release installed, from `mfsmaster -v` (`version: 3.0.117-1 ; build: 1341`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MfsVersion {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
}

impl MfsVersion {
    /// Parses the output of `mfsmaster -v` (any daemon's `-v` prints the same form).
    pub fn parse(output: &str) -> Option<Self> {
        let rest = output.split("version:").nth(1)?.trim_start();
        let token = rest.split(|c: char| c.is_whitespace() || c == '-').next()?;
        let mut it = token.split('.').map(|p| p.parse::<u16>().ok());
        Some(Self {
            major: it.next()??,
            minor: it.next()??,
            patch: it.next().flatten().unwrap_or(0),
        })
    }

    /// Runs `PROGRAM -v` (a few milliseconds).
    pub fn detect(program: &Path) -> Result<Self, MfsError> {
        let out = Command::new(program)
            .arg("-v")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| MfsError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Self::parse(&text).ok_or(MfsError::Version {
            program: program.display().to_string(),
            output: text,
        })
    }

    /// MooseFS 4.x (upstream packages) rather than 3.0 (Debian's).
    pub fn is_4x(self) -> bool {
        self.major >= 4
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration files

fn push_kv(out: &mut String, key: &str, value: &str) -> Result<(), MfsError> {
    if value.is_empty() || value.contains(['\n', '\r']) || key.contains(['\n', '\r', '=']) {
        return Err(MfsError::BadConfigValue { key: key.into() });
    }
    let _ = writeln!(out, "{key} = {value}");
    Ok(())
}

/// Writes `dir/name` through a temporary file and a rename, so a reader never sees half a file.
fn write_atomic(dir: &Path, name: &str, content: &str) -> Result<PathBuf, MfsError> {
    fs::create_dir_all(dir).map_err(io_err("create config dir", dir))?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, content).map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("rename into", &path))?;
    Ok(path)
}

/// `mfsmaster.cfg` + `mfsexports.cfg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterConfig {
    /// Metadata, changelogs and the lock file (`DATA_PATH`).
    pub data_path: PathBuf,
    /// Address the three listeners bind (`*` = any; the VIP works with `*`).
    pub listen_host: String,
    /// `MATOML_LISTEN_PORT` (metaloggers, tools; default 9419).
    pub metalogger_port: u16,
    /// `MATOCS_LISTEN_PORT` (chunkservers; default 9420).
    pub chunkserver_port: u16,
    /// `MATOCL_LISTEN_PORT` (mounts; default 9421). Readiness is probed here.
    pub client_port: u16,
    pub working_user: String,
    pub working_group: String,
    /// Lines of `mfsexports.cfg`.
    pub exports: Vec<String>,
    /// 2 = fsync every changelog write: what a replicated disk needs to lose nothing.
    pub changelog_save_mode: u8,
    /// `CHUNKS_LOOP_MIN_TIME` (s; MooseFS clamps to >= 60). `None`: MooseFS default (300).
    pub chunks_loop_min_time: Option<u32>,
    /// `REPLICATIONS_DELAY_INIT` (s). `None`: MooseFS default (60).
    pub replications_delay_init: Option<u32>,
    /// Anything else, written verbatim after the fields above (keys must not repeat them).
    pub extra: Vec<(String, String)>,
}

impl MasterConfig {
    /// Defaults of a production node: listen on all addresses, standard ports, user `mfs`,
    /// exports `/` to everyone with root mapped to root, fsync'd changelogs.
    pub fn new(data_path: impl Into<PathBuf>) -> Self {
        Self {
            data_path: data_path.into(),
            listen_host: "*".into(),
            metalogger_port: 9419,
            chunkserver_port: 9420,
            client_port: 9421,
            working_user: "mfs".into(),
            working_group: "mfs".into(),
            exports: vec!["* / rw,alldirs,admin,maproot=0:0".into(), "* . rw".into()],
            changelog_save_mode: 2,
            chunks_loop_min_time: None,
            replications_delay_init: None,
            extra: Vec::new(),
        }
    }

    /// The text of `mfsmaster.cfg`, pointing at `exports_path`.
    pub fn render(&self, exports_path: &Path) -> Result<String, MfsError> {
        let mut s = String::from("# written by mooseherd\n");
        push_kv(&mut s, "WORKING_USER", &self.working_user)?;
        push_kv(&mut s, "WORKING_GROUP", &self.working_group)?;
        push_kv(&mut s, "DATA_PATH", &self.data_path.to_string_lossy())?;
        push_kv(&mut s, "EXPORTS_FILENAME", &exports_path.to_string_lossy())?;
        for (k, port) in [
            ("MATOML", self.metalogger_port),
            ("MATOCS", self.chunkserver_port),
            ("MATOCL", self.client_port),
        ] {
            push_kv(&mut s, &format!("{k}_LISTEN_HOST"), &self.listen_host)?;
            push_kv(&mut s, &format!("{k}_LISTEN_PORT"), &port.to_string())?;
        }
        push_kv(
            &mut s,
            "CHANGELOG_SAVE_MODE",
            &self.changelog_save_mode.to_string(),
        )?;
        if let Some(v) = self.chunks_loop_min_time {
            push_kv(&mut s, "CHUNKS_LOOP_MIN_TIME", &v.to_string())?;
        }
        if let Some(v) = self.replications_delay_init {
            push_kv(&mut s, "REPLICATIONS_DELAY_INIT", &v.to_string())?;
        }
        for (k, v) in &self.extra {
            push_kv(&mut s, k, v)?;
        }
        Ok(s)
    }

    /// Writes `dir/mfsmaster.cfg` and `dir/mfsexports.cfg`; returns the path of the former.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, MfsError> {
        let mut exports = String::from("# written by mooseherd\n");
        for line in &self.exports {
            if line.contains(['\n', '\r']) {
                return Err(MfsError::BadConfigValue {
                    key: "exports".into(),
                });
            }
            exports.push_str(line);
            exports.push('\n');
        }
        let exports_path = write_atomic(dir, "mfsexports.cfg", &exports)?;
        write_atomic(dir, "mfsmaster.cfg", &self.render(&exports_path)?)
    }
}

/// `mfschunkserver.cfg` + `mfshdd.cfg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkserverConfig {
    /// The chunkserver's own state and lock file (`DATA_PATH`).
    pub data_path: PathBuf,
    /// Chunk storage directories (lines of `mfshdd.cfg`).
    pub hdd: Vec<PathBuf>,
    /// The master: the VIP.
    pub master_host: String,
    /// The master's chunkserver port (9420).
    pub master_port: u16,
    pub listen_host: String,
    /// `CSSERV_LISTEN_PORT`: distinct per instance sharing an address (default 9422).
    pub listen_port: u16,
    /// `HDD_LEAVE_SPACE_DEFAULT` (`0` for small test disks; MooseFS default `256MiB`).
    pub leave_space: String,
    /// `MASTER_RECONNECTION_DELAY` (s; MooseFS default 5). After a failover the new master
    /// knows no chunk locations until chunkservers reconnect, so reads wait for this; 1 keeps
    /// the outage short.
    pub master_reconnection_delay: Option<u32>,
    pub working_user: String,
    pub working_group: String,
    pub extra: Vec<(String, String)>,
}

impl ChunkserverConfig {
    /// Production defaults for one chunkserver following `master_host`.
    pub fn new(data_path: impl Into<PathBuf>, hdd: Vec<PathBuf>, master_host: &str) -> Self {
        Self {
            data_path: data_path.into(),
            hdd,
            master_host: master_host.into(),
            master_port: 9420,
            listen_host: "*".into(),
            listen_port: 9422,
            leave_space: "256MiB".into(),
            master_reconnection_delay: Some(1),
            working_user: "mfs".into(),
            working_group: "mfs".into(),
            extra: Vec::new(),
        }
    }

    /// The text of `mfschunkserver.cfg`, pointing at `hdd_path`.
    pub fn render(&self, hdd_path: &Path) -> Result<String, MfsError> {
        let mut s = String::from("# written by mooseherd\n");
        push_kv(&mut s, "WORKING_USER", &self.working_user)?;
        push_kv(&mut s, "WORKING_GROUP", &self.working_group)?;
        push_kv(&mut s, "DATA_PATH", &self.data_path.to_string_lossy())?;
        push_kv(&mut s, "HDD_CONF_FILENAME", &hdd_path.to_string_lossy())?;
        push_kv(&mut s, "MASTER_HOST", &self.master_host)?;
        push_kv(&mut s, "MASTER_PORT", &self.master_port.to_string())?;
        push_kv(&mut s, "CSSERV_LISTEN_HOST", &self.listen_host)?;
        push_kv(&mut s, "CSSERV_LISTEN_PORT", &self.listen_port.to_string())?;
        push_kv(&mut s, "HDD_LEAVE_SPACE_DEFAULT", &self.leave_space)?;
        if let Some(v) = self.master_reconnection_delay {
            push_kv(&mut s, "MASTER_RECONNECTION_DELAY", &v.to_string())?;
        }
        for (k, v) in &self.extra {
            push_kv(&mut s, k, v)?;
        }
        Ok(s)
    }

    /// Writes `dir/mfschunkserver.cfg` and `dir/mfshdd.cfg` and creates `DATA_PATH`; returns
    /// the path of the former. The `hdd` directories are NOT created: they are usually disk
    /// mount points, and creating a missing one would put chunks on the root file system.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, MfsError> {
        fs::create_dir_all(&self.data_path).map_err(io_err("create data dir", &self.data_path))?;
        let mut hdd = String::from("# written by mooseherd\n");
        for p in &self.hdd {
            let line = p.to_string_lossy();
            if line.is_empty() || line.contains(['\n', '\r']) {
                return Err(MfsError::BadConfigValue { key: "hdd".into() });
            }
            hdd.push_str(&line);
            hdd.push('\n');
        }
        let hdd_path = write_atomic(dir, "mfshdd.cfg", &hdd)?;
        write_atomic(dir, "mfschunkserver.cfg", &self.render(&hdd_path)?)
    }
}

/// `mfsmetalogger.cfg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaloggerConfig {
    /// Where the metalogger keeps `metadata_ml.mfs.back` and changelogs (`DATA_PATH`).
    pub data_path: PathBuf,
    /// The master: the VIP.
    pub master_host: String,
    /// The master's metalogger port (9419).
    pub master_port: u16,
    /// `META_DOWNLOAD_FREQ` in hours (MooseFS default 24): how often a full metadata copy is
    /// fetched; changelogs stream continuously in between.
    pub meta_download_freq: u32,
    /// `MASTER_RECONNECTION_DELAY` (s; MooseFS default 5): how soon it follows a new master.
    pub master_reconnection_delay: Option<u32>,
    pub working_user: String,
    pub working_group: String,
    pub extra: Vec<(String, String)>,
}

impl MetaloggerConfig {
    /// Production defaults for a metalogger following `master_host`.
    pub fn new(data_path: impl Into<PathBuf>, master_host: &str) -> Self {
        Self {
            data_path: data_path.into(),
            master_host: master_host.into(),
            master_port: 9419,
            meta_download_freq: 24,
            master_reconnection_delay: Some(1),
            working_user: "mfs".into(),
            working_group: "mfs".into(),
            extra: Vec::new(),
        }
    }

    /// The text of `mfsmetalogger.cfg`.
    pub fn render(&self) -> Result<String, MfsError> {
        let mut s = String::from("# written by mooseherd\n");
        push_kv(&mut s, "WORKING_USER", &self.working_user)?;
        push_kv(&mut s, "WORKING_GROUP", &self.working_group)?;
        push_kv(&mut s, "DATA_PATH", &self.data_path.to_string_lossy())?;
        push_kv(&mut s, "MASTER_HOST", &self.master_host)?;
        push_kv(&mut s, "MASTER_PORT", &self.master_port.to_string())?;
        push_kv(
            &mut s,
            "META_DOWNLOAD_FREQ",
            &self.meta_download_freq.to_string(),
        )?;
        if let Some(v) = self.master_reconnection_delay {
            push_kv(&mut s, "MASTER_RECONNECTION_DELAY", &v.to_string())?;
        }
        for (k, v) in &self.extra {
            push_kv(&mut s, k, v)?;
        }
        Ok(s)
    }

    /// Writes `dir/mfsmetalogger.cfg` and creates `DATA_PATH`; returns the config's path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, MfsError> {
        fs::create_dir_all(&self.data_path).map_err(io_err("create data dir", &self.data_path))?;
        write_atomic(dir, "mfsmetalogger.cfg", &self.render()?)
    }
}

/// Whether `dir` holds any metadata or changelog file (its own or a metalogger's).
pub fn has_metadata(dir: &Path) -> Result<bool, MfsError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("read dir", dir)(e)),
    };
    for entry in rd {
        let name = entry.map_err(io_err("read dir", dir))?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("metadata") || changelog_name(&name) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates a new, empty filesystem in `data_path` (creating the directory) unless it already
/// holds metadata. Returns whether it created one.
///
/// A master started on a new filesystem has no `metadata.mfs.back` for a metalogger to download
/// until it first saves (hourly, or at a clean stop): metaloggers connect but stay empty. After
/// creating one, start the master, stop it cleanly, and start it again before relying on
/// metaloggers (measured here on 3.0.117: the metalogger logs `connecting ...` and nothing more).
pub fn create_filesystem(data_path: &Path) -> Result<bool, MfsError> {
    if has_metadata(data_path)? {
        return Ok(false);
    }
    fs::create_dir_all(data_path).map_err(io_err("create data dir", data_path))?;
    let content = fs::read(EMPTY_METADATA_PATH).unwrap_or_else(|_| EMPTY_METADATA.to_vec());
    let path = data_path.join("metadata.mfs");
    fs::write(&path, content).map_err(io_err("write", &path))?;
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Network namespaces (lab) and probes

/// A `Command` running `program` in the network namespace at `netns` (a `/run/netns/NAME`
/// file), through `nsenter --net=` which `exec`s the program: the child's PID is the daemon's,
/// and the mount namespace stays the caller's (unlike `ip netns exec`, which makes a new one
/// and would hide an mfsmount from the host).
pub fn command_in_netns(program: &Path, netns: Option<&Path>) -> Command {
    match netns {
        None => Command::new(program),
        Some(ns) => {
            let mut c = Command::new("nsenter");
            let mut arg = OsString::from("--net=");
            arg.push(ns);
            c.arg(arg).arg("--").arg(program);
            c
        }
    }
}

/// Whether something accepts TCP connections at `addr` (from inside `netns` when given: a short
/// thread enters it, so the caller's namespace never changes). Blocks at most `timeout`.
pub fn tcp_probe(addr: SocketAddr, netns: Option<&Path>, timeout: Duration) -> bool {
    let Some(ns) = netns else {
        return TcpStream::connect_timeout(&addr, timeout).is_ok();
    };
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        let Ok(file) = File::open(&ns) else {
            return false;
        };
        if nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
            return false;
        }
        TcpStream::connect_timeout(&addr, timeout).is_ok()
    })
    .join()
    .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Supervised daemons

/// How to run one daemon in the foreground.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Network namespace file to run in (lab); `None` = the agent's own.
    pub netns: Option<PathBuf>,
    /// stdout and stderr are appended here.
    pub log: PathBuf,
    /// Readiness: the daemon accepts TCP connections here. `None`: ready once spawned.
    pub probe: Option<SocketAddr>,
}

impl DaemonSpec {
    fn mfs(program: &str, config: &Path, extra: &[&str]) -> Self {
        let mut args: Vec<OsString> = vec!["-c".into(), config.into(), "-f".into()];
        args.extend(extra.iter().map(OsString::from));
        args.push("start".into());
        let dir = config.parent().unwrap_or(Path::new("."));
        Self {
            program: program.into(),
            args,
            netns: None,
            log: dir.join(format!("{program}.log")),
            probe: None,
        }
    }

    /// `mfsmaster -c CONFIG -f [-a] start`; `recover` adds `-a` (needed after an unclean stop
    /// and after a takeover). Log: `mfsmaster.log` beside the config.
    pub fn master(config: &Path, recover: bool) -> Self {
        Self::mfs("mfsmaster", config, if recover { &["-a"] } else { &[] })
    }

    /// `mfschunkserver -c CONFIG -f start`.
    pub fn chunkserver(config: &Path) -> Self {
        Self::mfs("mfschunkserver", config, &[])
    }

    /// `mfsmetalogger -c CONFIG -f start`.
    pub fn metalogger(config: &Path) -> Self {
        Self::mfs("mfsmetalogger", config, &[])
    }

    /// Runs it inside a network namespace (`/run/netns/NAME`).
    pub fn in_netns(mut self, netns: impl Into<PathBuf>) -> Self {
        self.netns = Some(netns.into());
        self
    }

    /// Probes readiness at `addr`.
    pub fn with_probe(mut self, addr: SocketAddr) -> Self {
        self.probe = Some(addr);
        self
    }

    /// Logs to `path` instead.
    pub fn with_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = path.into();
        self
    }
}

/// How a daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl From<ExitStatus> for Exit {
    fn from(s: ExitStatus) -> Self {
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        }
    }
}

/// A daemon's process, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonStatus {
    Running,
    Exited(Exit),
}

/// Why a daemon exited before it became ready (read from its log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartFailure {
    /// Another process holds the data directory's lock (the old master still saving, or
    /// another node's master on a shared directory): retry later, never signal it.
    LockHeld,
    /// Metadata needs `-a` (`can't find metadata.mfs - try using option '-a'`, ...).
    NeedsRecover,
    /// Anything else: the last log lines.
    Other(String),
}

/// The end of a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// It exited with status 0 on its own after SIGTERM: its metadata is saved, so the next
    /// master start needs no `-a`. False after SIGKILL, a crash, or a failed start.
    pub clean: bool,
    /// It was SIGKILLed at the deadline.
    pub killed: bool,
    /// It has exited and was reaped. False for a SIGKILLed process still blocked in the kernel
    /// (e.g. on IO that DRBD froze): it dies when that IO is released.
    pub exited: bool,
    pub exit: Exit,
    /// From SIGTERM to exit (zero when it had exited already).
    pub took: Duration,
}

/// A supervised MooseFS daemon: a foreground child in its own process group, signalled only by
/// its own PID (never through `mfsmaster stop`, which signals whatever PID the lock file names).
/// Dropping it SIGKILLs its process group (a guard for tests and error paths): stop a master
/// with [`Daemon::stop`] first when its metadata should be saved.
#[derive(Debug)]
pub struct Daemon {
    spec: DaemonSpec,
    child: Child,
    started: StdInstant,
    log_start: u64,
    exit: Option<Exit>,
    stop_sent: Option<StdInstant>,
    stopped: Option<Stopped>,
    /// SIGKILL was sent (a process blocked in the kernel, e.g. on IO DRBD froze, outlives it).
    kill_sent: bool,
}

impl Daemon {
    /// Spawns the daemon and returns at once; poll [`Daemon::state`] / [`Daemon::ready`].
    pub fn spawn(spec: DaemonSpec) -> Result<Self, MfsError> {
        if let Some(dir) = spec.log.parent() {
            fs::create_dir_all(dir).map_err(io_err("create log dir", dir))?;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(io_err("open log", &spec.log))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log2 = log.try_clone().map_err(io_err("dup log", &spec.log))?;
        let mut cmd = command_in_netns(&spec.program, spec.netns.as_deref());
        cmd.args(&spec.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        let child = cmd.spawn().map_err(|source| MfsError::Spawn {
            program: spec.program.display().to_string(),
            source,
        })?;
        Ok(Self {
            spec,
            child,
            started: StdInstant::now(),
            log_start,
            exit: None,
            stop_sent: None,
            stopped: None,
            kill_sent: false,
        })
    }

    /// The daemon's PID (its process group id too).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How it was started.
    pub fn spec(&self) -> &DaemonSpec {
        &self.spec
    }

    /// Time since spawn.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Running, or how it ended (reaps it once it has).
    pub fn status(&mut self) -> DaemonStatus {
        if let Some(e) = self.exit {
            return DaemonStatus::Exited(e);
        }
        match self.child.try_wait() {
            Ok(Some(s)) => {
                let e = Exit::from(s);
                self.exit = Some(e);
                DaemonStatus::Exited(e)
            }
            Ok(None) => DaemonStatus::Running,
            // ECHILD: already reaped elsewhere; treat as gone.
            Err(_) => {
                self.exit = Some(Exit::Code(-1));
                DaemonStatus::Exited(Exit::Code(-1))
            }
        }
    }

    /// Running and accepting TCP connections on its probe address (one connect, <= 100 ms).
    pub fn ready(&mut self) -> bool {
        if self.status() != DaemonStatus::Running {
            return false;
        }
        match self.spec.probe {
            None => true,
            Some(addr) => tcp_probe(addr, self.spec.netns.as_deref(), Duration::from_millis(100)),
        }
    }

    /// The plan's view of a master: exited -> Stopped, asked to stop -> Stopping, accepting ->
    /// Ready, otherwise Starting.
    pub fn state(&mut self) -> MasterState {
        if self.status() != DaemonStatus::Running {
            MasterState::Stopped
        } else if self.stop_sent.is_some() {
            MasterState::Stopping
        } else if self.ready() {
            MasterState::Ready
        } else {
            MasterState::Starting
        }
    }

    /// The log written since this spawn (its last 64 KiB).
    pub fn log_text(&self) -> String {
        read_tail(&self.spec.log, self.log_start, LOG_TAIL)
    }

    /// Why it exited, when it has (`None` while it runs).
    pub fn start_failure(&mut self) -> Option<StartFailure> {
        match self.status() {
            DaemonStatus::Running => None,
            DaemonStatus::Exited(_) => Some(classify_failure(&self.log_text())),
        }
    }

    /// Sends SIGTERM to its own PID once; returns at once. Follow with [`Daemon::poll_stop`].
    pub fn begin_stop(&mut self) -> Result<(), MfsError> {
        if self.stop_sent.is_some() || self.status() != DaemonStatus::Running {
            return Ok(());
        }
        self.signal(Signal::SIGTERM)?;
        self.stop_sent = Some(StdInstant::now());
        Ok(())
    }

    /// Non-blocking stop step: `Some` once it has exited; SIGKILLs it (and its process group)
    /// when `deadline` has passed since [`Daemon::begin_stop`], and gives up waiting
    /// [`KILL_REAP`] later (`Stopped::exited` false: blocked in the kernel).
    pub fn poll_stop(&mut self, deadline: Duration) -> Option<Stopped> {
        if let Some(s) = self.stopped {
            return Some(s);
        }
        let status = self.status();
        let took = self.stop_sent.map_or(Duration::ZERO, |t| t.elapsed());
        if let DaemonStatus::Exited(exit) = status {
            let clean = self.stop_sent.is_some() && exit == Exit::Code(0);
            let killed = self.kill_sent;
            return Some(self.finish(clean, killed, exit, took));
        }
        if self.stop_sent.is_some() && took >= deadline {
            self.send_kill();
            if took >= deadline + KILL_REAP {
                return Some(self.finish(false, true, Exit::Signal(Signal::SIGKILL as i32), took));
            }
        }
        None
    }

    fn finish(&mut self, clean: bool, killed: bool, exit: Exit, took: Duration) -> Stopped {
        let s = Stopped {
            clean,
            killed,
            exited: self.exit.is_some(),
            exit,
            took,
        };
        self.stopped = Some(s);
        s
    }

    /// Stops it: SIGTERM, wait up to `deadline`, then SIGKILL. Blocks up to the deadline (plus
    /// the moment a SIGKILLed process takes to be reaped).
    pub fn stop(&mut self, deadline: Duration) -> Result<Stopped, MfsError> {
        self.begin_stop()?;
        loop {
            if let Some(s) = self.poll_stop(deadline) {
                return Ok(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILLs its process group and PID now and reaps it (bounded: 2 s).
    pub fn kill_now(&mut self) -> Exit {
        if let DaemonStatus::Exited(e) = self.status() {
            return e;
        }
        if self.kill_sent {
            // Killed before and still not reaped: blocked in the kernel; waiting again is futile.
            return Exit::Signal(Signal::SIGKILL as i32);
        }
        self.send_kill();
        let until = StdInstant::now() + KILL_REAP;
        while StdInstant::now() < until {
            if let DaemonStatus::Exited(e) = self.status() {
                return e;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Exit::Signal(Signal::SIGKILL as i32)
    }

    /// SIGKILLs its process group and PID, once.
    fn send_kill(&mut self) {
        if std::mem::replace(&mut self.kill_sent, true) {
            return;
        }
        // Not reaped yet, so the PID and group id cannot have been reused.
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = kill(pid, Signal::SIGKILL);
    }

    /// Sends `sig` to its own PID (not the group), if it still runs.
    pub fn signal(&mut self, sig: Signal) -> Result<(), MfsError> {
        if self.status() != DaemonStatus::Running {
            return Ok(());
        }
        kill(Pid::from_raw(self.child.id() as i32), sig).map_err(|source| MfsError::Signal {
            pid: self.child.id(),
            source,
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// The plan's reading of the master slot: no daemon is Stopped.
pub fn master_state(daemon: Option<&mut Daemon>) -> MasterState {
    daemon.map_or(MasterState::Stopped, Daemon::state)
}

fn classify_failure(log: &str) -> StartFailure {
    if log.contains("lockfile is already locked") {
        StartFailure::LockHeld
    } else if log.contains("try using option '-a'") {
        StartFailure::NeedsRecover
    } else {
        let lines: Vec<&str> = log.lines().rev().take(8).collect();
        StartFailure::Other(lines.into_iter().rev().collect::<Vec<_>>().join("\n"))
    }
}

fn read_tail(path: &Path, from: u64, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(max));
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(max).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Metadata files and the metalogger takeover

/// The header of a metadata file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaHeader {
    /// The next change version the file's state continues from (1 for a new filesystem).
    pub version: u64,
    /// The filesystem's id (0 in a new filesystem and in pre-2.0 files).
    pub metaid: u64,
}

/// Reads and checks a metadata file the way mfsmaster does (`meta_check_metadatafile`):
/// signature `MFSM NEW` or `MFSM x.y`, version and id, and the end marker.
pub fn read_metadata_header(path: &Path) -> Result<MetaHeader, MfsError> {
    let bad = |reason| MfsError::BadMetadata {
        path: path.to_owned(),
        reason,
    };
    let mut f = File::open(path).map_err(io_err("open", path))?;
    let mut sig = [0u8; 8];
    f.read_exact(&mut sig)
        .map_err(|_| bad("shorter than a header"))?;
    if &sig == EMPTY_METADATA {
        return Ok(MetaHeader {
            version: 1,
            metaid: 0,
        });
    }
    if &sig[..5] != b"MFSM "
        || !(b'1'..=b'9').contains(&sig[5])
        || sig[6] != b'.'
        || !sig[7].is_ascii_digit()
    {
        return Err(bad("wrong signature"));
    }
    let fver = ((sig[5] - b'0') << 4) + (sig[7] - b'0');
    let mut hdr = [0u8; 16];
    f.read_exact(&mut hdr)
        .map_err(|_| bad("shorter than a header"))?;
    let be = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
    let (version, metaid) = if fver < 0x20 {
        (be(&hdr[4..12]), 0)
    } else {
        (be(&hdr[0..8]), be(&hdr[8..16]))
    };
    let marker: [u8; 16] = if fver < 0x16 { [0; 16] } else { *EOF_MARKER };
    let mut end = [0u8; 16];
    f.seek(SeekFrom::End(-16))
        .and_then(|_| f.read_exact(&mut end))
        .map_err(|_| bad("truncated"))?;
    if end != marker {
        return Err(bad("no end marker (incomplete write)"));
    }
    Ok(MetaHeader { version, metaid })
}

/// `changelog.N.mfs`, `changelog_ml.N.mfs`, `changelog_ml_back.N.mfs` (mfsmaster's
/// `changelog_checkname`, the same in 3.0 and 4.x).
pub fn changelog_name(name: &str) -> bool {
    ["changelog.", "changelog_ml.", "changelog_ml_back."]
        .iter()
        .any(|p| {
            name.strip_prefix(p)
                .and_then(|r| r.strip_suffix(".mfs"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The change versions of one changelog file, as mfsmaster's merger reads them: lines
/// `VERSION: TIMESTAMP|OP`, strictly increasing; reading stops at the first line that is not
/// (a torn last line, garbage after a crash).
pub fn changelog_versions(path: &Path) -> Result<Vec<u64>, MfsError> {
    let f = File::open(path).map_err(io_err("open", path))?;
    let mut out: Vec<u64> = Vec::new();
    for line in BufReader::new(f).split(b'\n') {
        let line = line.map_err(io_err("read", path))?;
        let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
        let v = std::str::from_utf8(&line[..digits])
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        let ok = match (v, out.last()) {
            (Some(v), Some(&last)) => {
                line.get(digits) == Some(&b':') && v > last && v < last + MAX_ID_HOLE
            }
            (Some(_), None) => line.get(digits) == Some(&b':'),
            (None, _) => false,
        };
        match v {
            Some(v) if ok => out.push(v),
            _ => break,
        }
    }
    Ok(out)
}

/// The version a master continues from after `-a`: the metadata file's version followed by the
/// changelog entries that continue it without a hole. Entries older than the file are skipped
/// (as mfsmaster does); a hole is an error because `mfsmaster -a` refuses it too.
pub fn replay_end(
    file_version: u64,
    changelogs: &[Vec<u64>],
) -> Result<(u64, Option<u64>), MfsError> {
    let mut all: Vec<u64> = changelogs
        .iter()
        .flatten()
        .copied()
        .filter(|&v| v >= file_version)
        .collect();
    all.sort_unstable();
    all.dedup();
    let mut next = file_version;
    for v in all {
        if v != next {
            return Err(MfsError::ChangelogGap {
                file_version,
                missing: next,
                next: v,
            });
        }
        next += 1;
    }
    let last = (next > file_version).then(|| next - 1);
    Ok((next, last))
}

/// What a takeover starts the master from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaInfo {
    pub metaid: u64,
    /// Version in the metalogger's metadata file header.
    pub file_version: u64,
    /// The last change the changelogs add on top (None: none newer than the file).
    pub last_change: Option<u64>,
    /// The version `mfsmaster -a` continues from: `last_change + 1`, or `file_version`.
    pub version: u64,
    /// The newest metadata file the data directory held before (moved to `pre-takeover/`;
    /// None: it was empty). A version above [`MetaInfo::version`] means this node's own old
    /// master copy was ahead of its metalogger: the caller decides and logs why.
    pub previous: Option<MetaHeader>,
    /// Files copied into the data directory (their names).
    pub copied: Vec<String>,
}

/// The header of the newest valid metadata file in `dir` (None if none).
pub fn newest_metadata(dir: &Path) -> Result<Option<MetaHeader>, MfsError> {
    let mut best: Option<MetaHeader> = None;
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read dir", dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io_err("read dir", dir))?;
        if !entry.file_name().to_string_lossy().starts_with("metadata") {
            continue;
        }
        if let Ok(h) = read_metadata_header(&entry.path())
            && best.is_none_or(|b| h.version > b.version)
        {
            best = Some(h);
        }
    }
    Ok(best)
}

/// Turns a stopped metalogger's files into the master's data directory, for `mfsmaster -a`.
///
/// Call it only after the metalogger has exited (taking the files while it runs loses the
/// changes still in flight: ~0.8 s of writes measured here). It checks the metalogger's
/// `metadata_ml.mfs.back` (complete, with end marker), checks its metaid against the data
/// directory's (refusing another filesystem's metadata), checks that the changelogs continue
/// it without a hole, moves the data directory's previous metadata, changelogs and
/// `metadata.crc` into `pre-takeover/` (replacing an older one: a stale master copy must not
/// outrank the metalogger's in `-a`'s "newest file wins" choice), copies `metadata_ml.mfs.back`
/// and every `changelog_ml*.mfs` under their own names (which `-a` reads in 3.0 and 4.x), and
/// fsyncs them. Returns the version the master will continue from.
/// What a takeover from `metalogger_dir` would start from: `(metaid, version)`, or `None` while the
/// metalogger has not downloaded any metadata yet. Read on every health tick of a standby, so
/// the rack can tell which candidate has the newest copy.
pub fn metalogger_version(metalogger_dir: &Path) -> Result<Option<(u64, u64)>, MfsError> {
    let meta_path = metalogger_dir.join(METALOGGER_METADATA);
    if !meta_path.exists() {
        return Ok(None);
    }
    let header = read_metadata_header(&meta_path)?;
    let (_, versions) = metalogger_changelogs(metalogger_dir)?;
    let (version, _) = replay_end(header.version, &versions)?;
    Ok(Some((header.metaid, version)))
}

/// A metalogger directory's changelog files (sorted names) and the change ids each holds.
fn metalogger_changelogs(dir: &Path) -> Result<(Vec<String>, Vec<Vec<u64>>), MfsError> {
    let mut logs: Vec<String> = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("read dir", dir))? {
        let name = entry
            .map_err(io_err("read dir", dir))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if changelog_name(&name) && name.starts_with("changelog_ml") {
            logs.push(name);
        }
    }
    logs.sort();
    let versions = logs
        .iter()
        .map(|n| changelog_versions(&dir.join(n)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((logs, versions))
}

pub fn metalogger_takeover(metalogger_dir: &Path, data_dir: &Path) -> Result<MetaInfo, MfsError> {
    let meta_path = metalogger_dir.join(METALOGGER_METADATA);
    let header = read_metadata_header(&meta_path)?;
    let (logs, versions) = metalogger_changelogs(metalogger_dir)?;
    let (version, last_change) = replay_end(header.version, &versions)?;

    let previous = newest_metadata(data_dir)?;
    if let Some(prev) = previous
        && header.metaid != 0
        && prev.metaid != 0
        && prev.metaid != header.metaid
    {
        return Err(MfsError::MetaIdMismatch {
            data: prev.metaid,
            metalogger: header.metaid,
        });
    }

    fs::create_dir_all(data_dir).map_err(io_err("create data dir", data_dir))?;
    let aside = data_dir.join(PRE_TAKEOVER_DIR);
    if aside.exists() {
        fs::remove_dir_all(&aside).map_err(io_err("remove", &aside))?;
    }
    for entry in fs::read_dir(data_dir).map_err(io_err("read dir", data_dir))? {
        let entry = entry.map_err(io_err("read dir", data_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("metadata") || changelog_name(&name) {
            fs::create_dir_all(&aside).map_err(io_err("create", &aside))?;
            fs::rename(entry.path(), aside.join(&name))
                .map_err(io_err("move aside", &entry.path()))?;
        }
    }
    let mut copied = Vec::new();
    for name in std::iter::once(METALOGGER_METADATA.to_string()).chain(logs) {
        let (from, to) = (metalogger_dir.join(&name), data_dir.join(&name));
        fs::copy(&from, &to).map_err(io_err("copy", &from))?;
        File::open(&to)
            .and_then(|f| f.sync_all())
            .map_err(io_err("fsync", &to))?;
        copied.push(name);
    }
    File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", data_dir))?;
    Ok(MetaInfo {
        metaid: header.metaid,
        file_version: header.version,
        last_change,
        version,
        previous,
        copied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn meta_file(version: u64, metaid: u64) -> Vec<u8> {
        let mut v = b"MFSM 2.0".to_vec();
        v.extend(version.to_be_bytes());
        v.extend(metaid.to_be_bytes());
        v.extend(b"SESS 1.5 whatever body");
        v.extend(EOF_MARKER);
        v
    }

    #[test]
    fn parses_versions() {
        let v = MfsVersion::parse("version: 3.0.117-1 ; build: 1341\n").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (3, 0, 117));
        assert!(!v.is_4x());
        let v = MfsVersion::parse("version: 4.59.2-1 ; build: 2\n").unwrap();
        assert!(v.is_4x() && v > MfsVersion::parse("version: 3.0.117").unwrap());
        assert_eq!(MfsVersion::parse("usage: ..."), None);
    }

    #[test]
    fn renders_configs_and_rejects_line_breaks() {
        let mut m = MasterConfig::new("/d");
        m.listen_host = "10.0.0.1".into();
        m.chunks_loop_min_time = Some(60);
        let s = m.render(Path::new("/c/mfsexports.cfg")).unwrap();
        for want in [
            "DATA_PATH = /d\n",
            "EXPORTS_FILENAME = /c/mfsexports.cfg\n",
            "MATOCL_LISTEN_HOST = 10.0.0.1\n",
            "MATOCL_LISTEN_PORT = 9421\n",
            "CHANGELOG_SAVE_MODE = 2\n",
            "CHUNKS_LOOP_MIN_TIME = 60\n",
        ] {
            assert!(s.contains(want), "{want} missing in {s}");
        }
        assert!(!s.contains("REPLICATIONS_DELAY_INIT"));
        m.extra.push(("X".into(), "a\nDATA_PATH = /evil".into()));
        assert!(matches!(
            m.render(Path::new("/e")),
            Err(MfsError::BadConfigValue { .. })
        ));

        let mut cs = ChunkserverConfig::new("/cs", vec!["/hdd1".into()], "10.0.0.100");
        cs.listen_port = 9522;
        cs.leave_space = "0".into();
        let dir = tempfile::tempdir().unwrap();
        let cfg = cs.write(dir.path()).unwrap();
        let text = fs::read_to_string(cfg).unwrap();
        assert!(
            text.contains("CSSERV_LISTEN_PORT = 9522\n")
                && text.contains("MASTER_HOST = 10.0.0.100\n")
        );
        assert!(
            fs::read_to_string(dir.path().join("mfshdd.cfg"))
                .unwrap()
                .contains("/hdd1\n")
        );
        let ml = MetaloggerConfig::new("/ml", "10.0.0.100").render().unwrap();
        assert!(ml.contains("MASTER_PORT = 9419\n") && ml.contains("META_DOWNLOAD_FREQ = 24\n"));
    }

    #[test]
    fn creates_a_filesystem_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert!(create_filesystem(&data).unwrap());
        assert_eq!(fs::read(data.join("metadata.mfs")).unwrap(), EMPTY_METADATA);
        assert!(!create_filesystem(&data).unwrap());
        assert_eq!(
            read_metadata_header(&data.join("metadata.mfs")).unwrap(),
            MetaHeader {
                version: 1,
                metaid: 0
            }
        );
    }

    #[test]
    fn reads_headers_and_rejects_torn_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metadata.mfs");
        fs::write(&p, meta_file(13, 0x6B06_AF65_2047_BF07)).unwrap();
        assert_eq!(
            read_metadata_header(&p).unwrap(),
            MetaHeader {
                version: 13,
                metaid: 0x6B06_AF65_2047_BF07
            }
        );
        let mut torn = meta_file(13, 1);
        torn.truncate(torn.len() - 3);
        fs::write(&p, torn).unwrap();
        assert!(matches!(
            read_metadata_header(&p),
            Err(MfsError::BadMetadata { .. })
        ));
        fs::write(&p, b"garbage!garbage!garbage!").unwrap();
        assert!(matches!(
            read_metadata_header(&p),
            Err(MfsError::BadMetadata { .. })
        ));
    }

    #[test]
    fn changelog_names_and_versions() {
        for ok in [
            "changelog.0.mfs",
            "changelog_ml.12.mfs",
            "changelog_ml_back.1.mfs",
        ] {
            assert!(changelog_name(ok), "{ok}");
        }
        for bad in [
            "changelog.mfs",
            "changelog.x.mfs",
            "changelog_ml.0.back",
            "metadata.mfs",
        ] {
            assert!(!changelog_name(bad), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("changelog_ml.0.mfs");
        fs::write(
            &p,
            "13: 1|CREATE(1,a)\n14: 1|ACCESS(1)\n15: 1|X\n3: torn\n16: 1|Y\n",
        )
        .unwrap();
        assert_eq!(changelog_versions(&p).unwrap(), vec![13, 14, 15]);
        assert_eq!(
            replay_end(13, &[vec![2, 3, 12], vec![13, 14, 15]]).unwrap(),
            (16, Some(15))
        );
        assert_eq!(replay_end(13, &[vec![5, 6]]).unwrap(), (13, None));
        assert!(matches!(
            replay_end(13, &[vec![13, 15]]),
            Err(MfsError::ChangelogGap {
                missing: 14,
                next: 15,
                ..
            })
        ));
    }

    #[test]
    fn takeover_copies_checks_metaid_and_moves_old_files_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (ml, data) = (dir.path().join("ml"), dir.path().join("data"));
        fs::create_dir_all(&ml).unwrap();
        fs::create_dir_all(&data).unwrap();
        fs::write(ml.join(METALOGGER_METADATA), meta_file(13, 7)).unwrap();
        fs::write(ml.join("changelog_ml_back.1.mfs"), "2: 1|A\n3: 1|B\n").unwrap();
        fs::write(ml.join("changelog_ml.0.mfs"), "13: 1|C\n14: 1|D\n").unwrap();
        fs::write(ml.join(".mfsmetalogger.lock"), "1\n").unwrap();
        fs::write(data.join("metadata.mfs.back"), meta_file(20, 7)).unwrap();
        fs::write(data.join("changelog.0.mfs"), "20: 1|Z\n").unwrap();
        fs::write(data.join("stats.mfs"), "keep").unwrap();

        let info = metalogger_takeover(&ml, &data).unwrap();
        assert_eq!((info.metaid, info.file_version, info.version), (7, 13, 15));
        assert_eq!(info.last_change, Some(14));
        assert_eq!(
            info.previous,
            Some(MetaHeader {
                version: 20,
                metaid: 7
            })
        );
        assert!(
            data.join(METALOGGER_METADATA).exists() && data.join("changelog_ml.0.mfs").exists()
        );
        assert!(!data.join("metadata.mfs.back").exists() && !data.join("changelog.0.mfs").exists());
        assert!(
            data.join(PRE_TAKEOVER_DIR)
                .join("metadata.mfs.back")
                .exists()
        );
        assert!(data.join("stats.mfs").exists() && !data.join(".mfsmetalogger.lock").exists());

        // Another filesystem's metalogger is refused.
        fs::write(ml.join(METALOGGER_METADATA), meta_file(30, 8)).unwrap();
        fs::write(ml.join("changelog_ml.0.mfs"), "").unwrap();
        assert!(matches!(
            metalogger_takeover(&ml, &data),
            Err(MfsError::MetaIdMismatch {
                data: 7,
                metalogger: 8
            })
        ));
    }

    #[test]
    fn classifies_start_failures() {
        assert_eq!(
            classify_failure(
                "working directory: /x\ncan't start: lockfile is already locked by another process\n"
            ),
            StartFailure::LockHeld
        );
        assert_eq!(
            classify_failure("can't find metadata.mfs - try using option '-a'\n"),
            StartFailure::NeedsRecover
        );
        assert!(matches!(classify_failure("boom\n"), StartFailure::Other(s) if s == "boom"));
    }
}

#[cfg(test)]
#[path = "mfs_lab_tests.rs"]
mod lab_tests;
