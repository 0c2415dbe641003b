"""Whether decoded training data is cached in memory, on disk, or streamed.

Decoded images and clips are much larger than their files (a 224 px image is
150 KB of pixels, 8 frames of 112 px and 10 s of sound are 0.9 MB), so a whole
dataset is cached in memory only when its estimated decoded size fits a budget:
a fraction of the memory available when training starts. Otherwise it is
streamed from its files or shards, decoded anew each epoch.
"""

import ctypes
import os
import sys

CACHE_CHOICES = ("auto", "memory", "none")


def available_memory():
    """Bytes of memory available to a new process (Linux `MemAvailable`;
    elsewhere the physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_cache_setting(cache, budget, section="data"):
    """Raises `ValueError` for a cache setting that is not `auto`, `memory`,
    `none` or a file prefix, or a budget outside (0, 1]."""
    if not isinstance(cache, str) or not cache:
        raise ValueError(
            f"{section}.cache must be one of {CACHE_CHOICES} or a file prefix for a "
            f"disk cache; received {cache!r}."
        )
    if isinstance(budget, bool) or not isinstance(budget, int | float):
        raise ValueError(
            f"{section}.cache_budget must be a number; received {budget!r}."
        )
    if not 0 < budget <= 1:
        raise ValueError(
            f"{section}.cache_budget is a fraction of the available memory, in "
            f"(0, 1]; received {budget!r}."
        )


def _gib(size):
    return f"{size / 2**30:.2f} GiB"


def _share(fraction):
    return f"{fraction * 100:.3g}%"


def choose_cache(cache, estimated_bytes, budget, what="training data", memory=None):
    """`(choice, message)`: `choice` is `"memory"`, `"none"` or a disk-cache file
    prefix.

    Args:
        cache: `"auto"` (memory when `estimated_bytes` fits the budget, else
            none), `"memory"`, `"none"`, or a file prefix for a disk cache.
        estimated_bytes: the decoded size of the data.
        budget: fraction of `memory` the cache may take.
        what: how the message names the data.
        memory: available bytes (default: `available_memory()`).
    """
    memory = available_memory() if memory is None else memory
    allowed = int(memory * budget)
    size = f"{what}: {_gib(estimated_bytes)} decoded"
    if cache == "auto":
        if estimated_bytes <= allowed:
            return "memory", (
                f"{size}, cached in memory (budget {_gib(allowed)}: "
                f"{_share(budget)} of {_gib(memory)} available)"
            )
        return "none", (
            f"{size}, over the memory budget of {_gib(allowed)} ({_share(budget)} of "
            f"{_gib(memory)} available): streamed and decoded each epoch"
        )
    if cache == "memory":
        over = estimated_bytes > allowed
        note = f" (over the {_gib(allowed)} budget)" if over else ""
        return "memory", f"{size}, cached in memory as asked{note}"
    if cache == "none":
        return "none", f"{size}, streamed and decoded each epoch (cache none)"
    return cache, f"{size}, cached on disk at {cache}*"


M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(count=None):
    """Caps glibc's malloc arenas; returns whether the cap was set.

    glibc gives threads that contend for malloc arenas of their own (up to 8
    per core), and tf.data's decoding threads free buffers into other arenas
    than the ones that allocated them: streamed training's RSS then creeps up
    by tens of MB an epoch while the data stays the same. A few arenas keep it
    flat (`bench/data_memory.py`). `count` defaults to the number of CPUs (at
    least 2); `MMSUITE_MALLOC_ARENAS=N` sets it, `0` leaves glibc's default.
    """
    setting = os.environ.get("MMSUITE_MALLOC_ARENAS")
    if count is None:
        count = int(setting) if setting else max(2, os.cpu_count() or 2)
    if count <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, int(count)))
