//! The kube-rs controllers: one watches PersistentVolumeClaims (provision, clone, expand), one
//! watches PersistentVolumes (release). Watch + reconcile: a change reaches us through the
//! apiserver's watch, not by polling; failures retry with back-off and leave an Event.
//!
//! Idempotence (a retry, a restart or a new leader repeats a half-done step safely):
//! - the PV name is `pvc-<claim uid>` and the directory path is a function of the claim and the
//!   StorageClass: a second run finds the same directory (reused only because the `.owners`
//!   note of the same PV names it, see [`super::fs`]) and the same PV (409 = done);
//! - release archives as `.archive/<leaf>.<pv name>`: a crash between archive and PV deletion is
//!   found on the next run (already archived -> just delete the PV).
//!
//! Claims never share a directory: the class's pattern must be unique per claim
//! ([`path::check_unique`], checked with the parameters), the expanded path must not be, lie in
//! or hold the directory of any PV the apiserver lists, and the directory must be new
//! ([`FsError::Taken`] otherwise). Each refusal is a Warning Event on the claim and a slow retry.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{
    Event, EventSource, HostPathVolumeSource, ObjectReference, PersistentVolume,
    PersistentVolumeClaim, PersistentVolumeSpec,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use super::fs::{Attrs, DirSpec, FsError, MooseFs};
use super::in_flight::InFlight;
use super::params::{OnDelete, Params, quantity_bytes};
use super::path::{self, RelPath, Vars};

/// Set by Kubernetes >= 1.23 on claims of an external provisioner's class.
pub const ANN_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The only one Kubernetes < 1.23 sets (the 1.20 apiserver of the tests).
pub const ANN_PROVISIONER_BETA: &str = "volume.beta.kubernetes.io/storage-provisioner";
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The volume's directory, relative to the provisioner's root: release never guesses it.
pub const ANN_PATH: &str = "mooseherd.io/path";
/// What release does with the directory (the StorageClass may be gone by then).
pub const ANN_ON_DELETE: &str = "mooseherd.io/on-delete";

/// How long a volume that needs a person waits before the next look.
const SLOW_RETRY: Duration = Duration::from_secs(300);

/// What the controllers need to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The provisioner name StorageClasses name (`mooseherd.io/moosefs`).
    pub name: String,
    /// The root as pods see it on every worker: PV hostPaths start here.
    pub host_root: PathBuf,
    /// This node's name, for Events (`reportingInstance`).
    pub instance: String,
}

pub struct Ctx {
    pub client: Client,
    pub settings: Settings,
    pub fs: Arc<dyn MooseFs>,
    /// Paths being provisioned now (held until their PV exists).
    pub in_flight: InFlight,
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cause is in the message only, so `{:#}` does not print it twice.
    #[error("Kubernetes API: {0}")]
    Kube(kube::Error),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("a blocking MooseFS call was cancelled: {0}")]
    Join(String),
}

fn event_ref<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    obj.object_ref(&())
}

/// Records a core/v1 Event about `obj` (`kubectl describe` shows it). Failing to record is
/// logged, never fatal.
async fn event(ctx: &Ctx, obj: ObjectReference, warning: bool, reason: &str, message: String) {
    if warning {
        warn!(object = ?obj.name, reason, "{message}");
    } else {
        info!(object = ?obj.name, reason, "{message}");
    }
    let ns = obj
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let ev = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", obj.name.as_deref().unwrap_or("object"))),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: obj,
        reason: Some(reason.to_string()),
        message: Some(message),
        type_: Some(if warning { "Warning" } else { "Normal" }.to_string()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        source: Some(EventSource {
            component: Some(ctx.settings.name.clone()),
            host: None,
        }),
        reporting_component: Some(ctx.settings.name.clone()),
        reporting_instance: Some(ctx.settings.instance.clone()),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    if let Err(e) = api.create(&PostParams::default(), &ev).await {
        warn!("cannot record event {reason}: {e}");
    }
}

/// Runs a MooseFS call on the blocking pool.
async fn blocking<T: Send + 'static>(
    ctx: &Arc<Ctx>,
    f: impl FnOnce(&dyn MooseFs) -> Result<T, FsError> + Send + 'static,
) -> Result<T, Error> {
    let fs = ctx.fs.clone();
    tokio::task::spawn_blocking(move || f(fs.as_ref()))
        .await
        .map_err(|e| Error::Join(e.to_string()))?
        .map_err(Error::from)
}

