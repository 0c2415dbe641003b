"""Small file helpers."""

import os


def read_text(path):
    """The UTF-8 text of `path`, or None if it does not exist."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()
