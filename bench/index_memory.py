"""Memory of `retrieval index` as the gallery grows: peak RSS of the whole
command (its own process, from `getrusage`) over galleries of 10k to 200k
images, streamed and written as a sharded index (`--max-shard-images`), and,
for contrast, as one search SavedModel.

The gallery is a `retrieval prepare` folder of tiny JPEGs and the model a
small SavedModel with the retrieval export's `embed_image` / `embed_text`
signatures (decode, 8x8 pixels, a fixed 192 x 256 projection): the figures
are the index command's own memory, not VGG16's.

    python bench/index_memory.py [--quick]
"""

import io
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, result, write_report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIM = 256
SHARD = 10_000

RUN = """
import json, resource, sys
from retrieval.__main__ import main
code = main(sys.argv[1:])
assert code == 0, code
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""


def write_encoder(path):
    """A SavedModel with the retrieval export's embedding signatures."""
    import numpy as np
    import tensorflow as tf

    class Encoder(tf.Module):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(0)
            self.projection = tf.Variable(
                rng.standard_normal((8 * 8 * 3, DIM)).astype("float32")
            )
            self.words = tf.Variable(rng.standard_normal((1000, DIM)).astype("float32"))

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
        def embed_image(self, image_bytes):
            def decode(data):
                image = tf.io.decode_image(data, 3, expand_animations=False)
                return tf.image.resize(image, (8, 8))

            images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.float32)
            flat = tf.reshape(images, (-1, 8 * 8 * 3)) / 255.0
            return {"embeddings": tf.math.l2_normalize(flat @ self.projection, -1)}

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
        def embed_text(self, text):
            ids = tf.strings.to_hash_bucket_fast(text, 1000)
            vectors = tf.gather(self.words, ids)
            return {"embeddings": tf.math.l2_normalize(vectors, -1)}

    encoder = Encoder()
    signatures = {
        "embed_image": encoder.embed_image,
        "embed_text": encoder.embed_text,
    }
    tf.saved_model.save(encoder, os.path.join(path, "1"), signatures=signatures)


def write_gallery(folder, size):
    """A prepared folder of `size` tiny distinct JPEGs, in shards of 4,096."""
    import numpy as np
    from PIL import Image

    from common.data.files import write_json_atomically
    from common.data.shards import plan_shards, write_shard
    from retrieval.records import KIND, METADATA, encode_example

    rng = np.random.default_rng(size)
    pool = []
    for _ in range(512):
        buffer = io.BytesIO()
        pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buffer, format="JPEG")
        pool.append(buffer.getvalue())
    ids = [f"{i // 1000:04d}/{i:07d}.jpg" for i in range(size)]
    plan = plan_shards({"train": ids, "val": [], "test": []}, 4096)
    os.makedirs(folder, exist_ok=True)
    for _, name, items in plan:
        write_shard(
            os.path.join(folder, name),
            (encode_example(pool[hash(i) % 512], ["a photo"], i) for i in items),
        )
    for split in ("train", "val", "test"):
        with open(os.path.join(folder, f"{split}.jsonl"), "w") as f:
            for i in ids if split == "train" else []:
                f.write(json.dumps({"id": i, "captions": ["a photo"]}) + "\n")
    write_json_atomically(
        os.path.join(folder, METADATA),
        {
            "kind": KIND,
            "settings": {"shard_size": 4096},
            "data": folder,
            "image_root": os.path.join(folder, "images"),
            "shards": {
                s: [n for x, n, _ in plan if x == s] for s in ("train", "val", "test")
            },
            "counts": {"train": size, "val": 0, "test": 0},
        },
    )


def index_peak_mib(model, gallery, output, shard):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
    args = ["index", "--model", model, "--images", gallery, "--output", output]
    args += ["--batch-size", "256"]
    if shard:
        args += ["--max-shard-images", str(shard)]
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", RUN, *args],
        capture_output=True, text=True, env=env, check=False, cwd=ROOT,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    seconds = time.perf_counter() - start
    return json.loads(out.stdout.strip().splitlines()[-1]) / 1024, seconds


def plot(path, sizes, curves):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for label, values in curves.items():
        axis.plot([s / 1000 for s in sizes], values, marker="o", label=label)
    axis.set_xlabel("gallery images (thousands)")
    axis.set_ylabel("peak RSS of `retrieval index` (MiB)")
    axis.set_title(f"Index memory vs gallery size (embedding dim {DIM})")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    parser = bench_parser(__doc__, "index_memory")
    args = parser.parse_args(argv)
    sizes = [10_000, 50_000] if args.quick else [10_000, 50_000, 100_000, 200_000]
    sharded, single, seconds = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "encoder")
        write_encoder(model)
        for size in sizes:
            gallery = os.path.join(tmp, f"gallery{size}")
            write_gallery(gallery, size)
            peak, took = index_peak_mib(
                model, gallery, os.path.join(tmp, f"sharded{size}"), SHARD
            )
            sharded.append(peak)
            seconds.append(took)
            single.append(
                index_peak_mib(model, gallery, os.path.join(tmp, f"one{size}"), None)[0]
            )
            print(
                f"{size:7d} images: sharded {peak:7.1f} MiB ({took:.0f} s), "
                f"one SavedModel {single[-1]:7.1f} MiB",
                flush=True,
            )
    png = os.path.join(
        os.path.dirname(os.path.abspath(args.output)), "index_memory.png"
    )
    os.makedirs(os.path.dirname(png), exist_ok=True)
    plot(
        png,
        sizes,
        {
            f"streamed, sharded index ({SHARD:,} images / shard)": sharded,
            "streamed, one search SavedModel": single,
        },
    )
    big, small = sizes[-1] // 1000, sizes[0] // 1000
    results = [
        result(
            f"index_peak_rss_sharded_{big}k_over_{small}k",
            sharded[-1] / sharded[0],
            "x",
            target=1.10,
            at_least=False,
            note="peak RSS of `retrieval index --max-shard-images "
            f"{SHARD}`: flat means memory does not grow with the gallery",
        ),
        result(f"index_peak_rss_sharded_{small}k_mib", sharded[0], "MiB"),
        result(f"index_peak_rss_sharded_{big}k_mib", sharded[-1], "MiB"),
        result(
            f"index_peak_rss_one_savedmodel_{big}k_over_{small}k",
            single[-1] / single[0],
            "x",
            note="for contrast: one SavedModel holds every embedding",
        ),
        result(
            f"index_throughput_{big}k_images_per_s",
            sizes[-1] / seconds[-1],
            "images/s",
            note="whole command incl. TensorFlow start and SavedModel writes",
        ),
    ]
    settings = {
        "sizes": sizes,
        "embedding_dim": DIM,
        "max_shard_images": SHARD,
        "batch_size": 256,
        "peak_rss_sharded_mib": sharded,
        "peak_rss_one_savedmodel_mib": single,
        "seconds_sharded": seconds,
        "png": os.path.relpath(png, ROOT),
    }
    return write_report(args.output, results, settings)


if __name__ == "__main__":
    main()
