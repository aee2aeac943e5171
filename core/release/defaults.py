"""Every release default in one place: Argo Rollouts' values where Argo has one, ours otherwise."""

from __future__ import annotations

# --- Rollout spec (Argo: DefaultReplicas, DefaultProgressDeadlineSeconds) ---

#: spec.replicas when a Rollout leaves it out (a Deployment defaults to 1 as well).
REPLICAS = 1

#: spec.progressDeadlineSeconds: how long a workload may go without progress before the release
#: is declared stuck (a Deployment's condition turns ProgressDeadlineExceeded). Argo and
#: Kubernetes both default to 600 s.
PROGRESS_DEADLINE_SECONDS = 600

#: spec.revisionHistoryLimit: old ReplicaSets kept per workload (Argo and Kubernetes: 10); a
#: rolling release's undo goes back through them.
REVISION_HISTORY_LIMIT = 10

# --- Rolling update and canary surge (Argo: DefaultMaxSurge, DefaultMaxUnavailable) ---

#: maxSurge: extra pods allowed above `replicas` during an update. Percentages round UP.
MAX_SURGE = "25%"

#: maxUnavailable: pods allowed to be unavailable during an update. Percentages round DOWN; if both
#: resolve to 0, maxUnavailable becomes 1 (Kubernetes' and Argo's "fencepost" rule).
MAX_UNAVAILABLE = "25%"

# --- Blue-green (Argo: DefaultScaleDownDelaySeconds, DefaultAbortScaleDownDelaySeconds, ...) ---

#: scaleDownDelaySeconds: after the active Service switched, keep the old color this long so that
#: kube-proxy/ingress endpoints converge before its pods go. Also used by traffic-routed canaries.
SCALE_DOWN_DELAY_SECONDS = 30

#: abortScaleDownDelaySeconds: after an abort moved traffic back, keep the new version this long
#: before scaling it down. Argo reads 0 as "never scale down"; we read 0 as "at once" (see
#: core/release/planners/__init__.py: a rollback always scales the new version down).
ABORT_SCALE_DOWN_DELAY_SECONDS = 30

#: autoPromotionEnabled: promote a blue-green release once the preview is ready and pre-promotion
#: analysis passed, without asking a human.
AUTO_PROMOTION_ENABLED = True

# --- Analysis (Argo: DefaultConsecutiveErrorLimit) ---

#: consecutiveErrorLimit: measurement errors (Prometheus down, bad query result) in a row before a
#: metric's verdict becomes Error. The analysis judge applies it; planners only see the verdict.
CONSECUTIVE_ERROR_LIMIT = 4

# --- Ours: human gates ---

#: How long a pause that needs a human ("promote the canary?") waits for an answer. No answer within
#: this time counts as "no": the release aborts. A release is never promoted on silence.
HUMAN_PAUSE_TIMEOUT_SECONDS = 3600

# --- Ours: names and labels the executor puts on workloads and Service selectors ---

#: Pod label that tells the two blue-green colors apart; the Services select on it.
COLOR_LABEL = "color"

#: The two blue-green colors; the first release of an app uses the first one.
COLORS = ("blue", "green")

#: Label that tells the stable and canary workloads apart (both stay behind the app's Service).
TRACK_LABEL = "track"
