"""Image-text retrieval application (see the open issue)."""
