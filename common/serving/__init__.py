"""Shared serving helpers (filled in by the application issues)."""
