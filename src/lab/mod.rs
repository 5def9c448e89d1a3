//! `mooseherd lab`: a rack of real agents in network namespaces on one Linux machine, with real
//! MooseFS daemons, for trying mooseherd out and for the failover drills. Root only.
//!
//! Everything the lab makes is recorded in `DIR/lab.json` (namespaces, agent PIDs) and found again
//! by name (`mhlab-*` namespaces, mounts under `DIR`), so `mooseherd lab down` cleans up even after
//! the lab tool itself crashed.

pub mod baseline;
pub mod chart;
pub mod drill;
pub mod faults;
pub mod net;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::core::membership::MemberState;
use crate::runtime::control::{self, Request, StatusReport};

/// Default place of the lab.
pub const DEFAULT_DIR: &str = "/var/tmp/mooseherd-lab";

/// The lab's record of itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub nodes: Vec<String>,
    pub replication: String,
    /// Agent PIDs by node.
    pub agents: BTreeMap<String, u32>,
    /// What keeps the master available: `mooseherd` agents, or the `keepalived` baseline.
    #[serde(default = "default_system")]
    pub system: String,
    /// The MooseFS release the lab runs ("3.0.117"), and the directories put before `PATH` for
    /// every process the lab starts (empty: the host's MooseFS).
    #[serde(default)]
    pub moosefs: String,
    #[serde(default)]
    pub moosefs_bin: Vec<PathBuf>,
    /// Nodes restarted on another MooseFS (`lab restart NODE --moosefs N`): their directories.
    #[serde(default)]
    pub node_moosefs_bin: BTreeMap<String, Vec<PathBuf>>,
}

fn default_system() -> String {
    SYSTEM_MOOSEHERD.into()
}

/// The lab's systems: mooseherd's agents, and the keepalived recipe it is measured against.
pub const SYSTEM_MOOSEHERD: &str = "mooseherd";
pub const SYSTEM_KEEPALIVED: &str = "keepalived";

/// Options of `lab up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dir: PathBuf,
    pub nodes: usize,
    pub replication: String,
    /// Host driver of the agents (`linux` for real MooseFS, `dry-run` to see decisions only).
    pub host: String,
    /// [`SYSTEM_MOOSEHERD`] or [`SYSTEM_KEEPALIVED`] (the baseline; shared-dir replication).
    pub system: String,
    /// MooseFS major release: 3 (the host's packages), 4 (the build of `scripts/moosefs.sh`);
    /// `None`: the newest available.
    pub moosefs: Option<u8>,
}

/// Where `scripts/moosefs.sh build` keeps its MooseFS 4 build ($MOOSEHERD_MOOSEFS_CACHE, default
/// /var/cache/mooseherd-moosefs), through its `current` link.
pub fn moosefs4_dirs() -> Vec<PathBuf> {
    let root = std::env::var_os("MOOSEHERD_MOOSEFS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/mooseherd-moosefs"));
    let cur = root.join("current");
    vec![cur.join("sbin"), cur.join("bin")]
}

/// The MooseFS a lab runs: `major` 3 or 4, or the newest available. Returns the directories to
/// put before `PATH` and the release found there.
pub fn choose_moosefs(
    major: Option<u8>,
) -> anyhow::Result<(Vec<PathBuf>, crate::host::mfs::MfsVersion)> {
    let four = moosefs4_dirs();
    let four_built = four[0].join("mfsmaster").is_file();
    let dirs = match major {
        Some(3) => Vec::new(),
        Some(4) if four_built => four,
        Some(4) => bail!(
            "MooseFS 4 is not built here ({} has no mfsmaster): run `sudo scripts/moosefs.sh build` (once, cached)",
            four[0].display()
        ),
        Some(m) => bail!("--moosefs {m}: give 3 (Debian's packages) or 4 (scripts/moosefs.sh)"),
        None if four_built => four,
        None => Vec::new(),
    };
    let master = dirs
        .first()
        .map_or_else(|| PathBuf::from("mfsmaster"), |d| d.join("mfsmaster"));
    let v = crate::host::mfs::MfsVersion::detect(&master)
        .map_err(|e| anyhow::anyhow!("finding the MooseFS release: {e}"))?;
    if let Some(m) = major
        && u16::from(m) != v.major
    {
        bail!(
            "asked for MooseFS {m}, but {} is {}",
            master.display(),
            v.code()
        );
    }
    Ok((dirs, v))
}

