"""Restore drills: scratch namespaces, and the check of what a restore brought back."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ConfigError
from core.names import is_dns_label
from core.recovery.drill import DRILL_KINDS, DrillResult, check_restore, scratch_mapping
from tests.unit.test_backup_restore_plan import (
    PROD,
    backed_up,
    config,
    deployment,
    keyed,
    namespace,
    restored,
    root_ca,
    secret,
    service,
    service_account,
)

STAGING = "kyb-staging"
MAPPING = scratch_mapping([PROD, STAGING], "20261126")
DRILL_PROD, DRILL_STAGING = MAPPING[PROD], MAPPING[STAGING]


def token_secret() -> dict[str, Any]:
    body = secret()
    body["type"] = "kubernetes.io/service-account-token"
    body["metadata"]["name"] = "kyb-api-token"
    return body


BODIES = [
    namespace(),
    deployment(),
    service(),
    config(),
    secret(),
    root_ca(),
    service_account(),
    token_secret(),
    config(STAGING, "c-2"),
]


def faithful(objects: list, mapping: dict[str, str] = MAPPING) -> dict[tuple, dict[str, Any]]:
    """What a faithful restore leaves in the scratch namespaces."""
    found = {}
    for obj in objects:
        target = mapping.get(obj.namespace or obj.name, obj.namespace or obj.name)
        found |= keyed((obj, restored(obj.body, ns=target)))
    return found


# --- scratch namespaces ---


def test_scratch_names_prefix_drill_and_the_suffix() -> None:
    assert MAPPING == {PROD: "drill-20261126-kyb-production", STAGING: "drill-20261126-kyb-staging"}


def test_long_scratch_names_are_cut_with_a_hash_and_stay_valid_and_distinct() -> None:
    long_a, long_b = "a" * 52 + "-one", "a" * 52 + "-two"
    mapping = scratch_mapping([long_a, long_b], "run-4f2a9c")
    assert all(len(name) <= 63 and is_dns_label(name) for name in mapping.values())
    assert mapping[long_a] != mapping[long_b]
    assert mapping[long_a].startswith("drill-run-4f2a9c-aaaa")
    assert scratch_mapping([long_a], "run-4f2a9c") == {long_a: mapping[long_a]}


def test_a_cut_name_never_ends_in_a_dash_before_its_hash() -> None:
    ns = "kyb" + "-" * 55 + "x"
    (name,) = scratch_mapping([ns], "s").values()
    assert is_dns_label(name)
    assert name.startswith("drill-s-kyb-") and len(name) == len("drill-s-kyb-") + 8


@pytest.mark.parametrize("suffix", ["", "Run1", "run_1", "-x", "a" * 64])
def test_a_bad_suffix_is_refused(suffix: str) -> None:
    with pytest.raises(ConfigError, match="drill suffix"):
        scratch_mapping([PROD], suffix)


def test_a_bad_namespace_is_refused() -> None:
    with pytest.raises(ConfigError, match="'Kyb' is not a valid namespace name"):
        scratch_mapping(["Kyb"], "x")


# --- checking the restore ---


def test_a_faithful_restore_passes_and_counts_each_kind() -> None:
    objects = backed_up(*BODIES)
    result = check_restore(objects, faithful(objects), MAPPING)
    assert result.passed, result.failures
    assert result.checked == {"deployments.apps": 1, "services": 1, "configmaps": 2, "secrets": 1}
    assert result.summary() == (
        "drill passed: 5 objects restored as backed up (1 Deployment, 1 Service, 2 ConfigMaps, "
        "1 Secret)"
    )
    assert tuple(result.checked) == DRILL_KINDS


def test_objects_kubernetes_makes_are_not_checked_even_when_missing() -> None:
    objects = backed_up(root_ca(), token_secret(), config())
    live = faithful([o for o in objects if o.name == "kyb-api-config"])
    result = check_restore(objects, live, MAPPING)
    assert result.passed and result.total == 1


def test_a_missing_object_fails_naming_kind_namespace_and_name() -> None:
    objects = backed_up(*BODIES)
    live = faithful([o for o in objects if o.kind != "Service"])
    result = check_restore(objects, live, MAPPING)
    assert not result.passed
    assert result.failures == [f"Service {DRILL_PROD}/kyb-api: missing after the restore"]
    (finding,) = result.findings
    assert (finding.kind, finding.namespace, finding.name) == ("Service", DRILL_PROD, "kyb-api")
    assert result.summary() == (
        "drill failed: 1 of 5 objects not restored as backed up (1 Deployment, 1 Service, "
        "2 ConfigMaps, 1 Secret checked)"
    )


def test_an_object_restored_into_the_wrong_namespace_is_missing() -> None:
    objects = backed_up(config())
    result = check_restore(objects, faithful(objects, {PROD: "elsewhere"}), MAPPING)
    assert [f.reason for f in result.findings] == ["missing after the restore"]


def test_a_differing_secret_fails_naming_the_key_never_the_value() -> None:
    objects = backed_up(secret())
    live = keyed((objects[0], restored(secret(key="dGFtcGVyZWQ="), ns=DRILL_PROD)))
    result = check_restore(objects, live, MAPPING)
    (failure,) = result.failures
    assert (
        failure == f"Secret {DRILL_PROD}/kyb-api-secrets: differs from the backup in data.API_KEY"
    )
    everything = "\n".join(result.rows()) + result.summary() + repr(result)
    assert "c2VjcmV0LXZhbHVl" not in everything and "dGFtcGVyZWQ=" not in everything


def test_a_differing_config_map_names_at_most_five_fields() -> None:
    wide = config()
    wide["data"] = {f"K{i}": "a" for i in range(7)}
    objects = backed_up(wide)
    live_body = restored(config(), ns=DRILL_PROD)
    live_body["data"] = {f"K{i}": "b" for i in range(7)}
    (failure,) = check_restore(objects, keyed((objects[0], live_body)), MAPPING).findings
    assert failure.reason == (
        "differs from the backup in data.K0, data.K1, data.K2, data.K3, data.K4 and 2 more"
    )


def test_a_deployment_with_too_few_available_replicas_fails() -> None:
    objects = backed_up(deployment(replicas=3))
    live = restored(deployment(replicas=3, availableReplicas=1), ns=DRILL_PROD)
    (failure,) = check_restore(objects, keyed((objects[0], live)), MAPPING).failures
    assert failure == f"Deployment {DRILL_PROD}/kyb-api: not available: 1 of 3 replicas available"


def test_a_deployment_without_available_replicas_in_its_status_fails() -> None:
    objects = backed_up(deployment())
    live = restored(deployment(), ns=DRILL_PROD)
    del live["status"]
    (failure,) = check_restore(objects, keyed((objects[0], live)), MAPPING).findings
    assert failure.reason == "not available: 0 of 2 replicas available"


def test_a_deployment_whose_available_condition_is_false_fails_with_its_message() -> None:
    condition = {
        "type": "Available",
        "status": "False",
        "reason": "MinimumReplicasUnavailable",
        "message": "Deployment does not have minimum availability.",
    }
    objects = backed_up(deployment())
    live = restored(deployment(conditions=[condition]), ns=DRILL_PROD)
    (failure,) = check_restore(objects, keyed((objects[0], live)), MAPPING).findings
    assert failure.reason == "not available: Deployment does not have minimum availability."


def test_a_deployment_scaled_to_zero_is_available() -> None:
    objects = backed_up(deployment(replicas=0))
    live = restored(deployment(replicas=0), ns=DRILL_PROD)
    assert check_restore(objects, keyed((objects[0], live)), MAPPING).passed


def test_a_deployment_can_both_differ_and_be_unavailable_and_counts_once() -> None:
    objects = backed_up(deployment(), config())
    live = faithful(objects)
    dep_key = ("apps", "deployments", DRILL_PROD, "kyb-api")
    live[dep_key] = restored(deployment(image="kyb-api:9.9.9", availableReplicas=0), ns=DRILL_PROD)
    result = check_restore(objects, live, MAPPING)
    assert [f.reason for f in result.findings] == [
        "differs from the backup in spec.template.spec.containers[0].image",
        "not available: 0 of 2 replicas available",
    ]
    assert result.failed == 1
    assert result.summary().startswith("drill failed: 1 of 2 objects")


def test_a_backup_without_drill_kinds_does_not_pass() -> None:
    objects = backed_up(namespace(), service_account(), root_ca())
    result = check_restore(objects, faithful(objects), MAPPING)
    assert not result.passed and result.total == 0
    assert result.summary().startswith("drill failed: nothing to check")
    assert not DrillResult().passed


def test_rows_are_a_markdown_table_per_kind_then_per_failure() -> None:
    objects = backed_up(deployment(), config(), config(STAGING, "c-2"), secret())
    live = faithful([o for o in objects if o.namespace != STAGING])
    rows = check_restore(objects, live, MAPPING).rows()
    assert rows == [
        "| kind | checked | failed |",
        "|---|---|---|",
        "| Deployment | 1 | 0 |",
        "| Service | 0 | 0 |",
        "| ConfigMap | 2 | 1 |",
        "| Secret | 1 | 0 |",
        "",
        "| object | problem |",
        "|---|---|",
        f"| ConfigMap {DRILL_STAGING}/kyb-api-config | missing after the restore |",
    ]


def test_without_a_mapping_the_restore_is_checked_in_place() -> None:
    objects = backed_up(config(), secret())
    live = keyed(*[(o, restored(o.body, ns=PROD)) for o in objects])
    assert check_restore(objects, live).passed
