"""Evaluation metrics: retrieval Recall@K and classification reports."""

from common.metrics.classification import (
    classification_report,
    confusion_matrix,
    plot_confusion_matrix,
)
from common.metrics.retrieval import (
    image_to_text_ranks,
    retrieval_metrics,
    text_to_image_ranks,
)

__all__ = [
    "classification_report",
    "confusion_matrix",
    "image_to_text_ranks",
    "plot_confusion_matrix",
    "retrieval_metrics",
    "text_to_image_ranks",
]
