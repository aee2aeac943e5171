"""A flow run that does nothing: Prefect's own cost of one run, the benchmarks' reference."""

from prefect import flow


@flow(name="bench-empty")
def empty() -> None:
    """Nothing: what a run costs the server and its process before any work."""
