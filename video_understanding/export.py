"""Export of a trained video run as a TF Serving SavedModel."""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from common.export import export_versioned
from common.serving.checks import (
    ensure_at_least,
    ensure_batch,
    ensure_finite,
    ensure_same_batch,
)
from common.serving.warmup import write_warmup_requests
from video_understanding.model import load_trained_model

# A request must carry at least one audio sample (silence for a clip without
# sound); shorter-than-a-window sound is padded by the audio encoder.
MIN_AUDIO_SAMPLES = 1


def make_export_archive(model, class_names, top_k=5):
    """`serving_default`: `frames` uint8 `[None, T, S, S, 3]`, `audio` float32
    `[None, None]` -> `probabilities` `[None, C]`, `top_classes` string
    `[None, k]`, `top_scores` `[None, k]`."""
    k = min(top_k, len(class_names))
    names = tf.constant(class_names)
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(frames, audio):
        shape = (model.num_frames, model.frame_size, model.frame_size, 3)
        frames = ensure_batch(frames, "frames", 5, shape)
        audio = ensure_finite(ensure_batch(audio, "audio", 2), "audio")
        audio = ensure_at_least(audio, "audio", 1, MIN_AUDIO_SAMPLES, "samples")
        frames, audio = ensure_same_batch({"frames": frames, "audio": audio})
        probabilities = model({"frames": frames, "audio": audio}, training=False)
        top = tf.math.top_k(probabilities, k=k)
        return {
            "probabilities": probabilities,
            "top_classes": tf.gather(names, top.indices),
            "top_scores": top.values,
        }

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[
            tf.TensorSpec(
                (None, model.num_frames, model.frame_size, model.frame_size, 3),
                tf.uint8,
                name="frames",
            ),
            tf.TensorSpec((None, None), tf.float32, name="audio"),
        ],
    )
    return archive


def export(
    run_dir,
    output="saved_models/video_understanding",
    version=None,
    keep=None,
    verbose=True,
):
    """Writes the next version atomically, with `assets.extra/classes.txt` and
    `assets.extra/decoding.json` (how clips must be decoded for it)."""
    config, model, class_names, _ = load_trained_model(run_dir)
    archive = make_export_archive(model, class_names)
    decoding = {
        "num_frames": config.data.num_frames,
        "frame_size": config.data.frame_size,
        "sample_rate": config.data.sample_rate,
        "clip_seconds": config.data.clip_seconds,
    }

    seconds = config.data.clip_seconds or 1.0
    samples = int(round(seconds * config.data.sample_rate))
    shape = (model.num_frames, model.frame_size, model.frame_size, 3)

    def clips(batch):
        return {
            "frames": np.full((batch, *shape), 128, np.uint8),
            "audio": np.zeros((batch, samples), np.float32),
        }

    def write(path):
        archive.write_out(path, verbose=False)
        extra = os.path.join(path, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with open(os.path.join(extra, "classes.txt"), "w", encoding="utf-8") as f:
            f.writelines(f"{name}\n" for name in class_names)
        with open(os.path.join(extra, "decoding.json"), "w", encoding="utf-8") as f:
            json.dump(decoding, f, indent=2)
        write_warmup_requests(path, "video_understanding", {"serving_default": clips})

    path = export_versioned(write, output, version=version, keep=keep)
    if verbose:
        print(f"Exported {run_dir} to {path} ({len(class_names)} classes)")
    return path
