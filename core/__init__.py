"""Prefect-free deciding code, one package per domain: release, analysis, recovery, ci, delivery."""