fn is_ours(ctx: &Ctx, pv: &PersistentVolume) -> bool {
    pv.annotations().get(ANN_PROVISIONED_BY) == Some(&ctx.settings.name)
}

pub fn pv_name(claim_uid: &str) -> String {
    format!("pvc-{claim_uid}")
}

fn requested(pvc: &PersistentVolumeClaim) -> Option<&Quantity> {
    pvc.spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
}

/// A failure the user must fix: a Warning Event on the claim, and a slow retry.
async fn refuse(ctx: &Ctx, pvc: &PersistentVolumeClaim, reason: &str, msg: String) -> Action {
    event(ctx, event_ref(pvc), true, reason, msg).await;
    Action::requeue(SLOW_RETRY)
}

async fn reconcile_claim(pvc: Arc<PersistentVolumeClaim>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if pvc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(spec) = pvc.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if let Some(vol) = spec.volume_name.as_deref().filter(|v| !v.is_empty()) {
        return expand(&pvc, vol, &ctx).await;
    }
    let ann = pvc.annotations();
    let name = &ctx.settings.name;
    if ann.get(ANN_PROVISIONER) != Some(name) && ann.get(ANN_PROVISIONER_BETA) != Some(name) {
        return Ok(Action::await_change());
    }
    provision(&pvc, &ctx).await
}

