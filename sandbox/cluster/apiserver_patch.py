"""kube-apiserver built to accept loopback endpoint addresses (the local platform's pod IPs).

Upstream refuses Endpoints and EndpointSlice addresses in 127.0.0.0/8 (ValidateEndpointIP in
k8s.io/kubernetes/pkg/apis/core/validation): a real pod never has one. Here every pod IP is a
loopback address by design (the network rule), so without this a Service's EndpointSlices stay
empty and nothing (Traefik, the tests) can route to the pods. That one check is taken out at
build time (sandbox/gopatch.py); nothing of Kubernetes' source is kept in this repository.
"""

from __future__ import annotations

from pathlib import Path

from sandbox import gopatch
from sandbox.settings import K8S_VERSION

PATCH = gopatch.SourcePatch(
    component="cluster",
    module="k8s.io/kubernetes",
    version=K8S_VERSION,
    file="pkg/apis/core/validation/validation.go",
    old=(
        "\tif ip.IsLoopback() {\n"
        "\t\tallErrs = append(allErrs, field.Invalid(fldPath, ipAddress, "
        '"may not be in the loopback range (127.0.0.0/8, ::1/128)"))\n'
        "\t}\n"
    ),
    new="\t// kyb sandbox: loopback allowed, the local platform's pod IPs are loopback addresses\n",
    package="k8s.io/kubernetes/cmd/kube-apiserver",
    binary="kube-apiserver",
    where="sandbox/cluster/apiserver_patch.py",
)


def is_patched(bin_dir: Path) -> bool:
    """Whether bin_dir's kube-apiserver was built with this patch."""
    return PATCH.is_built(bin_dir)


def build(component: str, module_dir: Path, bin_dir: Path, ldflags: str) -> float:
    """Build the patched kube-apiserver into bin_dir (replacing it atomically); return seconds."""
    return gopatch.build(PATCH, module_dir, bin_dir, ldflags)
