"""File helpers: resolving the user's paths, walking folders, atomic writes.

Data folders and manifests belong to the user: references may be absolute or
use `..`, and symbolic links (to folders or files) are followed.
`resolve_inside` is the one place that confines a path to a root; it is for
names that come from outside (HTTP requests, serving inputs), never for the
user's own data.
"""

import contextlib
import errno
import json
import os
import re
import shutil

# What TensorFlow's file writers end their messages with when the disk says
# no ("PATH; File too large"): the errno each stands for.
_WRITE_ERRORS = {
    os.strerror(code): code
    for code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES)
}
_WRITE_FAILURE = re.compile(r"(\S+); (" + "|".join(map(re.escape, _WRITE_ERRORS)) + ")")


def write_failure(error, what):
    """An `OSError` naming the file and the reason ("Could not write WHAT
    (File too large)") for a TensorFlow error raised while writing on a full
    disk (TensorFlow's writers raise `OutOfRangeError` /
    `ResourceExhaustedError` with "PATH; File too large" or "No space left on
    device"), so that a command line prints one line; None for any other
    error."""
    if isinstance(error, OSError) or not hasattr(error, "error_code"):
        return None
    found = _WRITE_FAILURE.search(str(error))
    if found is None:
        return None
    path, reason = found.groups()
    return OSError(_WRITE_ERRORS[reason], f"Could not write {what} ({reason})", path)


def read_text(path):
    """The UTF-8 text of `path`, or None if it does not exist."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()


def resolve_reference(root, reference):
    """The absolute path a manifest's `reference` names: relative references
    are relative to `root`, absolute ones stay as they are; `..` is allowed and
    links are left for the file system to follow."""
    reference = os.path.expanduser(str(reference))
    return os.path.normpath(os.path.join(os.path.abspath(root), reference))


def resolve_inside(root, reference):
    """Absolute path of `reference` under `root`, or None if it escapes root
    (an absolute path, `..`, or a symbolic link pointing outside). For names
    that come from outside the user's own data."""
    if os.path.isabs(reference):
        return None
    root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(root, reference))
    if os.path.commonpath([root, path]) != root:
        return None
    return path


def file_problem(path, what="file"):
    """None if `path` is a non-empty regular file (links followed), else the
    reason: `"missing <what>"`, `"broken symbolic link"`, `"symbolic link
    loop"`, `"<what> is a folder"`, `"empty <what> file"`, or `"unreadable
    <what>"`."""
    try:
        status = os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symbolic link loop"
        if os.path.islink(path):
            return "broken symbolic link"
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"missing {what}"
        return f"unreadable {what}"
    if os.path.isdir(path):
        return f"{what} is a folder"
    if status.st_size == 0:
        return f"empty {what} file"
    return None


def walk_files(root, on_loop=None):
    """Paths of the files under `root`, sorted, following linked folders.

    A linked folder that leads back to a folder being walked or one above it
    (a link loop) is not entered; `on_loop(path)` is called with it, if given.
    """
    found = []
    visiting = set()

    def walk(folder):
        real = os.path.realpath(folder)
        if any(v == real or v.startswith(real + os.sep) for v in visiting):
            if on_loop is not None:
                on_loop(folder)
            return
        visiting.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            if on_loop is not None and file_problem(folder) == "symbolic link loop":
                on_loop(folder)
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                walk(entry.path)
            else:
                found.append(entry.path)
        visiting.discard(real)

    walk(root)
    return found


def fsync_directory(path):
    """Flushes `path`'s directory entries (a rename into it, a new file) to
    disk; a no-op where directories cannot be opened (Windows)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def fsync_tree(path):
    """fsyncs every file under `path` (or `path` itself if it is a file) and
    every folder, deepest first."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        return
    for folder, _, names in os.walk(path, topdown=False):
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                os.fsync(f.fileno())
        fsync_directory(folder)


def process_exists(pid):
    """True when `pid` runs a process (ours or someone else's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


_WRITER = re.compile(r"^\.tmp-(\d+)-")


def remove_dead_temporaries(folder):
    """Removes `.tmp-<pid>-<name>` files and folders in `folder` written by
    a process that no longer runs (killed while writing); returns their
    paths. Temporaries of running writers are left alone."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in os.listdir(folder):
        match = _WRITER.match(name)
        if not match or process_exists(int(match.group(1))):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        removed.append(path)
    return removed


def publish(tmp, path):
    """Makes the finished file or folder `tmp` durable and renames it to
    `path` (same folder): its data is on disk before the name points at it,
    and the rename is on disk when this returns. After a power cut `path` is
    the old version or the new one, never a mix or an empty file."""
    fsync_tree(tmp)
    os.replace(tmp, path)
    fsync_directory(os.path.dirname(os.path.abspath(path)))


def write_atomically(path, text):
    """Writes `text` (UTF-8) to `path` through a temporary file in the same
    folder that is flushed, fsynced and renamed over it (`publish`): readers
    see the old file or the new, never a part, and so does a power cut."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    fsync_directory(os.path.dirname(os.path.abspath(path)))


def write_json_atomically(path, value, **dump_options):
    """`json.dumps(value, indent=2, **dump_options)` written with
    `write_atomically`."""
    write_atomically(path, json.dumps(value, indent=2, **dump_options))


def csv_header(rows, path, columns, optional=()):
    """The lower-cased header of the CSV `rows` read from `path`; a
    `ValueError` naming the file when it is empty or its header does not
    start with `columns` (`optional` columns may follow, for the message).

    >>> csv_header([["Path", "Label"], ["a.mp4", "dog"]], "m.csv", ("path", "label"))
    ['path', 'label']
    """
    if not rows:
        raise ValueError(f"{path} is empty.")
    header = [h.strip().lower() for h in rows[0]]
    if header[: len(columns)] != list(columns):
        shown = ",".join(columns) + "".join(f"[,{c}]" for c in optional)
        raise ValueError(
            f"{path} must start with a header '{shown}'; received {rows[0]!r}."
        )
    return header