async fn provision(pvc: &PersistentVolumeClaim, ctx: &Arc<Ctx>) -> Result<Action, Error> {
    let (Some(ns), Some(uid)) = (pvc.namespace(), pvc.uid()) else {
        return Ok(Action::await_change());
    };
    let claim = pvc.name_any();
    let spec = pvc.spec.clone().unwrap_or_default();
    let pv = pv_name(&uid);
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    if pvs.get_opt(&pv).await?.is_some() {
        // Done before (a retry or a restart): the PV controller binds it.
        forget(ctx, &pv).await;
        return Ok(Action::await_change());
    }
    let Some(class) = spec.storage_class_name.clone() else {
        return Ok(refuse(
            ctx,
            pvc,
            "ProvisioningFailed",
            "the claim names no StorageClass".into(),
        )
        .await);
    };
    let Some(sc) = Api::<StorageClass>::all(ctx.client.clone())
        .get_opt(&class)
        .await?
    else {
        return Ok(refuse(
            ctx,
            pvc,
            "ProvisioningFailed",
            format!("StorageClass `{class}` does not exist"),
        )
        .await);
    };
    if sc.provisioner != ctx.settings.name {
        return Ok(Action::await_change());
    }
    let params = match Params::parse(&sc.parameters.clone().unwrap_or_default()) {
        Ok(p) => p,
        Err(e) => {
            return Ok(refuse(
                ctx,
                pvc,
                "ProvisioningFailed",
                format!("StorageClass `{class}`: {e}"),
            )
            .await);
        }
    };
    let Some(size) = requested(pvc).cloned() else {
        return Ok(refuse(
            ctx,
            pvc,
            "ProvisioningFailed",
            "the claim requests no storage size (spec.resources.requests.storage)".into(),
        )
        .await);
    };
    let Some(bytes) = quantity_bytes(&size.0) else {
        return Ok(refuse(
            ctx,
            pvc,
            "ProvisioningFailed",
            format!("cannot read the requested size `{}`", size.0),
        )
        .await);
    };
    let empty = BTreeMap::new();
    let vars = Vars {
        namespace: &ns,
        pvc: &claim,
        uid: &uid,
        pv: &pv,
        annotations: Some(pvc.metadata.annotations.as_ref().unwrap_or(&empty)),
        labels: Some(pvc.metadata.labels.as_ref().unwrap_or(&empty)),
    };
    let expanded = match path::expand(&params.path_pattern, &vars) {
        Ok(r) => r,
        Err(e) => {
            return Ok(refuse(
                ctx,
                pvc,
                "InvalidPath",
                format!(
                    "pathPattern `{}` of StorageClass `{class}`: {e}; no directory was created",
                    params.path_pattern
                ),
            )
            .await);
        }
    };

    let rel = expanded.path;
    for (len, short) in &expanded.shortened {
        event(
            ctx,
            event_ref(pvc),
            false,
            "PathShortened",
            format!(
                "a directory name of {len} bytes is longer than 255: shortened to `{short}` (head, hash of the full name, volume name)"
            ),
        )
        .await;
    }
    // Never a path another volume has, nor one inside or around it (the PVs say, not a guess),
    // nor one another claim is being given right now.
    let _held = match ctx.in_flight.hold(&rel) {
        Ok(h) => h,
        Err(busy) => {
            info!(claim = %claim, "{rel} overlaps {busy}, being provisioned now: trying again in 1 s");
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
    };
    let others = pvs.list(&Default::default()).await?.items;
    let taken = others
        .iter()
        .filter(|o| o.name_any() != pv)
        .filter_map(|o| volume_path(ctx, o).map(|p| (o.name_any(), p)))
        .filter(|(_, p)| path::overlaps(p, &rel))
        // The same directory first: that is the message that helps most.
        .min_by_key(|(_, p)| p != &rel);
    if let Some((other, their)) = taken {
        let how = if their == rel {
            "is the directory of"
        } else if their.components().len() < rel.components().len() {
            "is inside the directory of"
        } else {
            "holds the directory of"
        };
        return Ok(refuse(
            ctx,
            pvc,
            "PathInUse",
            format!(
                "{rel} (pathPattern `{}` of StorageClass `{class}`) {how} volume {other} ({their}): not provisioned; a claim recreated under the same name waits until the old volume is released",
                params.path_pattern
            ),
        )
        .await);
    }

    // A clone: the source must be a claim of ours in the same namespace, bound to our PV.
    let source = match spec.data_source.as_ref() {
        None => None,
        Some(ds)
            if ds.kind == "PersistentVolumeClaim"
                && ds.api_group.as_deref().unwrap_or("").is_empty() =>
        {
            match clone_source(ctx, &ns, &ds.name).await? {
                Ok(src) => Some(src),
                Err(msg) => return Ok(refuse(ctx, pvc, "ProvisioningFailed", msg).await),
            }
        }
        Some(ds) => {
            return Ok(refuse(
                ctx,
                pvc,
                "ProvisioningFailed",
                format!("dataSource of kind `{}` is not supported (only a PersistentVolumeClaim of this provisioner)", ds.kind),
            )
            .await);
        }
    };

    let quota = params.quota(bytes);
    let dir = DirSpec {
        uid: params.uid,
        gid: params.gid,
        mode: params.mode,
    };
    let attrs = Attrs {
        goal: params.goal,
        storage_class: params.storage_class.clone(),
        trash_time: params.trash_time,
    };
    let (r, src, owner) = (rel.clone(), source.clone(), pv.clone());
    let done = blocking(ctx, move |fs| {
        if let Some(src) = &src {
            fs.snapshot(src, &r, &owner)?;
        }
        fs.create(&r, dir, &owner)?;
        fs.set_quota(&r, &quota)?;
        fs.set_attrs(&r, &attrs)
    })
    .await;
    if let Err(Error::Fs(FsError::Taken { path })) = &done {
        return Ok(refuse(
            ctx,
            pvc,
            "DirectoryExists",
            format!(
                "{path} exists and was not made for this claim: it is never reused for a new claim (its data may be someone else's); move it away or choose another name"
            ),
        )
        .await);
    }
    if let Err(e) = done {
        event(
            ctx,
            event_ref(pvc),
            true,
            "ProvisioningFailed",
            format!("directory {rel}: {e}"),
        )
        .await;
        return Err(e);
    }

    let host_path = rel.under(&ctx.settings.host_root);
    let mut annotations = BTreeMap::new();
    annotations.insert(ANN_PROVISIONED_BY.to_string(), ctx.settings.name.clone());
    annotations.insert(ANN_PATH.to_string(), rel.to_string());
    annotations.insert(
        ANN_ON_DELETE.to_string(),
        params.on_delete.as_str().to_string(),
    );
    let volume = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(pv.clone()),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes.clone(),
            capacity: Some(BTreeMap::from([("storage".to_string(), size.clone())])),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(ns.clone()),
                name: Some(claim.clone()),
                uid: Some(uid.clone()),
                ..Default::default()
            }),
            host_path: Some(HostPathVolumeSource {
                path: host_path.to_string_lossy().into_owned(),
                type_: Some("Directory".into()),
            }),
            persistent_volume_reclaim_policy: Some(
                sc.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: Some(class.clone()),
            volume_mode: spec.volume_mode.clone(),
            mount_options: sc.mount_options.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    match pvs.create(&PostParams::default(), &volume).await {
        Ok(_) => forget(ctx, &pv).await,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            forget(ctx, &pv).await;
            return Ok(Action::await_change());
        }
        Err(e) => {
            event(
                ctx,
                event_ref(pvc),
                true,
                "ProvisioningFailed",
                format!("creating PV {pv}: {e}"),
            )
            .await;
            return Err(e.into());
        }
    }
    let what = match &source {
        Some(s) => format!("snapshot of {s}"),
        None => "directory".into(),
    };
    event(
        ctx,
        event_ref(pvc),
        false,
        "ProvisioningSucceeded",
        format!(
            "volume {pv}: {what} {} (quota {} bytes)",
            host_path.display(),
            bytes
        ),
    )
    .await;
    Ok(Action::await_change())
}

