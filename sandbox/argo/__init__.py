"""Argo Rollouts on the local platform: its CRDs on both clusters (crds.py)."""
