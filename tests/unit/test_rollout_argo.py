"""Rollouts in Argo's own shapes: each loads to the exact spec expected, or is refused."""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema
import pytest
import yaml

from core.release import layout
from core.release.observed import Track
from core.release.planners.canary import canary_scale, target_counts
from core.release.rollout import load_rollout
from core.release.spec import ReleaseSpec

IMAGE = "ghcr.io/kyb/web@sha256:" + "ab" * 32
SIDECAR = "ghcr.io/kyb/proxy@sha256:" + "cd" * 32

FULL = (
    """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
  namespace: shop
  labels: {team: payments}
spec:
  replicas: 4
  minReadySeconds: 5
  revisionHistoryLimit: 3
  progressDeadlineSeconds: 300
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, tier: front}
      annotations: {prometheus.io/scrape: "true"}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 10001}
      volumes:
      - name: tmp
        emptyDir: {sizeLimit: 64Mi}
      containers:
      - name: web
        image: ghcr.io/kyb/web:1.2.3
        ports:
        - {name: http, containerPort: 8080}
        env:
        - {name: MODE, value: "fast"}
        - name: POD
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {cpu: "1", memory: 128Mi}
        readinessProbe:
          httpGet: {path: /health, port: http}
          periodSeconds: 2
        livenessProbe:
          tcpSocket: {port: 8080}
        volumeMounts:
        - {name: tmp, mountPath: /tmp}
      - name: proxy
        image: SIDECAR
  strategy:
    canary:
      stableService: web-stable
      canaryService: web-canary
      abortScaleDownDelaySeconds: 10
      canaryMetadata:
        labels: {role: canary}
        annotations: {note: new}
      stableMetadata:
        labels: {role: stable}
      trafficRouting:
        plugins:
          argoproj-labs/gatewayAPI: {httpRoute: web}
      steps:
      - setCanaryScale: {replicas: 1}
      - setWeight: 10
      - pause: {duration: 1h30m}
      - setCanaryScale: {weight: 50}
      - setWeight: 20
      - pause: {duration: 2m30s}
      - setCanaryScale: {matchTrafficWeight: true}
      - analysis:
          templates:
          - templateName: error-rate
          - templateName: latency
            clusterScope: true
          args:
          - name: canary-hash
            valueFrom: {podTemplateHashValue: Latest}
          - name: stable-hash
            valueFrom: {podTemplateHashValue: Stable}
          - name: team
            valueFrom: {fieldRef: {fieldPath: "metadata.labels['team']"}}
          dryRun:
          - metricName: latency.*
          measurementRetention:
          - {metricName: error-rate, limit: 20}
"""
).replace("SIDECAR", SIDECAR)


def full() -> dict[str, Any]:
    return yaml.safe_load(FULL)


