//! The README's configuration reference documents every key the schema accepts.

use mooseherd::config::rack::{CLUSTER_KEYS, DRBD_KEYS, NODE_KEYS, PROVISIONER_KEYS};

#[test]
fn every_schema_key_is_documented() {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
    let section = |title: &str| {
        let start = readme
            .find(title)
            .unwrap_or_else(|| panic!("README lacks {title}"));
        let rest = &readme[start + title.len()..];
        let end = rest
            .find("\n### ")
            .or_else(|| rest.find("\n## "))
            .unwrap_or(rest.len());
        rest[..end].to_string()
    };
    for (title, keys) in [
        ("### `[cluster]`", CLUSTER_KEYS),
        ("### `[drbd]`", DRBD_KEYS),
        ("### `[[node]]`", NODE_KEYS),
        ("### `[provisioner]`", PROVISIONER_KEYS),
    ] {
        let text = section(title);
        for key in keys {
            assert!(
                text.contains(&format!("| `{key}` |")),
                "README {title} does not document `{key}`"
            );
        }
    }
}
