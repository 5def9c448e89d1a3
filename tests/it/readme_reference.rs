//! The rack-file reference (docs/rack-file.md, linked from the README) documents every key the
//! schema accepts, and the README's configuration keys exist.

use mooseherd::config::rack::{CLUSTER_KEYS, DRBD_KEYS, NODE_KEYS, PROVISIONER_KEYS};

const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
const REFERENCE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rack-file.md"));

#[test]
fn every_schema_key_is_documented() {
    assert!(
        README.contains("(docs/rack-file.md)"),
        "the README links the rack-file reference"
    );
    let section = |title: &str| {
        let start = REFERENCE
            .find(title)
            .unwrap_or_else(|| panic!("docs/rack-file.md lacks {title}"));
        let rest = &REFERENCE[start + title.len()..];
        let end = rest.find("\n## ").unwrap_or(rest.len());
        rest[..end].to_string()
    };
    for (title, keys) in [
        ("## `[cluster]`", CLUSTER_KEYS),
        ("## `[drbd]`", DRBD_KEYS),
        ("## `[[node]]`", NODE_KEYS),
        ("## `[provisioner]`", PROVISIONER_KEYS),
    ] {
        let text = section(title);
        for key in keys {
            assert!(
                text.contains(&format!("| `{key}` |")),
                "docs/rack-file.md {title} does not document `{key}`"
            );
        }
    }
}

/// Every `key = ` the README shows in a TOML snippet is a key of the schema.
#[test]
fn readme_rack_snippets_use_real_keys() {
    let all: Vec<&str> = [CLUSTER_KEYS, DRBD_KEYS, NODE_KEYS, PROVISIONER_KEYS].concat();
    let mut in_toml = false;
    for line in README.lines() {
        if line.starts_with("```") {
            in_toml = line == "```toml";
            continue;
        }
        if !in_toml || line.starts_with('[') || line.starts_with('#') {
            continue;
        }
        if let Some((key, _)) = line.split_once(" = ") {
            assert!(
                all.contains(&key.trim()),
                "README shows an unknown rack key `{}`",
                key.trim()
            );
        }
    }
}
