//! StorageClass `parameters` and Kubernetes quantities, parsed and checked. Pure.
//!
//! | parameter | default | meaning |
//! |---|---|---|
//! | `pathPattern` | `${namespace}_${pvc}_${pv}` | directory under the root, unique per claim (see [`super::path`]) |
//! | `quota` | `hard` | `hard`, `soft` or `none` |
//! | `quotaGrace` | master's default (7 d) | grace period of a soft quota: seconds, or `30m`, `12h`, `7d`, `2w` |
//! | `quotaKind` | `length` | what the requested size limits: `length` (sum of file lengths: the bytes users store), `size` (chunk sizes), `realsize` (physical, times the goal) |
//! | `inodes` | none | also limit the number of inodes |
//! | `goal` | MooseFS default | replication goal 1-9 (`mfssetgoal`) |
//! | `storageClass` | none | MooseFS storage class name (`mfssetsclass`); excludes `goal` |
//! | `trashTime` | MooseFS default | seconds deleted files stay in the MooseFS trash (`mfssettrashtime`; MooseFS rounds it up to whole hours) |
//! | `uid`, `gid` | `0` | owner of the volume directory |
//! | `mode` | `0755` | octal permissions of the volume directory |
//! | `onDelete` | `archive` | when a Delete-policy volume is released: `archive` (move into `.archive/`), `delete`, or `retain` |
//!
//! Why `length` by default: MooseFS 3.0 reserves a whole 64 MiB chunk against a `size` or
//! `realsize` hard quota while writing, so a volume under 64 MiB with such a quota refuses its
//! first write (EDQUOT; measured with mfsmount 3.0.117).
//!
//! Unknown parameters are refused (a typo must not silently give a volume other than asked for).

use std::collections::BTreeMap;

use super::path;

/// Which MooseFS quota the requested size sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// `-s/-S`: sum of chunk sizes.
    Size,
    /// `-l/-L`: sum of file lengths.
    Length,
    /// `-r/-R`: physical space, times the goal.
    RealSize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaMode {
    Hard,
    Soft,
    None,
}

/// What to do with a released volume's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    Archive,
    Delete,
    Retain,
}

impl OnDelete {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDelete::Archive => "archive",
            OnDelete::Delete => "delete",
            OnDelete::Retain => "retain",
        }
    }
    pub fn parse(s: &str) -> Option<OnDelete> {
        match s {
            "archive" => Some(OnDelete::Archive),
            "delete" => Some(OnDelete::Delete),
            "retain" => Some(OnDelete::Retain),
            _ => None,
        }
    }
}

/// A quota to set on a volume directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub mode: QuotaMode,
    pub kind: QuotaKind,
    pub bytes: u64,
    pub inodes: Option<u64>,
    /// Grace period of a soft quota, as `mfssetquota -p` takes it.
    pub grace: Option<String>,
}

/// The checked parameters of one StorageClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub path_pattern: String,
    pub quota: QuotaMode,
    pub quota_kind: QuotaKind,
    pub quota_grace: Option<String>,
    pub inodes: Option<u64>,
    pub goal: Option<u8>,
    pub storage_class: Option<String>,
    pub trash_time: Option<u64>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub on_delete: OnDelete,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            path_pattern: path::DEFAULT_PATTERN.to_string(),
            quota: QuotaMode::Hard,
            quota_kind: QuotaKind::Length,
            quota_grace: None,
            inodes: None,
            goal: None,
            storage_class: None,
            trash_time: None,
            uid: 0,
            gid: 0,
            mode: 0o755,
            on_delete: OnDelete::Archive,
        }
    }
}

pub const KNOWN: &[&str] = &[
    "pathPattern",
    "quota",
    "quotaGrace",
    "quotaKind",
    "inodes",
    "goal",
    "storageClass",
    "trashTime",
    "uid",
    "gid",
    "mode",
    "onDelete",
];

/// A parameter that was refused, with what is valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("StorageClass parameter `{key}`: {why}")]
pub struct ParamError {
    pub key: String,
    pub why: String,
}

fn err(key: &str, why: impl Into<String>) -> ParamError {
    ParamError {
        key: key.to_string(),
        why: why.into(),
    }
}