/// The PV `pv` exists and records its path: the record of its directory being made goes.
async fn forget(ctx: &Arc<Ctx>, pv: &str) {
    let owner = pv.to_string();
    if let Err(e) = blocking(ctx, move |fs| fs.forget(&owner)).await {
        warn!("volume {pv}: cannot drop the record of its directory: {e}");
    }
}

/// The directory of a PV under our root: the recorded path of one of ours, or the hostPath of
/// any other PV that lies under the root.
fn volume_path(ctx: &Ctx, pv: &PersistentVolume) -> Option<RelPath> {
    if is_ours(ctx, pv)
        && let Some(p) = pv.annotations().get(ANN_PATH)
    {
        return RelPath::parse(p).ok();
    }
    let host = pv.spec.as_ref()?.host_path.as_ref()?;
    let rel = std::path::Path::new(&host.path)
        .strip_prefix(&ctx.settings.host_root)
        .ok()?;
    RelPath::parse(rel.to_str()?).ok()
}

/// The directory of the PV a source claim is bound to, if it is ours.
async fn clone_source(ctx: &Ctx, ns: &str, name: &str) -> Result<Result<RelPath, String>, Error> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let Some(src) = claims.get_opt(name).await? else {
        return Ok(Err(format!("clone source claim `{name}` does not exist")));
    };
    let Some(vol) = src.spec.as_ref().and_then(|s| s.volume_name.clone()) else {
        return Ok(Err(format!("clone source claim `{name}` is not bound yet")));
    };
    let Some(pv) = Api::<PersistentVolume>::all(ctx.client.clone())
        .get_opt(&vol)
        .await?
    else {
        return Ok(Err(format!(
            "the volume {vol} of clone source `{name}` does not exist"
        )));
    };
    if !is_ours(ctx, &pv) {
        return Ok(Err(format!(
            "clone source `{name}` is not a volume of {}",
            ctx.settings.name
        )));
    }
    Ok(pv
        .annotations()
        .get(ANN_PATH)
        .ok_or_else(|| format!("volume {vol} has no {ANN_PATH} annotation"))
        .and_then(|p| RelPath::parse(p).map_err(|e| format!("volume {vol}: {ANN_PATH}: {e}"))))
}

