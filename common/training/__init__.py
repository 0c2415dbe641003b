"""Training services shared by the applications."""

from common.training.callbacks import RunDirectory, standard_callbacks
from common.training.schedules import WarmupCosineDecay

__all__ = ["RunDirectory", "WarmupCosineDecay", "standard_callbacks"]
