//! The Kubernetes PVC provisioner: a claim of a StorageClass whose provisioner is ours becomes a
//! directory on MooseFS (with quota, goal, trash time, owner and mode) and a hostPath PV bound to
//! the claim; a released PV's directory is archived (or deleted, or kept); a bigger request raises
//! the quota. It runs on the leader only: the agent's host thread turns the core's
//! `StartProvisioner` / `StopProvisioner` into a `leadership` watch channel, and
//! [`run_while_leader`] starts the controllers on the runtime when it reads `Some(epoch)` and
//! aborts them when it reads `None`. Every step is idempotent (see [`controller`]), so an abort at
//! any point leaves nothing half-written that the next leader does not finish.
//!
//! - [`path`]: `pathPattern` expansion and sanitising (pure);
//! - [`params`]: StorageClass parameters and quantities (pure);
//! - [`fs`]: the [`fs::MooseFs`] trait and its real implementation on a MooseFS mount;
//! - [`in_flight`]: directories being provisioned, so concurrent claims never nest;
//! - [`controller`]: the kube-rs watch + reconcile loops.

pub mod controller;
pub mod fs;
pub mod in_flight;
pub mod params;
pub mod path;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;
use tracing::{Instrument, error, info};

pub use crate::config::rack::{DEFAULT_KUBECONFIG, DEFAULT_PROVISIONER_NAME as DEFAULT_NAME};

/// Everything the provisioner needs, resolved from the rack file (or the command line).
#[derive(Debug, Clone)]
pub struct ProvisionerConfig {
    pub name: String,
    pub kubeconfig: PathBuf,
    /// This host's MooseFS mount (the root is created under it once it is mounted).
    pub mount: PathBuf,
    /// The volumes' root on this host (under its MooseFS mount).
    pub root: PathBuf,
    /// The same root as pods on the workers see it (PV hostPaths start here).
    pub host_root: PathBuf,
    /// This node's name (Events, logs).
    pub instance: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    // The cause is in the message only (a field named `cause`, not `source`), so `{:#}` does
    // not print it twice.
    #[error("reading kubeconfig {path}: {cause}")]
    Kubeconfig {
        path: PathBuf,
        cause: kube::config::KubeconfigError,
    },
    #[error("kubeconfig {path}: {cause}")]
    Client { path: PathBuf, cause: kube::Error },
    #[error("the volumes' root {0} is not a directory (is MooseFS mounted?)")]
    Root(PathBuf),
}

/// A client for the cluster of `kubeconfig` (its current context).
pub async fn client(kubeconfig: &Path) -> Result<Client, StartError> {
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|cause| StartError::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        cause,
    })?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|cause| StartError::Kubeconfig {
            path: kubeconfig.to_path_buf(),
            cause,
        })?;
    Client::try_from(cfg).map_err(|cause| StartError::Client {
        path: kubeconfig.to_path_buf(),
        cause,
    })
}

/// Runs the controllers with `fs` until aborted (or the watches end).
pub async fn run_with(client: Client, cfg: &ProvisionerConfig, fs: Arc<dyn fs::MooseFs>) {
    let ctx = Arc::new(controller::Ctx {
        client,
        settings: controller::Settings {
            name: cfg.name.clone(),
            host_root: cfg.host_root.clone(),
            instance: cfg.instance.clone(),
        },
        fs,
        in_flight: in_flight::InFlight::default(),
    });
    controller::run(ctx).await;
}

/// Connects and runs the controllers on the real MooseFS root; retries every 5 s while the
/// kubeconfig or the root is not usable yet. Returns only when aborted.
pub async fn run(cfg: ProvisionerConfig) {
    loop {
        let started = async {
            if !cfg.root.is_dir() {
                // Only on MooseFS: an unmounted mount point is a directory of the SD card.
                if !is_fuse(&cfg.mount) || std::fs::create_dir_all(&cfg.root).is_err() {
                    return Err(StartError::Root(cfg.root.clone()));
                }
            }
            client(&cfg.kubeconfig).await
        }
        .await;
        match started {
            Ok(c) => {
                info!(
                    name = %cfg.name,
                    root = %cfg.root.display(),
                    "PVC provisioner running"
                );
                run_with(c, &cfg, Arc::new(fs::MfsRoot::new(&cfg.root))).await;
                error!("PVC provisioner: the watches ended; restarting in 5 s");
            }
            Err(e) => error!("PVC provisioner cannot start: {e}; retrying in 5 s"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Whether `path` is a FUSE mount (mfsmount).
fn is_fuse(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::FUSE_SUPER_MAGIC)
}

/// Runs `task(epoch)` while `leadership` reads `Some(epoch)`, aborting it when it reads `None`
/// (or the sender is gone). Returns when the sender is dropped.
pub async fn while_leader<F, Fut>(mut leadership: watch::Receiver<Option<u64>>, task: F)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut running: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let epoch = *leadership.borrow_and_update();
        match (epoch, running.is_some()) {
            (Some(e), false) => {
                info!(epoch = e, "leader: starting the PVC provisioner");
                let span = tracing::info_span!("provisioner", epoch = e);
                running = Some(tokio::spawn(task(e).instrument(span)));
            }
            (None, true) => {
                info!("not leader: stopping the PVC provisioner");
                if let Some(t) = running.take() {
                    t.abort();
                    let _ = t.await;
                }
            }
            _ => {}
        }
        if leadership.changed().await.is_err() {
            if let Some(t) = running.take() {
                t.abort();
                let _ = t.await;
            }
            return;
        }
    }
}

/// The agent's provisioner: [`run`] while this node holds the lease.
pub async fn run_while_leader(leadership: watch::Receiver<Option<u64>>, cfg: ProvisionerConfig) {
    while_leader(leadership, move |_epoch| run(cfg.clone())).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Starts on `Some`, aborts on `None`, starts again, and stops when the sender goes.
    #[tokio::test]
    async fn runs_only_while_leader() {
        let (tx, rx) = watch::channel(None);
        let started = Arc::new(AtomicUsize::new(0));
        let alive = Arc::new(AtomicUsize::new(0));
        struct Alive(Arc<AtomicUsize>);
        impl Drop for Alive {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let (s, a) = (started.clone(), alive.clone());
        let sup = tokio::spawn(while_leader(rx, move |_| {
            let (s, a) = (s.clone(), a.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                a.fetch_add(1, Ordering::SeqCst);
                let _guard = Alive(a);
                std::future::pending::<()>().await;
            }
        }));
        let settle = || tokio::time::sleep(Duration::from_millis(50));
        settle().await;
        assert_eq!(
            started.load(Ordering::SeqCst),
            0,
            "started without the lease"
        );
        tx.send_replace(Some(3));
        settle().await;
        assert_eq!(alive.load(Ordering::SeqCst), 1);
        tx.send_replace(Some(3));
        settle().await;
        assert_eq!(started.load(Ordering::SeqCst), 1, "started twice");
        tx.send_replace(None);
        settle().await;
        assert_eq!(
            alive.load(Ordering::SeqCst),
            0,
            "still running after losing the lease"
        );
        tx.send_replace(Some(4));
        settle().await;
        assert_eq!(started.load(Ordering::SeqCst), 2);
        drop(tx);
        tokio::time::timeout(Duration::from_secs(5), sup)
            .await
            .expect("supervisor ends with its sender")
            .unwrap();
        assert_eq!(alive.load(Ordering::SeqCst), 0);
    }
}