/// `PATH` for the processes of node `name` of the lab at `dir`: its MooseFS directories first.
fn lab_path(dir: &Path, name: &str) -> Option<std::ffi::OsString> {
    let state = load(dir).ok()?;
    let bins = state
        .node_moosefs_bin
        .get(name)
        .cloned()
        .unwrap_or(state.moosefs_bin);
    if bins.is_empty() {
        return None;
    }
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(bins.into_iter().chain(std::env::split_paths(&rest))).ok()
}

pub fn lab_file(dir: &Path) -> PathBuf {
    dir.join("lab.json")
}

pub fn load(dir: &Path) -> anyhow::Result<LabState> {
    let text = std::fs::read_to_string(lab_file(dir))
        .with_context(|| format!("no lab at {} (run `mooseherd lab up` first)", dir.display()))?;
    serde_json::from_str(&text).with_context(|| format!("corrupt {}", lab_file(dir).display()))
}

fn save(dir: &Path, s: &LabState) -> anyhow::Result<()> {
    std::fs::write(lab_file(dir), serde_json::to_string_pretty(s)?)
        .with_context(|| format!("writing {}", lab_file(dir).display()))
}

/// Fails unless root, naming what to do.
pub fn require_root() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the lab creates network namespaces and mounts: run it as root (sudo mooseherd lab ...)"
        );
    }
    Ok(())
}

/// Fails with the Debian packages to install when a tool is missing.
pub fn require_tools() -> anyhow::Result<()> {
    let tools = [
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
        ("mfsmaster", "moosefs-master"),
        ("mfschunkserver", "moosefs-chunkserver"),
        ("mfsmount", "moosefs-client"),
        ("mfsmetalogger", "moosefs-metalogger"),
    ];
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(t, _)| !on_path(t))
        .map(|(_, p)| *p)
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing Debian packages: {} (apt-get install {}; scripts/setup.sh installs everything)",
            missing.join(", "),
            missing.join(" ")
        );
    }
    Ok(())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        || ["/usr/sbin", "/sbin", "/usr/bin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file())
}

/// Node names of a lab of `n` nodes.
pub fn node_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("pi{i}")).collect()
}

/// The lab's rack file: pi1 and pi2 master candidates + chunkservers, pi3 chunkserver + worker,
/// the rest workers; the first three are voters.
pub fn rack_toml(dir: &Path, names: &[String], replication: &str) -> String {
    let mut s = format!(
        "# The lab rack made by `mooseherd lab up`.\n[cluster]\nname = \"lab\"\nvip = \"{}/24\"\ninterface = \"eth0\"\nlease_ms = 3000\nfence_budget_ms = 1000\nkeyring = \"{}\"\nreplication = \"{replication}\"\n",
        net::vip(),
        dir.join("keyring").display()
    );
    if replication == "shared-dir" {
        s.push_str(&format!(
            "shared_dir = \"{}\"\n",
            dir.join("shared").display()
        ));
    }
    for (i, name) in names.iter().enumerate() {
        let roles = match i {
            0 | 1 => "\"master\", \"chunkserver\"",
            2 => "\"chunkserver\", \"worker\"",
            _ => "\"worker\"",
        };
        let node_dir = dir.join(name);
        s.push_str(&format!(
            "\n[[node]]\nname = \"{name}\"\naddr = \"{}\"\nroles = [{roles}]\nboard = \"pi4b\"\nvoter = {}\npriority = {}\nmeta_dir = \"{}\"\nchunk_dirs = [\"{}\"]\nmount_path = \"{}\"\n",
            net::node_addr(i),
            i < 3,
            200u32.saturating_sub(50 * i as u32).max(10),
            node_dir.join("meta").display(),
            node_dir.join("chunks").display(),
            node_dir.join("mnt").display(),
        ));
    }
    s
}

/// Runs `program args` (with `env`) in node `name`'s network namespace (same mount namespace as
/// the host, so its mounts are visible), in its own session so that stopping the lab tool
/// (Ctrl-C) does not stop the rack, appending its output to `log`; returns its PID.
pub fn spawn_in_node(
    dir: &Path,
    name: &str,
    program: &std::ffi::OsStr,
    args: &[std::ffi::OsString],
    env: &[(&str, &str)],
    log: &Path,
) -> anyhow::Result<u32> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut cmd = Command::new("nsenter");
    if let Some(path) = lab_path(dir, name) {
        cmd.env("PATH", path);
    }
    cmd.arg(format!("--net=/run/netns/{}", net::ns(name)))
        .arg("--")
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {} on {name}", program.to_string_lossy()))?;
    Ok(child.id())
}

