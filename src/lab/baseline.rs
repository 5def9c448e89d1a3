//! The baseline mooseherd is measured against: the keepalived recipe, run on the same lab rack.
//!
//! What people run today: keepalived on each master
//! candidate moves the VIP by VRRP priority (default timers: one advert a second, `nopreempt`),
//! and its notify scripts do the failover steps. On MASTER: make the replica primary (here the
//! shared directory needs nothing), start `mfsmaster -a`. On BACKUP, FAULT or STOP: stop this
//! node's own mfsmaster (by its PID: `mfsmaster stop` on a shared directory signals the PID in the
//! lock file, which can be the other node's). A `vrrp_script` checks the master's mfsmaster every
//! second (two failures in a row: FAULT), as careful users configure it. There is no quorum.
//!
//! Chunkservers and mounts are plain daemons (what systemd and fstab would start), pointed at
//! the VIP. Every daemon runs in the foreground in its node's namespace, detached from the lab
//! tool, as systemd would run it (`Type=simple`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{faults, net};
use crate::host::mfs;

/// The VRRP priorities of the two master candidates (pi1 starts as master).
const PRIORITIES: [u32; 2] = [150, 100];

/// The directory of node `name`'s keepalived files (config, scripts, state, mfsmaster's PID).
pub fn ka_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join(name).join("keepalived")
}

/// keepalived.conf of master candidate `i` (0 or 1).
pub fn keepalived_conf(dir: &Path, name: &str, i: usize) -> String {
    let ka = ka_dir(dir, name);
    let script = ka.join("notify.sh");
    let s = script.display();
    format!(
        r#"# The keepalived + MooseFS recipe (mooseherd's baseline), written by `mooseherd lab up --system keepalived`.
global_defs {{
    router_id {name}
    script_user root
}}
vrrp_script chk_mfsmaster {{
    script "{check}"
    interval 1
    fall 2
    rise 2
}}
vrrp_instance VI_MFS {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {prio}
    advert_int 1
    nopreempt
    authentication {{
        auth_type PASS
        auth_pass mfsha
    }}
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
    track_script {{
        chk_mfsmaster
    }}
    notify_master "{s} MASTER"
    notify_backup "{s} BACKUP"
    notify_fault "{s} FAULT"
    notify_stop "{s} STOP"
}}
"#,
        check = ka.join("check.sh").display(),
        prio = PRIORITIES.get(i).copied().unwrap_or(50),
        vip = net::vip(),
    )
}

/// The notify script: the failover steps of the recipe.
pub fn notify_sh(dir: &Path, name: &str) -> String {
    let ka = ka_dir(dir, name);
    format!(
        r#"#!/bin/sh
# keepalived's notify script for {name}: MASTER starts mfsmaster, anything else stops it.
KA={ka}
CFG=$KA/mfsmaster.cfg
PIDFILE=$KA/mfsmaster.pid
echo "$(date +%s.%N) $1" >> $KA/notify.log
echo "$1" > $KA/state
alive() {{ [ -n "$1" ] && [ -r /proc/$1/stat ] && ! grep -q ') [ZX]' /proc/$1/stat; }}
case "$1" in
MASTER)
    # The shared directory stands for the DRBD disk: `drbdadm primary; mount` would go here.
    setsid mfsmaster -c "$CFG" -a -f start >> $KA/mfsmaster.log 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    ;;
*)
    pid=$(cat "$PIDFILE" 2>/dev/null)
    if alive "$pid"; then
        kill -TERM "$pid"
        # moosefs-master.service has TimeoutSec=0: systemd waits for the clean stop.
        while alive "$pid"; do sleep 0.1; done
    fi
    rm -f "$PIDFILE"
    ;;
esac
"#,
        ka = ka.display()
    )
}

/// The `vrrp_script`: fails when this node is MASTER and its mfsmaster is not running.
pub fn check_sh(dir: &Path, name: &str) -> String {
    let ka = ka_dir(dir, name);
    format!(
        r#"#!/bin/sh
KA={ka}
[ "$(cat $KA/state 2>/dev/null)" = MASTER ] || exit 0
pid=$(cat $KA/mfsmaster.pid 2>/dev/null)
[ -n "$pid" ] && [ -r /proc/$pid/stat ] && ! grep -q ') [ZX]' /proc/$pid/stat
"#,
        ka = ka.display()
    )
}

/// Runs a daemon in node `name`'s namespace, detached (see [`super::spawn_in_node`]).
fn spawn_in(
    dir: &Path,
    name: &str,
    program: &str,
    args: &[String],
    log: &Path,
) -> anyhow::Result<u32> {
    let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    super::spawn_in_node(dir, name, program.as_ref(), &args, &[], log)
}

fn chown_mfs(paths: &[&Path]) {
    if let Ok(Some(u)) = nix::unistd::User::from_name("mfs") {
        for p in paths {
            let _ = nix::unistd::chown(*p, Some(u.uid), Some(u.gid));
        }
    }
}

