"""Versioned, atomic SavedModel export in TensorFlow Serving's layout.

TF Serving polls `base/<integer version>/`. A version is written into a hidden
temporary folder beside it (`base/.tmp-<version>-<pid>`, which TF Serving
ignores), fsynced, and renamed into place only once complete, so a crash, a
power cut or a full disk never leaves a partial version where the server
looks. A temporary folder left by an export that was killed is removed by
the next export (its process no longer runs, or it is older than
`STALE_SECONDS`).
"""

import os
import re
import shutil
import time

from common.data.files import (
    fsync_directory,
    fsync_tree,
    process_exists,
    write_failure,
)

_VERSION = re.compile(r"^\d+$")
_TEMPORARY = re.compile(r"^\.tmp-\d+-(\d+)$")
# A temporary folder this old is stale even if its PID is in use again.
STALE_SECONDS = 7 * 24 * 3600


def remove_stale_temporaries(base_dir):
    """Removes `.tmp-<version>-<pid>` folders of exports that died (their
    PID runs no process, or the folder is older than `STALE_SECONDS`);
    returns the removed paths. Folders of running exports are left alone."""
    removed = []
    if not os.path.isdir(base_dir):
        return removed
    now = time.time()
    for name in os.listdir(base_dir):
        match = _TEMPORARY.match(name)
        path = os.path.join(base_dir, name)
        if not match or not os.path.isdir(path):
            continue
        try:
            age = now - os.path.getmtime(path)
        except OSError:
            continue
        if not process_exists(int(match.group(1))) or age > STALE_SECONDS:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def list_versions(base_dir):
    """Sorted integer versions present under `base_dir` (empty if none)."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(
        int(name)
        for name in os.listdir(base_dir)
        if _VERSION.match(name) and os.path.isdir(os.path.join(base_dir, name))
    )


def next_version(base_dir):
    """One more than the highest existing version, or 1."""
    versions = list_versions(base_dir)
    return versions[-1] + 1 if versions else 1


def resolve_version_dir(path):
    """`path` itself if it is a version folder, else its latest version."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = list_versions(path)
    if not versions:
        raise FileNotFoundError(
            f"No SavedModel at {path!r}: neither a saved_model.pb nor numbered "
            "version folders."
        )
    return os.path.join(path, str(versions[-1]))


def export_versioned(write_fn, base_dir, version=None, keep=None):
    """Runs `write_fn(tmp_dir)` and publishes the result as a new version.

    Args:
        write_fn: callable writing a complete SavedModel into the folder it is
            given (e.g. `archive.write_out`).
        base_dir: the model's folder, `saved_models/<name>`.
        version: int, or `None` for the next free version.
        keep: int or None. Keep only the newest `keep` versions afterwards.

    Returns:
        The published version folder.

    Raises:
        FileExistsError: the version already exists (it is never overwritten).
        ValueError: bad `version` or `keep`.
        Whatever `write_fn` raises; the temporary folder is removed and no
        version folder appears.
    """
    if version is None:
        version = next_version(base_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"`version` must be a positive integer; received {version!r}.")
    if keep is not None and (
        isinstance(keep, bool) or not isinstance(keep, int) or keep < 1
    ):
        raise ValueError(
            f"`keep` must be a positive integer or None; received {keep!r}."
        )
    os.makedirs(base_dir, exist_ok=True)
    final_dir = os.path.join(base_dir, str(version))
    if os.path.exists(final_dir):
        raise FileExistsError(
            f"Version {version} already exists at {final_dir}; exports never "
            "overwrite a version."
        )
    remove_stale_temporaries(base_dir)
    tmp_dir = os.path.join(base_dir, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    try:
        write_fn(tmp_dir)
        if not os.path.isfile(os.path.join(tmp_dir, "saved_model.pb")):
            raise RuntimeError(f"The export wrote no saved_model.pb into {tmp_dir}.")
        fsync_tree(tmp_dir)
        # Fails (instead of merging) if the version appeared meanwhile.
        os.rename(tmp_dir, final_dir)
        fsync_directory(base_dir)
    except BaseException as error:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        failure = write_failure(error, "the export")
        if failure is not None:
            raise failure from error
        raise
    if keep is not None:
        for old in list_versions(base_dir)[:-keep]:
            shutil.rmtree(os.path.join(base_dir, str(old)), ignore_errors=True)
    return final_dir