/// Starts node `name`'s agent in its namespace, detached; returns its PID.
pub fn start_agent(dir: &Path, name: &str, host: &str) -> anyhow::Result<u32> {
    let exe = std::env::current_exe().context("finding the mooseherd binary")?;
    let node_dir = dir.join(name);
    std::fs::create_dir_all(&node_dir)?;
    let args: Vec<std::ffi::OsString> = vec![
        "--log-format".into(),
        "json".into(),
        "--config".into(),
        dir.join("rack.toml").into(),
        "agent".into(),
        "--node".into(),
        name.into(),
        "--host".into(),
        host.into(),
        "--socket".into(),
        node_dir.join("control.sock").into(),
        "--gpio".into(),
        format!("sim:{}", gpio_dir(dir, name).display()).into(),
        "--state-dir".into(),
        node_dir.join("state").into(),
    ];
    spawn_in_node(
        dir,
        name,
        exe.as_os_str(),
        &args,
        &[("MOOSEHERD_LOG", "info,mooseherd=debug")],
        &node_dir.join("agent.log"),
    )
    .with_context(|| format!("starting the agent of {name}"))
}

/// The simulated LEDs and button of node `name` (`leds.jsonl`, `button`).
pub fn gpio_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join(name).join("gpio")
}

/// `mooseherd lab button NODE --hold S`: holds node `name`'s simulated button for `hold`.
pub fn press_button(dir: &Path, name: &str, hold: Duration) -> anyhow::Result<()> {
    let state = load(dir)?;
    if !state.nodes.iter().any(|n| n == name) {
        bail!(
            "no node `{name}` in the lab (nodes: {})",
            state.nodes.join(", ")
        );
    }
    let g = gpio_dir(dir, name);
    crate::host::gpio::sim::press(&g, true).with_context(|| format!("pressing {}", g.display()))?;
    std::thread::sleep(hold);
    crate::host::gpio::sim::press(&g, false)
        .with_context(|| format!("releasing {}", g.display()))?;
    Ok(())
}

/// The agent's status, if it answers.
pub fn status_of(dir: &Path, name: &str) -> Option<StatusReport> {
    let path = dir.join(name).join("control.sock");
    control::call_blocking(&path, &Request::Status, Some(Duration::from_secs(2)))
        .ok()?
        .status
}

/// The node that reports itself leader, with its epoch.
pub fn leader(dir: &Path, names: &[String]) -> Option<(String, u64)> {
    names.iter().find_map(|n| {
        let s = status_of(dir, n)?;
        (s.agent.role == crate::core::agent::NodeRole::Leader).then(|| (n.clone(), s.agent.epoch))
    })
}

/// Whether node `i`'s namespace has the VIP configured now.
pub fn has_vip(name: &str) -> bool {
    let out = Command::new("ip")
        .args([
            "-n",
            &net::ns(name),
            "-4",
            "-o",
            "addr",
            "show",
            "dev",
            "eth0",
        ])
        .output();
    out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(" {}/", net::vip())))
}

