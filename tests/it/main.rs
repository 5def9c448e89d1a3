//! The integration tests: one test binary (`cargo nextest run --test it`), one module per area.
//! Tests are named `MODULE::TEST`, so nextest filters select areas, e.g.
//! `cargo nextest run --test it -E 'test(/^provisioner::/)'`.
//!
//! A test whose environment is missing (root, a tool, a Kubernetes control plane) prints
//! `SKIPPED: why` and passes, except under `MOOSEHERD_NO_SKIP=1` (scripts/test.sh sets it), where
//! it fails: see `harness::skip`.

#[macro_use]
mod harness;

mod agents;
mod config_errors;
mod drbd_cli;
mod hostile_input;
mod image_scripts;
// The lab drills run on x86_64 only (an emulated agent would only slow them).
#[cfg(target_arch = "x86_64")]
mod lab;
mod provisioner;
mod readme_reference;
mod signals;
mod systemd_unit;
mod visibility;
