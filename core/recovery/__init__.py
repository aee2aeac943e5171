"""Recovery, decided: Velero backups, their contents, restore plans and drills."""