/// `mooseherd lab up`.
pub fn up(o: &UpOptions) -> anyhow::Result<()> {
    require_root()?;
    if o.host == "linux" {
        require_tools()?;
    }
    if o.nodes < 3 {
        bail!("a lab rack needs at least 3 nodes (3 voters)");
    }
    if o.system == SYSTEM_KEEPALIVED {
        if !on_path("keepalived") {
            bail!(
                "the baseline needs keepalived: apt-get install keepalived (scripts/setup.sh does)"
            );
        }
        if o.replication != "shared-dir" {
            bail!(
                "the keepalived baseline runs with shared-dir replication only (the recipe's notify scripts)"
            );
        }
    }
    if lab_file(&o.dir).exists() || !net::lab_namespaces().is_empty() {
        bail!(
            "a lab already exists (at {} or as mhlab-* namespaces); run `mooseherd lab down` first",
            o.dir.display()
        );
    }
    let (moosefs_bin, moosefs) = if o.host == "linux" {
        choose_moosefs(o.moosefs)?
    } else {
        (
            Vec::new(),
            crate::host::mfs::MfsVersion::detect(Path::new("mfsmaster")).unwrap_or(
                crate::host::mfs::MfsVersion {
                    major: 0,
                    minor: 0,
                    patch: 0,
                },
            ),
        )
    };
    let names = node_names(o.nodes);
    std::fs::create_dir_all(&o.dir).with_context(|| format!("creating {}", o.dir.display()))?;
    // The MooseFS daemons run as `mfs`: they must be able to reach their directories in the lab.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&o.dir, std::fs::Permissions::from_mode(0o755))?;
        let mut p = o.dir.parent();
        while let Some(dir) = p {
            let mode = std::fs::metadata(dir)
                .map(|m| m.permissions().mode())
                .unwrap_or(0o755);
            if mode & 0o001 == 0 {
                bail!(
                    "{} (mode {:o}) cannot be traversed by the `mfs` user the MooseFS daemons run as; put the lab elsewhere (--dir) or chmod o+x it",
                    dir.display(),
                    mode & 0o777
                );
            }
            p = dir.parent();
        }
    }
    let ring = o.dir.join("keyring");
    if !ring.exists() {
        crate::wire::keyring::keygen(&ring).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    std::fs::write(
        o.dir.join("rack.toml"),
        rack_toml(&o.dir, &names, &o.replication),
    )?;
    if o.replication == "shared-dir" {
        std::fs::create_dir_all(o.dir.join("shared"))?;
    }
    for n in &names {
        for sub in ["meta", "chunks", "mnt", "state"] {
            std::fs::create_dir_all(o.dir.join(n).join(sub))?;
        }
    }
    let mut state = LabState {
        nodes: names.clone(),
        replication: o.replication.clone(),
        agents: BTreeMap::new(),
        system: o.system.clone(),
        moosefs: moosefs.code().to_string(),
        moosefs_bin: moosefs_bin.clone(),
        node_moosefs_bin: BTreeMap::new(),
    };
    save(&o.dir, &state)?;
    println!(
        "lab: MooseFS {} ({})",
        state.moosefs,
        moosefs_bin.first().map_or_else(
            || "the host's packages".to_string(),
            |d| d.display().to_string()
        )
    );
    net::create(&names).context("creating the lab network")?;
    // The switch gets an address too, so the lab tool can reach every node (probes, drills).
    net::ip(&[
        "-n",
        net::SWITCH_NS,
        "addr",
        "add",
        "10.213.0.2/24",
        "dev",
        "br0",
    ])?;
    if o.system == SYSTEM_KEEPALIVED {
        baseline::start(&o.dir, &names).context("starting the keepalived baseline")?;
        println!(
            "lab: {} nodes in namespaces mhlab-pi1..pi{} on 10.213.0.0/24 (VIP {}): the keepalived baseline (keepalived + notify scripts on pi1, pi2; shared-dir), daemons started",
            o.nodes,
            o.nodes,
            net::vip(),
        );
    } else {
        for n in &names {
            let pid = start_agent(&o.dir, n, &o.host)?;
            state.agents.insert(n.clone(), pid);
            save(&o.dir, &state)?;
        }
        println!(
            "lab: {} nodes in namespaces mhlab-pi1..pi{} on 10.213.0.0/24 (VIP {}), replication {}, agents started",
            o.nodes,
            o.nodes,
            net::vip(),
            o.replication
        );
    }
    let start = Instant::now();
    let healthy = wait_system_healthy(&o.dir, &state, Duration::from_secs(60));

    match healthy {
        Ok(()) => println!("lab: healthy after {:.1} s", start.elapsed().as_secs_f64()),
        Err(e) => println!(
            "lab: not healthy yet: {e:#} (see {}/*/agent.log)",
            o.dir.display()
        ),
    }
    print_status(&o.dir)?;
    Ok(())
}

