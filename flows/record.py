"""Writes the delivery record (core/delivery/record.py) into the current flow run's labels."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.logging import get_logger

from blocks import KubernetesCluster
from core.delivery.record import CAUSE_CHARS, PREFIX, RECORD_TAG, Attempt, Result, labels_of, slug
from core.errors import ConfigError
from flows import events

ENV_SLUG = "kyb-environment"
logger = get_logger("kyb.record")


def environment_for(namespace: str, cluster: KubernetesCluster | None = None) -> str:
    """The saved Environment a release into `namespace` on `cluster` deploys to.

    The Environment blocks are the source of truth: the one whose namespace is `namespace` (and,
    when several are, whose cluster block is `cluster`'s). With none, the environment is
    `ns-<namespace>`, never a guess from the namespace's name: save an Environment block to name it.
    """
    try:
        with get_client(sync_client=True) as client:
            docs = client.read_block_documents_by_type(ENV_SLUG, include_secrets=False)
    except Exception as exc:  # no server, no block type yet: the record still says where
        logger.warning("could not read the Environment blocks: %s", type(exc).__name__)
        docs = []
    found = [d for d in docs if not d.is_anonymous and (d.data or {}).get("namespace") == namespace]
    cluster_id = getattr(cluster, "_block_document_id", None)
    if len(found) > 1 and cluster_id is not None:
        found = [d for d in found if _cluster_ref(d) == str(cluster_id)] or found
    if len(found) == 1:
        return slug(str((found[0].data or {}).get("name") or found[0].name))
    return f"ns-{slug(namespace)}"


def _cluster_ref(doc: object) -> str:
    refs = getattr(doc, "block_document_references", None) or {}
    ref = refs.get("cluster") if isinstance(refs, dict) else None
    return str(ref.get("block_document", {}).get("id", "")) if isinstance(ref, dict) else ""


def write(labels: dict[str, str]) -> None:
    """Patch `labels` into the current flow run's labels (nothing outside a flow run).

    A Prefect server that cannot be reached costs the record, never the release: logged.
    """
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    try:
        with get_client(sync_client=True) as client:
            if RECORD_TAG not in ctx.flow_run.tags:  # what DORA and the metrics look for
                tags = [*ctx.flow_run.tags, RECORD_TAG]
                client.update_flow_run(ctx.flow_run.id, tags=tags)
                ctx.flow_run.tags = tags
            client.update_flow_run_labels(ctx.flow_run.id, labels)
    except Exception as exc:
        logger.warning("could not record %s on the run: %s", sorted(labels), type(exc).__name__)


def commit(sha: str, committed: str) -> None:
    """Record the commit a delivery ships (and its time, for the lead time)."""
    labels = {f"{PREFIX}.commit": sha}
    write({**labels, f"{PREFIX}.commit_time": committed} if committed else labels)


def mark(attempt: Attempt, result: Result, cause: str = "") -> None:
    """Change the result of an attempt this run recorded (e.g. its checks failed after it)."""
    done = replace(attempt, result=result, ended=datetime.now(UTC), cause=cause)
    write(labels_of(done))
    events.ended(done)


@dataclass
class Recording:
    """The attempt being recorded; the body sets `result` (and `cause`) before it ends."""

    attempt: Attempt
    result: Result | None = None
    cause: str = ""
    done: Attempt | None = None  # the attempt as recorded at its end


@contextlib.contextmanager
def recorded(
    kind: str,
    app: str,
    environment: str,
    namespace: str,
    strategy: str = "",
    image: str = "",
    cluster: KubernetesCluster | None = None,
) -> Iterator[Recording]:
    """Record an attempt as running now, and how it ended when the body ends.

    A ConfigError (refused before any write) records `refused`; any other error `failed`, with
    the error as the cause; a body that set no result `failed`. `cluster`'s block name is kept,
    so the reconciler (flows/reconcile.py) can find what a crashed attempt left.
    """
    attempt = Attempt(
        kind=kind,
        app=app,
        environment=slug(environment),
        namespace=namespace,
        result=Result.RUNNING,
        started=datetime.now(UTC),
        strategy=strategy,
        image=image,
        cluster=str(getattr(cluster, "_block_document_name", None) or ""),
    )
    write(labels_of(attempt))
    events.emit("started", {"image": image}, attempt)
    rec = Recording(attempt)
    try:
        with events.about(attempt):
            yield rec
    except ConfigError as exc:
        rec.result, rec.cause = Result.REFUSED, str(exc)
        raise
    except BaseException as exc:
        rec.result, rec.cause = Result.FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        rec.done = done = replace(
            attempt,
            result=rec.result or Result.FAILED,
            ended=datetime.now(UTC),
            cause=" ".join(rec.cause.split())[:CAUSE_CHARS],
        )
        write(labels_of(done))
        events.ended(done)
