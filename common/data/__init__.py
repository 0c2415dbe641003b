"""Shared data helpers (filled in by the application issues)."""
