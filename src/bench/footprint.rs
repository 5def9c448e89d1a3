//! `mooseherd bench footprint`: what an idle agent costs. Starts a small rack of real agents on
//! loopback (`--host dry-run --gpio none`, addresses 127.77.0.x), lets it elect a leader, then
//! measures each agent over the window: CPU time (utime + stime from `/proc/PID/stat`) as a share
//! of one core, and the largest resident set (`VmRSS`). When an aarch64 build of mooseherd and
//! `qemu-aarch64-static` are at hand, one of the agents runs that binary under qemu-user, and
//! its RSS is reported too (it includes qemu's own memory, so it over-states the Pi's figure).
//! Also reports the size of the (stripped, release) binary.
//!
//! Unlike `bench gossip` these are measurements of this machine, not of the protocol.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

/// Options of `bench footprint`.
#[derive(Debug, Clone)]
pub struct FootprintOptions {
    /// The measuring window (after the rack settled).
    pub duration: Duration,
    /// Agents in the rack (3 or more).
    pub nodes: usize,
    /// An aarch64 mooseherd to run one agent under qemu-user (`None`: look for the release build
    /// under `target/`).
    pub aarch64: Option<PathBuf>,
    /// Settling time before the window.
    pub settle: Duration,
}

impl Default for FootprintOptions {
    fn default() -> Self {
        FootprintOptions {
            duration: Duration::from_secs(60),
            nodes: 3,
            aarch64: None,
            settle: Duration::from_secs(5),
        }
    }
}

/// One agent's figures.
#[derive(Debug, Clone, Serialize)]
pub struct AgentFootprint {
    pub node: String,
    /// `x86_64 native` or `aarch64 under qemu-user`.
    pub how: String,
    pub rss_kb: u64,
    pub cpu_percent: f64,
}

/// The report (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct FootprintReport {
    /// Largest RSS of an idle agent: the aarch64 agent under qemu-user when there was one (an
    /// upper bound: qemu's own memory is in it), else the native agents'.
    pub rss_kb: u64,
    /// Largest RSS among the native agents.
    pub rss_kb_native: u64,
    /// RSS of the aarch64 agent under qemu-user, if one ran.
    pub rss_kb_aarch64_qemu: Option<u64>,
    /// Largest idle CPU use of a native agent, in % of one core.
    pub cpu_percent: f64,
    /// Size of the binary measured for size (see `binary`).
    pub binary_bytes: u64,
    pub binary: String,
    pub duration_s: f64,
    pub agents: Vec<AgentFootprint>,
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let p = std::env::temp_dir().join(format!("mooseherd-footprint-{}", std::process::id()));
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(TempDir(p))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn on_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// The release aarch64 build next to this binary's `target/` directory, if there is one.
fn find_aarch64(exe: &Path) -> Option<PathBuf> {
    let target = exe.ancestors().find(|p| p.ends_with("target"))?;
    let p = target.join("aarch64-unknown-linux-musl/release/mooseherd");
    p.is_file().then_some(p)
}

