//! The PVC provisioner against a real kube-apiserver 1.20 + kube-controller-manager (whose PV
//! controller binds the claims) and a real MooseFS mount, both started by
//! `scripts/kube.sh start DIR` (scripts/test.sh does it). The tests read `DIR/env`:
//!
//!   MOOSEHERD_TEST_KUBECONFIG=DIR/kubeconfig MOOSEHERD_TEST_MFS=DIR/mfs \
//!     cargo nextest run --test it -E 'test(/^provisioner::/)'
//!
//! Without those variables each test skips (`harness::skip`: it fails under
//! `MOOSEHERD_NO_SKIP=1`; scripts/test.sh runs these tests in a step of their own). Each test has its own namespace, StorageClass, provisioner name and directory under the
//! mount, so they run in parallel; each cleans up through a Drop guard, also on failure. Lines
//! starting with `TIMING` are measured figures (`--nocapture`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Namespace, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mooseherd::provisioner::controller::{ANN_PATH, pv_name};
use mooseherd::provisioner::fs::{Attrs, MfsRoot, MooseFs};
use mooseherd::provisioner::params::{Quota, QuotaKind, QuotaMode};
use mooseherd::provisioner::path::RelPath;
use mooseherd::provisioner::{ProvisionerConfig, run_with, while_leader};
use tokio::sync::watch;

const BOUND: Duration = Duration::from_secs(20);

struct Env {
    kubeconfig: PathBuf,
    mount: PathBuf,
}

fn env() -> Option<Env> {
    let [kubeconfig, mount] = crate::harness::require_env(
        &["MOOSEHERD_TEST_KUBECONFIG", "MOOSEHERD_TEST_MFS"],
        "scripts/kube.sh start DIR writes them to DIR/env",
    )?
    .try_into()
    .ok()?;
    Some(Env {
        kubeconfig: kubeconfig.into(),
        mount: mount.into(),
    })
}

/// One test's world: namespace, provisioner name, root directory; removed on drop.
struct World {
    client: Client,
    /// The provisioner's client: the ServiceAccount of deploy/rbac.yaml (impersonated), so every
    /// test also checks that the least-privilege ClusterRole is enough.
    sa_client: Client,
    ns: String,
    name: String,
    root: PathBuf,
    classes: Vec<String>,
    kubeconfig: PathBuf,
}

impl World {
    async fn new(e: &Env, tag: &str) -> World {
        let client = mooseherd::provisioner::client(&e.kubeconfig)
            .await
            .expect("kube client");
        let ns = format!("mh-{tag}-{}", std::process::id());
        let nss: Api<Namespace> = Api::all(client.clone());
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("create namespace");
        let root = e.mount.join(&ns);
        std::fs::create_dir_all(&root).unwrap();
        apply_rbac(&client).await;
        let sa_client = impersonating(
            &e.kubeconfig,
            "system:serviceaccount:mooseherd:mooseherd-provisioner",
        )
        .await;
        World {
            client,
            sa_client,
            name: format!("test.mooseherd.io/{ns}"),
            ns,
            root,
            classes: Vec::new(),
            kubeconfig: e.kubeconfig.clone(),
        }
    }

    fn config(&self) -> ProvisionerConfig {
        ProvisionerConfig {
            name: self.name.clone(),
            kubeconfig: PathBuf::new(),
            mount: self.root.clone(),
            root: self.root.clone(),
            host_root: PathBuf::from("/mnt/mfs").join(&self.ns),
            instance: "test".into(),
        }
    }

    /// The provisioner (as the leader would run it), until the handle is aborted.
    fn start(&self) -> tokio::task::JoinHandle<()> {
        let (c, cfg) = (self.sa_client.clone(), self.config());
        let fs: Arc<dyn MooseFs> = Arc::new(MfsRoot::new(&self.root));
        tokio::spawn(async move { run_with(c, &cfg, fs).await })
    }

