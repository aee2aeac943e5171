"""The flows: one module per flow the pipeline runs (delivery, release, rollback, backup, ...)."""
