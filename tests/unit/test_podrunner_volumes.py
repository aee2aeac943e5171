"""The pod runner fills a pod's file volumes as a kubelet would: token, CA, namespace, items."""

from __future__ import annotations

import stat

import pytest

from sandbox.podrunner import volumes
from sandbox.podrunner.spec import SpecError

ACCESS = {  # what the ServiceAccount admission plugin adds to a pod
    "name": "kube-api-access-x1",
    "projected": {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {
                "configMap": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
            {
                "downwardAPI": {
                    "items": [
                        {
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            "path": "namespace",
                        }
                    ]
                }
            },
        ],
    },
}
MOUNT = {"name": "kube-api-access-x1", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}


def _pod(volumes_: list[dict], mounts: list[dict]) -> dict:
    container = {"name": "flow", "image": "img", "volumeMounts": mounts}
    return {
        "metadata": {"name": "job-abc", "namespace": "kyb-system", "uid": "u-9"},
        "spec": {"containers": [container], "volumes": volumes_, "serviceAccountName": "kyb"},
    }


def _lookup(data: dict) -> volumes.Lookup:
    return lambda kind, ns, name: data.get((kind, ns, name))


def test_the_service_account_volume_holds_a_bound_token_the_ca_and_the_namespace() -> None:
    asked = []

    def token_for(pod: dict, audience: str, seconds: int) -> tuple[str, int]:
        asked.append((pod["metadata"]["uid"], audience, seconds))
        return "tok-123", 3600

    lookup = _lookup({("configmap", "kyb-system", "kube-root-ca.crt"): {"ca.crt": "PEM"}})
    [volume] = volumes.files(_pod([ACCESS], [MOUNT]), lookup, token_for)
    assert volume.mount_path == MOUNT["mountPath"]
    assert volume.files == {
        "token": (b"tok-123", 0o644),
        "ca.crt": (b"PEM", 0o644),
        "namespace": (b"kyb-system", 0o644),
    }
    assert asked == [("u-9", "", 3607)]  # bound to this pod, the apiserver's own audience
    assert volume.renew_in == pytest.approx(2880)  # 80% of the life the apiserver granted


def test_written_volumes_are_read_only_binds_and_a_renewal_replaces_the_files(tmp_path) -> None:
    first = volumes.Volume("v", "/etc/v", {"token": (b"one", 0o600), "old": (b"x", 0o644)})
    binds = volumes.write(tmp_path, [first])
    assert binds == {str(tmp_path / "v"): {"bind": "/etc/v", "mode": "ro"}}
    assert (tmp_path / "v" / "token").read_bytes() == b"one"
    assert stat.S_IMODE((tmp_path / "v" / "token").stat().st_mode) == 0o600
    volumes.write(tmp_path, [volumes.Volume("v", "/etc/v", {"token": (b"two", 0o600)})])
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["token"]
    assert (tmp_path / "v" / "token").read_bytes() == b"two"
    volumes.remove(tmp_path)
    assert not tmp_path.exists()


def test_configmap_and_secret_volumes_hold_their_keys_or_the_items_asked_for() -> None:
    config = {"name": "cfg", "configMap": {"name": "app", "items": [{"key": "a", "path": "x/a"}]}}
    secret = {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400}}
    mounts = [{"name": "cfg", "mountPath": "/cfg"}, {"name": "sec", "mountPath": "/sec"}]
    lookup = _lookup(
        {
            ("configmap", "kyb-system", "app"): {"a": "1", "b": "2"},
            ("secret", "kyb-system", "creds"): {"user": "u", "password": "p"},
        }
    )
    cfg, sec = volumes.files(_pod([config, secret], mounts), lookup, lambda *a: ("", 0))
    assert cfg.files == {"x/a": (b"1", 0o644)}
    assert sec.files == {"user": (b"u", 0o400), "password": (b"p", 0o400)}
    assert cfg.renew_in is None


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ({"name": "v", "configMap": {"name": "missing"}}, "configmap missing not found"),
        ({"name": "v", "hostPath": {"path": "/etc"}}, "hostPath volumes are not supported"),
    ],
)
def test_a_volume_the_runner_cannot_fill_says_why(raw: dict, why: str) -> None:
    with pytest.raises(SpecError, match=why) as caught:
        volumes.files(_pod([raw], [{"name": "v", "mountPath": "/v"}]), _lookup({}), lambda *a: "")
    assert caught.value.reason == "CreateContainerConfigError"


def test_an_optional_missing_configmap_is_an_empty_volume_and_emptydirs_are_not_files() -> None:
    optional = {"name": "v", "configMap": {"name": "missing", "optional": True}}
    scratch = {"name": "tmp", "emptyDir": {}}
    mounts = [{"name": "v", "mountPath": "/v"}, {"name": "tmp", "mountPath": "/tmp"}]
    [volume] = volumes.files(_pod([optional, scratch], mounts), _lookup({}), lambda *a: "")
    assert volume.files == {}
