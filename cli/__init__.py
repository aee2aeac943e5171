"""The `kyb` command line: releases, environments and backups for people, over Prefect."""
