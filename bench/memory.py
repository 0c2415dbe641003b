"""Memory: peak RSS of the demo's training steps and of a loaded SavedModel
serving batch 32 (each in its own process, read from `getrusage`).

    python bench/memory.py [--quick]
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

TRAIN = """
import keras, resource, json
from retrieval.config import get_config
from retrieval.train import train
config = get_config("demo", ["training.epochs=1", "training.steps_per_epoch={steps}",
    "data.demo_train_images={images}", "data.demo_val_images=0",
    "data.demo_test_images=8"])
train(config, {run!r}, verbose=0)
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""

SERVE = """
import json, resource
import numpy as np, tensorflow as tf
from retrieval.config import get_config
from retrieval.export import make_export_archive
from retrieval.model import build_model
config = get_config("demo", ["training.precision=float32"])
model = build_model(config)
model.adapt(["a small red circle"])
make_export_archive(model, config.data.image_size).write_out({path!r}, verbose=False)
"""

LOAD = """
import json, resource
import numpy as np, tensorflow as tf
sig = tf.saved_model.load({path!r}).signatures["embed_image_pixels"]
size = {size}
for _ in range(20):
    sig(images=tf.constant(np.full((32, size, size, 3), 100, np.uint8)))
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""


def run_python(code):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=env, check=False, cwd=ROOT,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return out.stdout.strip().splitlines()[-1]


def main(argv=None):
    parser = bench_parser(__doc__, "memory")
    args = parser.parse_args(argv)
    from retrieval.config import get_config

    steps = 5 if args.quick else 20
    size = get_config("demo").data.image_size
    with tempfile.TemporaryDirectory() as tmp:
        train_kib = json.loads(
            run_python(
                TRAIN.format(
                    steps=steps, images=32 * steps, run=os.path.join(tmp, "run")
                )
            )
        )
        path = os.path.join(tmp, "saved")
        run_python(SERVE.format(path=path) + "\nprint(0)")
        serve_kib = json.loads(run_python(LOAD.format(path=path, size=size)))
    results = [
        result("peak_rss_demo_training_mib", train_kib / 1024, "MiB"),
        result("peak_rss_savedmodel_serving_b32_mib", serve_kib / 1024, "MiB"),
    ]
    settings = {"preset": "demo", "training_steps": steps, "serving_batch": 32}
    return write_report(args.output, results, settings)


if __name__ == "__main__":
    main()
