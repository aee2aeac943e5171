"""Delivery, decided: branch rules, the overlay's release, checklist, checks and DORA."""
