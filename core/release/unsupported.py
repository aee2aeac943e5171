"""What of Argo Rollouts' language a release does not do, each with what to use instead.

Every field here is refused when the document is read, naming the field, rather than dropped:
a Rollout that loads is a Rollout that runs as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic.alias_generators import to_camel

_ROUTER = "a router this pipeline drives: plugins: {argoproj-labs/gatewayAPI: {httpRoute}}"

#: Rollout `spec` fields.
ROLLOUT: dict[str, str] = {
    "paused": "a release pauses at its steps (pause: {}); start the release when it should run",
    "restartAt": "restart pods with `kubectl rollout restart deployment/<app>`",
    "rollbackWindow": "roll back with the rollback flow, which goes back to the previous release",
    "analysis": "analysis runs are kept as Prefect artifacts, not AnalysisRun objects: remove "
    "the run history limits",
}
#: `spec.strategy.canary` fields.
CANARY: dict[str, str] = {
    "dynamicStableScale": "the stable keeps every replica until promotion, so an abort is "
    "instant: remove dynamicStableScale",
    "antiAffinity": "put podAntiAffinity in the pod template's affinity",
    "pingPong": "use stableService and canaryService",
    "minPodsPerReplicaSet": "set replicas and setCanaryScale so the canary has the pods it needs",
    "scaleDownDelayRevisionLimit": "one previous version is kept, for scaleDownDelaySeconds",
    "replicaProgressThreshold": "a step waits for every pod it asked for",
    "analysisRunMetadata": "analysis runs are Prefect artifacts: remove analysisRunMetadata",
}
#: `spec.strategy.blueGreen` fields.
BLUE_GREEN: dict[str, str] = {
    "activeMetadata": "a color's pods serve as preview and then as active, and a label change "
    "would restart them; select on the `color` label the Services use",
    "previewMetadata": "a color's pods serve as preview and then as active, and a label change "
    "would restart them; select on the `color` label the Services use",
    "antiAffinity": "put podAntiAffinity in the pod template's affinity",
    "scaleDownDelayRevisionLimit": "one previous color is kept, for scaleDownDelaySeconds",
    "maxUnavailable": "a color comes up beside the other, so none is unavailable: remove it",
    "analysisRunMetadata": "analysis runs are Prefect artifacts: remove analysisRunMetadata",
}
#: Canary step kinds.
STEPS: dict[str, str] = {
    "experiment": "Experiments are not run: use an analysis step against the canary",
    "setHeaderRoute": "header routes are not set: use setWeight through the Gateway API router",
    "setMirrorRoute": "mirror routes are not set: use setWeight through the Gateway API router",
    "plugin": "step plugins are not run: use pause, analysis or setWeight steps",
}
#: `trafficRouting` kinds (meshes and ingresses without a router here).
ROUTERS: dict[str, str] = {
    kind: f"{kind} is not driven here: use {_ROUTER}, or no trafficRouting (replica-weighted)"
    for kind in (
        "istio",
        "smi",
        "alb",
        "ambassador",
        "apisix",
        "appMesh",
        "traefik",
    )
}
ROUTERS["managedRoutes"] = "header and mirror routes are not set: remove managedRoutes"
#: Rollout analysis (`RolloutAnalysis`) fields.
ANALYSIS: dict[str, str] = {
    "analysisRunMetadata": "analysis runs are Prefect artifacts: remove analysisRunMetadata",
}


def refuse(data: Any, table: Mapping[str, str], where: str) -> None:
    """Raise ValueError naming the first field of `data` that `table` lists, and what to use.

    Keys may be camelCase or snake_case. `paused: false` is no request to pause and passes.
    """
    if not isinstance(data, Mapping):
        return
    for key, value in data.items():
        name = to_camel(key) if isinstance(key, str) else key
        if name in table and not (name == "paused" and value is False):
            raise ValueError(f"{where}.{name} is not supported: {table[name]}")
