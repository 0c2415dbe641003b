"""Evaluation of a trained run: Recall@K, median rank, rsum, re-ranking."""

import os

from common.data.files import write_json_atomically
from common.training import RunDirectory
from common.training.config import save_config
from retrieval.data import load_data
from retrieval.embed import RERANK_WEIGHTS, evaluate_embeddings
from retrieval.grounding import boxes_for, find_boxes, read_boxes
from retrieval.model import load_trained_model
from retrieval.records import PreparedImages


def format_table(metrics):
    rows = [("dual encoder", metrics)]
    if "rerank" in metrics:
        rerank = metrics["rerank"]
        rows.append((f"+ rerank top-{rerank['top_k']} w={rerank['weight']:g}", rerank))
    keys = (
        "i2t_r1",
        "i2t_r5",
        "i2t_r10",
        "i2t_medr",
        "t2i_r1",
        "t2i_r5",
        "t2i_r10",
        "t2i_medr",
        "rsum",
    )
    lines = [f"{'':24}" + "".join(f"{k:>9}" for k in keys)]
    for name, m in rows:
        lines.append(f"{name:24}" + "".join(f"{m[k]:9.1f}" for k in keys))
    return "\n".join(lines)


def _metrics(
    model, config, images, captions, top_k, weights, boxes=None, progress=False
):
    """`evaluate_embeddings` at the run's image size and batch size."""
    return evaluate_embeddings(
        model,
        images,
        captions,
        config.data.image_size,
        config.training.validation_batch_size,
        rerank_top_k=top_k,
        rerank_weights=weights,
        boxes=boxes,
        progress=progress,
    )


def choose_rerank_weight(run_dir, verbose=True):
    """Chooses the weight of the match probability in the re-ranking score
    on the validation split (best rsum over `RERANK_WEIGHTS`, 0 being the
    dual encoder alone), saves it as `training.rerank_weight` in the run's
    `config.json` and returns it (1.0 without validation images)."""
    run = RunDirectory(run_dir)
    config, model = load_trained_model(run_dir)
    images, captions = load_data(config, verbose=False).subset("val")
    weight, note = 1.0, "no validation images: weight 1.0"
    if images and config.training.rerank_top_k > 0:
        metrics = _metrics(
            model,
            config,
            images,
            captions,
            config.training.rerank_top_k,
            RERANK_WEIGHTS,
        )
        weight = metrics["rerank"]["weight"]
        note = (
            f"weight {weight:g} (validation rsum {metrics['rerank']['rsum']:.1f}; "
            f"dual encoder {metrics['rsum']:.1f})"
        )
    config.training.rerank_weight = float(weight)
    save_config(config, run.config)
    if verbose:
        print(f"Re-ranking score = similarity + weight x match probability: {note}")
    return weight


def evaluate(run_dir, data_path=None, split=None, rerank_top_k=None, verbose=True):
    """Evaluates a run on a split; writes and returns `metrics.json`'s dict.

    `split=None` takes the test split, or the validation split when the data
    has no test images (COCO's official caption files, for one), and says so.
    """
    run = RunDirectory(run_dir)
    config, model = load_trained_model(run_dir)
    weight = config.training.rerank_weight
    if weight is None:
        weight = choose_rerank_weight(run_dir, verbose)
    data = load_data(config, data_path, verbose)
    if split is None:
        split = "test" if data.counts()["test"] else "val"
        if split == "val" and verbose:
            print("No test split in the data: evaluating on the validation split.")
    images, captions = data.subset(split)
    if not images:
        raise ValueError(f"The {split!r} split of {data.root} has no images.")
    top_k = config.training.rerank_top_k if rerank_top_k is None else rerank_top_k
    folders = [data_path or config.data.path, data.root, os.path.dirname(data.root)]
    boxes_file = find_boxes(folders)
    boxes = None
    if boxes_file is not None:
        names = images.ids if isinstance(images, PreparedImages) else images
        boxes = boxes_for(names, read_boxes(boxes_file), folders)
    metrics = _metrics(
        model, config, images, captions, top_k, (weight,), boxes, progress=verbose
    )
    metrics["split"] = split
    metrics["data"] = os.path.abspath(data_path or config.data.path)
    write_json_atomically(run.metrics, metrics)
    if verbose:
        print(
            f"Recall@K on {split} ({metrics['num_images']} images, "
            f"{metrics['num_texts']} captions), percent:"
        )
        print(format_table(metrics))
        if "pointing_game" in metrics:
            print(
                f"Pointing game ({metrics['pointing_captions']} captions with a "
                f"box in {boxes_file}): {metrics['pointing_game']:.3f} "
                f"(chance {metrics['pointing_chance']:.3f})"
            )
        print(f"Wrote {run.metrics}")
    return metrics