/// Runs the benchmark.
pub fn footprint(o: &FootprintOptions) -> anyhow::Result<FootprintReport> {
    if o.nodes < 3 {
        bail!("--nodes {}: a rack needs at least 3 agents", o.nodes);
    }
    if o.nodes > 20 {
        bail!("--nodes {}: at most 20", o.nodes);
    }
    let exe = std::env::current_exe().context("finding the mooseherd binary")?;
    let aarch64 = match &o.aarch64 {
        Some(p) if !p.is_file() => bail!("--aarch64 {}: no such file", p.display()),
        Some(p) => Some(p.clone()),
        None => find_aarch64(&exe),
    };
    let qemu = on_path("qemu-aarch64-static").or_else(|| on_path("qemu-aarch64"));
    let cross = match (&aarch64, &qemu) {
        (Some(b), Some(q)) => Some((b.clone(), q.clone())),
        _ => None,
    };

    let dir = TempDir::new()?;
    let ring = dir.path().join("keyring");
    crate::wire::keyring::keygen(&ring).map_err(|e| anyhow::anyhow!("{e}"))?;
    let port = 21900;
    let mut rack = format!(
        "[cluster]\nname = \"footprint\"\nvip = \"127.77.0.250/16\"\nreplication = \"shared-dir\"\nshared_dir = \"{}\"\nkeyring = \"{}\"\ngossip_port = {port}\nmetrics_listen = \"off\"\n",
        dir.path().join("shared").display(),
        ring.display()
    );
    let names: Vec<String> = (1..=o.nodes).map(|i| format!("f{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let roles = if i < 2 { "\"master\"" } else { "\"worker\"" };
        rack.push_str(&format!(
            "\n[[node]]\nname = \"{name}\"\naddr = \"127.77.0.{}\"\nroles = [{roles}]\nboard = \"pi4b\"\nvoter = {}\npriority = {}\n",
            i + 1,
            i < 3,
            200 - i * 10
        ));
    }
    let rack_path = dir.path().join("rack.toml");
    std::fs::write(&rack_path, rack).context("writing the rack file")?;

    let mut agents = Agents(Vec::new());
    let mut how = Vec::new();
    for (i, name) in names.iter().enumerate() {
        // The last agent runs the aarch64 build under qemu when there is one.
        let emulated = i == names.len() - 1 && cross.is_some();
        let mut cmd = match (&cross, emulated) {
            (Some((bin, qemu)), true) => {
                let mut c = Command::new(qemu);
                c.arg(bin);
                c
            }
            _ => Command::new(&exe),
        };
        cmd.arg("--config")
            .arg(&rack_path)
            .args([
                "-q", "agent", "--host", "dry-run", "--gpio", "none", "--node", name,
            ])
            .arg("--socket")
            .arg(dir.path().join(format!("{name}.sock")))
            .arg("--state-dir")
            .arg(dir.path().join(format!("state-{name}")))
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting agent {name}"))?;
        agents.0.push(child);
        how.push(if emulated {
            "aarch64 under qemu-user"
        } else {
            "x86_64 native"
        });
    }
    std::thread::sleep(o.settle);
    for (c, n) in agents.0.iter_mut().zip(&names) {
        if let Ok(Some(st)) = c.try_wait() {
            bail!("agent {n} exited during start-up ({st}); run it by hand to see why");
        }
    }
    let pids: Vec<u32> = agents.0.iter().map(Child::id).collect();
    let start_ticks: Vec<Option<u64>> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let mut max_rss = vec![0u64; pids.len()];
    let t0 = Instant::now();
    // Sample RSS once a second (bounded by the window).
    while t0.elapsed() < o.duration {
        for (i, &p) in pids.iter().enumerate() {
            max_rss[i] = max_rss[i].max(rss_kb(p).unwrap_or(0));
        }
        std::thread::sleep(Duration::from_secs(1).min(o.duration.saturating_sub(t0.elapsed())));
    }
    let window = t0.elapsed().as_secs_f64();
    let hz = clock_ticks();
    let mut rows = Vec::new();
    for (i, &p) in pids.iter().enumerate() {
        max_rss[i] = max_rss[i].max(rss_kb(p).unwrap_or(0));
        let used = match (start_ticks[i], cpu_ticks(p)) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / hz,
            _ => bail!("agent {} died during the measurement", names[i]),
        };
        rows.push(AgentFootprint {
            node: names[i].clone(),
            how: how[i].to_string(),
            rss_kb: max_rss[i],
            cpu_percent: (used / window * 100.0 * 1000.0).round() / 1000.0,
        });
    }
    drop(agents);
    let native = rows.iter().filter(|r| r.how.starts_with("x86"));
    let rss_native = native.clone().map(|r| r.rss_kb).max().unwrap_or(0);
    let cpu = native.map(|r| r.cpu_percent).fold(0.0, f64::max);
    let rss_qemu = rows
        .iter()
        .find(|r| r.how.starts_with("aarch64"))
        .map(|r| r.rss_kb);
    let (binary, bytes) = match &aarch64 {
        Some(p) => (
            p.clone(),
            std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        ),
        None => (
            exe.clone(),
            std::fs::metadata(&exe).map(|m| m.len()).unwrap_or(0),
        ),
    };
    Ok(FootprintReport {
        rss_kb: rss_qemu.unwrap_or(rss_native),
        rss_kb_native: rss_native,
        rss_kb_aarch64_qemu: rss_qemu,
        cpu_percent: cpu,
        binary_bytes: bytes,
        binary: binary.display().to_string(),
        duration_s: (window * 10.0).round() / 10.0,
        agents: rows,
    })
}

/// The report as a table, with the goals.
pub fn table(r: &FootprintReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "idle agents over {:.0} s ({} agents on loopback, dry-run host)",
        r.duration_s,
        r.agents.len()
    );
    let _ = writeln!(
        s,
        "{:<6} {:<24} {:>9} {:>8}",
        "NODE", "HOW", "RSS KB", "CPU %"
    );
    for a in &r.agents {
        let _ = writeln!(
            s,
            "{:<6} {:<24} {:>9} {:>8.3}",
            a.node, a.how, a.rss_kb, a.cpu_percent
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{:<28} {:>12} {:>10}", "measure", "value", "goal");
    let _ = writeln!(s, "{:<28} {:>12} {:>10}", "rss_kb", r.rss_kb, "<= 15360");
    let _ = writeln!(
        s,
        "{:<28} {:>12.3} {:>10}",
        "cpu_percent (of one core)", r.cpu_percent, "<= 0.2"
    );
    let _ = writeln!(
        s,
        "{:<28} {:>12} {:>10}",
        "binary_bytes", r.binary_bytes, "<= 10 MB"
    );
    let _ = writeln!(s, "binary: {}", r.binary);
    if r.rss_kb_aarch64_qemu.is_some() {
        let _ = writeln!(
            s,
            "rss_kb is the aarch64 agent under qemu-user (qemu's own memory included); native: {} KB",
            r.rss_kb_native
        );
    }
    s
}
