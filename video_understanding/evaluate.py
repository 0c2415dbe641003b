"""Evaluation of a trained run: accuracy, top-5, macro precision, recall
and F1, per-class F1 and a confusion matrix (mAP for multi-label data)."""

import os

import numpy as np
from tqdm import tqdm

from common.data.files import write_json_atomically
from common.metrics import classification_report, plot_confusion_matrix
from common.training import RunDirectory
from video_understanding.model import load_trained_model
from video_understanding.pipeline import make_dataset
from video_understanding.records import is_prepared, read_metadata, split_size


def evaluation_data(config, classes, data_path):
    """The prepared folder to evaluate on: the run's own, or `data_path`
    when it holds the same classes and clip settings (`ValueError` naming
    what differs)."""
    if data_path is None:
        return config.data.path
    if not is_prepared(data_path):
        raise ValueError(
            f"{data_path} is not a prepared folder: write one with `python -m "
            "video_understanding prepare --data CLIPS --output FOLDER` and the "
            "run's --num-frames/--frame-size/--sample-rate/--clip-seconds."
        )
    metadata = read_metadata(data_path)
    if list(metadata["class_names"]) != list(classes):
        raise ValueError(
            f"{data_path} holds the classes {metadata['class_names']}; the run "
            f"was trained on {list(classes)}."
        )
    trained = read_metadata(config.data.path).get("settings")
    settings = metadata.get("settings")
    keys = ("num_frames", "frame_size", "sample_rate", "clip_seconds")
    if trained and settings:
        differ = [k for k in keys if trained.get(k) != settings.get(k)]
        if differ:
            raise ValueError(
                f"{data_path} was prepared with "
                + ", ".join(f"{k}={settings.get(k)}" for k in differ)
                + "; the run was trained with "
                + ", ".join(f"{k}={trained.get(k)}" for k in differ)
                + "."
            )
    return data_path


def evaluate(run_dir, data_path=None, split=None, verbose=True):
    """Accuracy, top-5, macro P/R/F1, per-class F1 (mAP for multi-label);
    writes `metrics.json` and `confusion_matrix.png`.

    `data_path`: another prepared folder with the run's classes and clip
    settings (default: the one the run trained on). `split=None` takes the
    test split, or the validation split when the data has no test clips, and
    says so.
    """
    run = RunDirectory(run_dir)
    config, model, classes, multi_label = load_trained_model(run_dir)
    folder = evaluation_data(config, classes, data_path)
    if split is None:
        split = "test" if split_size(folder, "test") else "val"
        if split == "val" and verbose:
            print("No test split in the data: evaluating on the validation split.")
    dataset = make_dataset(
        folder,
        split,
        config.training.batch_size,
        len(classes),
        multi_label,
        shuffle=False,
    )
    probabilities, targets = [], []
    count = int(dataset.cardinality())
    batches = tqdm(
        dataset,
        total=count if count >= 0 else None,
        desc=f"Evaluating {split}",
        unit="batch",
        disable=None if verbose else True,  # None: shown on a terminal only
    )
    for inputs, labels in batches:
        probabilities.append(model(inputs, training=False).numpy())
        targets.append(labels.numpy())
    if not probabilities:
        raise ValueError(f"The {split!r} split of {folder} is empty.")
    y_prob, y_true = np.concatenate(probabilities), np.concatenate(targets)
    if multi_label:
        metrics = multi_label_report(y_true, y_prob, classes)
    else:
        metrics = classification_report(y_true, y_prob, classes)
        plot_confusion_matrix(
            metrics["confusion_matrix"],
            classes,
            run.file("confusion_matrix.png"),
            title=f"{config.model.fusion} ({split})",
        )
    metrics["split"] = split
    metrics["data"] = os.path.abspath(folder)
    write_json_atomically(run.metrics, metrics)
    if verbose:
        keys = [
            k
            for k in (
                "accuracy",
                "top5_accuracy",
                "macro_precision",
                "macro_recall",
                "macro_f1",
                "mAP",
            )
            if k in metrics
        ]
        print(f"{split}: " + "  ".join(f"{k} {metrics[k]:.3f}" for k in keys))
        if not multi_label:
            print(
                "per-class F1: "
                + ", ".join(
                    f"{n} {v['f1']:.2f}" for n, v in metrics["per_class"].items()
                )
            )
        print(f"Wrote {run.metrics}")
    return metrics


def multi_label_report(y_true, y_prob, classes):
    """Mean average precision over classes (and per class)."""
    per_class = {}
    for index, name in enumerate(classes):
        order = np.argsort(-y_prob[:, index], kind="stable")
        hits = y_true[order, index] > 0.5
        if not hits.any():
            continue
        precision = np.cumsum(hits) / (np.arange(len(hits)) + 1)
        per_class[name] = float((precision * hits).sum() / hits.sum())
    return {
        "mAP": float(np.mean(list(per_class.values()))) if per_class else 0.0,
        "per_class_ap": per_class,
        "num_samples": int(len(y_true)),
    }