fn num<T: std::str::FromStr>(key: &str, v: &str, what: &str) -> Result<T, ParamError> {
    v.parse::<T>()
        .map_err(|_| err(key, format!("`{v}` is not {what}")))
}

/// `123`, `30m`, `12h`, `7d`, `2w` (what `mfssetquota -p` accepts), checked.
fn duration(key: &str, v: &str) -> Result<String, ParamError> {
    let digits = v.trim_end_matches(['s', 'm', 'h', 'd', 'w']);
    if digits.is_empty()
        || v.len() - digits.len() > 1
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.len() > 9
    {
        return Err(err(
            key,
            format!("`{v}` is not a duration like 3600, 30m, 12h, 7d or 2w"),
        ));
    }
    Ok(v.to_string())
}

impl Params {
    /// Parses a StorageClass's parameters.
    pub fn parse(p: &BTreeMap<String, String>) -> Result<Params, ParamError> {
        let mut out = Params::default();
        for (k, v) in p {
            match k.as_str() {
                "pathPattern" => {
                    path::check_pattern(v).map_err(|e| err(k, e.to_string()))?;
                    path::check_unique(v).map_err(|e| err(k, e.to_string()))?;
                    out.path_pattern = v.clone();
                }
                "quota" => {
                    out.quota = match v.as_str() {
                        "hard" => QuotaMode::Hard,
                        "soft" => QuotaMode::Soft,
                        "none" => QuotaMode::None,
                        _ => return Err(err(k, format!("`{v}` is not hard, soft or none"))),
                    }
                }
                "quotaGrace" => out.quota_grace = Some(duration(k, v)?),
                "quotaKind" => {
                    out.quota_kind = match v.as_str() {
                        "size" => QuotaKind::Size,
                        "length" => QuotaKind::Length,
                        "realsize" => QuotaKind::RealSize,
                        _ => return Err(err(k, format!("`{v}` is not size, length or realsize"))),
                    }
                }
                "inodes" => out.inodes = Some(num(k, v, "a number of inodes")?),
                "goal" => {
                    let g: u8 = num(k, v, "a goal from 1 to 9")?;
                    if !(1..=9).contains(&g) {
                        return Err(err(k, format!("`{v}` is not a goal from 1 to 9")));
                    }
                    out.goal = Some(g);
                }
                "storageClass" => {
                    if v.is_empty()
                        || v.len() > 64
                        || !v
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    {
                        return Err(err(k, format!("`{v}` is not a MooseFS storage class name")));
                    }
                    out.storage_class = Some(v.clone());
                }
                "trashTime" => out.trash_time = Some(num(k, v, "a number of seconds")?),
                "uid" => out.uid = num(k, v, "a numeric user id")?,
                "gid" => out.gid = num(k, v, "a numeric group id")?,
                "mode" => {
                    let m = u32::from_str_radix(v.trim_start_matches("0o"), 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| {
                            err(k, format!("`{v}` is not an octal mode like 0750 or 2775"))
                        })?;
                    out.mode = m;
                }
                "onDelete" => {
                    out.on_delete = OnDelete::parse(v)
                        .ok_or_else(|| err(k, format!("`{v}` is not archive, delete or retain")))?
                }
                _ => {
                    return Err(err(
                        k,
                        format!("unknown parameter (known: {})", KNOWN.join(", ")),
                    ));
                }
            }
        }
        if out.goal.is_some() && out.storage_class.is_some() {
            return Err(err("goal", "give either goal or storageClass, not both"));
        }
        if out.quota_grace.is_some() && out.quota != QuotaMode::Soft {
            return Err(err(
                "quotaGrace",
                "only a soft quota has a grace period (quota: soft)",
            ));
        }
        Ok(out)
    }

    /// The quota for a volume of `bytes`.
    pub fn quota(&self, bytes: u64) -> Quota {
        Quota {
            mode: self.quota,
            kind: self.quota_kind,
            bytes,
            inodes: self.inodes,
            grace: self.quota_grace.clone(),
        }
    }
}

