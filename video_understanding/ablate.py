"""Trains every fusion and each single modality with the same budget."""

import json
import os
import time

from common.training.config import apply_overrides
from video_understanding.config import FUSIONS, get_config
from video_understanding.train import evaluate, train

VARIANTS = [(f, "video,audio") for f in FUSIONS] + [
    ("cross_attention", "video"),
    ("cross_attention", "audio"),
]


def ablate(preset, output, data_path=None, overrides=(), verbose=0):
    """Runs the variants into `output/<name>/`; prints and returns the table.

    The clips are decoded once (into the first run) and shared by the others.
    """
    os.makedirs(output, exist_ok=True)
    rows, prepared = [], data_path
    for fusion, modalities in VARIANTS:
        name = fusion if modalities == "video,audio" else f"{modalities}_only"
        config = get_config(preset, list(overrides))
        apply_overrides(
            config, [f"model.fusion={fusion}", f"model.modalities={modalities}"]
        )
        config.validate()
        run = os.path.join(output, name)
        start = time.perf_counter()
        train(config, run, data_path=prepared, verbose=verbose)
        seconds = time.perf_counter() - start
        prepared = prepared or os.path.join(run, "prepared")
        metrics = evaluate(run, verbose=False)
        from video_understanding.train import load_trained_model

        _, model, _, _ = load_trained_model(run)
        rows.append(
            {
                "variant": name,
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                "parameters": int(model.count_params()),
                "train_seconds": seconds,
            }
        )
    lines = [
        f"{'variant':18}{'accuracy':>10}{'macro_f1':>10}{'params':>10}{'seconds':>9}"
    ]
    for row in rows:
        lines.append(
            f"{row['variant']:18}{100 * row['accuracy']:9.1f}%"
            f"{row['macro_f1']:10.3f}{row['parameters']:10d}"
            f"{row['train_seconds']:9.0f}"
        )
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(output, "ablation.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=2)
    return rows
