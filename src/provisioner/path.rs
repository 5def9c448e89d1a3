//! Volume paths: the `pathPattern` of a StorageClass, expanded for one claim into a path *relative
//! to the provisioner's root*, every component checked. Pure: no filesystem access.
//!
//! Rules (a directory is never created outside the root, nor at the root itself):
//! - the pattern is split on `/` outside `${...}` variables; an empty pattern, a leading `/`
//!   (absolute), or an empty component (`a//b`, trailing `/`) is refused;
//! - variables: `${namespace}`, `${pvc}`, `${pvc.uid}` (the claim's uid), `${pv}` (the volume's
//!   name, `pvc-<claim uid>`), `${annotations.KEY}` (an annotation of the claim; missing = error)
//!   and `${labels.KEY}`; any other name is refused, and so is a value that is empty;
//! - each expanded component must be 1-255 bytes, must not start with `.` (so no `.`, `..`, and
//!   never the provisioner's own `.archive`), and must not contain `/`, NUL or control characters.
//!   Values are not rewritten: a bad value is an error the user sees as an Event, not a surprise
//!   directory name. The one exception is length: a component longer than 255 bytes that holds
//!   the claim's uid (through `${pv}` or `${pvc.uid}`) is shortened to
//!   `<head>~<16 hex digits of FNV-1a of the whole component>~<the uid's value>`, which is still
//!   unique (the uid is kept whole) and says it was shortened (`~` never occurs in a Kubernetes
//!   name);
//! - the whole relative path is at most [`MAX_PATH`] bytes.
//!
//! A pattern must give every claim a directory of its own ([`check_unique`]): it names the claim's
//! uid (`${pv}` or `${pvc.uid}`), or both `${namespace}` and `${pvc}` in a way that tells every
//! (namespace, name) pair apart. The provisioner also refuses a path another volume already
//! uses, inside or around it (see the controller), and a directory it did not create for the
//! claim (see [`super::fs`]).

use std::collections::BTreeMap;

/// The default pattern: one directory per claim, named after its namespace, claim and volume.
/// `_` cannot occur in a namespace, claim or volume name, so the three parts can always be told
/// apart (the default before was `${namespace}-${pvc}-${pv}`; volumes keep the path they were
/// made with, recorded in their PV).
pub const DEFAULT_PATTERN: &str = "${namespace}_${pvc}_${pv}";

/// Separates the head, the hash and the uid of a shortened component.
const SHORTENED: char = '~';
pub use crate::relpath::{MAX_COMPONENT, MAX_PATH, PathError, RelPath, check_component};

/// What a pattern's variables expand to for one claim.
#[derive(Debug, Clone, Default)]
pub struct Vars<'a> {
    pub namespace: &'a str,
    pub pvc: &'a str,
    /// The claim's uid.
    pub uid: &'a str,
    pub pv: &'a str,
    pub annotations: Option<&'a BTreeMap<String, String>>,
    pub labels: Option<&'a BTreeMap<String, String>>,
}

enum Piece<'p> {
    Lit(&'p str),
    Var(&'p str),
}

/// Splits a pattern into components of literal and variable pieces (`/` inside `${}` is part of
/// the variable name, e.g. `${annotations.example.com/dir}`).
fn parse(pattern: &str) -> Result<Vec<Vec<Piece<'_>>>, PathError> {
    if pattern.is_empty() {
        return Err(PathError::Empty);
    }
    if pattern.starts_with('/') {
        return Err(PathError::Absolute(pattern.to_string()));
    }
    let mut comps = vec![Vec::new()];
    let mut rest = pattern;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| PathError::Unterminated(pattern.to_string()))?;
            if let Some(c) = comps.last_mut() {
                c.push(Piece::Var(&after[..end]));
            }
            rest = &after[end + 1..];
        } else {
            let next = rest
                .char_indices()
                .find(|&(i, ch)| ch == '/' || rest[i..].starts_with("${"))
                .map_or(rest.len(), |(i, _)| i);
            if next == 0 {
                // a `/`
                comps.push(Vec::new());
                rest = &rest[1..];
            } else {
                if let Some(c) = comps.last_mut() {
                    c.push(Piece::Lit(&rest[..next]));
                }
                rest = &rest[next..];
            }
        }
    }
    if comps.iter().any(Vec::is_empty) {
        return Err(PathError::EmptyComponent(pattern.to_string()));
    }
    Ok(comps)
}

