"""Video training steps/s: prepared TFRecords (JPEG frames) vs tensors in memory.

The demo preset's model and batch; the TFRecord path is read without the
cache that training adds after the first epoch (so every step parses and
decodes JPEGs), the in-memory path feeds the same examples as tensors. Target:
ratio >= 0.9 (the model, not the input, sets the pace). The raw-video path
(PyAV decoding inside tf.data, no prepare) is reported as a ratio too.

    python bench/video_pipeline.py [--quick]
"""

import os
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, step_ratios, write_report  # noqa: E402
from common.data.video import decode_clip  # noqa: E402
from video_understanding.config import get_config  # noqa: E402
from video_understanding.demo_data import generate_demo_clips  # noqa: E402
from video_understanding.model import build_model  # noqa: E402
from video_understanding.pipeline import prepared_dataset  # noqa: E402
from video_understanding.prepare import prepare  # noqa: E402


def main(argv=None):
    parser = bench_parser(__doc__, "video_pipeline")
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--xla", action="store_true", help="jit_compile the step")
    args = parser.parse_args(argv)
    steps, warmup = (5, 2) if args.quick else (15, 3)
    config = get_config("demo", [f"training.precision={args.precision}"])
    d = config.data
    batch = config.training.batch_size
    keras.config.set_dtype_policy(args.precision)
    keras.utils.set_random_seed(0)
    settings = {
        "preset": "demo",
        "batch_size": batch,
        "num_frames": d.num_frames,
        "frame_size": d.frame_size,
        "precision": args.precision,
        "xla": args.xla,
    }
    with tempfile.TemporaryDirectory() as tmp:
        per_class = max(2, (batch * 2) // 8)
        manifest = generate_demo_clips(
            os.path.join(tmp, "clips"), clips_per_class=(per_class, 0, 0),
            size=64, sample_rate=d.sample_rate,
        )  # fmt: skip
        prepared = os.path.join(tmp, "prepared")
        metadata = prepare(
            manifest, prepared, num_frames=d.num_frames, frame_size=d.frame_size,
            sample_rate=d.sample_rate, clip_seconds=d.clip_seconds, verbose=False,
            val_fraction=0.0, test_fraction=0.0,
        )  # fmt: skip
        classes = len(metadata["class_names"])
        model = build_model(config, classes, False)
        model.compile(
            optimizer=keras.optimizers.AdamW(1e-5),
            loss="sparse_categorical_crossentropy",
            jit_compile=args.xla,
        )

        def inputs_only(inputs, labels):
            return {"frames": inputs["frames"], "audio": inputs["audio"]}, labels[0]

        records = (
            prepared_dataset(prepared, "train")
            .map(inputs_only, num_parallel_calls=tf.data.AUTOTUNE)
            .repeat()
            .batch(batch, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )
        frames, audio, labels = [], [], []
        for x, y in prepared_dataset(prepared, "train").map(inputs_only):
            frames.append(x["frames"].numpy())
            audio.append(x["audio"].numpy())
            labels.append(int(y))
        memory = (
            tf.data.Dataset.from_tensor_slices(
                ({"frames": np.stack(frames), "audio": np.stack(audio)}, labels)
            )
            .repeat()
            .batch(batch, drop_remainder=True)
        )
        paths, path_labels = [], []
        with open(manifest, encoding="utf-8") as f:
            next(f)
            for line in f:
                path, label = line.strip().split(",")[:2]
                paths.append(os.path.join(os.path.dirname(manifest), path))
                path_labels.append(metadata["class_names"].index(label))

        def decode(path):
            clip = decode_clip(
                path.numpy().decode(),
                d.num_frames,
                d.frame_size,
                d.sample_rate,
                clip_seconds=d.clip_seconds,
            )
            return clip.frames, clip.audio

        def raw_clip(path, label):
            frames, audio = tf.py_function(decode, [path], (tf.uint8, tf.float32))
            frames.set_shape((d.num_frames, d.frame_size, d.frame_size, 3))
            audio.set_shape((round(d.clip_seconds * d.sample_rate),))
            return {"frames": frames, "audio": audio}, label

        raw = (
            tf.data.Dataset.from_tensor_slices((paths, path_labels))
            .repeat()
            .map(raw_clip, num_parallel_calls=tf.data.AUTOTUNE)
            .padded_batch(batch, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )
        results = step_ratios(
            "video",
            model,
            memory,
            [("tfrecords", records, 0.9), ("raw_video", raw, None)],
            steps,
            warmup,
        )
    return write_report(args.output, results, settings)


if __name__ == "__main__":
    main()
