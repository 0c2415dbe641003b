"""Losses for learning joint embeddings."""

from common.losses.contrastive import ContrastiveLoss, contrastive_loss
from common.losses.triplet import hard_negative_triplet_loss

__all__ = ["ContrastiveLoss", "contrastive_loss", "hard_negative_triplet_loss"]