/// Checks a pattern's syntax and variable names without a claim (StorageClass validation).
pub fn check_pattern(pattern: &str) -> Result<(), PathError> {
    for comp in parse(pattern)? {
        // Every variable stands for a harmless `x` here: what is left wrong is the pattern's own.
        let mut s = String::new();
        for p in comp {
            match p {
                Piece::Lit(l) => s.push_str(l),
                Piece::Var(v) => {
                    known_var(v)?;
                    s.push('x');
                }
            }
        }
        check_component(&s)?;
    }
    Ok(())
}

fn known_var(v: &str) -> Result<(), PathError> {
    match v {
        "namespace" | "pvc" | "pvc.uid" | "pv" => Ok(()),
        _ if v
            .strip_prefix("annotations.")
            .is_some_and(|k| !k.is_empty()) =>
        {
            Ok(())
        }
        _ if v.strip_prefix("labels.").is_some_and(|k| !k.is_empty()) => Ok(()),
        _ => Err(PathError::UnknownVariable(v.to_string())),
    }
}

/// Whether `c` may occur in a Kubernetes namespace or object name (DNS labels and subdomains).
fn in_k8s_name(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
}

/// Checks that `pattern` gives every claim a directory of its own: it names the claim's uid
/// (`${pv}` or `${pvc.uid}`), or both `${namespace}` and `${pvc}`, each in a component that holds
/// no other variable, and separated (when they share a component) by a literal with a character
/// that cannot occur in a Kubernetes name (`_`, say). `${namespace}-${pvc}` is refused: `team-a`
/// / `db` and `team` / `a-db` would share `team-a-db`.
pub fn check_unique(pattern: &str) -> Result<(), PathError> {
    let comps = parse(pattern)?;
    let not_unique = |why: &str| PathError::NotUnique {
        pattern: pattern.to_string(),
        why: why.to_string(),
    };
    let vars = || {
        comps.iter().flatten().filter_map(|p| match p {
            Piece::Var(v) => Some(*v),
            Piece::Lit(_) => None,
        })
    };
    if vars().any(|v| v == "pv" || v == "pvc.uid") {
        return Ok(());
    }
    if !(vars().any(|v| v == "namespace") && vars().any(|v| v == "pvc")) {
        return Err(not_unique(
            "it needs `${pv}` or `${pvc.uid}` (the claim's uid), or both `${namespace}` and `${pvc}`",
        ));
    }
    for comp in &comps {
        let names = |p: &Piece<'_>| matches!(p, Piece::Var("namespace" | "pvc"));
        if !comp.iter().any(names) {
            continue;
        }
        if let Some(Piece::Var(other)) = comp
            .iter()
            .find(|p| matches!(p, Piece::Var(_)) && !names(p))
        {
            return Err(not_unique(&format!(
                "`${{{other}}}` shares a path component with `${{namespace}}` or `${{pvc}}`, so two claims can expand to the same name; give it a component of its own (`/`)"
            )));
        }
        // Between two variables of one component, a character no Kubernetes name holds.
        let mut since_var: Option<bool> = None;
        for p in comp {
            match p {
                Piece::Var(_) => {
                    if since_var == Some(false) {
                        return Err(not_unique(
                            "`${namespace}` and `${pvc}` in one component need a separator that cannot occur in Kubernetes names, such as `_` (or put them in components of their own with `/`)",
                        ));
                    }
                    since_var = Some(false);
                }
                Piece::Lit(l) => {
                    if l.chars().any(|c| !in_k8s_name(c)) {
                        since_var = since_var.map(|_| true);
                    }
                }
            }
        }
    }
    Ok(())
}

/// A pattern expanded for one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    pub path: RelPath,
    /// Components that were longer than 255 bytes and were shortened: (full length, new name).
    pub shortened: Vec<(usize, String)>,
}