def test_the_whole_pod_template_is_the_release_template() -> None:
    spec = load_rollout(FULL, image=IMAGE)
    pod = spec.template
    web = pod["spec"]["containers"][0]
    assert web["image"] == IMAGE  # the image argument pins the digest
    assert web["resources"] == {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "128Mi"},
    }
    assert web["readinessProbe"] == {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": 2,
    }
    assert web["env"][1] == {
        "name": "POD",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }
    assert pod["spec"]["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001}
    assert pod["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    assert pod["spec"]["containers"][1] == {"name": "proxy", "image": SIDECAR}
    assert (spec.replicas, spec.min_ready_seconds, spec.revision_history_limit) == (4, 5, 3)
    assert spec.progress_deadline_seconds == 300
    assert spec.labels == {"app": "web"}


def test_the_template_reaches_every_workload_with_its_track_metadata() -> None:
    spec = load_rollout(FULL, image=IMAGE)
    canary = layout.workload_manifest(spec, Track.CANARY, IMAGE, 1)
    stable = layout.workload_manifest(spec, Track.STABLE, IMAGE, 4)
    pod = canary["spec"]["template"]
    assert pod["metadata"]["labels"] == {
        "app": "web",
        "tier": "front",
        "role": "canary",
        "track": "canary",
    }
    assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "note": "new"}
    assert stable["spec"]["template"]["metadata"]["labels"]["role"] == "stable"
    assert "note" not in stable["spec"]["template"]["metadata"]["annotations"]
    assert pod["spec"]["containers"][0]["resources"]["limits"]["memory"] == "128Mi"
    assert (canary["spec"]["minReadySeconds"], canary["spec"]["revisionHistoryLimit"]) == (5, 3)
    services = {s["metadata"]["name"]: s for s in layout.services(spec)}
    assert services["web-canary"]["metadata"]["labels"]["role"] == "canary"
    assert services["web-canary"]["metadata"]["annotations"] == {"note": "new"}
    assert services["web-stable"]["metadata"]["labels"]["role"] == "stable"
    assert spec.template["spec"]["containers"][0]["image"] == IMAGE  # the spec is untouched


def test_steps_durations_and_analysis_read_as_argo_writes_them() -> None:
    spec = load_rollout(FULL, image=IMAGE)
    c = spec.strategy.canary
    assert [s.kind for s in c.steps] == [
        "setCanaryScale",
        "setWeight",
        "pause",
        "setCanaryScale",
        "setWeight",
        "pause",
        "setCanaryScale",
        "analysis",
    ]
    assert (c.steps[2].pause.duration, c.steps[5].pause.duration) == (5400, 150)
    assert c.abort_scale_down_delay_seconds == 10
    ref = c.steps[7].analysis
    assert ref.names == ("error-rate", "cluster/latency")
    assert [(a.name, a.value) for a in ref.args][2] == ("team", "payments")  # fieldRef, read
    assert ref.args[0].value_from.pod_template_hash_value == "Latest"
    assert ref.args[1].value_from.pod_template_hash_value == "Stable"
    assert ref.dry_run[0].metric_name == "latency.*"
    assert (ref.measurement_retention[0].metric_name, ref.measurement_retention[0].limit) == (
        "error-rate",
        20,
    )


@pytest.mark.parametrize(
    ("index", "weight", "counts"),
    [
        (0, 0, (1, 4)),  # setCanaryScale replicas 1 before any weight
        (1, 10, (1, 4)),  # still 1 pod at 10% of traffic
        (3, 10, (2, 4)),  # weight 50 of 4 replicas
        (4, 20, (2, 4)),  # holds through the next setWeight
        (6, 20, (1, 4)),  # matchTrafficWeight: ceil(4 * 20%)
    ],
)
def test_set_canary_scale_holds_until_the_next_one(index: int, weight: int, counts: tuple) -> None:
    spec = load_rollout(FULL, image=IMAGE)
    assert target_counts(spec, weight, canary_scale(spec.strategy.canary.steps, index)) == counts


def test_go_durations_everywhere_and_a_text_field_in_the_form() -> None:
    doc = full()
    canary = doc["spec"]["strategy"]["canary"]
    canary["scaleDownDelaySeconds"] = "1m"
    canary["steps"] = [{"pause": {"duration": "90s"}}, {"pause": {"duration": 45}}]
    spec = load_rollout(doc, image=IMAGE)
    assert [s.pause.duration for s in spec.strategy.canary.steps] == [90, 45]
    assert spec.strategy.canary.scale_down_delay_seconds == 60
    schema = ReleaseSpec.model_json_schema()
    pause = {**schema["$defs"]["CanaryPause"], "$defs": schema["$defs"]}
    assert pause["properties"]["duration"]["anyOf"][0]["type"] == "string"  # a text field
    for good in ("5m", "1h30m", "90s", "45"):
        jsonschema.validate({"duration": good}, pause)  # the form takes them as typed
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"duration": "5 minutes"}, pause)
    dumped = spec.model_dump(mode="json")  # a run's parameters carry them as written
    steps = dumped["strategy"]["canary"]["steps"]
    assert [s["pause"]["duration"] for s in steps] == ["1m30s", "45s"]
    assert dumped["strategy"]["canary"]["scaleDownDelaySeconds"] == "1m"
    assert type(spec).model_validate(dumped) == spec


def _set(doc: dict, path: str, value: Any) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split("/")
    node = doc
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is None:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


