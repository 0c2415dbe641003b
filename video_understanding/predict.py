"""Top-k labels of new clips from an exported video SavedModel: each clip is
decoded as training decoded it (the settings saved beside the model)."""

import json
import os

import numpy as np
import tensorflow as tf

from common.data.video import decode_with
from common.export import resolve_version_dir


def predict(clips, model="saved_models/video_understanding", k=5):
    """Decodes each clip as training did and returns its top-k labels (from
    all the classes' probabilities, so any `k`; more than the classes gives
    every class)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be a positive integer; received {k!r}.")
    version = resolve_version_dir(model)
    with open(
        os.path.join(version, "assets.extra", "decoding.json"), encoding="utf-8"
    ) as f:
        decoding = json.load(f)
    with open(
        os.path.join(version, "assets.extra", "classes.txt"), encoding="utf-8"
    ) as f:
        names = [line.rstrip("\n") for line in f if line.strip()]
    serve = tf.saved_model.load(version).signatures["serving_default"]
    results = []
    for path in clips:
        clip = decode_with(path, decoding)
        out = serve(
            frames=tf.constant(clip.frames[None]), audio=tf.constant(clip.audio[None])
        )
        probabilities = out["probabilities"].numpy()[0]
        order = np.argsort(-probabilities, kind="stable")[:k]
        labels = [names[i] for i in order]
        scores = [float(probabilities[i]) for i in order]
        results.append(
            {
                "clip": path,
                "audio_present": clip.audio_present,
                "top": [
                    {"label": label, "score": score}
                    for label, score in zip(labels, scores, strict=True)
                ],
            }
        )
    return results
