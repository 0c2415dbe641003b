"""Evaluation: `retrieval_metrics` on 5,000 images x 25,000 captions vs a plain
NumPy full-argsort implementation (the way most papers' eval scripts do it).

Both get the same similarity matrix; their Recall@K must agree. Targets: faster
than the NumPy reference, and under 5 s absolute.

    python bench/evaluation.py [--quick]
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, result, write_report  # noqa: E402
from common.metrics import retrieval_metrics  # noqa: E402


def argsort_reference(similarity, text_to_image, ks=(1, 5, 10)):
    """Ranks from full argsorts, as in the VSE++/SCAN evaluation scripts."""
    num_images = similarity.shape[0]
    i2t = np.empty(num_images)
    for i in range(num_images):
        order = np.argsort(-similarity[i], kind="stable")
        positions = np.where(np.isin(order, np.flatnonzero(text_to_image == i)))[0]
        i2t[i] = positions.min()
    order = np.argsort(-similarity.T, axis=1, kind="stable")
    t2i = np.argmax(order == text_to_image[:, None], axis=1)
    out = {}
    for k in ks:
        out[f"i2t_r{k}"] = 100.0 * np.mean(i2t < k)
        out[f"t2i_r{k}"] = 100.0 * np.mean(t2i < k)
    return out


def problem(num_images, captions_per_image=5, dim=256, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(num_images, dim)).astype(np.float32)
    text_to_image = np.repeat(np.arange(num_images), captions_per_image)
    texts = images[text_to_image] + 1.5 * rng.normal(
        size=(len(text_to_image), dim)
    ).astype(np.float32)
    return images @ texts.T, text_to_image


def time_metrics(num_images):
    similarity, text_to_image = problem(num_images)
    start = time.perf_counter()
    metrics = retrieval_metrics(similarity, text_to_image)
    return time.perf_counter() - start, metrics, similarity, text_to_image


def main(argv=None):
    parser = bench_parser(__doc__, "evaluation", quick_help="1,000 x 5,000")
    args = parser.parse_args(argv)
    num_images = 1000 if args.quick else 5000
    times, refs = [], []
    for _ in range(3 if args.quick else 2):
        seconds, metrics, similarity, text_to_image = time_metrics(num_images)
        times.append(seconds)
    start = time.perf_counter()
    reference = argsort_reference(similarity, text_to_image)
    refs.append(time.perf_counter() - start)
    for key, value in reference.items():
        if abs(metrics[key] - value) > 1e-9:
            raise AssertionError(f"{key}: {metrics[key]} vs NumPy {value}")
    ours, numpy_time = float(np.median(times)), float(np.median(refs))
    results = [
        result("retrieval_metrics_seconds", ours, "s", 5.0, at_least=False),
        result("retrieval_metrics_numpy_argsort_seconds", numpy_time, "s"),
        result("retrieval_metrics_speedup_vs_numpy", numpy_time / ours, "x", 1.0),
    ]
    settings = {"images": num_images, "captions": 5 * num_images}
    return write_report(args.output, results, settings)


if __name__ == "__main__":
    main()