/// Waits until every agent answers, one leader holds the VIP and every agent sees every member alive.
pub fn wait_healthy(dir: &Path, names: &[String], timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < timeout {
        let statuses: Vec<Option<StatusReport>> = names.iter().map(|n| status_of(dir, n)).collect();
        let answering = statuses.iter().filter(|s| s.is_some()).count();
        let leader = leader(dir, names);
        let all_alive = statuses.iter().flatten().all(|s| {
            s.agent
                .members
                .iter()
                .all(|m| m.state == MemberState::Alive)
        });
        let vip_owner: Vec<&String> = names.iter().filter(|n| has_vip(n)).collect();
        // A standby that may not stand (its metalogger has not downloaded the metadata yet)
        // would leave a drill's failover with nobody to take over.
        let not_eligible: Vec<&String> = names
            .iter()
            .zip(&statuses)
            .filter(|(_, s)| {
                s.as_ref().is_some_and(|s| {
                    s.agent.role == crate::core::agent::NodeRole::Standby && !s.agent.eligible
                })
            })
            .map(|(n, _)| n)
            .collect();
        match (
            &leader,
            answering == names.len(),
            all_alive,
            vip_owner.len(),
            not_eligible.is_empty(),
        ) {
            (Some((l, _)), true, true, 1, true) if vip_owner[0] == l => return Ok(()),
            _ => {
                last = format!(
                    "{answering}/{} agents answer, leader {:?}, all alive {all_alive}, VIP on {vip_owner:?}, standbys not eligible {not_eligible:?}",
                    names.len(),
                    leader.map(|l| l.0)
                )
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("{last}")
}

/// Waits until the lab's system is healthy: [`wait_healthy`] for mooseherd, one keepalived
/// master with the VIP and a running mfsmaster for the baseline.
pub fn wait_system_healthy(dir: &Path, state: &LabState, timeout: Duration) -> anyhow::Result<()> {
    if state.system != SYSTEM_KEEPALIVED {
        return wait_healthy(dir, &state.nodes, timeout);
    }
    let start = Instant::now();
    loop {
        match baseline::healthy(&state.nodes) {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() > timeout => bail!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// The node serving as master now: the agent that reports itself leader (mooseherd), or the
/// candidate with the VIP and a running mfsmaster (baseline).
pub fn system_leader(dir: &Path, state: &LabState) -> Option<String> {
    if state.system == SYSTEM_KEEPALIVED {
        baseline::leader(&state.nodes)
    } else {
        leader(dir, &state.nodes).map(|l| l.0)
    }
}

/// Starts node `name` again after a drill killed it (its agent, or the baseline's daemons).
pub fn restart_node(dir: &Path, name: &str) -> anyhow::Result<()> {
    let mut state = load(dir)?;
    let i = state
        .nodes
        .iter()
        .position(|n| n == name)
        .with_context(|| format!("no node `{name}` in the lab"))?;
    if state.system == SYSTEM_KEEPALIVED {
        return baseline::start_node(dir, name, i);
    }
    let pid = start_agent(dir, name, "linux")?;
    state.agents.insert(name.to_string(), pid);
    save(dir, &state)
}

/// `mooseherd lab restart NODE [--moosefs N]`: stops node `name`'s agent as systemd would
/// (SIGTERM: a leader fences and hands over), then everything left in its namespace, and starts
/// its agent again, on MooseFS major release `moosefs` when given (an upgrade of one Pi).
pub fn restart_agent(dir: &Path, name: &str, moosefs: Option<u8>) -> anyhow::Result<()> {
    require_root()?;
    let mut state = load(dir)?;
    if state.system != SYSTEM_MOOSEHERD {
        bail!(
            "lab restart works on a mooseherd lab (this one runs {})",
            state.system
        );
    }
    if !state.nodes.iter().any(|n| n == name) {
        bail!(
            "no node `{name}` in the lab (nodes: {})",
            state.nodes.join(", ")
        );
    }
    if let Some(m) = moosefs {
        let (bins, v) = choose_moosefs(Some(m))?;
        println!("lab: {name} restarts on MooseFS {}", v.code());
        state.node_moosefs_bin.insert(name.to_string(), bins);
    }
    save(dir, &state)?;
    if let Some(&pid) = state.agents.get(name) {
        if let Ok(p) = i32::try_from(pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        faults::wait_dead(&[pid], Duration::from_secs(20));
    }
    kill_node(name);
    restart_node(dir, name)
}

/// `mooseherd lab status`.
pub fn print_status(dir: &Path) -> anyhow::Result<()> {
    let state = load(dir)?;
    if state.system == SYSTEM_KEEPALIVED {
        println!(
            "{:<6} {:<11} {:<7} {:<5} MFSMASTER",
            "NODE", "KEEPALIVED", "VRRP", "VIP"
        );
        for (i, n) in state.nodes.iter().enumerate() {
            let ka = !faults::procs(n, &["keepalived"]).is_empty();
            let vrrp = std::fs::read_to_string(baseline::ka_dir(dir, n).join("state"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "-".into());
            println!(
                "{:<6} {:<11} {:<7} {:<5} {}",
                n,
                if i >= 2 {
                    "-"
                } else if ka {
                    "running"
                } else {
                    "down"
                },
                if i < 2 { vrrp.as_str() } else { "-" },
                if has_vip(n) { "yes" } else { "-" },
                if baseline::runs_master(n) {
                    "running"
                } else {
                    "-"
                },
            );
        }
        return Ok(());
    }

    println!(
        "{:<6} {:<9} {:<8} {:>5} {:<6} {:<5} {:<7} {:<8} LEDS",
        "NODE", "AGENT", "ROLE", "EPOCH", "LEADER", "VIP", "MEMBERS", "MOOSEFS"
    );
    for n in &state.nodes {
        let s = status_of(dir, n);
        let pid_alive = state
            .agents
            .get(n)
            .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        match s {
            Some(s) => {
                let a = &s.agent;
                let alive = a
                    .members
                    .iter()
                    .filter(|m| m.state == MemberState::Alive)
                    .count();
                let leader = a
                    .leader
                    .and_then(|l| s.names.get(usize::from(l.0)).cloned())
                    .unwrap_or_else(|| "-".into());
                let leds = s
                    .leds
                    .as_ref()
                    .map(|l| l.indication.label().to_string())
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<6} {:<9} {:<8} {:>5} {:<6} {:<5} {:<7} {:<8} {leds}",
                    n,
                    "up",
                    format!("{:?}", a.role).to_lowercase(),
                    a.epoch,
                    leader,
                    if has_vip(n) { "yes" } else { "-" },
                    format!("{alive}/{}", a.members.len()),
                    a.moosefs_version,
                );
            }
            None => println!(
                "{:<6} {:<9} {:<8} {:>5} {:<6} {:<5} -",
                n,
                if pid_alive { "no answer" } else { "down" },
                "-",
                "-",
                "-",
                if has_vip(n) { "yes" } else { "-" }
            ),
        }
    }
    Ok(())
}

/// `mooseherd lab exec NODE -- CMD...`: runs a command in the node's network namespace.
pub fn exec(dir: &Path, node: &str, cmd: &[String]) -> anyhow::Result<i32> {
    require_root()?;
    if cmd.is_empty() {
        bail!("give a command after `--`");
    }
    if !net::lab_namespaces().contains(&net::ns(node)) {
        bail!(
            "no lab node `{node}` (namespaces: {})",
            net::lab_namespaces().join(", ")
        );
    }
    let mut c = Command::new("nsenter");
    if let Some(path) = lab_path(dir, node) {
        c.env("PATH", path);
    }
    let status = c
        .arg(format!("--net=/run/netns/{}", net::ns(node)))
        .arg("--")
        .args(cmd)
        .status()
        .context("running nsenter")?;
    Ok(status.code().unwrap_or(1))
}

/// Kills every process inside node `name`'s namespace (agent, daemons, mfsmount), SIGKILL;
/// returns their PIDs.
pub fn kill_node(name: &str) -> Vec<u32> {
    let procs = faults::procs(name, &[]);
    faults::signal(&procs, nix::sys::signal::Signal::SIGKILL);
    procs.iter().map(|p| p.pid).collect()
}

/// `mooseherd lab down`: kills the agents and everything in the lab namespaces, unmounts what is
/// mounted under the lab directory, deletes the namespaces, and (unless `keep`) the directory.
pub fn down(dir: &Path, keep: bool) -> anyhow::Result<()> {
    require_root()?;
    let state = load(dir).ok();
    let mut killed = 0;
    if let Some(s) = &state {
        for pid in s.agents.values() {
            if let Ok(p) = i32::try_from(*pid) {
                killed += usize::from(
                    nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGKILL,
                    )
                    .is_ok(),
                );
            }
        }
    }
    for ns in net::lab_namespaces() {
        killed += kill_node(ns.trim_start_matches(net::NS_PREFIX)).len();
    }
    std::thread::sleep(Duration::from_millis(300));
    // Mounts under the lab directory (mfsmount, FUSE), deepest first.
    let mut unmounted = 0;
    if let Ok(mounts) = std::fs::read_to_string("/proc/mounts") {
        let prefix = dir.to_string_lossy().to_string();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            if nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH).is_ok() {
                unmounted += 1;
            }
        }
    }
    let errors = net::destroy();
    if !keep && dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    println!(
        "lab down: {killed} processes killed, {unmounted} mounts removed, namespaces deleted{}",
        if keep {
            format!(", files kept in {}", dir.display())
        } else {
            String::new()
        }
    );
    if !errors.is_empty() {
        bail!(
            "some namespaces could not be deleted: {}",
            errors.join("; ")
        );
    }
    Ok(())
}