/// A bigger request on a bound claim of ours raises the quota, then the PV's and the claim's
/// capacity.
async fn expand(pvc: &PersistentVolumeClaim, vol: &str, ctx: &Arc<Ctx>) -> Result<Action, Error> {
    let Some(want) = requested(pvc).cloned() else {
        return Ok(Action::await_change());
    };
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let Some(pv) = pvs.get_opt(vol).await? else {
        return Ok(Action::await_change());
    };
    if !is_ours(ctx, &pv) {
        return Ok(Action::await_change());
    }
    let have = pv
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| quantity_bytes(&q.0));
    let (Some(want_b), Some(have_b)) = (quantity_bytes(&want.0), have) else {
        return Ok(Action::await_change());
    };
    let status_cap = pvc
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| quantity_bytes(&q.0));
    if want_b <= have_b {
        // Finish a resize whose claim status was not written yet (crash, lost leadership).
        if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
            && status_cap.is_some_and(|c| c < have_b)
            && let Some(cap) = pv.spec.as_ref().and_then(|s| s.capacity.clone())
        {
            patch_claim_capacity(ctx, pvc, cap).await?;
        }
        return Ok(Action::await_change());
    }
    let class = pv
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default();
    let Some(sc) = Api::<StorageClass>::all(ctx.client.clone())
        .get_opt(&class)
        .await?
    else {
        return Ok(refuse(
            ctx,
            pvc,
            "VolumeResizeFailed",
            format!("StorageClass `{class}` of {vol} is gone"),
        )
        .await);
    };
    if sc.allow_volume_expansion != Some(true) {
        return Ok(refuse(
            ctx,
            pvc,
            "VolumeResizeFailed",
            format!("StorageClass `{class}` does not allow volume expansion"),
        )
        .await);
    }
    let params = match Params::parse(&sc.parameters.clone().unwrap_or_default()) {
        Ok(p) => p,
        Err(e) => return Ok(refuse(ctx, pvc, "VolumeResizeFailed", e.to_string()).await),
    };
    let rel = match pv.annotations().get(ANN_PATH).map(|p| RelPath::parse(p)) {
        Some(Ok(r)) => r,
        _ => {
            return Ok(refuse(
                ctx,
                pvc,
                "VolumeResizeFailed",
                format!("{vol} has no valid {ANN_PATH} annotation"),
            )
            .await);
        }
    };
    let quota = params.quota(want_b);
    let r = rel.clone();
    if let Err(e) = blocking(ctx, move |fs| fs.set_quota(&r, &quota)).await {
        event(
            ctx,
            event_ref(pvc),
            true,
            "VolumeResizeFailed",
            format!("{rel}: {e}"),
        )
        .await;
        return Err(e);
    }
    let cap = BTreeMap::from([("storage".to_string(), want.clone())]);
    pvs.patch(
        vol,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"capacity": cap}})),
    )
    .await?;
    patch_claim_capacity(ctx, pvc, cap).await?;
    event(
        ctx,
        event_ref(pvc),
        false,
        "VolumeResizeSuccessful",
        format!("quota of {rel} raised to {want_b} bytes ({})", want.0),
    )
    .await;
    Ok(Action::await_change())
}

async fn patch_claim_capacity(
    ctx: &Ctx,
    pvc: &PersistentVolumeClaim,
    cap: BTreeMap<String, Quantity>,
) -> Result<(), Error> {
    let ns = pvc.namespace().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    claims
        .patch_status(
            &pvc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"capacity": cap, "conditions": null}})),
        )
        .await?;
    Ok(())
}

