"""Classification report and confusion-matrix plot."""

import os

import numpy as np


def _labels_from(y_true, num_classes):
    y_true = np.asarray(y_true)
    if y_true.ndim == 2:
        if y_true.shape[1] != num_classes:
            raise ValueError(
                f"One-hot `y_true` has {y_true.shape[1]} columns but `y_prob` has "
                f"{num_classes} classes."
            )
        return y_true.argmax(axis=1)
    if y_true.ndim != 1:
        raise ValueError(
            f"`y_true` must be [N] labels or [N, C] one-hot; received shape "
            f"{y_true.shape}."
        )
    if y_true.size and (
        not np.issubdtype(y_true.dtype, np.integer)
        or y_true.min() < 0
        or y_true.max() >= num_classes
    ):
        raise ValueError(
            f"`y_true` must hold integer labels in [0, {num_classes}); received "
            f"dtype {y_true.dtype}, values {np.unique(y_true)[:10].tolist()}."
        )
    return y_true.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes):
    """`[C, C]` counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def _safe_divide(numerator, denominator):
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def classification_report(y_true, y_prob, class_names, top_k=5):
    """Accuracy, top-k accuracy, macro and per-class precision/recall/F1.

    Args:
        y_true: `[N]` integer labels or `[N, C]` one-hot.
        y_prob: `[N, C]` scores (probabilities or logits).
        class_names: the `C` class names, in label order.
        top_k: K of the top-K accuracy (capped at `C`).

    Returns:
        A dict: `accuracy`, `top{K}_accuracy` (`top5_accuracy` by default),
        `macro_precision`, `macro_recall`, `macro_f1` (unweighted means over
        all classes; a class with no prediction or no sample scores 0),
        `per_class` (`{name: {precision, recall, f1, support}}`),
        `confusion_matrix` (nested lists, rows = true class), `class_names`
        and `num_samples`.

    Example:

    >>> import numpy as np
    >>> report = classification_report([0, 1], [[0.9, 0.1], [0.2, 0.8]], ["a", "b"])
    >>> report["accuracy"], report["macro_f1"]
    (1.0, 1.0)
    """
    y_prob = np.asarray(y_prob, dtype=np.float64)
    class_names = [str(name) for name in class_names]
    if y_prob.ndim != 2 or y_prob.shape[1] != len(class_names):
        raise ValueError(
            f"`y_prob` must be [N, {len(class_names)}] for {len(class_names)} class "
            f"names; received shape {y_prob.shape}."
        )
    num_classes = len(class_names)
    labels = _labels_from(y_true, num_classes)
    if labels.shape[0] != y_prob.shape[0]:
        raise ValueError(
            f"`y_true` has {labels.shape[0]} samples but `y_prob` has "
            f"{y_prob.shape[0]}."
        )
    if labels.shape[0] == 0:
        raise ValueError("classification_report needs at least one sample.")
    predictions = y_prob.argmax(axis=1)
    matrix = confusion_matrix(labels, predictions, num_classes)
    true_positive = np.diag(matrix)
    precision = _safe_divide(true_positive, matrix.sum(axis=0))
    recall = _safe_divide(true_positive, matrix.sum(axis=1))
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    k = max(1, min(int(top_k), num_classes))
    top = np.argpartition(-y_prob, k - 1, axis=1)[:, :k]
    top_k_accuracy = float(np.mean((top == labels[:, None]).any(axis=1)))
    return {
        "accuracy": float(np.mean(predictions == labels)),
        f"top{int(top_k)}_accuracy": top_k_accuracy,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(matrix[i].sum()),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": class_names,
        "num_samples": int(labels.shape[0]),
    }


def plot_confusion_matrix(
    confusion, class_names, path, normalize=True, title="Confusion matrix"
):
    """Writes a confusion matrix as a PNG heat map with counts in the cells.

    Args:
        confusion: `[C, C]` counts (rows = true class), e.g. the report's
            `confusion_matrix`.
        class_names: the `C` class names.
        path: output `.png` path; its folder is created.
        normalize: colour by row-normalised recall (the cell text shows the
            count and the fraction).
        title: figure title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion, dtype=np.float64)
    num_classes = len(class_names)
    if matrix.shape != (num_classes, num_classes):
        raise ValueError(
            f"`confusion` must be [{num_classes}, {num_classes}] for "
            f"{num_classes} class names; received shape {matrix.shape}."
        )
    shown = (
        _safe_divide(matrix, matrix.sum(axis=1, keepdims=True)) if normalize else matrix
    )
    size = max(4.0, 0.6 * num_classes + 2.0)
    figure, axes = plt.subplots(figsize=(size + 1.0, size))
    image = axes.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    figure.colorbar(
        image,
        ax=axes,
        fraction=0.046,
        pad=0.04,
        label="fraction of true class" if normalize else "count",
    )
    axes.set_xticks(range(num_classes), labels=class_names, rotation=45, ha="right")
    axes.set_yticks(range(num_classes), labels=class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    if num_classes <= 30:
        threshold = shown.max() / 2.0 if shown.size else 0.0
        for i in range(num_classes):
            for j in range(num_classes):
                text = f"{int(matrix[i, j])}"
                if normalize:
                    text += f"\n{shown[i, j]:.2f}"
                axes.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shown[i, j] > threshold else "black",
                )
    figure.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
