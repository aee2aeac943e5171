"""A release's workloads beside the executor: dry run, workloadRef, pod template hashes."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks import KubernetesCluster
from core.release import layout
from core.release.errors import SpecError
from core.release.observed import Track
from core.release.spec import AnalysisArg, AnalysisRef, ReleaseSpec
from tasks import RETRIES, kube

REFUSED = (400, 403, 404, 409, 422)  # what a dry run reports as a permanent refusal


def apiserver_message(exc: ApiException) -> str:
    """The apiserver's own message for a refused request (its Status body), without the body."""
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


@task(name="k8s-dry-run", cache_policy=NO_CACHE, **RETRIES)
def dry_run(cluster: KubernetesCluster, spec: ReleaseSpec) -> list[str]:
    """Server-side dry run of every Deployment the release would write, before any write.

    The apiserver checks the whole pod template (types, quantities, probes, securityContext,
    volumes, admission such as Pod Security) and that no immutable field changes.

    Raises:
        SpecError: the apiserver refused a Deployment; the message is its own, naming the field.
    """
    apps = client.AppsV1Api(kube.api_for(cluster))
    checked = []
    for track in layout.tracks(spec):
        manifest = layout.workload_manifest(spec, track, spec.image, spec.replicas)
        name = manifest["metadata"]["name"]
        try:
            apps.patch_namespaced_deployment(
                name,
                spec.namespace,
                manifest,
                field_manager=kube.FIELD_MANAGER,
                force=True,
                dry_run="All",
                _content_type=kube.APPLY,
            )
        except ApiException as exc:
            if exc.status not in REFUSED:
                raise
            raise SpecError(
                f"the cluster refused Deployment {spec.namespace}/{name} in a dry run: "
                f"{apiserver_message(exc)}; nothing was changed",
                app=spec.app,
            ) from None
        checked.append(name)
    return checked


def _owned_names(spec: ReleaseSpec) -> set[str]:
    return {layout.workload_name(spec, t) for t in (*Track,)}


@task(name="k8s-workload-ref", cache_policy=NO_CACHE, **RETRIES)
def resolve_workload_ref(cluster: KubernetesCluster, spec: ReleaseSpec) -> ReleaseSpec:
    """The spec with the pod template of the Deployment its `workloadRef` names.

    Raises:
        SpecError: the Deployment is missing, or its name is one of the release's own workloads.
    """
    ref = spec.workload_ref
    if ref is None or spec.template is not None:
        return spec
    if ref.name in _owned_names(spec):
        raise SpecError(
            f"workloadRef names Deployment {ref.name!r}, which is a name this release gives its "
            f"own workloads: release under another app name than {spec.app!r}",
            app=spec.app,
        )
    found = kube.read_deployment.fn(cluster, spec.namespace, ref.name)
    if found is None:
        raise SpecError(
            f"workloadRef names Deployment {spec.namespace}/{ref.name}, which does not exist",
            app=spec.app,
        )
    template: dict[str, Any] = (found.get("spec") or {}).get("template") or {}
    return spec.with_changes(template=template)


@task(name="k8s-retire-workload-ref", cache_policy=NO_CACHE, **RETRIES)
def retire_workload_ref(cluster: KubernetesCluster, spec: ReleaseSpec) -> str:
    """Scale the `workloadRef` Deployment to zero when `scaleDown: onsuccess` (after a success)."""
    ref = spec.workload_ref
    if ref is None or ref.scale_down != "onsuccess":
        return ""
    kube.scale.fn(cluster, spec.namespace, ref.name, 0)
    return f"Deployment {ref.name} scaled to 0 (workloadRef scaleDown: onsuccess)"


def _hash(apps: client.AppsV1Api, namespace: str, deployment: dict[str, Any]) -> str | None:
    """The pod-template-hash of a Deployment's current ReplicaSet (the one of its revision)."""
    meta = deployment.get("metadata") or {}
    revision = (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision")
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    for rs in apps.list_namespaced_replica_set(namespace, label_selector=selector).items:
        owners = rs.metadata.owner_references or []
        mine = any(o.kind == "Deployment" and o.name == meta.get("name") for o in owners)
        rs_revision = (rs.metadata.annotations or {}).get("deployment.kubernetes.io/revision")
        if mine and rs_revision == revision:
            return (rs.metadata.labels or {}).get("pod-template-hash")
    return None


@task(name="k8s-pod-template-hashes", cache_policy=NO_CACHE, **RETRIES)
def pod_template_hashes(cluster: KubernetesCluster, spec: ReleaseSpec) -> dict[str, str]:
    """{"Latest": hash of the pods running spec.image, "Stable": hash of the serving version's}.

    Latest is the canary's (or the new color's, or the updated Deployment's) ReplicaSet; Stable is
    the other workload that runs, or Latest itself when only one does (a first deploy, or after
    promotion), as Argo reads them.
    """
    api = kube.api_for(cluster)
    apps = client.AppsV1Api(api)
    found: dict[Track, tuple[str | None, str]] = {}
    for track in layout.tracks(spec):
        deployment = kube.read_deployment.fn(
            cluster, spec.namespace, layout.workload_name(spec, track)
        )
        if not deployment or not (deployment.get("spec") or {}).get("replicas"):
            continue
        containers = deployment["spec"]["template"]["spec"]["containers"]
        image = next((c.get("image") for c in containers if c.get("name") == spec.container), None)
        if pod_hash := _hash(apps, spec.namespace, deployment):
            found[track] = (image, pod_hash)
    new = [t for t, (image, _) in found.items() if image == spec.image]
    latest = Track.CANARY if Track.CANARY in new else (new[0] if new else None)
    others = [t for t in found if t != latest]
    out = {}
    if latest is not None:
        out["Latest"] = found[latest][1]
    stable = Track.STABLE if Track.STABLE in others else (others[0] if others else latest)
    if stable is not None:
        out["Stable"] = found[stable][1]
    return out


def resolve_args(cluster: KubernetesCluster, spec: ReleaseSpec, ref: AnalysisRef) -> AnalysisRef:
    """`ref` with every `valueFrom.podTemplateHashValue` argument replaced by the hash it names.

    Raises:
        SpecError: the hash cannot be read (no pods of that version run).
    """
    wanted = [a for a in ref.args if a.value_from is not None]
    if not wanted:
        return ref
    hashes = pod_template_hashes(cluster, spec)
    args = []
    for arg in ref.args:
        source = arg.value_from.pod_template_hash_value if arg.value_from else None
        if source is None:
            args.append(arg)
            continue
        if source not in hashes:
            raise SpecError(
                f"analysis argument {arg.name!r}: no {source} pods of {spec.app} run, so their "
                "pod template hash cannot be read",
                app=spec.app,
            )
        args.append(AnalysisArg(name=arg.name, value=hashes[source]))
    return ref.model_copy(update={"args": tuple(args)})