    async fn class(&mut self, suffix: &str, extra: serde_json::Value) -> String {
        let name = format!("{}-{suffix}", self.ns);
        let mut sc = serde_json::json!({
            "metadata": {"name": name},
            "provisioner": self.name,
        });
        if let (Some(o), Some(x)) = (sc.as_object_mut(), extra.as_object()) {
            for (k, v) in x {
                o.insert(k.clone(), v.clone());
            }
        }
        let sc: StorageClass = serde_json::from_value(sc).unwrap();
        Api::<StorageClass>::all(self.client.clone())
            .create(&PostParams::default(), &sc)
            .await
            .expect("create StorageClass");
        self.classes.push(name.clone());
        name
    }

    fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn claim(
        &self,
        name: &str,
        class: &str,
        size: &str,
        extra: serde_json::Value,
    ) -> PersistentVolumeClaim {
        let mut spec = serde_json::json!({
            "storageClassName": class,
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": size}},
        });
        if let (Some(o), Some(x)) = (
            spec.as_object_mut(),
            extra.get("spec").and_then(|s| s.as_object()),
        ) {
            for (k, v) in x {
                o.insert(k.clone(), v.clone());
            }
        }
        let pvc = serde_json::json!({
            "metadata": {"name": name, "annotations": extra.get("annotations").cloned().unwrap_or(serde_json::json!({}))},
            "spec": spec,
        });
        self.claims()
            .create(
                &PostParams::default(),
                &serde_json::from_value(pvc).unwrap(),
            )
            .await
            .expect("create PVC")
    }

    /// Waits (bounded) until the claim is Bound; returns it and the time since `since`.
    async fn bound(&self, name: &str, since: Instant) -> (PersistentVolumeClaim, Duration) {
        let end = Instant::now() + BOUND;
        loop {
            let c = self.claims().get(name).await.expect("get PVC");
            if c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") {
                return (c, since.elapsed());
            }
            assert!(
                Instant::now() < end,
                "PVC {name} not Bound within {BOUND:?}: {:?}",
                c.status
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn pv(&self, name: &str) -> Option<PersistentVolume> {
        Api::<PersistentVolume>::all(self.client.clone())
            .get_opt(name)
            .await
            .expect("get PV")
    }

    /// Waits (bounded) for an Event with `reason` about the object `name`.
    async fn event(&self, ns: &str, name: &str, reason: &str) -> Event {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let end = Instant::now() + BOUND;
        loop {
            let list = api
                .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
                .await
                .expect("list events");
            if let Some(e) = list
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some(reason))
            {
                return e;
            }
            assert!(Instant::now() < end, "no {reason} event for {name}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn until(&self, what: &str, mut f: impl AsyncFnMut() -> bool) {
        let end = Instant::now() + BOUND;
        while !f().await {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Entries directly under the root (sorted), but the provisioner's own (`.archive`,
    /// `.owners`).
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.root)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let (kc, ns, classes) = (
            self.kubeconfig.clone(),
            self.ns.clone(),
            self.classes.clone(),
        );
        let name = self.name.clone();
        // Drop runs on the test's runtime, which is blocked while it waits: clean up on a thread
        // with a runtime and a client of its own (a client's connection lives on its runtime).
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let Ok(client) = mooseherd::provisioner::client(&kc).await else {
                    return;
                };
                let _ = Api::<Namespace>::all(client.clone())
                    .delete(&ns, &DeleteParams::default())
                    .await;
                for c in classes {
                    let _ = Api::<StorageClass>::all(client.clone())
                        .delete(&c, &DeleteParams::default())
                        .await;
                }
                let pvs = Api::<PersistentVolume>::all(client.clone());
                if let Ok(l) = pvs.list(&ListParams::default()).await {
                    for pv in l.items {
                        if pv.annotations().get("pv.kubernetes.io/provisioned-by") == Some(&name) {
                            let _ = pvs.delete(&pv.name_any(), &DeleteParams::default()).await;
                        }
                    }
                }
            });
        })
        .join();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Creates the objects of deploy/rbac.yaml (already there = fine).
async fn apply_rbac(client: &Client) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/rbac.yaml"
    )))
    .expect("deploy/rbac.yaml");
    for d in docs {
        let kind = d["kind"].as_str().unwrap_or_default().to_string();
        let pp = PostParams::default();
        let r = match kind.as_str() {
            "Namespace" => Api::<Namespace>::all(client.clone())
                .create(&pp, &serde_json::from_value(d).unwrap())
                .await
                .map(|_| ()),
            "ServiceAccount" => Api::<ServiceAccount>::namespaced(client.clone(), "mooseherd")
                .create(&pp, &serde_json::from_value(d).unwrap())
                .await
                .map(|_| ()),
            "ClusterRole" => Api::<ClusterRole>::all(client.clone())
                .create(&pp, &serde_json::from_value(d).unwrap())
                .await
                .map(|_| ()),
            "ClusterRoleBinding" => Api::<ClusterRoleBinding>::all(client.clone())
                .create(&pp, &serde_json::from_value(d).unwrap())
                .await
                .map(|_| ()),
            other => panic!("unexpected kind {other} in deploy/rbac.yaml"),
        };
        match r {
            Ok(()) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("creating {kind}: {e}"),
        }
    }
}

