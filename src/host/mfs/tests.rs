//! Unit tests of the MooseFS drivers that need no daemon.

use std::fs;
use std::path::Path;

use super::daemon::classify_failure;
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
        text.contains("CSSERV_LISTEN_PORT = 9522\n") && text.contains("MASTER_HOST = 10.0.0.100\n")
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
    // A metalogger that followed a newer master appended its changes after its old ones.
    let text = "6: 1|A\n7: 1|B\n1392: 2|C\n1393: 2|D\n1394: 2|torn";
    let run = super::metadata::changelog_run_of(text.as_bytes());
    assert_eq!(run.versions, vec![1392, 1393]);
    assert_eq!(&text[run.bytes], "1392: 2|C\n1393: 2|D\n");
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
    assert!(data.join(METALOGGER_METADATA).exists() && data.join("changelog_ml.0.mfs").exists());
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
