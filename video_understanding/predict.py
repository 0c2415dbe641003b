"""Top-k labels of new clips from an exported video SavedModel: each clip is
decoded as training decoded it (the settings saved beside the model)."""

import json
import os

import numpy as np
import tensorflow as tf

from common.data.video import decode_with
from common.export import resolve_version_dir


class LoadedClassifier:
    """An exported video SavedModel loaded once, with its class names and the
    decoding settings saved beside it, labelling one clip file at a time.

    Attributes:
        version: the SavedModel folder answering.
        names: the class names, in the model's output order.
        decoding: how training decoded clips (`assets.extra/decoding.json`).
    """

    def __init__(self, model="saved_models/video_understanding"):
        self.version = resolve_version_dir(model)
        extra = os.path.join(self.version, "assets.extra")
        with open(os.path.join(extra, "decoding.json"), encoding="utf-8") as f:
            self.decoding = json.load(f)
        with open(os.path.join(extra, "classes.txt"), encoding="utf-8") as f:
            self.names = [line.rstrip("\n") for line in f if line.strip()]
        self.serve = tf.saved_model.load(self.version).signatures["serving_default"]

    def classify(self, path, k=5):
        """`(top, clip)`: the `k` most probable `{"label", "score"}` of the
        clip at `path` (decoded as training did) and the decoded clip."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be a positive integer; received {k!r}.")
        clip = decode_with(path, self.decoding)
        out = self.serve(
            frames=tf.constant(clip.frames[None]), audio=tf.constant(clip.audio[None])
        )
        probabilities = out["probabilities"].numpy()[0]
        order = np.argsort(-probabilities, kind="stable")[:k]
        top = [
            {"label": self.names[i], "score": float(probabilities[i])} for i in order
        ]
        return top, clip


def predict(clips, model="saved_models/video_understanding", k=5):
    """Decodes each clip as training did and returns its top-k labels (from
    all the classes' probabilities, so any `k`; more than the classes gives
    every class)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be a positive integer; received {k!r}.")
    classifier = LoadedClassifier(model)
    results = []
    for path in clips:
        top, clip = classifier.classify(path, k)
        results.append({"clip": path, "audio_present": clip.audio_present, "top": top})
    return results