/// A client of the admin kubeconfig acting as `user`.
async fn impersonating(kubeconfig: &Path, user: &str) -> Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let mut kc = Kubeconfig::read_from(kubeconfig).unwrap();
    for a in &mut kc.auth_infos {
        if let Some(info) = a.auth_info.as_mut() {
            info.impersonate = Some(user.to_string());
            info.impersonate_groups = Some(vec![
                "system:serviceaccounts".into(),
                "system:authenticated".into(),
            ]);
        }
    }
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

/// The example StorageClasses are valid objects with parameters the provisioner accepts.
#[test]
fn deploy_storage_classes_are_valid() {
    let docs: Vec<StorageClass> = serde_saphyr::from_multiple(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/storageclass.yaml"
    )))
    .expect("deploy/storageclass.yaml");
    assert!(docs.len() >= 3);
    for sc in docs {
        assert_eq!(sc.provisioner, mooseherd::provisioner::DEFAULT_NAME);
        mooseherd::provisioner::params::Params::parse(&sc.parameters.unwrap_or_default())
            .unwrap_or_else(|e| panic!("{}: {e}", sc.metadata.name.unwrap_or_default()));
    }
}

/// Writes and fsyncs: a snapshot copies what the master knows, so data still in the mount's
/// write cache would not be in it.
fn write_synced(p: &Path, data: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::File::create(p).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

fn mfs(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().expect(tool);
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The hard length quota `mfsgetquota -n` shows: `name | current | soft | hard |` in 3.0; 4.x
/// titles its columns and adds `percent` ones, so there the title says where it is.
fn hard_length_quota(dir: &Path) -> Option<u64> {
    let out = mfs("mfsgetquota", &["-n", &dir.to_string_lossy()]);
    let column = out
        .lines()
        .find_map(|l| l.split('|').position(|c| c.trim() == "hard quota"))
        .unwrap_or(3);
    let line = out.lines().find(|l| l.trim_start().starts_with("length"))?;
    line.split('|').nth(column)?.trim().parse().ok()
}

#[tokio::test]
async fn provision_binds_fast_with_quota_owner_mode_and_rwx() {
    let Some(e) = env() else {
        return;
    };
    let mut w = World::new(&e, "bind").await;
    let sc = w
        .class(
            "a",
            serde_json::json!({"parameters": {"goal": "1", "trashTime": "3600", "uid": "1000", "gid": "1000", "mode": "0750"}}),
        )
        .await;
    let task = w.start();
    let mut times = Vec::new();
    for i in 0..5 {
        let t0 = Instant::now();
        let c = w
            .claim(&format!("data{i}"), &sc, "1Gi", serde_json::json!({}))
            .await;
        let (_, took) = w.bound(&c.name_any(), t0).await;
        times.push(took);
    }
    println!(
        "TIMING pvc_to_bound_ms {:?}",
        times.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    let c = w.claims().get("data0").await.unwrap();
    let pv = w.pv(&pv_name(&c.uid().unwrap())).await.expect("PV");
    let rel = pv
        .annotations()
        .get(ANN_PATH)
        .expect("path annotation")
        .clone();
    assert_eq!(rel, format!("{}_data0_{}", w.ns, pv.name_any()));
    let spec = pv.spec.as_ref().unwrap();
    assert_eq!(
        spec.host_path.as_ref().unwrap().path,
        format!("/mnt/mfs/{}/{rel}", w.ns)
    );
    assert_eq!(
        spec.access_modes.as_deref(),
        Some(&["ReadWriteMany".to_string()][..])
    );
    assert_eq!(spec.claim_ref.as_ref().unwrap().uid, c.uid());
    let dir = w.root.join(&rel);
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::metadata(&dir).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.permissions().mode() & 0o7777),
        (1000, 1000, 0o750)
    );
    assert_eq!(hard_length_quota(&dir), Some(1 << 30));
    assert!(mfs("mfsgettrashtime", &[&dir.to_string_lossy()]).contains("3600"));
    w.event(&w.ns, "data0", "ProvisioningSucceeded").await;
    // A pod on any worker can mount it, many at once (RWX): the apiserver accepts the spec.
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), &w.ns);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "user"},
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": "busybox", "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data0"}}]
        }
    }))
    .unwrap();
    w.until(
        "the pod to be accepted (default ServiceAccount)",
        async || pods.create(&PostParams::default(), &pod).await.is_ok(),
    )
    .await;
    task.abort();
}

