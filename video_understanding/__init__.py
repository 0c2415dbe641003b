"""Video understanding application (see the open issue)."""
