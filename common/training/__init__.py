"""Training services shared by the applications."""

from common.training.schedules import WarmupCosineDecay

__all__ = ["WarmupCosineDecay"]
