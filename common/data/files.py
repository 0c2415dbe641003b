"""Small file helpers."""

import json
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


def write_atomically(path, text):
    """Writes `text` (UTF-8) to `path` through a temporary file that is synced
    and renamed over it: readers see the old file or the new, never a part."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomically(path, value, **dump_options):
    """`json.dumps(value, indent=2, **dump_options)` written with
    `write_atomically`."""
    write_atomically(path, json.dumps(value, indent=2, **dump_options))