CONTAINER = "spec/template/spec/containers/0"
CANARY = "spec/strategy/canary"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            f"{CONTAINER}/resources/limits/memory",
            "invalid",
            "template.spec.containers[0].resources.limits.memory: "
            "value 'invalid' is not a quantity",
        ),
        (
            f"{CONTAINER}/resources/requests/cpu",
            "2",
            "resources.requests.cpu: '2' is above its limit '1'",
        ),
        (
            f"{CONTAINER}/readinessProbe",
            {"httpGet": {"port": 8080}, "exec": {"command": ["true"]}},
            "a probe needs exactly one of httpGet, tcpSocket, exec, grpc; got httpGet, exec",
        ),
        (
            f"{CONTAINER}/readinessProbe",
            {"httpGet": {"port": "metrics"}},
            "names port 'metrics', which the container does not declare",
        ),
        (
            f"{CONTAINER}/livenessProbe",
            {"tcpSocket": {"port": 70000}},
            "port 70000 is out of range",
        ),
        (
            f"{CONTAINER}/livenessProbe",
            {"tcpSocket": {"port": 80}, "periodSeconds": 0},
            "livenessProbe.periodSeconds: 0 is not a whole number >= 1",
        ),
        (
            f"{CONTAINER}/env/0",
            {"name": "A", "value": "x", "valueFrom": {}},
            "A has both value and valueFrom",
        ),
        (f"{CONTAINER}/env/0", {"name": "A", "value": 3}, "env[0].value: 3 must be a string"),
        (
            "spec/template/spec/containers/1/image",
            "ghcr.io/kyb/proxy:1.0",
            "containers[1].image: 'ghcr.io/kyb/proxy:1.0' is not pinned by digest",
        ),
        (
            "spec/selector/matchLabels/app",
            "shop",
            "spec.selector.matchLabels app='shop' does not select spec.template's pods",
        ),
        (
            f"{CANARY}/steps/0",
            {"setCanaryScale": {"replicas": 1, "weight": 5}},
            "setCanaryScale needs exactly one of replicas, weight, matchTrafficWeight",
        ),
        (f"{CANARY}/trafficRouting", None, "steps[0].setCanaryScale requires trafficRouting"),
        (
            f"{CANARY}/canaryMetadata/labels",
            {"track": "x"},
            "canaryMetadata.labels sets 'track', which selects the pods",
        ),
        (f"{CANARY}/stableMetadata/labels", {"app": "x"}, "stableMetadata.labels sets 'app'"),
        (
            f"{CANARY}/steps/2",
            {"pause": {"duration": "1d"}},
            "duration '1d' is not a Go duration (Go durations have no 'd' unit",
        ),
        (
            f"{CANARY}/steps/7/analysis/args/2",
            {"name": "team", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['owner']"}}},
            "fieldRef \"metadata.labels['owner']\": the Rollout has no such field",
        ),
        (
            f"{CANARY}/steps/7/analysis/args/0",
            {"name": "h", "valueFrom": {"podTemplateHashValue": "Old"}},
            "Input should be 'Stable' or 'Latest'",
        ),
        (
            f"{CANARY}/steps/7/analysis/args/0",
            {"name": "h"},
            "argument 'h' needs exactly one of value, valueFrom",
        ),
        # what stays unsupported: refused, naming the field and what to use instead
        (
            f"{CANARY}/steps/1",
            {"experiment": {"templates": []}},
            "canary step 'experiment' is not supported: Experiments are not run",
        ),
        (
            f"{CANARY}/steps/1",
            {"setHeaderRoute": {"name": "h"}},
            "canary step 'setHeaderRoute' is not supported: header routes",
        ),
        (
            f"{CANARY}/steps/1",
            {"setMirrorRoute": {"name": "m"}},
            "canary step 'setMirrorRoute' is not supported: mirror routes",
        ),
        (
            f"{CANARY}/steps/1",
            {"plugin": {"name": "p"}},
            "canary step 'plugin' is not supported: step plugins",
        ),
        (
            f"{CANARY}/trafficRouting",
            {"istio": {"virtualService": {"name": "v"}}},
            "trafficRouting.istio is not supported",
        ),
        (f"{CANARY}/trafficRouting", {"smi": {}}, "trafficRouting.smi is not supported"),
        (
            f"{CANARY}/trafficRouting",
            {"managedRoutes": [{"name": "h"}], "plugins": {}},
            "trafficRouting needs exactly one router",
        ),
        (
            f"{CANARY}/dynamicStableScale",
            True,
            "canary.dynamicStableScale is not supported: the stable keeps every replica",
        ),
        (f"{CANARY}/antiAffinity", {}, "canary.antiAffinity is not supported: put podAntiAffinity"),
        (f"{CANARY}/pingPong", {}, "canary.pingPong is not supported"),
        (
            f"{CANARY}/steps/7/analysis/analysisRunMetadata",
            {},
            "analysis.analysisRunMetadata is not supported",
        ),
        ("spec/paused", True, "spec.paused is not supported"),
        ("spec/restartAt", "2026-01-01T00:00:00Z", "spec.restartAt is not supported"),
        (
            "spec/analysis",
            {"successfulRunHistoryLimit": 3},
            "spec.analysis is not supported: analysis runs are kept as Prefect artifacts",
        ),
        ("spec/rollbackWindow", {"revisions": 2}, "spec.rollbackWindow is not supported"),
        (
            "spec/workloadRef",
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-old"},
            "spec.template and spec.workloadRef are both set",
        ),
        ("spec/shards", 3, "spec.shards is not a Rollout field this release reads"),
    ],
)
def test_refused_with_the_field_and_what_to_do(path: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        load_rollout(_set(full(), path, value), image=IMAGE)


def test_paused_false_asks_nothing() -> None:
    assert load_rollout(_set(full(), "spec/paused", False), image=IMAGE).replicas == 4


BLUE_GREEN = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  strategy:
    blueGreen:
      activeService: web
      previewService: web-preview
      autoPromotionSeconds: 2m
      abortScaleDownDelaySeconds: 5
"""


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("activeMetadata", "blueGreen.activeMetadata is not supported"),
        ("previewMetadata", "blueGreen.previewMetadata is not supported"),
        ("scaleDownDelayRevisionLimit", "blueGreen.scaleDownDelayRevisionLimit is not supported"),
    ],
)
def test_blue_green_fields_that_stay_unsupported(field: str, message: str) -> None:
    doc = yaml.safe_load(BLUE_GREEN)
    doc["spec"]["strategy"]["blueGreen"][field] = {"labels": {"a": "b"}}
    with pytest.raises(ValueError, match=re.escape(message)):
        load_rollout(doc, image=IMAGE)


def test_blue_green_durations_and_abort_delay() -> None:
    bg = load_rollout(BLUE_GREEN, image=IMAGE).strategy.blue_green
    assert (bg.auto_promotion_seconds, bg.abort_scale_down_delay_seconds) == (120, 5)


WORKLOAD_REF = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, namespace: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web-deployment, scaleDown: onsuccess}
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {duration: 10s}}]
"""


def test_workload_ref_is_kept_for_the_release_to_read() -> None:
    spec = load_rollout(WORKLOAD_REF, image=IMAGE)
    assert spec.template is None
    assert (spec.workload_ref.name, spec.workload_ref.scale_down) == ("web-deployment", "onsuccess")
    never = load_rollout(WORKLOAD_REF.replace(", scaleDown: onsuccess", ""), image=IMAGE)
    assert never.workload_ref.scale_down == "never"  # Argo's default
    with pytest.raises(ValueError, match="scaleDown progressively is not supported: use onsuccess"):
        load_rollout(WORKLOAD_REF.replace("onsuccess", "progressively"), image=IMAGE)
    with pytest.raises(ValueError, match="Input should be 'Deployment'"):
        load_rollout(WORKLOAD_REF.replace("kind: Deployment", "kind: StatefulSet"), image=IMAGE)


def test_a_spec_given_directly_states_field_values() -> None:
    data = load_rollout(FULL, image=IMAGE).model_dump(mode="json", by_alias=True, exclude_none=True)
    data["strategy"]["canary"]["steps"][7]["analysis"]["args"][2] = {
        "name": "team",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }
    with pytest.raises(
        ValueError, match="is read from the Rollout document: load it with load_rollout"
    ):
        ReleaseSpec.model_validate(data)


def test_a_loaded_spec_round_trips_and_a_new_image_reaches_the_template() -> None:
    spec = load_rollout(FULL, image=IMAGE)
    again = ReleaseSpec.model_validate(spec.model_dump(by_alias=True, exclude_none=True))
    assert again == spec
    other = "ghcr.io/kyb/web@sha256:" + "ef" * 32
    moved = spec.with_changes(image=other)
    assert moved.template["spec"]["containers"][0]["image"] == other
    assert spec.template["spec"]["containers"][0]["image"] == IMAGE
