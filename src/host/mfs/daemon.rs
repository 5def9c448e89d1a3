//! Supervised daemons: `mfsmaster` / `mfschunkserver` / `mfsmetalogger` run in the foreground
//! as children of the agent (in a lab network namespace if asked), probed over TCP, stopped by
//! their own PID with a deadline, and their start failures classified from their log.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant as StdInstant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::{KILL_REAP, LOG_TAIL, MfsError, io_err};
use crate::core::plan::MasterState;

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
            cause: source,
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
            cause: source,
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

pub(super) fn classify_failure(log: &str) -> StartFailure {
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
