//! The daemons' configuration files, rendered from explicit fields (every key written once) and
//! written atomically, and the data directory's first metadata file.

use std::fmt::Write as _;
use std::fs::{self};
use std::io::{self};
use std::path::{Path, PathBuf};

use super::metadata::changelog_name;
use super::{EMPTY_METADATA, EMPTY_METADATA_PATH, MfsError, io_err};
use crate::atomic_file::write_atomic;

fn push_kv(out: &mut String, key: &str, value: &str) -> Result<(), MfsError> {
    if value.is_empty() || value.contains(['\n', '\r']) || key.contains(['\n', '\r', '=']) {
        return Err(MfsError::BadConfigValue { key: key.into() });
    }
    let _ = writeln!(out, "{key} = {value}");
    Ok(())
}

/// The keys a master's clients (chunkserver, metalogger) end with: the reconnection delay, if
/// set, then the extra keys.
fn push_client_tail(
    out: &mut String,
    master_reconnection_delay: Option<u32>,
    extra: &[(String, String)],
) -> Result<(), MfsError> {
    if let Some(v) = master_reconnection_delay {
        push_kv(out, "MASTER_RECONNECTION_DELAY", &v.to_string())?;
    }
    for (k, v) in extra {
        push_kv(out, k, v)?;
    }
    Ok(())
}

/// Writes the config file `dir/name` atomically (see [`write_atomic`]), creating `dir`.
fn write_config(dir: &Path, name: &str, content: &str) -> Result<PathBuf, MfsError> {
    fs::create_dir_all(dir).map_err(io_err("create config dir", dir))?;
    let path = dir.join(name);
    write_atomic(&path, content.as_bytes(), 0o644, None).map_err(io_err("write", &path))?;
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
        let exports_path = write_config(dir, "mfsexports.cfg", &exports)?;
        write_config(dir, "mfsmaster.cfg", &self.render(&exports_path)?)
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
        push_client_tail(&mut s, self.master_reconnection_delay, &self.extra)?;
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
        let hdd_path = write_config(dir, "mfshdd.cfg", &hdd)?;
        write_config(dir, "mfschunkserver.cfg", &self.render(&hdd_path)?)
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
        push_client_tail(&mut s, self.master_reconnection_delay, &self.extra)?;
        Ok(s)
    }

    /// Writes `dir/mfsmetalogger.cfg` and creates `DATA_PATH`; returns the config's path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, MfsError> {
        fs::create_dir_all(&self.data_path).map_err(io_err("create data dir", &self.data_path))?;
        write_config(dir, "mfsmetalogger.cfg", &self.render()?)
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
