"""Scaling: how cost grows, as PNG plots with a fitted growth law.

- search latency (index SavedModel, batch 1) vs gallery size, 1k to 100k;
- `retrieval_metrics` time vs number of captions (1,000 images);
- retrieval training throughput (demo model, in-memory data) vs batch size.

Each series is fitted with `t = a * n^b` (log-log least squares); `b` near 1
is linear growth. The fits go into the JSON; the plots into
bench/results/scaling_*.png.

    python bench/scaling.py [--quick]
"""

import functools
import os
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, median_time, result, write_report  # noqa: E402


def fit_power(x, y):
    b, log_a = np.polyfit(np.log(x), np.log(y), 1)
    predicted = log_a + b * np.log(x)
    residual = np.sum((np.log(y) - predicted) ** 2)
    total = np.sum((np.log(y) - np.log(y).mean()) ** 2) or 1.0
    return float(np.exp(log_a)), float(b), float(1 - residual / total)


def fit_linear(x, y):
    """`y = intercept + slope * n` by least squares, with R^2."""
    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    predicted = intercept + slope * np.asarray(x, float)
    residual = np.sum((np.asarray(y) - predicted) ** 2)
    total = np.sum((np.asarray(y) - np.mean(y)) ** 2) or 1.0
    return float(intercept), float(slope), float(1 - residual / total)


def plot(path, x, y, xlabel, ylabel, title, fit):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b, r2 = fit
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=110)
    ax.loglog(x, y, "o", label="measured")
    grid = np.geomspace(min(x), max(x), 50)
    ax.loglog(grid, a * grid**b, "-", label=f"fit: {a:.3g} n^{b:.2f} (R²={r2:.3f})")
    c, m, r2_linear = fit_linear(x, y)
    if m > 0:
        label = f"linear: {c:.3g} + {m:.3g} n (R²={r2_linear:.3f})"
        ax.loglog(grid, c + m * grid, "--", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def search_series(sizes, repeats):
    from bench.search import build_search_model, unit

    rng = np.random.default_rng(0)
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            gallery = unit(rng, n, 512)
            search = build_search_model(gallery, os.path.join(folder, str(n)))
            text = tf.constant([unit(rng, 1, 512)[0].tobytes()])
            k = tf.constant([10])
            call = functools.partial(search, text=text, k=k)
            times.append(median_time(call, repeats, 2))
    return times


def evaluation_series(caption_counts, images=1000):
    """`retrieval_metrics` seconds for `images` images and a growing number
    of captions (the similarity matrix grows with the captions alone)."""
    from common.metrics import retrieval_metrics

    rng = np.random.default_rng(0)
    times = []
    for captions in caption_counts:
        similarity = rng.normal(size=(images, captions)).astype(np.float32)
        text_to_image = np.arange(captions) % images
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            retrieval_metrics(similarity, text_to_image)
            best = min(best, time.perf_counter() - start)
        times.append(best)
    return times


def training_series(batches, steps):
    import keras

    from bench._common import time_steps
    from retrieval.config import get_config
    from retrieval.model import build_model

    config = get_config("demo")
    keras.config.set_dtype_policy(config.training.precision)
    size = config.data.image_size
    model = build_model(config)
    model.adapt(["a small red circle at the top left", "a big blue square"])
    model.compile(optimizer=keras.optimizers.AdamW(1e-5))
    rate = []
    for batch in batches:
        data = (
            tf.data.Dataset.from_tensors(
                {
                    "images": tf.fill((size, size, 3), tf.constant(90, tf.uint8)),
                    "text": tf.constant("a small red circle at the top left"),
                }
            )
            .repeat()
            .batch(batch, drop_remainder=True)
        )
        seconds = time_steps(model, data, steps, 2)
        rate.append(batch / seconds)
    return rate


def main(argv=None):
    parser = bench_parser(__doc__, "scaling")
    args = parser.parse_args(argv)
    out_dir = os.path.dirname(args.output)
    os.makedirs(out_dir, exist_ok=True)
    sizes = [1000, 3000, 10000, 30000, 100000]
    captions = [1000, 2500, 5000, 10000, 25000]
    if args.quick:
        captions = captions[:4]
    batches = [8, 16, 32, 64] if not args.quick else [8, 16, 32]
    start = time.perf_counter()
    search = search_series(sizes, 5 if args.quick else 11)
    evaluation = evaluation_series(captions)
    training = training_series(batches, 3 if args.quick else 6)
    fits = {
        "search_latency_vs_gallery": fit_power(sizes, search),
        "evaluation_time_vs_captions": fit_power(captions, evaluation),
        "training_images_per_s_vs_batch": fit_power(batches, training),
    }
    plot(os.path.join(out_dir, "scaling_search.png"), sizes, search,
         "gallery size (512-d)", "latency, s (batch 1)", "Search", fits[
             "search_latency_vs_gallery"])  # fmt: skip
    plot(os.path.join(out_dir, "scaling_evaluation.png"), captions, evaluation,
         "captions (1,000 images)", "retrieval_metrics, s", "Evaluation",
         fits["evaluation_time_vs_captions"])  # fmt: skip
    plot(os.path.join(out_dir, "scaling_training.png"), batches, training,
         "batch size", "images/s", "Training throughput (demo)",
         fits["training_images_per_s_vs_batch"])  # fmt: skip
    results = [
        result(f"scaling_{name}_exponent", fit[1], "exponent")
        for name, fit in fits.items()
    ]
    extra = {
        "series": {
            "search": {"gallery": sizes, "seconds": search},
            "evaluation": {"captions": captions, "seconds": evaluation},
            "training": {"batch": batches, "images_per_s": training},
        },
        "fits": {
            name: {
                "power": {"a": a, "exponent": b, "r2": r2, "law": "y = a * n^exponent"},
                "linear": dict(
                    zip(("intercept", "slope", "r2"), fit_linear(*xy), strict=True),
                    law="y = intercept + slope * n",
                ),
            }
            for (name, (a, b, r2)), xy in zip(
                fits.items(),
                [(sizes, search), (captions, evaluation), (batches, training)],
                strict=True,
            )
        },
        "plots": [
            f"{out_dir}/scaling_{n}.png" for n in ("search", "evaluation", "training")
        ],
        "seconds": time.perf_counter() - start,
    }
    return write_report(args.output, results, {"quick": args.quick}, extra)


if __name__ == "__main__":
    main()
