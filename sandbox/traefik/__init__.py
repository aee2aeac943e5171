"""Traefik for the local platform: the wrapper go.mod that builds it, its RBAC and Gateway."""
