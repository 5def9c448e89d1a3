//! `bench provision`: PVC created -> Bound latency through the real provisioner, a real
//! kube-apiserver (its PV controller binds) and a real MooseFS mount. The provisioner runs in
//! this process on the given root; the claims are created at once, and a watch records when each
//! is first seen Bound.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::provisioner::fs::{MfsRoot, MooseFs};
use crate::provisioner::{ProvisionerConfig, run_with};

#[derive(Debug, Clone)]
pub struct ProvisionBenchOptions {
    pub pvcs: usize,
    pub kubeconfig: PathBuf,
    /// A directory on MooseFS the volumes go under (created, and removed afterwards).
    pub root: PathBuf,
    /// How long to wait for all claims.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProvisionReport {
    pub pvcs: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// First create sent -> last claim Bound.
    pub total_ms: f64,
    /// The provisioner's own share: claim created -> its PV exists (the rest is the PV
    /// controller of kube-controller-manager binding the pair).
    pub pv_p50_ms: f64,
    pub pv_p99_ms: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionBenchError {
    #[error("{0}")]
    Start(#[from] crate::provisioner::StartError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("creating {0}: {1}")]
    Root(PathBuf, std::io::Error),
    #[error("only {bound} of {pvcs} claims were Bound within {timeout:?}")]
    Timeout {
        bound: usize,
        pvcs: usize,
        timeout: Duration,
    },
}

fn json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, kube::Error> {
    serde_json::from_value(v).map_err(kube::Error::SerdeError)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    crate::percentile::nearest_rank(sorted, p).unwrap_or(0.0)
}

/// Runs the benchmark; cleans up its namespace, StorageClass, PVs and directories.
pub async fn provision(o: &ProvisionBenchOptions) -> Result<ProvisionReport, ProvisionBenchError> {
    let client = crate::provisioner::client(&o.kubeconfig).await?;
    let tag = format!("mh-bench-{}", std::process::id());
    std::fs::create_dir_all(&o.root).map_err(|e| ProvisionBenchError::Root(o.root.clone(), e))?;
    let cfg = ProvisionerConfig {
        name: format!("bench.mooseherd.io/{tag}"),
        kubeconfig: o.kubeconfig.clone(),
        mount: o.root.clone(),
        root: o.root.clone(),
        host_root: o.root.clone(),
        instance: "bench".into(),
    };
    let result = measure(&client, &cfg, &tag, o).await;
    cleanup(&client, &cfg, &tag).await;
    let _ = std::fs::remove_dir_all(&o.root);
    result
}

async fn measure(
    client: &Client,
    cfg: &ProvisionerConfig,
    tag: &str,
    o: &ProvisionBenchOptions,
) -> Result<ProvisionReport, ProvisionBenchError> {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &json::<Namespace>(serde_json::json!({"metadata": {"name": tag}}))?,
        )
        .await?;
    Api::<StorageClass>::all(client.clone())
        .create(
            &PostParams::default(),
            &json(serde_json::json!({"metadata": {"name": tag}, "provisioner": cfg.name}))?,
        )
        .await?;
    let fs: Arc<dyn MooseFs> = Arc::new(MfsRoot::new(&cfg.root));
    let (c2, cfg2) = (client.clone(), cfg.clone());
    let controller = tokio::spawn(async move { run_with(c2, &cfg2, fs).await });
    // Let the controllers' watches start before the clock does.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), tag);
    let mut bound_at: BTreeMap<String, Instant> = BTreeMap::new();
    let mut events = watcher(claims.clone(), watcher::Config::default()).boxed();
    let pv_api: Api<PersistentVolume> = Api::all(client.clone());
    let mut pv_events = watcher(pv_api, watcher::Config::default()).boxed();
    let mut pv_at: BTreeMap<String, Instant> = BTreeMap::new();
    let start = Instant::now();
    let mut created_at: BTreeMap<String, Instant> = BTreeMap::new();
    let creates = (0..o.pvcs).map(|i| {
        let claims = claims.clone();
        let name = format!("c{i}");
        let pvc = json::<PersistentVolumeClaim>(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"storageClassName": tag, "accessModes": ["ReadWriteMany"],
                     "resources": {"requests": {"storage": "1Gi"}}}
        }));
        async move {
            let t = Instant::now();
            claims.create(&PostParams::default(), &pvc?).await?;
            Ok::<_, kube::Error>((name, t))
        }
    });
    for r in futures_util::future::join_all(creates).await {
        let (n, t) = r?;
        created_at.insert(n, t);
    }
    let deadline = tokio::time::Instant::now() + o.timeout;
    while bound_at.len() < o.pvcs {
        let next = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                e = events.next() => (e, None),
                p = pv_events.next() => (None, p),
            }
        })
        .await;
        let ev = match next {
            Ok((Some(Ok(ev)), _)) => ev,
            Ok((None, Some(Ok(watcher::Event::Apply(pv) | watcher::Event::InitApply(pv))))) => {
                if let Some(c) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref())
                    && c.namespace.as_deref() == Some(tag)
                    && let Some(n) = &c.name
                {
                    pv_at.entry(n.clone()).or_insert_with(Instant::now);
                }
                continue;
            }
            Ok((None, Some(_))) | Ok((Some(Err(_)), _)) => continue,
            Ok((None, None)) | Err(_) => break,
        };
        let objs: Vec<PersistentVolumeClaim> = match ev {
            watcher::Event::Apply(c) | watcher::Event::InitApply(c) => vec![c],
            _ => vec![],
        };
        for c in objs {
            if c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") {
                bound_at.entry(c.name_any()).or_insert_with(Instant::now);
            }
        }
    }
    controller.abort();
    if bound_at.len() < o.pvcs {
        return Err(ProvisionBenchError::Timeout {
            bound: bound_at.len(),
            pvcs: o.pvcs,
            timeout: o.timeout,
        });
    }
    let mut ms: Vec<f64> = bound_at
        .iter()
        .filter_map(|(n, b)| {
            created_at
                .get(n)
                .map(|c| b.duration_since(*c).as_secs_f64() * 1e3)
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let last = bound_at.values().max().copied().unwrap_or(start);
    let mut pv_ms: Vec<f64> = pv_at
        .iter()
        .filter_map(|(n, p)| {
            created_at
                .get(n)
                .map(|c| p.duration_since(*c).as_secs_f64() * 1e3)
        })
        .collect();
    pv_ms.sort_by(f64::total_cmp);
    Ok(ProvisionReport {
        pvcs: o.pvcs,
        p50_ms: percentile(&ms, 50.0),
        p99_ms: percentile(&ms, 99.0),
        max_ms: ms.last().copied().unwrap_or(0.0),
        total_ms: last.duration_since(start).as_secs_f64() * 1e3,
        pv_p50_ms: percentile(&pv_ms, 50.0),
        pv_p99_ms: percentile(&pv_ms, 99.0),
    })
}

async fn cleanup(client: &Client, cfg: &ProvisionerConfig, tag: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(tag, &DeleteParams::default())
        .await;
    let _ = Api::<StorageClass>::all(client.clone())
        .delete(tag, &DeleteParams::default())
        .await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    if let Ok(list) = pvs.list(&ListParams::default()).await {
        for pv in list.items {
            if pv
                .annotations()
                .get(crate::provisioner::controller::ANN_PROVISIONED_BY)
                == Some(&cfg.name)
            {
                let _ = pvs.delete(&pv.name_any(), &DeleteParams::default()).await;
            }
        }
    }
}

/// The report as a table.
pub fn print_table(r: &ProvisionReport) {
    println!("{:<28} {:>10}", "PVC created -> Bound", "");
    println!("{:<28} {:>10}", "claims", r.pvcs);
    println!("{:<28} {:>10.1}", "p50 (ms)", r.p50_ms);
    println!("{:<28} {:>10.1}", "p99 (ms)", r.p99_ms);
    println!("{:<28} {:>10.1}", "max (ms)", r.max_ms);
    println!("{:<28} {:>10.1}", "all Bound after (ms)", r.total_ms);
    println!("{:<28} {:>10.1}", "PVC -> PV created p50 (ms)", r.pv_p50_ms);
    println!("{:<28} {:>10.1}", "PVC -> PV created p99 (ms)", r.pv_p99_ms);
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
