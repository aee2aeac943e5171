"""The pod runner: the local platform's kubelet for the pods that ask to run for real.

The contract (README, "Pods that run"):

- A pod runs for real when it carries the label `kyb.dev/run: "true"` and its (first) container's
  image comes from the platform's registry (127.0.0.1:5001 by default). Every other pod stays
  simulated by kwok (Ready at once, nothing runs).
- kwok moves an opted-in pod to Running (stage `pod-run`); the runner gives it an IP from
  KYB_RUN_POD_CIDR (127.48.0.0/16), pulls the image with the registry's credentials and runs it
  as a host-network Docker container named `k8s_<container>_<pod>_<namespace>_<uid8>_<attempt>`,
  labelled with the pod's UID, from the moment the pod has a node until it is deleted.
- The process gets `POD_IP` (its pod's IP) and `PORT` (its container's first containerPort)
  and must listen on POD_IP:PORT only. Env values, fieldRef, resourceFieldRef, configMap and
  secret refs (and envFrom) are resolved as a kubelet would; command/args, runAsUser/Group,
  readOnlyRootFilesystem, dropped capabilities, memory/CPU limits and emptyDir (tmpfs) apply.
- Ready comes only from the readinessProbe (httpGet or tcpSocket against POD_IP, honouring
  initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold, failureThreshold); the
  livenessProbe restarts the container after failureThreshold failures; a container that exits
  is restarted per restartPolicy with the kubelet's back-off (10 s doubling to 300 s).
- In-cluster configuration, as a kubelet gives it: KUBERNETES_SERVICE_HOST/PORT name the
  apiserver's own loopback address (nothing routes Service IPs here), and the projected volume
  the ServiceAccount admission adds holds a token of the pod's account from the TokenRequest API,
  bound to the pod and renewed at 80% of its life, the cluster's CA and the namespace. configMap,
  secret and downwardAPI volumes are files too (sandbox/podrunner/volumes.py), mounted read-only.
- A Job's pod (restartPolicy Never or OnFailure) ends Succeeded or Failed when its container
  exits (kwok's pod-complete stage skips these pods), so the Job controller sees it finish.
- Not supported (said in the pod's status or the runner's log): exec probes, startupProbe,
  lifecycle hooks but a preStop sleep (run before SIGTERM), hostPath and other volume types,
  subPath mounts, more than one container.
"""

from __future__ import annotations

RUN_LABEL = "kyb.dev/run"  # a pod opts in with the value "true"
# labels on every container the runner starts: they tie it to its pod, for adoption after a restart
RUNNER = "kyb.dev/pod-runner"  # the cluster's name
POD_UID = "kyb.dev/pod-uid"
POD_NAME = "kyb.dev/pod-name"
POD_NAMESPACE = "kyb.dev/pod-namespace"
POD_IP = "kyb.dev/pod-ip"
ATTEMPT = "kyb.dev/attempt"  # the container's restart count
