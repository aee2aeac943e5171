"""The in-cluster pool's shipped job template and worker manifest, as the platform fills them in."""

from __future__ import annotations

import json

from sandbox.components.kube_worker import MANIFEST, SECRET, TEMPLATE, job_template, worker_objects

IMAGE = "127.0.0.1:5001/kyb-pipeline@sha256:" + "a" * 64


def test_the_shipped_template_runs_restricted_pods_and_names_no_machine_s_image() -> None:
    shipped = json.loads(TEMPLATE.read_text())
    assert shipped["variables"]["properties"]["image"]["default"] is None  # a team sets its own
    pod = shipped["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "kyb.dev/run" not in json.dumps(shipped)  # the platform's opt-in is added here only
    defaults = {k: v.get("default") for k, v in shipped["variables"]["properties"].items()}
    assert defaults["namespace"] == "kyb-system"
    assert defaults["service_account_name"] == "kyb-pipeline-dev"


def test_the_platform_sets_the_image_by_digest_and_opts_the_pods_in() -> None:
    filled = job_template(IMAGE)
    assert filled["variables"]["properties"]["image"]["default"] == IMAGE
    pod = filled["job_configuration"]["job_manifest"]["spec"]["template"]
    assert pod["metadata"]["labels"]["kyb.dev/run"] == "true"


def test_the_worker_gets_the_api_s_auth_from_a_secret_only() -> None:
    objects = worker_objects(IMAGE, "http://127.0.0.1:4200/api", "kyb:s3cret")
    secret, *rest = objects
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == SECRET
    [deployment] = [o for o in rest if o["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE
    env = {var["name"]: var for var in container["env"]}
    assert env["PREFECT_API_URL"]["value"] == "http://127.0.0.1:4200/api"
    assert env["PREFECT_API_AUTH_STRING"]["valueFrom"]["secretKeyRef"]["name"] == SECRET
    assert "s3cret" not in json.dumps(rest)  # only the Secret holds it
    assert "IMAGE" in MANIFEST.read_text()  # the shipped file keeps its placeholder
