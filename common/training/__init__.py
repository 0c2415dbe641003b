"""Training services shared by the applications."""

from common.training.callbacks import RunDirectory, standard_callbacks
from common.training.distribute import (
    STRATEGIES,
    get_strategy,
    is_chief,
    num_workers,
    wait_for_file,
)
from common.training.schedules import WarmupCosineDecay
from common.training.seeding import seed_everything

__all__ = [
    "STRATEGIES",
    "RunDirectory",
    "WarmupCosineDecay",
    "get_strategy",
    "is_chief",
    "num_workers",
    "wait_for_file",
    "seed_everything",
    "standard_callbacks",
]
