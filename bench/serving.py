"""Serving: a loaded SavedModel's latency vs the in-process Keras model.

Both apps at their demo shapes: retrieval `embed_image_pixels` and `embed_text`
vs `model.encode_images` / `model.encode_texts`, and video `serving_default`
vs the model's call, each Keras call compiled with `tf.function` (as
`model.predict` runs it). Batch 1, 8 and 32. Target: SavedModel latency at
most 1.2x Keras'. Items/s are reported too.

    python bench/serving.py [--quick]
"""

import functools
import os
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, median_time, result, write_report  # noqa: E402


def retrieval_cases(folder):
    from retrieval.config import get_config
    from retrieval.export import make_export_archive
    from retrieval.model import build_model

    config = get_config("demo", ["training.precision=float32"])
    model = build_model(config)
    model.adapt(["a small red circle at the top left", "a big blue square"])
    path = os.path.join(folder, "retrieval")
    make_export_archive(model, config.data.image_size).write_out(path, verbose=False)
    loaded = tf.saved_model.load(path)
    size = config.data.image_size

    def images(batch):
        return {"images": np.full((batch, size, size, 3), 120, np.uint8)}

    def texts(batch):
        return {"text": tf.constant(["a small red circle at the top left"] * batch)}

    encode_images = tf.function(
        lambda images: model.encode_images(images)["embeddings"]
    )
    encode_texts = tf.function(lambda text: model.encode_texts(text)["embeddings"])
    signatures = loaded.signatures
    return [
        ("retrieval_image", signatures["embed_image_pixels"], encode_images, images),
        ("retrieval_text", signatures["embed_text"], encode_texts, texts),
    ]


def video_cases(folder):
    from video_understanding.config import get_config
    from video_understanding.export import make_export_archive
    from video_understanding.model import build_model

    config = get_config("demo", ["training.precision=float32"])
    model = build_model(config, 8, False)
    path = os.path.join(folder, "video")
    make_export_archive(model, [f"c{i}" for i in range(8)]).write_out(
        path, verbose=False
    )
    loaded = tf.saved_model.load(path)
    d = config.data
    samples = int(d.sample_rate * (d.clip_seconds or 1.0))

    def clips(batch):
        return {
            "frames": np.full(
                (batch, d.num_frames, d.frame_size, d.frame_size, 3), 9, np.uint8
            ),
            "audio": np.zeros((batch, samples), np.float32),
        }

    call = tf.function(lambda frames, audio: model({"frames": frames, "audio": audio}))
    return [("video", loaded.signatures["serving_default"], call, clips)]


def main(argv=None):
    parser = bench_parser(__doc__, "serving")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 15
    keras.config.set_dtype_policy("float32")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        cases = retrieval_cases(folder) + video_cases(folder)
        for name, signature, keras_call, make in cases:
            for batch in (1, 8, 32):
                inputs = make(batch)
                saved = median_time(functools.partial(signature, **inputs), repeats, 2)
                direct = median_time(
                    functools.partial(keras_call, **inputs), repeats, 2
                )
                key = f"serving_{name}_b{batch}"
                results += [
                    result(f"{key}_savedmodel_ms", 1000 * saved, "ms"),
                    result(f"{key}_keras_ms", 1000 * direct, "ms"),
                    result(f"{key}_items_per_s", batch / saved, "items/s"),
                    result(
                        f"{key}_savedmodel_vs_keras", saved / direct, "x", 1.2, False
                    ),
                ]
    return write_report(
        args.output, results, {"presets": "demo", "precision": "float32"}
    )


if __name__ == "__main__":
    main()
