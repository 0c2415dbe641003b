"""Small file helpers."""

import os


def read_text(path):
    """The UTF-8 text of `path`, or None if it does not exist."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()


def resolve_inside(root, reference):
    """Absolute path of `reference` under `root`, or None if it escapes root
    (an absolute path, `..`, or a symbolic link pointing outside)."""
    if os.path.isabs(reference):
        return None
    root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(root, reference))
    if os.path.commonpath([root, path]) != root:
        return None
    return path
