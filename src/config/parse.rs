//! TOML to typed structs, reporting every unknown key with its place in the file.
//!
//! serde stops at the first type error, but unknown keys are collected all at once (through
//! `serde_ignored`) and mapped back to their line and column, so a person fixing a rack file sees
//! every misspelt key in one run.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Diagnostics, suggestion};

/// Parses `src` into `T`. Syntax and type errors and unknown keys become diagnostics; `None` is
/// returned when nothing usable could be read. `known_keys` gives, for a path of table names
/// (e.g. `["cluster"]`, `["node"]`), the keys valid there, to suggest a spelling.
pub fn parse_toml<T: DeserializeOwned>(
    src: &str,
    diags: &mut Diagnostics<'_>,
    known_keys: &dyn Fn(&[String]) -> &'static [&'static str],
) -> Option<T> {
    let doc = match DeTable::parse(src) {
        Ok(doc) => doc,
        Err(e) => {
            diags.error(
                e.span().unwrap_or(0..0),
                format!("invalid TOML: {}", first_line(e.message())),
            );
            return None;
        }
    };
    let mut unknown: Vec<Vec<PathPart>> = Vec::new();
    let de = toml::Deserializer::from(doc.clone());
    let parsed: Result<T, _> = serde_ignored::deserialize(de, |path| {
        unknown.push(flatten(&path));
    });
    for path in unknown {
        let (tables, key) = match path.split_last() {
            Some((PathPart::Key(k), rest)) => (rest, k.clone()),
            _ => continue,
        };
        let span = key_span(doc.get_ref(), &path).unwrap_or(0..0);
        let table_names: Vec<String> = tables
            .iter()
            .filter_map(|p| match p {
                PathPart::Key(k) => Some(k.clone()),
                PathPart::Index(_) => None,
            })
            .collect();
        let known = known_keys(&table_names);
        let place = if table_names.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in [{}]", table_names.join("."))
        };
        let valid = if known.is_empty() {
            "no keys are valid here".to_string()
        } else {
            format!("valid keys: {}", known.join(", "))
        };
        diags.error(
            span,
            format!(
                "unknown key `{key}` {place} ({valid}){}",
                suggestion(&key, known)
            ),
        );
    }
    match parsed {
        Ok(v) => Some(v),
        Err(e) => {
            diags.error(
                e.span().unwrap_or(0..0),
                first_line(e.message()).to_string(),
            );
            None
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[derive(Debug, Clone)]
enum PathPart {
    Key(String),
    Index(usize),
}

fn flatten(path: &serde_ignored::Path<'_>) -> Vec<PathPart> {
    use serde_ignored::Path;
    let mut out = Vec::new();
    let mut cur = path;
    loop {
        match cur {
            Path::Root => break,
            Path::Seq { parent, index } => {
                out.push(PathPart::Index(*index));
                cur = parent;
            }
            Path::Map { parent, key } => {
                // Spanned<T> wraps its value in a private map: not part of the user's path.
                if !key.starts_with("$__") {
                    out.push(PathPart::Key(key.clone()));
                }
                cur = parent;
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => cur = parent,
        }
    }
    out.reverse();
    out
}

fn key_span(root: &DeTable<'_>, path: &[PathPart]) -> Option<Range<usize>> {
    let (last, parents) = path.split_last()?;
    let mut table = root;
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for part in parents {
        let v = match (part, value) {
            (PathPart::Key(k), None) => table.get(k.as_str())?,
            (PathPart::Key(k), Some(v)) => v.get_ref().as_table()?.get(k.as_str())?,
            (PathPart::Index(i), Some(v)) => v.get_ref().as_array()?.get(*i)?,
            (PathPart::Index(_), None) => return None,
        };
        value = Some(v);
    }
    if let Some(v) = value {
        table = v.get_ref().as_table()?;
    }
    let PathPart::Key(k) = last else { return None };
    table
        .iter()
        .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
        .map(|(key, _)| key.span())
}
