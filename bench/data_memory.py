"""Memory that does not grow with the dataset: both applications train 2
epochs on data whose decoded size is over the cache budget (so the `auto`
cache streams it), and the peak RSS of each epoch is compared; the same data
cached in memory is measured beside it.

    python bench/data_memory.py [--quick]

Each run is its own process; RSS is sampled every 20 ms during each epoch.
Video: 1,000 demo clips of 10 s written as mp4 and prepared (10 s of 16 kHz
sound and 2 frames of 32 px each: 0.62 MB decoded a clip, 616 MB in all),
trained sound-only so that the data, not the model, is what is large.
Retrieval: a folder of 2,400 demo JPEGs trained at 64 px with a small model.
The budget is set to half of each dataset's decoded size.
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, result, write_report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PEAKS = """
import threading, time, keras, psutil

class EpochPeaks(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.peaks, self.process = [], psutil.Process()
    def _watch(self):
        while not self.stop:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)
    def on_epoch_begin(self, epoch, logs=None):
        self.peak, self.stop = self.process.memory_info().rss, False
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
    def on_epoch_end(self, epoch, logs=None):
        self.stop = True
        self.thread.join()
        self.peaks.append(self.peak / 2**20)
peaks = EpochPeaks()
"""

TRAIN = (
    PEAKS
    + """
import json
from {app}.config import get_config
from {app}.train import train
config = get_config("demo", {overrides!r})
train(config, {run!r}, data_path={data!r}, verbose=2, extra_callbacks=[peaks])
print("RESULT " + json.dumps(peaks.peaks))
"""
)

SMALL_VIDEO = [
    "model.modalities=audio", "model.hidden_dim=32", "model.key_dim=16",
    "model.num_mel_bins=16", "model.audio_filters=[16]", "training.epochs=2",
    "training.batch_size=32", "training.precision=float32",
]  # fmt: skip
SMALL_RETRIEVAL = [
    "data.image_size=64", "model.embedding_dim=32", "model.word_embedding_dim=16",
    "model.text_hidden_dim=16", "model.key_dim=16", "training.epochs=2",
    "training.batch_size=32", "training.precision=float32",
    "training.validation_batch_size=64",
]  # fmt: skip


def run_script(template, **values):
    script = textwrap.dedent(template.format(**values))
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :]), out.stdout


def main(argv=None):
    parser = bench_parser(__doc__, "data_memory")
    parser.add_argument("--only", choices=("video_understanding", "retrieval"))
    args = parser.parse_args(argv)
    clips_per_class = 25 if args.quick else 125
    images = 600 if args.quick else 2400
    from common.data.cache import available_memory
    from retrieval.demo_data import generate_demo_data
    from video_understanding.demo_data import generate_demo_clips
    from video_understanding.prepare import prepare

    results, details = [], {}
    work = tempfile.mkdtemp(prefix="mmsuite-data-memory-")
    memory = available_memory()

    clips = os.path.dirname(
        generate_demo_clips(
            os.path.join(work, "clips"), (clips_per_class, 0, 0), seconds=10.0,
            fps=2, size=32,
        )
    )  # fmt: skip
    prepared = os.path.join(work, "prepared")
    metadata = prepare(
        clips, prepared, num_frames=2, frame_size=32, clip_seconds=10.0,
        val_fraction=0.0, test_fraction=0.0, verbose=False,
    )  # fmt: skip
    count = metadata["counts"]["train"]
    decoded = count * (2 * 32 * 32 * 3 + 4 * 160000)
    # a budget of half the decoded size: the data is twice the budget
    budget = decoded / 2 / memory
    data_root = os.path.dirname(
        generate_demo_data(
            os.path.join(work, "images"), num_train=images, num_val=0, num_test=16
        )
    )
    image_bytes = images * 64 * 64 * 3
    image_budget = image_bytes / 2 / memory

    cases = [
        ("video_understanding", prepared, SMALL_VIDEO, budget, decoded),
        ("retrieval", data_root, SMALL_RETRIEVAL, image_budget, image_bytes),
    ]
    cases = [c for c in cases if args.only in (None, c[0])]
    for app, data, small, fraction, size in cases:
        for cache in ("auto", "memory"):
            overrides = small + [f"data.cache={cache}", f"data.cache_budget={fraction}"]
            peaks, stdout = run_script(
                TRAIN,
                app=app,
                overrides=overrides,
                run=os.path.join(work, f"run-{app}-{cache}"),
                data=data,
            )
            chosen = [x for x in stdout.splitlines() if x.startswith("Cache:")]
            label = "streamed" if cache == "auto" else "cached"
            details[f"{app}_{label}"] = {
                "epoch_peak_rss_mib": peaks,
                "decoded_mib": size / 2**20,
                "budget_mib": fraction * memory / 2**20,
                "cache_lines": chosen,
            }
            ratio = peaks[1] / peaks[0]
            results.append(
                result(
                    f"{app} {label}: peak RSS epoch 2 / epoch 1",
                    ratio,
                    "x",
                    target=1.10 if cache == "auto" else None,
                    at_least=False,
                    note=f"{peaks[0]:.0f} -> {peaks[1]:.0f} MiB; decoded data "
                    f"{size / 2**20:.0f} MiB, budget {fraction * memory / 2**20:.0f} "
                    f"MiB; {chosen[0] if chosen else ''}",
                )
            )
            print(f"{app} {label}: {peaks} MiB; {chosen}", flush=True)
    write_report(
        args.output,
        results,
        settings={"clips": count, "images": images, "available_mib": memory / 2**20},
        extra={"details": details},
    )


if __name__ == "__main__":
    main()