#[tokio::test]
async fn release_archives_deletes_or_retains() {
    let Some(e) = env() else {
        return;
    };
    let mut w = World::new(&e, "rel").await;
    let archive = w.class("archive", serde_json::json!({})).await;
    let delete = w
        .class(
            "delete",
            serde_json::json!({"parameters": {"onDelete": "delete"}}),
        )
        .await;
    let retain = w
        .class("retain", serde_json::json!({"reclaimPolicy": "Retain"}))
        .await;
    let task = w.start();
    let mut pvs = Vec::new();
    for (n, sc) in [("a", &archive), ("d", &delete), ("r", &retain)] {
        let c = w.claim(n, sc, "10Mi", serde_json::json!({})).await;
        w.bound(n, Instant::now()).await;
        let pv = pv_name(&c.uid().unwrap());
        let rel = w.pv(&pv).await.unwrap().annotations()[ANN_PATH].clone();
        write_synced(&w.root.join(&rel).join("file"), b"precious");
        w.claims()
            .delete(n, &DeleteParams::default())
            .await
            .unwrap();
        pvs.push((n, pv, rel));
    }
    for (n, pv, rel) in &pvs {
        match *n {
            "a" => {
                w.until("PV a deleted", async || w.pv(pv).await.is_none())
                    .await;
                let archived = w.root.join(".archive").join(format!("{rel}.{pv}"));
                assert_eq!(std::fs::read(archived.join("file")).unwrap(), b"precious");
                assert!(!w.root.join(rel).exists());
                w.event("default", pv, "VolumeReleased").await;
            }
            "d" => {
                w.until("PV d deleted", async || w.pv(pv).await.is_none())
                    .await;
                assert!(!w.root.join(rel).exists());
                assert!(!w.root.join(".archive").join(format!("{rel}.{pv}")).exists());
            }
            _ => {
                w.until("PV r Released", async || {
                    w.pv(pv)
                        .await
                        .and_then(|p| p.status)
                        .and_then(|s| s.phase)
                        .as_deref()
                        == Some("Released")
                })
                .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                assert!(w.pv(pv).await.is_some(), "a Retain PV was deleted");
                assert!(w.root.join(rel).join("file").exists());
            }
        }
    }
    // A released PV whose directory vanished: Warning, and the PV stays.
    let c = w
        .claim("gone", &archive, "1Mi", serde_json::json!({}))
        .await;
    w.bound("gone", Instant::now()).await;
    let pv = pv_name(&c.uid().unwrap());
    let rel = w.pv(&pv).await.unwrap().annotations()[ANN_PATH].clone();
    std::fs::remove_dir(w.root.join(&rel)).unwrap();
    w.claims()
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    w.event("default", &pv, "VolumeMissing").await;
    assert!(
        w.pv(&pv).await.is_some(),
        "PV of a missing directory was deleted"
    );
    task.abort();
}

