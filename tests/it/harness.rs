//! What the integration tests share: the binary under test, one way to skip, one allocator of
//! loopback networks and ports, and a rack of real agents on loopback (`--host dry-run`).

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_mooseherd");

// ---- skipping ---------------------------------------------------------------------------------

/// True when `MOOSEHERD_NO_SKIP=1`: a test that would skip fails instead (scripts/test.sh sets it,
/// so in CI a missing setup step is an error, not a silent pass).
pub fn no_skip() -> bool {
    std::env::var_os("MOOSEHERD_NO_SKIP").is_some_and(|v| v == "1")
}

/// Reports that the calling test is skipped and why; panics instead under `MOOSEHERD_NO_SKIP=1`.
/// Use [`skip_unless!`] or return right after calling this.
pub fn skip(why: &str) {
    assert!(
        !no_skip(),
        "would skip, but MOOSEHERD_NO_SKIP=1 is set: {why}"
    );
    eprintln!("SKIPPED: {why}");
}

/// `skip_unless!(condition, "why")`: returns from the test (after [`skip`]) unless `condition`.
macro_rules! skip_unless {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            $crate::harness::skip(&format!($($why)+));
            return;
        }
    };
}

// Only the lab tests (x86_64 only) ask.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True when every program in `tools` is installed (on `PATH`, or in an sbin directory that a
/// non-root `PATH` may lack).
pub fn have_tools(tools: &[&str]) -> bool {
    missing_tools(tools).is_empty()
}

pub fn missing_tools<'a>(tools: &[&'a str]) -> Vec<&'a str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    tools
        .iter()
        .copied()
        .filter(|t| {
            !std::env::split_paths(&path)
                .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
                .any(|d| d.join(t).is_file())
        })
        .collect()
}

/// The values of the environment variables `names`, or `None` after [`skip`] if one is unset.
pub fn require_env(names: &[&str], how: &str) -> Option<Vec<std::ffi::OsString>> {
    let vals: Vec<_> = names.iter().map(std::env::var_os).collect();
    if vals.iter().all(Option::is_some) {
        return Some(vals.into_iter().flatten().collect());
    }
    skip(&format!("set {} ({how})", names.join(" and ")));
    None
}

// ---- networks and ports -----------------------------------------------------------------------

/// A loopback network 127.TAG.0.0/16 that no other running test uses, and a UDP port free on it.
/// The network is held through a lock file (released when the process exits, also on a crash),
/// so tests never collide, whether they run as threads of one process or as processes of their
/// own (nextest).
pub struct Net {
    pub tag: u8,
    /// The rack's gossip port (UDP).
    pub port: u16,
    _lock: File,
}

impl Net {
    pub fn take() -> Net {
        let dir = std::env::temp_dir().join(format!(
            "mooseherd-it-nets-{}",
            nix::unistd::geteuid().as_raw()
        ));
        std::fs::create_dir_all(&dir).expect("lock directory");
        // Start at a different tag in each process: fewer lock attempts when many start at once.
        let tags: Vec<u8> = (20..=250).collect();
        let first = std::process::id() as usize % tags.len();
        for tag in tags[first..].iter().chain(&tags[..first]).copied() {
            let lock = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(format!("{tag}.lock")))
                .expect("lock file");
            if lock.try_lock().is_ok() {
                let port = free_udp_port(Ipv4Addr::new(127, tag, 0, 1));
                return Net {
                    tag,
                    port,
                    _lock: lock,
                };
            }
        }
        panic!("no free 127.T.0.0/16 network for a test rack");
    }

    /// 127.TAG.0.`i`
    pub fn ip(&self, i: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, self.tag, 0, i)
    }

    /// A TCP port free on 127.TAG.0.1 (and on the network's other addresses: no other test uses it).
    pub fn tcp_port(&self) -> u16 {
        TcpListener::bind((self.ip(1), 0))
            .and_then(|l| l.local_addr())
            .expect("free tcp port")
            .port()
    }
}

fn free_udp_port(ip: Ipv4Addr) -> u16 {
    UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .expect("free udp port")
        .port()
}

// ---- waiting ----------------------------------------------------------------------------------

/// Emulated (qemu-user) agents are slower: give them more time.
pub fn slack() -> u32 {
    if cfg!(target_arch = "x86_64") { 1 } else { 3 }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `f` every `every` until it holds (returns how long that took) or `timeout` passes
/// (panics with `what` and `context()`).
pub fn wait_until(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) -> Duration {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return start.elapsed();
        }
        std::thread::sleep(every);
    }
    panic!(
        "timed out after {timeout:?} waiting for {what}\n{}",
        context()
    );
}

// ---- a rack of real agents on loopback --------------------------------------------------------

/// One node of a [`TestRack`]: name, roles (TOML list items), voter, priority, extra node lines.
pub type Node<'a> = (&'a str, &'a str, bool, u8, &'a str);

/// Real agents on loopback with `--host dry-run`, each node at 127.TAG.0.(i+1), all killed when
/// the rack is dropped, pass or fail.
pub struct TestRack {
    pub dir: tempfile::TempDir,
    pub net: Net,
    pub names: Vec<String>,
    pub procs: BTreeMap<String, Child>,
    /// Agents drive the `sim` GPIO backend in `gpio-NAME/` (LEDs and button).
    gpio: bool,
}