/// Writes every node's files and the shared filesystem (once, at `lab up`).
pub fn prepare(dir: &Path, names: &[String]) -> anyhow::Result<()> {
    let shared = dir.join("shared");
    mfs::create_filesystem(&shared)?;
    chown_mfs(&[&shared, &shared.join("metadata.mfs")]);
    for (i, n) in names.iter().enumerate() {
        let node = dir.join(n);
        if i < 2 {
            let ka = ka_dir(dir, n);
            std::fs::create_dir_all(&ka)?;
            let mut cfg = mfs::MasterConfig::new(&shared);
            cfg.working_user = "mfs".into();
            cfg.working_group = "mfs".into();
            cfg.write(&ka)?;
            std::fs::write(ka.join("keepalived.conf"), keepalived_conf(dir, n, i))?;
            for (file, text) in [
                ("notify.sh", notify_sh(dir, n)),
                ("check.sh", check_sh(dir, n)),
            ] {
                let p = ka.join(file);
                std::fs::write(&p, text)?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
            }
        }
        if i < 3 {
            let cs = node.join("cs");
            std::fs::create_dir_all(&cs)?;
            let data = node.join("meta").join("chunkserver");
            let chunks = node.join("chunks");
            std::fs::create_dir_all(&data)?;
            std::fs::create_dir_all(&chunks)?;
            chown_mfs(&[&data, &chunks]);
            let mut cfg = mfs::ChunkserverConfig::new(
                data.clone(),
                vec![chunks.clone()],
                &net::vip().to_string(),
            );
            cfg.working_user = "mfs".into();
            cfg.working_group = "mfs".into();
            cfg.write(&cs)?;
        }
    }
    Ok(())
}

/// Starts node `i`'s daemons: chunkserver (pi1-pi3), keepalived (pi1, pi2), mfsmount (pi3 on).
pub fn start_node(dir: &Path, name: &str, i: usize) -> anyhow::Result<()> {
    let node = dir.join(name);
    if i < 3 {
        let cfg = node.join("cs").join("mfschunkserver.cfg");
        spawn_in(
            dir,
            name,
            "mfschunkserver",
            &[
                "-c".into(),
                cfg.display().to_string(),
                "-f".into(),
                "start".into(),
            ],
            &node.join("cs").join("mfschunkserver.log"),
        )?;
    }
    if i < 2 {
        start_keepalived(dir, name)?;
    }
    if i >= 2 {
        let mnt = node.join("mnt");
        std::fs::create_dir_all(&mnt)?;
        // A mount left by a killed mfsmount must go first (the agent does the same).
        let _ = nix::mount::umount2(&mnt, nix::mount::MntFlags::MNT_DETACH);
        let m = crate::host::mount::MfsMount::new(&mnt, &net::vip().to_string(), 9421);
        super::spawn_in_node(
            dir,
            name,
            "mfsmount".as_ref(),
            &m.spec().args,
            &[],
            &node.join("mfsmount.log"),
        )?;
    }
    Ok(())
}

/// Starts keepalived on master candidate `name` (in the foreground of its own session, as
/// `keepalived.service` runs it).
pub fn start_keepalived(dir: &Path, name: &str) -> anyhow::Result<()> {
    let ka = ka_dir(dir, name);
    // A killed keepalived leaves its state file saying MASTER, and PID files that make the new
    // one refuse to start ("daemon is already running") while the old PIDs linger as zombies:
    // start as after a reboot (/run is empty then).
    for f in ["state", "keepalived.pid", "vrrp.pid", "checkers.pid"] {
        let _ = std::fs::remove_file(ka.join(f));
    }
    let p = |f: &str| ka.join(f).display().to_string();
    spawn_in(
        dir,
        name,
        "keepalived",
        &[
            "-n".into(),
            "-l".into(),
            "-D".into(),
            "-f".into(),
            p("keepalived.conf"),
            "-p".into(),
            p("keepalived.pid"),
            "-r".into(),
            p("vrrp.pid"),
            "-c".into(),
            p("checkers.pid"),
        ],
        &ka.join("keepalived.log"),
    )?;
    Ok(())
}

/// Starts the whole baseline rack: every node's daemons (both keepalived instances start
/// BACKUP; the higher priority becomes MASTER after VRRP's master-down interval).
pub fn start(dir: &Path, names: &[String]) -> anyhow::Result<()> {
    prepare(dir, names)?;
    for (i, n) in names.iter().enumerate() {
        start_node(dir, n, i)?;
    }
    Ok(())
}

/// Whether node `name` runs an mfsmaster that is not stopped.
pub fn runs_master(name: &str) -> bool {
    faults::procs(name, &["mfsmaster"])
        .iter()
        .any(|p| faults::proc_state(p.pid).is_some_and(|s| s != 'T' && s != 't'))
}

/// The baseline's master: the candidate with the VIP and a running mfsmaster.
pub fn leader(names: &[String]) -> Option<String> {
    names
        .iter()
        .take(2)
        .find(|n| super::has_vip(n) && runs_master(n))
        .cloned()
}

/// Healthy: both keepalived instances run, one candidate has the VIP and runs mfsmaster, the
/// other has neither.
pub fn healthy(names: &[String]) -> Result<(), String> {
    let kas: Vec<bool> = names
        .iter()
        .take(2)
        .map(|n| !faults::procs(n, &["keepalived"]).is_empty())
        .collect();
    let vips: Vec<&String> = names.iter().filter(|n| super::has_vip(n)).collect();
    let masters: Vec<&String> = names.iter().filter(|n| runs_master(n)).collect();
    if kas.iter().all(|k| *k) && vips.len() == 1 && masters.len() == 1 && vips[0] == masters[0] {
        Ok(())
    } else {
        Err(format!(
            "keepalived running on the candidates: {kas:?}, VIP on {vips:?}, mfsmaster on {masters:?}"
        ))
    }
}