/// Parses a Kubernetes quantity (`10Gi`, `500M`, `1.5Gi`, `1e9`, `1024`) into bytes, rounding a
/// fraction of a byte up.
pub fn quantity_bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    let (num, mult): (&str, u128) = [
        ("Ki", 1u128 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
    ]
    .iter()
    .find_map(|(s, m)| q.strip_suffix(s).map(|n| (n, *m)))
    .unwrap_or((q, 1));
    // Decimal exponent (`1e9`, `5E3` is exa with a 3? no: `E` alone was taken above only as a suffix).
    let (num, exp) = match num.split_once(['e', 'E']) {
        Some((n, e)) if mult == 1 => (n, e.parse::<i32>().ok()?),
        _ => (num, 0),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if int.len() + frac.len() > 30 {
        return None;
    }
    let digits: u128 = format!("{int}{frac}").parse().ok()?;
    let scale = i32::try_from(frac.len()).ok()? - exp;
    let mut v = digits.checked_mul(mult)?;
    if scale > 0 {
        let d = 10u128.checked_pow(u32::try_from(scale).ok()?)?;
        v = v.div_ceil(d);
    } else {
        v = v.checked_mul(10u128.checked_pow(u32::try_from(-scale).ok()?)?)?;
    }
    u64::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(kv: &[(&str, &str)]) -> Result<Params, ParamError> {
        Params::parse(
            &kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_and_all_parameters() {
        assert_eq!(p(&[]).unwrap(), Params::default());
        let x = p(&[
            ("pathPattern", "${namespace}/${pvc}"),
            ("quota", "soft"),
            ("quotaGrace", "7d"),
            ("quotaKind", "size"),
            ("inodes", "100000"),
            ("goal", "2"),
            ("trashTime", "3600"),
            ("uid", "1000"),
            ("gid", "100"),
            ("mode", "2775"),
            ("onDelete", "delete"),
        ])
        .unwrap();
        assert_eq!(x.quota, QuotaMode::Soft);
        assert_eq!(x.quota_kind, QuotaKind::Size);
        assert_eq!(x.goal, Some(2));
        assert_eq!(x.mode, 0o2775);
        assert_eq!(x.on_delete, OnDelete::Delete);
        assert_eq!(x.quota(5).grace.as_deref(), Some("7d"));
    }

    #[test]
    fn bad_parameters_name_the_key() {
        for (kv, key) in [
            (("goal", "0"), "goal"),
            (("goal", "x"), "goal"),
            (("mode", "0999"), "mode"),
            (("mode", "77777"), "mode"),
            (("onDelete", "shred"), "onDelete"),
            (("quota", "hardest"), "quota"),
            (("pathPattern", "../x"), "pathPattern"),
            (("pathPattern", "/abs"), "pathPattern"),
            (("pathPattern", "${namespace}-${pvc}"), "pathPattern"),
            (("pathPattern", "${annotations.dir}"), "pathPattern"),
            (("pathPattern", "shared"), "pathPattern"),
            (("trashtime", "1"), "trashtime"),
            (("uid", "-1"), "uid"),
            (("storageClass", "a b"), "storageClass"),
            (("quotaGrace", "7d"), "quotaGrace"),
        ] {
            let e = p(&[kv]).unwrap_err();
            assert_eq!(e.key, key, "{kv:?}: {e}");
        }
        assert!(p(&[("goal", "2"), ("storageClass", "ssd")]).is_err());
        assert!(p(&[("quota", "soft"), ("quotaGrace", "7dd")]).is_err());
    }

    #[test]
    fn quantities() {
        for (q, b) in [
            ("1Gi", 1u64 << 30),
            ("10Mi", 10 << 20),
            ("1G", 1_000_000_000),
            ("1.5Gi", 3 << 29),
            ("1024", 1024),
            ("1e3", 1000),
            ("1E3", 1000),
            ("0.5", 1),
            ("2k", 2000),
            ("16Ei", u64::MAX), // overflows: refused below
        ] {
            if q == "16Ei" {
                assert_eq!(quantity_bytes(q), None);
            } else {
                assert_eq!(quantity_bytes(q), Some(b), "{q}");
            }
        }
        for bad in ["", "Gi", "-1Gi", "1.2.3", "1Zi", "abc", "1e", "1x"] {
            assert_eq!(quantity_bytes(bad), None, "{bad}");
        }
    }
}