#[tokio::test]
async fn expansion_raises_the_quota() {
    let Some(e) = env() else {
        return;
    };
    let mut w = World::new(&e, "exp").await;
    let sc = w
        .class("x", serde_json::json!({"allowVolumeExpansion": true}))
        .await;
    let task = w.start();
    let c = w.claim("grow", &sc, "1Mi", serde_json::json!({})).await;
    w.bound("grow", Instant::now()).await;
    let pv = pv_name(&c.uid().unwrap());
    let dir = w
        .root
        .join(&w.pv(&pv).await.unwrap().annotations()[ANN_PATH]);
    assert_eq!(hard_length_quota(&dir), Some(1 << 20));
    w.claims()
        .patch(
            "grow",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"resources": {"requests": {"storage": "3Mi"}}}}),
            ),
        )
        .await
        .unwrap();
    w.event(&w.ns, "grow", "VolumeResizeSuccessful").await;
    assert_eq!(hard_length_quota(&dir), Some(3 << 20));
    let cap = |p: &PersistentVolume| {
        p.spec.as_ref().unwrap().capacity.as_ref().unwrap()["storage"]
            .0
            .clone()
    };
    assert_eq!(cap(&w.pv(&pv).await.unwrap()), "3Mi");
    w.until("claim capacity 3Mi", async || {
        w.claims()
            .get("grow")
            .await
            .ok()
            .and_then(|c| c.status)
            .and_then(|s| s.capacity)
            .map(|c| c["storage"].0.clone())
            == Some("3Mi".into())
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn bad_names_and_parameters_give_events_and_no_directory() {
    let Some(e) = env() else {
        return;
    };
    let mut w = World::new(&e, "bad").await;
    let by_ann = w
        .class("ann", serde_json::json!({"parameters": {"pathPattern": "${namespace}/${annotations.example.com/dir}/${pvc}"}}))
        .await;
    let bad_goal = w
        .class("goal", serde_json::json!({"parameters": {"goal": "11"}}))
        .await;
    let typo = w
        .class(
            "typo",
            serde_json::json!({"parameters": {"trashtime": "10"}}),
        )
        .await;
    let task = w.start();
    for (i, v) in ["..", "../../etc", ".hidden", "a/b"].iter().enumerate() {
        let n = format!("evil{i}");
        w.claim(
            &n,
            &by_ann,
            "1Mi",
            serde_json::json!({"annotations": {"example.com/dir": v}}),
        )
        .await;
        let ev = w.event(&w.ns, &n, "InvalidPath").await;
        assert_eq!(ev.type_.as_deref(), Some("Warning"));
    }
    w.claim("goal", &bad_goal, "1Mi", serde_json::json!({}))
        .await;
    let ev = w.event(&w.ns, "goal", "ProvisioningFailed").await;
    assert!(ev.message.unwrap_or_default().contains("goal"));
    w.claim("typo", &typo, "1Mi", serde_json::json!({})).await;
    let ev = w.event(&w.ns, "typo", "ProvisioningFailed").await;
    assert!(ev.message.unwrap_or_default().contains("unknown parameter"));
    // Nothing was created, not even the namespace directory of the nested pattern.
    assert_eq!(w.entries(), Vec::<String>::new());
    // A good value with the same class works.
    w.claim(
        "fine",
        &by_ann,
        "1Mi",
        serde_json::json!({"annotations": {"example.com/dir": "team-a"}}),
    )
    .await;
    w.bound("fine", Instant::now()).await;
    assert!(w.root.join(&w.ns).join("team-a").join("fine").is_dir());
    task.abort();
}

/// No claim gets a directory another claim has, had, or is nested in: patterns that cannot be
/// unique are refused, a recreated claim waits for its old volume's release, a retained
/// directory is not handed to a new claim, and a name too long is shortened, not refused.
#[tokio::test]
async fn claims_never_share_or_inherit_a_directory() {
    let Some(e) = env() else {
        return;
    };
    let mut w = World::new(&e, "share").await;
    let dashed = w
        .class(
            "dash",
            serde_json::json!({"parameters": {"pathPattern": "${namespace}-${pvc}"}}),
        )
        .await;
    let nested = w
        .class(
            "nest",
            serde_json::json!({"reclaimPolicy": "Retain", "parameters": {"pathPattern": "${namespace}/${pvc}"}}),
        )
        .await;
    let around = w
        .class("around", serde_json::json!({"parameters": {"pathPattern": "${namespace}/${annotations.example.com/in}/${pv}"}}))
        .await;
    let default = w.class("default", serde_json::json!({})).await;
    let task = w.start();

    // `${namespace}-${pvc}`: `team-a`/`db` and `team`/`a-db` would share a directory.
    w.claim("dash", &dashed, "1Mi", serde_json::json!({})).await;
    let ev = w.event(&w.ns, "dash", "ProvisioningFailed").await;
    assert!(
        ev.message
            .unwrap_or_default()
            .contains("cannot give every claim"),
        "the Event says why"
    );

    // A claim recreated under the same name while its old PV exists gets nothing; once that
    // PV is gone, the old (retained) directory is still not handed over.
    let old = w.claim("db", &nested, "1Mi", serde_json::json!({})).await;
    w.bound("db", Instant::now()).await;
    let old_pv = pv_name(&old.uid().unwrap());
    write_synced(&w.root.join(&w.ns).join("db").join("secret"), b"old");
    // A volume of another class inside it is refused too.
    w.claim(
        "inner",
        &around,
        "1Mi",
        serde_json::json!({"annotations": {"example.com/in": "db"}}),
    )
    .await;
    let ev = w.event(&w.ns, "inner", "PathInUse").await;
    assert!(
        ev.message
            .unwrap_or_default()
            .contains("is inside the directory of")
    );
    w.claims()
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    w.until("the old claim gone", async || {
        w.claims().get_opt("db").await.unwrap().is_none()
    })
    .await;
    w.claim("db", &nested, "1Mi", serde_json::json!({})).await;
    let ev = w.event(&w.ns, "db", "PathInUse").await;
    assert!(ev.message.unwrap_or_default().contains(&old_pv));
    Api::<PersistentVolume>::all(w.client.clone())
        .delete(&old_pv, &DeleteParams::default())
        .await
        .unwrap();
    w.until("the old PV gone", async || w.pv(&old_pv).await.is_none())
        .await;
    w.claims()
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    w.until("the second claim gone", async || {
        w.claims().get_opt("db").await.unwrap().is_none()
    })
    .await;
    let third = w.claim("db", &nested, "1Mi", serde_json::json!({})).await;
    let ev = w.event(&w.ns, "db", "DirectoryExists").await;
    assert!(ev.message.unwrap_or_default().contains("never reused"));
    assert!(w.pv(&pv_name(&third.uid().unwrap())).await.is_none());
    assert_eq!(
        std::fs::read(w.root.join(&w.ns).join("db").join("secret")).unwrap(),
        b"old"
    );

    // The longest names Kubernetes allows still get a volume, under a shortened name.
    let long = format!("{}-{}", "l".repeat(200), "x".repeat(52));
    let c = w.claim(&long, &default, "1Mi", serde_json::json!({})).await;
    w.bound(&long, Instant::now()).await;
    w.event(&w.ns, &long, "PathShortened").await;
    let rel = w
        .pv(&pv_name(&c.uid().unwrap()))
        .await
        .unwrap()
        .annotations()[ANN_PATH]
        .clone();
    assert!(
        rel.len() <= 255 && rel.ends_with(&pv_name(&c.uid().unwrap())),
        "{rel}"
    );
    assert!(w.root.join(&rel).is_dir());
    task.abort();
}

#[tokio::test]
async fn killed_mid_provision_leaks_nothing_after_restart() {
    let Some(e) = env() else {
        return;
    };
    let mut w = World::new(&e, "kill").await;
    let sc = w.class("k", serde_json::json!({})).await;
    // Abort the provisioner at different points of its work, then run it again.
    let n = 8;
    for i in 0..n {
        let task = w.start();
        w.claim(&format!("c{i}"), &sc, "1Mi", serde_json::json!({}))
            .await;
        tokio::time::sleep(Duration::from_millis(3 * i)).await;
        task.abort();
        let _ = task.await;
    }
    let task = w.start();
    for i in 0..n {
        w.bound(&format!("c{i}"), Instant::now()).await;
    }
    let mut dirs = w.entries();
    dirs.retain(|d| !d.starts_with('.'));
    assert_eq!(dirs.len(), n as usize, "directories: {dirs:?}");
    let pvs = Api::<PersistentVolume>::all(w.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let ours = pvs
        .items
        .iter()
        .filter(|p| p.annotations().get("pv.kubernetes.io/provisioned-by") == Some(&w.name))
        .count();
    assert_eq!(ours, n as usize);
    task.abort();
}

#[tokio::test]
async fn does_nothing_unless_leader() {
    let Some(e) = env() else {
        return;
    };
    let mut w = World::new(&e, "lead").await;
    let sc = w.class("l", serde_json::json!({})).await;
    let (tx, rx) = watch::channel(None);
    let (client, cfg, root) = (w.sa_client.clone(), w.config(), w.root.clone());
    let sup = tokio::spawn(while_leader(rx, move |_| {
        let (c, cfg) = (client.clone(), cfg.clone());
        let fs: Arc<dyn MooseFs> = Arc::new(MfsRoot::new(&root));
        async move { run_with(c, &cfg, fs).await }
    }));
    w.claim("early", &sc, "1Mi", serde_json::json!({})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let c = w.claims().get("early").await.unwrap();
    assert_eq!(c.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    assert!(w.entries().is_empty(), "a follower created directories");
    tx.send_replace(Some(7));
    w.bound("early", Instant::now()).await;
    tx.send_replace(None);
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.claim("late", &sc, "1Mi", serde_json::json!({})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let c = w.claims().get("late").await.unwrap();
    assert_eq!(c.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    assert_eq!(w.entries().len(), 1);
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), sup).await;
}

#[tokio::test]
async fn clone_is_a_snapshot_of_the_source() {
    let Some(e) = env() else {
        return;
    };
    let mut w = World::new(&e, "clone").await;
    let sc = w.class("c", serde_json::json!({})).await;
    let task = w.start();
    let src = w.claim("src", &sc, "1Gi", serde_json::json!({})).await;
    w.bound("src", Instant::now()).await;
    let src_dir = w.root.join(
        &w.pv(&pv_name(&src.uid().unwrap()))
            .await
            .unwrap()
            .annotations()[ANN_PATH],
    );
    write_synced(&src_dir.join("f"), b"v1");
    let copy = w
        .claim("copy", &sc, "1Gi", serde_json::json!({"spec": {"dataSource": {"kind": "PersistentVolumeClaim", "name": "src"}}}))
        .await;
    w.bound("copy", Instant::now()).await;
    let copy_dir = w.root.join(
        &w.pv(&pv_name(&copy.uid().unwrap()))
            .await
            .unwrap()
            .annotations()[ANN_PATH],
    );
    assert_eq!(std::fs::read(copy_dir.join("f")).unwrap(), b"v1");
    std::fs::write(copy_dir.join("f"), b"v2").unwrap();
    assert_eq!(
        std::fs::read(src_dir.join("f")).unwrap(),
        b"v1",
        "the clone is not a copy"
    );
    task.abort();
}

/// The real MooseFs implementation's tools on a real mount (no Kubernetes needed).
#[test]
fn mfs_tools_on_a_real_mount() {
    let Some(vars) =
        crate::harness::require_env(&["MOOSEHERD_TEST_MFS"], "scripts/kube.sh mfs-start DIR")
    else {
        return;
    };
    let mount = PathBuf::from(&vars[0]);
    let root = mount.join(format!("mh-tools-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = Rm(root.clone());
    let fs = MfsRoot::new(&root);
    let rel = RelPath::parse("ns/vol").unwrap();
    fs.create(
        &rel,
        mooseherd::provisioner::fs::DirSpec {
            uid: 0,
            gid: 0,
            mode: 0o755,
        },
        "pvc-vol",
    )
    .unwrap();
    let q = Quota {
        mode: QuotaMode::Soft,
        kind: QuotaKind::Length,
        bytes: 5_000_000,
        inodes: Some(100),
        grace: Some("1d".into()),
    };
    fs.set_quota(&rel, &q).unwrap();
    let dir = rel.under(&root);
    let out = mfs("mfsgetquota", &["-n", &dir.to_string_lossy()]);
    assert!(out.contains("5000000") && out.contains("100"), "{out}");
    fs.set_attrs(
        &rel,
        &Attrs {
            goal: Some(2),
            storage_class: None,
            trash_time: Some(7200),
        },
    )
    .unwrap();
    assert!(mfs("mfsgetgoal", &[&dir.to_string_lossy()]).contains(": 2"));
    assert!(mfs("mfsgettrashtime", &[&dir.to_string_lossy()]).contains("7200"));
    write_synced(&dir.join("f"), b"x");
    let copy = RelPath::parse("ns/copy").unwrap();
    fs.snapshot(&rel, &copy, "pvc-copy").unwrap();
    assert_eq!(std::fs::read(copy.under(&root).join("f")).unwrap(), b"x");
    assert!(
        fs.snapshot(&rel, &copy, "pvc-other").is_err(),
        "snapshot over an existing directory of another volume"
    );
    let archived = fs.archive(&copy, "pv1").unwrap();
    assert!(archived.join("f").exists());
    assert_eq!(fs.archived(&copy, "pv1").unwrap(), Some(archived.clone()));
    fs.purge_archived(&copy, "pv1").unwrap();
    assert!(!archived.exists());
    let _ = BTreeMap::<String, String>::new();
}

/// The real thing: `mooseherd provisioner` processes SIGKILLed at different points while claims
/// are being provisioned, then one left running: every claim Bound, one directory and one PV each.
#[tokio::test]
async fn sigkilled_provisioner_process_leaks_nothing() {
    let Some(e) = env() else {
        return;
    };
    let mut w = World::new(&e, "sigkill").await;
    let sc = w.class("s", serde_json::json!({})).await;
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let spawn = || {
        Child(
            Command::new(env!("CARGO_BIN_EXE_mooseherd"))
                .args(["-q", "provisioner", "--kubeconfig"])
                .arg(&e.kubeconfig)
                .arg("--root")
                .arg(&w.root)
                .arg("--host-root")
                .arg(PathBuf::from("/mnt/mfs").join(&w.ns))
                .arg("--name")
                .arg(&w.name)
                .spawn()
                .expect("start mooseherd provisioner"),
        )
    };
    let n: u64 = 6;
    for i in 0..n {
        let child = spawn();
        // Let it connect and start watching (the process needs ~100 ms), then kill it at a
        // different point of its work each round.
        tokio::time::sleep(Duration::from_millis(150)).await;
        w.claim(&format!("k{i}"), &sc, "1Mi", serde_json::json!({}))
            .await;
        tokio::time::sleep(Duration::from_millis(8 * i)).await;
        drop(child); // SIGKILL
    }
    let _last = spawn();
    for i in 0..n {
        w.bound(&format!("k{i}"), Instant::now()).await;
    }
    let mut dirs = w.entries();
    dirs.retain(|d| !d.starts_with('.'));
    assert_eq!(dirs.len(), n as usize, "directories: {dirs:?}");
    let pvs = Api::<PersistentVolume>::all(w.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let ours = pvs
        .items
        .iter()
        .filter(|p| p.annotations().get("pv.kubernetes.io/provisioned-by") == Some(&w.name))
        .count();
    assert_eq!(ours, n as usize);
}
