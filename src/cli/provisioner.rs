//! `mooseherd provisioner`: the Kubernetes PVC provisioner in the foreground.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct ProvisionerArgs {
    /// kubeconfig of the provisioner's ServiceAccount (deploy/kubeconfig.sh writes one).
    #[arg(long, default_value = mooseherd::provisioner::DEFAULT_KUBECONFIG)]
    kubeconfig: PathBuf,
    /// Where volumes are created on this host: a directory on the MooseFS mount.
    #[arg(long)]
    root: PathBuf,
    /// The same directory as pods on the workers see it (default: ROOT).
    #[arg(long)]
    host_root: Option<PathBuf>,
    /// The provisioner name StorageClasses give.
    #[arg(long, default_value = mooseherd::provisioner::DEFAULT_NAME)]
    name: String,
}

/// Runs the provisioner until Ctrl-C.
pub fn run(a: ProvisionerArgs) -> anyhow::Result<ExitCode> {
    let root = std::path::absolute(&a.root).context("--root")?;
    let cfg = mooseherd::provisioner::ProvisionerConfig {
        name: a.name,
        kubeconfig: a.kubeconfig,
        mount: root.clone(),
        host_root: a.host_root.unwrap_or_else(|| root.clone()),
        root,
        instance: nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "provisioner".into()),
    };
    super::runtime()?.block_on(async {
        tokio::select! {
            () = mooseherd::provisioner::run(cfg) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    });
    Ok(ExitCode::SUCCESS)
}
