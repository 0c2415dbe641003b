"""Retrieval training steps/s: JPEG files through tf.data vs tensors in memory.

The target is a ratio >= 0.9: the model, not the input
pipeline, sets the pace. Both runs use the same model, batch and steps, in one
process; the figure is the ratio of median step times.

    python bench/retrieval_pipeline.py [--quick]

Writes bench/results/retrieval_pipeline.json.
"""

import os
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, step_ratios, write_report  # noqa: E402
from retrieval.config import get_config  # noqa: E402
from retrieval.data import load_retrieval_data  # noqa: E402
from retrieval.demo_data import generate_demo_data  # noqa: E402
from retrieval.model import build_model  # noqa: E402
from retrieval.pipeline import training_dataset  # noqa: E402


def main(argv=None):
    parser = bench_parser(__doc__, "retrieval_pipeline", quick_help="fewer steps")
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--xla", action="store_true", help="jit_compile the step")
    args = parser.parse_args(argv)
    steps, warmup = (6, 2) if args.quick else (20, 3)
    config = get_config("demo", [f"training.precision={args.precision}"])
    keras.config.set_dtype_policy(args.precision)
    keras.utils.set_random_seed(0)
    batch = config.training.batch_size
    size = config.data.image_size
    settings = {
        "preset": "demo",
        "batch_size": batch,
        "image_size": size,
        "precision": args.precision,
        "xla": args.xla,
        "steps": steps,
    }
    with tempfile.TemporaryDirectory() as tmp:
        generate_demo_data(tmp, num_train=batch * 8, num_val=0, num_test=10)
        data = load_retrieval_data(tmp, verbose=False)
        images, captions = data.subset("train")
        model = build_model(config)
        model.adapt([c for cs in captions for c in cs])
        model.compile(optimizer=keras.optimizers.AdamW(1e-5), jit_compile=args.xla)

        def as_inputs(dataset):
            return dataset.map(lambda i, t: {"images": i, "text": t}).repeat()

        files = as_inputs(training_dataset(images, captions, size, batch, cache="none"))
        cached = as_inputs(
            training_dataset(images, captions, size, batch, cache="memory")
        )
        pixels, texts = [], []
        one_epoch = training_dataset(images, captions, size, batch, cache="none")
        for i, t in one_epoch.take(len(images) // batch):
            pixels.append(i.numpy())
            texts.append(t.numpy())
        memory = (
            tf.data.Dataset.from_tensor_slices(
                {"images": np.concatenate(pixels), "text": np.concatenate(texts)}
            )
            .batch(batch, drop_remainder=True)
            .repeat()
        )

        results = step_ratios(
            "retrieval",
            model,
            memory,
            [("jpeg_files", files, 0.9), ("cached", cached, 0.9)],
            steps,
            warmup,
        )
    return write_report(args.output, results, settings)


if __name__ == "__main__":
    main()
