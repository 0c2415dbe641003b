"""Training services shared by the applications.

Keras-backed names (`RunDirectory`, `RunCheckpointing`, `standard_callbacks`,
`WarmupCosineDecay`) are imported on first use, so the command lines can
import `common.training.cli` before TensorFlow starts.
"""

from common.training.distribute import (
    STRATEGIES,
    distribute_options,
    file_split,
    get_strategy,
    is_chief,
    num_workers,
    split_by_file,
    wait_for_file,
    worker_index,
)
from common.training.seeding import seed_everything

_LAZY = {
    "RunDirectory": "common.training.run_directory",
    "RunCheckpointing": "common.training.callbacks",
    "backup_epoch": "common.training.run_directory",
    "backup_position": "common.training.run_directory",
    "fit_resuming": "common.training.callbacks",
    "standard_callbacks": "common.training.callbacks",
    "WarmupCosineDecay": "common.training.schedules",
    "warmup_cosine": "common.training.schedules",
    "start_training": "common.training.session",
    "finish_training": "common.training.session",
}

__all__ = [
    "STRATEGIES",
    "RunCheckpointing",
    "RunDirectory",
    "WarmupCosineDecay",
    "backup_epoch",
    "backup_position",
    "distribute_options",
    "file_split",
    "fit_resuming",
    "finish_training",
    "get_strategy",
    "is_chief",
    "num_workers",
    "seed_everything",
    "split_by_file",
    "standard_callbacks",
    "start_training",
    "wait_for_file",
    "warmup_cosine",
    "worker_index",
]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
