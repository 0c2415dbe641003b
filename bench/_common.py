"""Shared by the benchmarks: machine facts, result records, the JSON file."""

import argparse
import json
import os
import platform
import statistics
import time


def bench_parser(doc, name, quick_help=None):
    """The argument parser every benchmark starts from: its description (the
    first paragraph of `doc`), `--quick` and `--output` (default
    `bench/results/NAME.json`)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--output", default=f"bench/results/{name}.json")
    return parser


def machine():
    """What the figures were measured on."""
    import tensorflow as tf

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def result(name, value, unit, target=None, at_least=True, note=None):
    """One figure; `met` compares it with `target` (`>=`, or `<=` when
    `at_least` is False), `None` when there is no target."""
    met = None
    if target is not None:
        met = bool(value >= target) if at_least else bool(value <= target)
    record = {
        "name": name,
        "value": float(value),
        "unit": unit,
        "target": target,
        "target_kind": None if target is None else (">=" if at_least else "<="),
        "met": met,
    }
    if note:
        record["note"] = note
    return record


def median_time(function, repeats, warmup=1):
    """Median seconds of `function()` over `repeats` calls after `warmup`."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_report(path, results, settings=None, extra=None):
    """Writes `{"machine", "settings", "results"}` to `path`, prints the table
    and returns `results`."""
    report = {"machine": machine(), "settings": settings or {}, "results": results}
    report.update(extra or {})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    print_results(results)
    print(f"Wrote {path}")
    return results


def print_results(results):
    for r in results:
        target = ""
        if r["target"] is not None:
            target = f"  target {r['target_kind']} {r['target']:g}  met: {r['met']}"
        print(f"{r['name']:48} {r['value']:10.3f} {r['unit']}{target}")


def time_steps(model, dataset, steps, warmup):
    """Median seconds of a training step of `model.fit` on `dataset`, over
    `steps` steps after `warmup` ones."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    timer = StepTimer()
    model.fit(
        dataset,
        epochs=1,
        steps_per_epoch=steps + warmup,
        callbacks=[timer],
        verbose=0,
        shuffle=False,
    )
    return statistics.median(timer.times[warmup:])


def step_ratios(prefix, model, memory, sources, steps, warmup):
    """Training steps/s of `model` on batches already in memory, and for each
    `(name, dataset, target)` of `sources` the ratio of the in-memory step
    time to its own (1.0: the input pipeline costs nothing), one after the
    other in one process."""
    time_steps(model, memory, 2, 1)  # compile the train function once
    in_memory = time_steps(model, memory, steps, warmup)
    results = [result(f"{prefix}_steps_per_s_in_memory", 1 / in_memory, "steps/s")]
    for name, dataset, target in sources:
        ratio = in_memory / time_steps(model, dataset, steps, warmup)
        results.append(
            result(f"{prefix}_pipeline_ratio_{name}", ratio, "ratio", target)
        )
    return results
