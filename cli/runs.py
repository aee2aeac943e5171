"""`kyb release start` and `kyb release undo`: runs of the release and rollback deployments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from blocks import Environment, KubernetesCluster
from cli.launch import Deployment, Timeout, Wait, launch, saved_block
from cli.output import Output, OutputOption, handled
from cli.release import App, Cluster, Namespace, app


@app.command("start")
@handled
def start(
    app_name: App,
    env: Annotated[str, typer.Option("--env", "-e", help="The KYB Environment block.")],
    image: Annotated[str, typer.Option("--image", help="The image, by digest.")] = "",
    rollout: Annotated[
        Path | None,
        typer.Option("--rollout", exists=True, dir_okay=False, help="An Argo Rollout's YAML."),
    ] = None,
    deployment: Deployment = "release/release",
    wait: Wait = False,
    timeout: Timeout = 1800.0,
    output: OutputOption = Output.TEXT,
) -> None:
    """Start a release of APP to an environment (an image, or a Rollout's YAML with its image)."""
    if not image and rollout is None:
        raise typer.BadParameter("give --image, --rollout FILE, or both", param_hint="--image")
    parameters: dict[str, Any] = {
        "environment": saved_block(Environment, env, "KYB Environment"),
        "app": app_name,
        "image": image,
    }
    if rollout is not None:
        parameters["rollout"] = rollout.read_text()
    launch(deployment, parameters, wait, timeout, output)


@app.command("undo")
@handled
def undo(
    app_name: App,
    namespace: Namespace,
    to_revision: Annotated[
        int, typer.Option("--to-revision", min=0, help="0: the version before the current one.")
    ] = 0,
    cluster: Cluster = "local",
    deployment: Deployment = "rollback/rollback",
    wait: Wait = False,
    timeout: Timeout = 1800.0,
    output: OutputOption = Output.TEXT,
) -> None:
    """Roll APP back to its previous stable version (or --to-revision) with the rollback flow."""
    parameters = {
        "app": app_name,
        "namespace": namespace,
        "to_revision": to_revision,
        "cluster": saved_block(KubernetesCluster, cluster, "KYB Kubernetes Cluster"),
    }
    launch(deployment, parameters, wait, timeout, output)
