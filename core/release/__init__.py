"""Releases, decided: the spec, its defaults, what the cluster shows, the planners' actions."""
