"""Trains every fusion and each single modality with the same budget."""

import os
import time

from tqdm import tqdm

from common.data.files import write_json_atomically
from common.training.config import apply_overrides
from video_understanding.config import FUSIONS, get_config
from video_understanding.evaluate import evaluate
from video_understanding.model import load_trained_model
from video_understanding.train import train

# (name, fusion, modalities, extra overrides)
VARIANTS = (
    [(f, f, "video,audio", []) for f in FUSIONS]
    + [
        (
            "cross_attention_aux",
            "cross_attention",
            "video,audio",
            ["model.auxiliary_weight=0.5"],
        )
    ]
    + [
        ("video_only", "cross_attention", "video", []),
        ("audio_only", "cross_attention", "audio", []),
    ]
)
SINGLE = ("video_only", "audio_only")


def fusion_verdict(rows):
    """One line saying whether the best fused variant beats each single
    modality on test accuracy, and by how much."""
    by_name = {row["variant"]: row["accuracy"] for row in rows}
    fused = [row for row in rows if row["variant"] not in SINGLE]
    singles = [name for name in SINGLE if name in by_name]
    if not fused or not singles:
        return "fused vs single modalities: not all variants ran"
    best = max(fused, key=lambda row: row["accuracy"])
    beats = all(best["accuracy"] > by_name[name] for name in singles)
    against = ", ".join(
        f"{name.replace('_', ' ')} {100 * by_name[name]:.1f}%" for name in singles
    )
    return (
        f"best fusion {best['variant']} {100 * best['accuracy']:.1f}% "
        f"{'beats' if beats else 'does NOT beat'} each single modality ({against})"
    )


def ablate(preset, output, data_path=None, overrides=(), verbose=0):
    """Runs the variants into `output/<name>/`; prints and returns the table.

    The clips are decoded once (into the first run) and shared by the others.
    `output/ablation.json` holds the rows and the verdict of `fusion_verdict`.
    """
    os.makedirs(output, exist_ok=True)
    rows, prepared = [], data_path
    # a bar of the variants on a terminal (tqdm's `disable=None`)
    for name, fusion, modalities, extra in tqdm(
        VARIANTS, desc="Ablation", unit="run", disable=None
    ):
        config = get_config(preset, list(overrides))
        apply_overrides(
            config,
            [f"model.fusion={fusion}", f"model.modalities={modalities}", *extra],
        )
        config.validate()
        run = os.path.join(output, name)
        start = time.perf_counter()
        train(config, run, data_path=prepared, verbose=verbose)
        seconds = time.perf_counter() - start
        prepared = prepared or os.path.join(run, "prepared")
        metrics = evaluate(run, verbose=False)
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
        f"{'variant':20}{'accuracy':>10}{'macro_f1':>10}{'params':>10}{'seconds':>9}"
    ]
    for row in rows:
        lines.append(
            f"{row['variant']:20}{100 * row['accuracy']:9.1f}%"
            f"{row['macro_f1']:10.3f}{row['parameters']:10d}"
            f"{row['train_seconds']:9.0f}"
        )
    verdict = fusion_verdict(rows)
    print("\n".join(lines + [verdict]))
    write_json_atomically(
        os.path.join(output, "ablation.json"),
        {"preset": preset, "rows": rows, "verdict": verdict},
    )
    return rows
