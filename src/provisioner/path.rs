//! Volume paths: the `pathPattern` of a StorageClass, expanded for one claim into a path *relative
//! to the provisioner's root*, every component checked. Pure: no filesystem access.
//!
//! Rules (a directory is never created outside the root, nor at the root itself):
//! - the pattern is split on `/` outside `${...}` variables; an empty pattern, a leading `/`
//!   (absolute), or an empty component (`a//b`, trailing `/`) is refused;
//! - variables: `${namespace}`, `${pvc}`, `${pv}`, `${annotations.KEY}` (an annotation of the claim;
//!   missing = error) and `${labels.KEY}`; any other name is refused;
//! - each expanded component must be 1-255 bytes, must not start with `.` (so no `.`, `..`, and
//!   never the provisioner's own `.archive`), and must not contain `/`, NUL or control characters.
//!   Values are not rewritten: a bad value is an error the user sees as an Event, not a surprise
//!   directory name.
//! - the whole relative path is at most [`MAX_PATH`] bytes.

use std::collections::BTreeMap;

/// The default pattern: one directory per claim, named after its namespace, claim and volume.
pub const DEFAULT_PATTERN: &str = "${namespace}-${pvc}-${pv}";
pub use crate::relpath::{MAX_COMPONENT, MAX_PATH, PathError, RelPath, check_component};

/// What a pattern's variables expand to for one claim.
#[derive(Debug, Clone, Default)]
pub struct Vars<'a> {
    pub namespace: &'a str,
    pub pvc: &'a str,
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
        "namespace" | "pvc" | "pv" => Ok(()),
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

/// Expands `pattern` for one claim into a checked relative path.
pub fn expand(pattern: &str, vars: &Vars<'_>) -> Result<RelPath, PathError> {
    let mut out = Vec::new();
    for comp in parse(pattern)? {
        let mut s = String::new();
        for p in comp {
            match p {
                Piece::Lit(l) => s.push_str(l),
                Piece::Var(v) => {
                    known_var(v)?;
                    let val = match v {
                        "namespace" => Some(vars.namespace),
                        "pvc" => Some(vars.pvc),
                        "pv" => Some(vars.pv),
                        _ => {
                            let (map, key) = match v.strip_prefix("annotations.") {
                                Some(k) => (vars.annotations, k),
                                None => (vars.labels, v.strip_prefix("labels.").unwrap_or(v)),
                            };
                            map.and_then(|m| m.get(key)).map(String::as_str)
                        }
                    };
                    s.push_str(val.ok_or_else(|| PathError::Missing(v.to_string()))?);
                }
            }
        }
        check_component(&s)?;
        out.push(s);
    }
    let rel = RelPath::from_checked(out);
    let len = rel.to_string().len();
    if len > MAX_PATH {
        return Err(PathError::TooLong(len));
    }
    Ok(rel)
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
            pv: "pvc-1234",
            annotations: Some(ann),
            labels: None,
        }
    }

    #[test]
    fn default_pattern_expands() {
        let a = BTreeMap::new();
        let p = expand(DEFAULT_PATTERN, &vars(&a)).unwrap();
        assert_eq!(p.to_string(), "ns-data-pvc-1234");
        assert_eq!(p.leaf(), "ns-data-pvc-1234");
        assert_eq!(
            p.under(Path::new("/r")),
            PathBuf::from("/r/ns-data-pvc-1234")
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
        .unwrap();
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
            ("", "EmptyComponent"),
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
            let v = Vars { namespace: "ns", pvc: &pvc, pv: "pv", annotations: Some(&a), labels: None };
            if let Ok(rel) = expand(&pattern, &v) {
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
