//! Records the git commit and the target triple for `mooseherd version`.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MOOSEHERD_GIT_COMMIT");
    if let Ok(commit) = std::env::var("MOOSEHERD_GIT_COMMIT") {
        println!("cargo:rustc-env=MOOSEHERD_GIT_COMMIT={commit}");
        println!(
            "cargo:rustc-env=MOOSEHERD_TARGET={}",
            std::env::var("TARGET").unwrap_or_default()
        );
        return;
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    println!(
        "cargo:rustc-env=MOOSEHERD_GIT_COMMIT={commit}{}",
        if dirty { "-dirty" } else { "" }
    );
    println!(
        "cargo:rustc-env=MOOSEHERD_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
}