/// A released PV of ours: archive / delete / keep its directory, then delete the PV.
async fn reconcile_volume(pv: Arc<PersistentVolume>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !is_ours(&ctx, &pv) || pv.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
    let spec = pv.spec.clone().unwrap_or_default();
    if phase != Some("Released")
        || spec.persistent_volume_reclaim_policy.as_deref() != Some("Delete")
    {
        return Ok(Action::await_change());
    }
    let name = pv.name_any();
    let warn = |reason: &'static str, msg: String| {
        let ctx = ctx.clone();
        let r = event_ref(pv.as_ref());
        async move {
            event(
                &ctx,
                r,
                true,
                reason,
                format!("{msg}; the PV is kept: fix it, or delete the PV by hand"),
            )
            .await;
            Ok(Action::requeue(SLOW_RETRY))
        }
    };
    let rel = match pv.annotations().get(ANN_PATH).map(|p| RelPath::parse(p)) {
        Some(Ok(r)) => r,
        Some(Err(e)) => return warn("ReleaseFailed", format!("annotation {ANN_PATH}: {e}")).await,
        None => return warn("ReleaseFailed", format!("annotation {ANN_PATH} is missing")).await,
    };
    let expected = rel.under(&ctx.settings.host_root);
    let actual = spec.host_path.as_ref().map(|h| PathBuf::from(&h.path));
    if actual.as_deref() != Some(expected.as_path()) {
        return warn(
            "ReleaseFailed",
            format!(
                "hostPath {} is not {} (its {ANN_PATH} under the root): the PV was changed",
                actual.map_or_else(|| "(none)".into(), |p| p.display().to_string()),
                expected.display()
            ),
        )
        .await;
    }
    let on_delete = match pv.annotations().get(ANN_ON_DELETE) {
        None => OnDelete::Archive,
        Some(s) => match OnDelete::parse(s) {
            Some(o) => o,
            None => {
                return warn(
                    "ReleaseFailed",
                    format!("annotation {ANN_ON_DELETE} `{s}` is not archive, delete or retain"),
                )
                .await;
            }
        },
    };
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let others: Vec<String> = pvs
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|o| o.name_any() != name && is_ours(&ctx, o))
        .filter(|o| o.annotations().get(ANN_PATH) == Some(&rel.to_string()))
        .map(|o| o.name_any())
        .collect();
    let outcome = if !others.is_empty() {
        format!(
            "directory {} kept: still used by {}",
            expected.display(),
            others.join(", ")
        )
    } else if on_delete == OnDelete::Retain {
        format!("directory {} kept (onDelete: retain)", expected.display())
    } else {
        let (r, tag) = (rel.clone(), name.clone());
        let step = blocking(&ctx, move |fs| {
            if let Some(done) = fs.archived(&r, &tag)? {
                return Ok(Some(done));
            }
            if !fs.exists(&r)? {
                return Ok(None);
            }
            fs.archive(&r, &tag).map(Some)
        })
        .await;
        let archived = match step {
            Ok(Some(p)) => p,
            Ok(None) => {
                return warn(
                    "VolumeMissing",
                    format!("directory {} does not exist", expected.display()),
                )
                .await;
            }
            Err(e) => return warn("ReleaseFailed", e.to_string()).await,
        };
        if on_delete == OnDelete::Delete {
            let (r, tag) = (rel.clone(), name.clone());
            if let Err(e) = blocking(&ctx, move |fs| fs.purge_archived(&r, &tag)).await {
                return warn(
                    "ReleaseFailed",
                    format!("deleting {}: {e}", archived.display()),
                )
                .await;
            }
            format!("directory {} deleted", expected.display())
        } else {
            format!(
                "directory {} archived to {}",
                expected.display(),
                archived.display()
            )
        }
    };
    match pvs.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    event(
        &ctx,
        event_ref(pv.as_ref()),
        false,
        "VolumeReleased",
        outcome,
    )
    .await;
    Ok(Action::await_change())
}

fn retry(_: Arc<impl Sized>, e: &Error, _: Arc<Ctx>) -> Action {
    warn!("will retry in 2 s: {e}");
    Action::requeue(Duration::from_secs(2))
}

/// Runs both controllers until the watch streams end or the task is aborted.
pub async fn run(ctx: Arc<Ctx>) {
    let client = ctx.client.clone();
    let claims = Controller::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    )
    .run(reconcile_claim, retry, ctx.clone())
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!("claim reconcile: {e}");
        }
    });
    let volumes = Controller::new(
        Api::<PersistentVolume>::all(client),
        watcher::Config::default(),
    )
    .run(reconcile_volume, retry, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!("volume reconcile: {e}");
        }
    });
    futures_util::future::join(claims, volumes).await;
}