impl TestRack {
    /// `nodes`: (name, roles, voter, priority) on a network of their own; chunkservers get a
    /// chunk directory.
    pub fn new(nodes: &[(&str, &str, bool, u8)]) -> Self {
        let nodes: Vec<Node> = nodes.iter().map(|&(n, r, v, p)| (n, r, v, p, "")).collect();
        Self::on(Net::take(), "", &nodes)
    }

    /// A rack on `net` with `cluster_extra` lines in `[cluster]`.
    pub fn on(net: Net, cluster_extra: &str, nodes: &[Node]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tag, port) = (net.tag, net.port);
        let ring = dir.path().join("keyring");
        let out = Command::new(BIN)
            .arg("keygen")
            .arg(&ring)
            .output()
            .expect("keygen");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut rack = format!(
            "[cluster]\nname = \"t{tag}\"\nvip = \"127.{tag}.0.250/16\"\nreplication = \"shared-dir\"\nshared_dir = \"{}\"\nkeyring = \"{}\"\ngossip_port = {port}\n{cluster_extra}",
            dir.path().join("shared").display(),
            ring.display()
        );
        for (i, (name, roles, voter, prio, extra)) in nodes.iter().enumerate() {
            let chunk = if roles.contains("chunkserver") {
                format!("chunk_dirs = [\"{}\"]\n", dir.path().join(name).display())
            } else {
                String::new()
            };
            rack.push_str(&format!(
                "\n[[node]]\nname = \"{name}\"\naddr = \"127.{tag}.0.{}\"\nroles = [{roles}]\nboard = \"pi4b\"\nvoter = {voter}\npriority = {prio}\n{chunk}{extra}",
                i + 1
            ));
        }
        std::fs::write(dir.path().join("rack.toml"), rack).expect("write rack");
        TestRack {
            dir,
            net,
            names: nodes.iter().map(|n| n.0.to_string()).collect(),
            procs: BTreeMap::new(),
            gpio: false,
        }
    }

    /// Agents started from now on drive the `sim` GPIO backend (see [`TestRack::gpio`]).
    pub fn with_sim_gpio(mut self) -> Self {
        self.gpio = true;
        self
    }

    pub fn rack(&self) -> PathBuf {
        self.dir.path().join("rack.toml")
    }

    pub fn socket(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.sock"))
    }

    pub fn gpio(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("gpio-{name}"))
    }

    /// Node `name`'s gossip address.
    pub fn addr(&self, name: &str) -> SocketAddr {
        let i = self.names.iter().position(|n| n == name).expect("node") + 1;
        SocketAddr::from((self.net.ip(i as u8), self.net.port))
    }

    pub fn start(&mut self, name: &str) {
        self.start_with(name, &[]);
    }

    /// Starts `name`'s agent with `env` added to its environment.
    pub fn start_with(&mut self, name: &str, env: &[(&str, &str)]) {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log");
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(self.rack())
            .args(["agent", "--host", "dry-run", "--node", name, "--socket"])
            .arg(self.socket(name))
            .arg("--state-dir")
            .arg(self.dir.path().join(format!("state-{name}")));
        if self.gpio {
            cmd.arg("--gpio")
                .arg(format!("sim:{}", self.gpio(name).display()));
        }
        cmd.env("MOOSEHERD_LOG", "debug")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn agent");
        self.procs.insert(name.to_string(), child);
    }

    /// Sends `sig` (e.g. "-STOP") to `name`'s agent.
    pub fn signal(&self, name: &str, sig: &str) {
        let pid = self.procs.get(name).expect("running").id();
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} {name}");
    }

    pub fn kill(&mut self, name: &str) {
        if let Some(mut c) = self.procs.remove(name) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// `mooseherd status --json` against `name`'s control socket.
    pub fn status(&self, name: &str) -> Option<Value> {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(self.rack())
            .args(["status", "--json", "--socket"])
            .arg(self.socket(name))
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn role(&self, name: &str) -> Option<String> {
        self.status(name)?["agent"]["role"]
            .as_str()
            .map(String::from)
    }

    /// The node that reports itself as leader, with its epoch.
    pub fn leader(&self) -> Option<(String, u64)> {
        self.procs.keys().find_map(|n| {
            let s = self.status(n)?;
            (s["agent"]["role"] == "leader")
                .then(|| (n.clone(), s["agent"]["epoch"].as_u64().unwrap_or(0)))
        })
    }

    /// Polls `f` every 100 ms; on timeout panics with the tail of every agent's log.
    pub fn wait(&self, what: &str, timeout: Duration, f: impl Fn(&Self) -> bool) -> Duration {
        wait_until(
            what,
            timeout,
            Duration::from_millis(100),
            || f(self),
            || {
                self.procs
                    .keys()
                    .map(|n| format!("--- {n}\n{}", tail(&self.log(n), 30)))
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        )
    }
}

impl Drop for TestRack {
    fn drop(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.procs) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
