"""Persistence: the database is the source of truth for what was counted, granted and sent."""
