"""Velero for the local platform: the wrapper go.mod that builds it, and its cluster objects."""