/// Expands `pattern` for one claim into a checked relative path.
pub fn expand(pattern: &str, vars: &Vars<'_>) -> Result<Expanded, PathError> {
    let mut out = Vec::new();
    let mut shortened = Vec::new();
    for comp in parse(pattern)? {
        let mut s = String::new();
        let mut uid: Option<&str> = None;
        for p in comp {
            match p {
                Piece::Lit(l) => s.push_str(l),
                Piece::Var(v) => {
                    known_var(v)?;
                    let val = match v {
                        "namespace" => Some(vars.namespace),
                        "pvc" => Some(vars.pvc),
                        "pvc.uid" => Some(vars.uid),
                        "pv" => Some(vars.pv),
                        _ => {
                            let (map, key) = match v.strip_prefix("annotations.") {
                                Some(k) => (vars.annotations, k),
                                None => (vars.labels, v.strip_prefix("labels.").unwrap_or(v)),
                            };
                            map.and_then(|m| m.get(key)).map(String::as_str)
                        }
                    };
                    let val = val.ok_or_else(|| PathError::Missing(v.to_string()))?;
                    if val.is_empty() {
                        return Err(PathError::EmptyValue(v.to_string()));
                    }
                    if v == "pv" || (v == "pvc.uid" && uid.is_none()) {
                        uid = Some(val);
                    }
                    s.push_str(val);
                }
            }
        }
        if s.len() > MAX_COMPONENT
            && let Some(uid) = uid
            && let Some(short) = shorten(&s, uid)
        {
            shortened.push((s.len(), short.clone()));
            s = short;
        }
        check_component(&s)?;
        out.push(s);
    }
    let rel = RelPath::from_checked(out);
    let len = rel.to_string().len();
    if len > MAX_PATH {
        return Err(PathError::TooLong(len));
    }
    Ok(Expanded {
        path: rel,
        shortened,
    })
}

/// Whether one of the two directories is the other or lies inside it: two volumes there would
/// share files.
pub fn overlaps(a: &RelPath, b: &RelPath) -> bool {
    let (a, b) = (a.components(), b.components());
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// `<head>~<hash>~<uid>` in at most [`MAX_COMPONENT`] bytes, the head a prefix of `full` cut at a
/// character boundary; `None` when even the uid does not fit.
fn shorten(full: &str, uid: &str) -> Option<String> {
    let mut h = crate::fnv::Fnv1a::new();
    h.bytes(full.as_bytes());
    let tail = format!("{SHORTENED}{:016x}{SHORTENED}{uid}", h.value());
    let room = MAX_COMPONENT.checked_sub(tail.len())?;
    let mut cut = room.min(full.len());
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(format!("{}{tail}", &full[..cut]))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use proptest::prelude::*;

    fn vars<'a>(ann: &'a BTreeMap<String, String>) -> Vars<'a> {
        Vars {
            namespace: "ns",
            pvc: "data",
            uid: "1234",
            pv: "pvc-1234",
            annotations: Some(ann),
            labels: None,
        }
    }

    #[test]
    fn default_pattern_expands() {
        let a = BTreeMap::new();
        let e = expand(DEFAULT_PATTERN, &vars(&a)).unwrap();
        assert!(e.shortened.is_empty());
        let p = e.path;
        assert_eq!(p.to_string(), "ns_data_pvc-1234");
        assert_eq!(p.leaf(), "ns_data_pvc-1234");
        assert_eq!(
            p.under(Path::new("/r")),
            PathBuf::from("/r/ns_data_pvc-1234")
        );
    }

    #[test]
    fn nested_and_annotation_patterns() {
        let mut a = BTreeMap::new();
        a.insert("example.com/team".to_string(), "blue".to_string());
        let p = expand(
            "${namespace}/${annotations.example.com/team}/${pvc}",
            &vars(&a),
        )
        .unwrap()
        .path;
        assert_eq!(p.components(), ["ns", "blue", "data"]);
        assert_eq!(RelPath::parse(&p.to_string()).unwrap(), p);
    }

    #[test]
    fn traversal_and_bad_values_are_refused() {
        let mut a = BTreeMap::new();
        for (v, want) in [
            ("..", "Dot"),
            ("../etc", "Dot"),
            ("a/../..", "BadChar"),
            (".hidden", "Dot"),
            ("a\0b", "BadChar"),
            ("a\nb", "BadChar"),
            ("", "EmptyValue"),
        ] {
            a.insert("d".to_string(), v.to_string());
            let e = expand("${annotations.d}", &vars(&a)).unwrap_err();
            assert!(format!("{e:?}").starts_with(want), "{v:?}: {e:?}");
        }
        a.insert("d".to_string(), "x".repeat(256));
        assert_eq!(
            expand("${annotations.d}", &vars(&a)),
            Err(PathError::ComponentTooLong(256))
        );
        assert!(matches!(
            expand("/abs/${pvc}", &vars(&a)),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(
            expand("a//${pvc}", &vars(&a)),
            Err(PathError::EmptyComponent(_))
        ));
        assert!(matches!(
            expand("a/${pvc}/", &vars(&a)),
            Err(PathError::EmptyComponent(_))
        ));
        assert!(matches!(
            expand("../${pvc}", &vars(&a)),
            Err(PathError::Dot(_))
        ));
        assert!(matches!(
            expand("${nope}", &vars(&a)),
            Err(PathError::UnknownVariable(_))
        ));
        assert!(matches!(
            expand("${annotations.absent}", &vars(&a)),
            Err(PathError::Missing(_))
        ));
        assert!(matches!(
            expand("${pvc", &vars(&a)),
            Err(PathError::Unterminated(_))
        ));
        assert_eq!(expand("", &vars(&a)), Err(PathError::Empty));
        assert!(check_pattern("${namespace}/${labels.app}").is_ok());
        assert!(check_pattern("${labels.}").is_err());
    }

    #[test]
    fn stored_paths_are_checked_again() {
        assert!(RelPath::parse("a/b").is_ok());
        for bad in ["", "/a", "a/../b", "a//b", ".archive/x", "a/"] {
            assert!(RelPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlapping_directories() {
        let r = |s: &str| RelPath::parse(s).unwrap();
        assert!(overlaps(&r("a/b"), &r("a/b")));
        assert!(overlaps(&r("a"), &r("a/b/c")));
        assert!(overlaps(&r("a/b/c"), &r("a")));
        assert!(!overlaps(&r("a/b"), &r("a/bc")));
        assert!(!overlaps(&r("a/b"), &r("a/c/b")));
        assert!(!overlaps(&r("ns_db_pvc-1"), &r("ns_db_pvc-2")));
    }

    #[test]
    fn patterns_that_let_claims_share_a_directory_are_refused() {
        for ok in [
            DEFAULT_PATTERN,
            "${namespace}-${pvc}-${pv}",
            "${namespace}/${pvc}",
            "${pvc}/${namespace}",
            "${namespace}_${pvc}",
            "ns-${namespace}_x_${pvc}-vol",
            "${annotations.team}/${namespace}/${pvc}",
            "${annotations.team}/${pvc.uid}",
            "${labels.app}-${pv}",
        ] {
            assert_eq!(check_unique(ok), Ok(()), "{ok}");
        }
        for bad in [
            "${namespace}-${pvc}",
            "${namespace}${pvc}",
            "${namespace}.${pvc}",
            "${pvc}",
            "${namespace}",
            "shared",
            "${annotations.dir}",
            "${namespace}/${annotations.example.com/dir}",
            "${namespace}_${pvc}${annotations.x}",
            "${namespace}/${pvc}-${labels.app}",
        ] {
            assert!(
                matches!(check_unique(bad), Err(PathError::NotUnique { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn long_names_under_the_default_pattern_are_shortened_and_keep_the_uid() {
        let ns = "n".repeat(63);
        let pvc = format!("{}.b", "a".repeat(251));
        let uid = "0123abcd-0000-4000-8000-0123456789ab";
        let pv = format!("pvc-{uid}");
        let v = Vars {
            namespace: &ns,
            pvc: &pvc,
            uid,
            pv: &pv,
            annotations: None,
            labels: None,
        };
        let e = expand(DEFAULT_PATTERN, &v).unwrap();
        let leaf = e.path.leaf();
        assert_eq!(leaf.len(), MAX_COMPONENT);
        assert!(leaf.starts_with(&format!("{ns}_aaa")), "{leaf}");
        assert!(leaf.ends_with(&format!("~{pv}")), "{leaf}");
        assert_eq!(e.shortened, [(63 + 1 + 253 + 1 + 40, leaf.to_string())]);
        // Without the uid in the component, too long stays an error.
        assert_eq!(
            expand("${namespace}/${pvc}x${pvc}", &v),
            Err(PathError::ComponentTooLong(2 * 253 + 1))
        );
        // A multi-byte value is cut at a character boundary.
        let mut a = BTreeMap::new();
        a.insert("k".to_string(), "é".repeat(200));
        let v = Vars {
            annotations: Some(&a),
            ..v
        };
        let e = expand("${annotations.k}${pv}", &v).unwrap();
        assert!(e.path.leaf().len() <= MAX_COMPONENT);
        assert!(e.path.leaf().ends_with(&pv));
    }

    /// A Kubernetes namespace (DNS label) or claim name (DNS subdomain).
    fn k8s_name(max: usize) -> impl Strategy<Value = String> {
        let inner = if max > 63 { "[a-z0-9.-]" } else { "[a-z0-9-]" };
        (
            "[a-z0-9]",
            proptest::string::string_regex(&format!("{inner}{{0,{}}}", max - 2)).unwrap(),
            "[a-z0-9]",
            proptest::bool::ANY,
        )
            .prop_map(|(a, m, z, one)| if one { a } else { format!("{a}{m}{z}") })
    }

    fn uid() -> impl Strategy<Value = String> {
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    }

    fn claim_path(pattern: &str, (ns, pvc, uid): &(String, String, String)) -> RelPath {
        let pv = format!("pvc-{uid}");
        let v = Vars {
            namespace: ns,
            pvc,
            uid,
            pv: &pv,
            annotations: None,
            labels: None,
        };
        expand(pattern, &v)
            .unwrap_or_else(|e| panic!("{pattern} for {ns}/{pvc}: {e}"))
            .path
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Distinct (namespace, name, uid) triples of valid Kubernetes names never share a
        /// directory under the default patterns, whatever their length, and every path stays
        /// under the root. Pairs that differ in one part only are generated on purpose.
        #[test]
        fn default_patterns_give_distinct_claims_distinct_directories(
            a in (k8s_name(63), k8s_name(253), uid()),
            b in (k8s_name(63), k8s_name(253), uid()),
            mix in 0u8..9,
        ) {
            // Keep some parts of `a` in `b`: same namespace, same name, same uid, or
            // a name moved across the separator.
            let b = match mix {
                0 => (a.0.clone(), b.1, b.2),
                1 => (b.0, a.1.clone(), b.2),
                2 => (a.0.clone(), a.1.clone(), b.2),
                3 => (b.0, b.1, a.2.clone()),
                4 => (a.0.clone(), b.1, a.2.clone()),
                5 => (format!("{}-{}", a.0, "x"), a.1.clone(), a.2.clone()),
                // `ns`/`z-name` against `ns-z`/`name`: the separator moved.
                6 => (format!("{}-z", a.0), a.1.clone(), a.2.clone()),
                _ => b,
            };
            let a = if mix == 6 { (a.0.clone(), format!("z-{}", a.1), a.2.clone()) } else { a };
            prop_assume!(a != b);
            for pattern in [DEFAULT_PATTERN, "${namespace}-${pvc}-${pv}", "${namespace}/${pvc}"] {
                // `${namespace}/${pvc}` is unique per (namespace, name) only: the same pair
                // again is a recreated claim, which the controller refuses while the old
                // directory exists.
                if pattern == "${namespace}/${pvc}" && (a.0 == b.0 && a.1 == b.1) {
                    continue;
                }
                // The old default tells claims apart by their uid only (`a-b`/`c` and `a`/`b-c`
                // share a prefix), which the apiserver never gives twice.
                if pattern == "${namespace}-${pvc}-${pv}" && a.2 == b.2 {
                    continue;
                }
                let (pa, pb) = (claim_path(pattern, &a), claim_path(pattern, &b));
                prop_assert_ne!(&pa, &pb, "{} maps {:?} and {:?} to one directory", pattern, a, b);
                for p in [&pa, &pb] {
                    let root = Path::new("/root-of-volumes");
                    prop_assert!(p.under(root).starts_with(root) && p.under(root) != root);
                    prop_assert_eq!(RelPath::parse(&p.to_string()), Ok(p.clone()));
                }
            }
        }
    }

    proptest! {
        /// Whatever the pattern and the values, an accepted path stays strictly under the root:
        /// no component is empty, `.`/`..`, hidden, or contains `/` or NUL.
        #[test]
        fn accepted_paths_stay_under_the_root(
            pattern in "[a-z/.${}\\-]{0,24}|\\$\\{annotations\\.k\\}(/\\$\\{pvc\\})?",
            value in "\\PC{0,12}|\\.\\.|\\.\\./\\.\\.|/etc",
            pvc in "[a-z0-9.\\-/]{0,12}",
        ) {
            let mut a = BTreeMap::new();
            a.insert("k".to_string(), value);
            let v = Vars { namespace: "ns", pvc: &pvc, uid: "u", pv: "pv", annotations: Some(&a), labels: None };
            if let Ok(Expanded { path: rel, .. }) = expand(&pattern, &v) {
                prop_assert!(!rel.components().is_empty());
                let root = Path::new("/root-of-volumes");
                let full = rel.under(root);
                prop_assert!(full.starts_with(root) && full != root);
                for c in rel.components() {
                    prop_assert!(!c.is_empty() && !c.starts_with('.'));
                    prop_assert!(!c.contains('/') && !c.contains('\0'));
                    // Path::components would expose a `..` or a root.
                    prop_assert_eq!(Path::new(c).components().count(), 1);
                }
                prop_assert_eq!(RelPath::parse(&rel.to_string()), Ok(rel));
            }
        }
    }
}
