"""Approximate search: the IVF index SavedModel (float32 and int8 codes)
against exact search, NumPy brute force and `faiss.IndexIVFFlat`.

The int8 index is measured as stored (scores from the codes) and with
`--rescore` (the float32 vectors kept too, the top 4 x k candidates scored
again with them).

A gallery of unit vectors with structure (64 topics, 16,384 clusters of uneven
sizes around them, points spread around their cluster) and held-out queries
from the same mixture. Ground truth: exact top-10 (`faiss.IndexFlatIP`). The
SavedModels use an identity "encoder" (queries arrive as vectors through
`embed_text`, as in bench/search.py), saved and loaded back as TF Serving
would; faiss's IVF uses the same centroids, nlist and nprobe. Reports
recall@10 and batch-1 median latency at the index's default nprobe, a
recall-vs-latency curve over nprobe (PNG), size on disk and peak RSS of a
serving process (int8 IVF vs float32 exact), and the time of an update that
adds 1% new vectors against a full rebuild (k-means, assignment, writing).

A second case uses image embeddings: prepared demo images (3,000 by
default) embedded by a retrieval SavedModel (`--demo-model`, a `retrieval
export` folder; default: the demo preset's model exported untrained, whose
VGG16 features still group similar images), 300 of them held out as
queries: recall@10 of the IVF index at its default nprobe against exact
search, and the time per added image of `retrieval index --update` with
that model (embedding included).

    python bench/ann.py [--quick] [--size 1000000] [--dim 256]
        [--demo-images 3000] [--demo-model saved_models/retrieval]
"""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, result, write_report  # noqa: E402
from bench.search import VectorEncoder  # noqa: E402
from retrieval.ann import build_layout, default_nlist, update_layout  # noqa: E402
from retrieval.index import export_index  # noqa: E402
from retrieval.ivf_index import IvfSearchIndex  # noqa: E402
from retrieval.search_index import SearchIndex  # noqa: E402
from retrieval.stored_index import read_index  # noqa: E402

K = 10


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class Mixture:
    """Topics -> clusters (Dirichlet sizes) -> points, in unit vectors."""

    def __init__(self, dim, seed=0, topics=64, clusters=16384):
        rng = self.rng = np.random.default_rng(seed)
        middle = unit(rng.normal(size=(topics, dim)))
        self.centres = unit(
            middle[rng.integers(0, topics, clusters)]
            + 1.2 * rng.normal(size=(clusters, dim)) / np.sqrt(dim)
        )
        self.weights = rng.dirichlet(np.full(clusters, 0.7))
        self.dim = dim

    def sample(self, n, chunk=100_000):
        out = np.empty((n, self.dim), np.float32)
        for start in range(0, n, chunk):
            rows = min(chunk, n - start)
            which = self.rng.choice(len(self.centres), rows, p=self.weights)
            spread = self.rng.uniform(1.2, 2.2, (rows, 1)) / np.sqrt(self.dim)
            noise = spread * self.rng.normal(size=(rows, self.dim))
            out[start : start + rows] = unit(self.centres[which] + noise)
        return out


def exact_top(gallery, queries):
    import faiss

    flat = faiss.IndexFlatIP(gallery.shape[1])
    flat.add(gallery)
    return flat.search(queries, K)[1]


def recall(found, truth):
    return float(
        np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)])
    )


def save(index, folder):
    return export_index(index, folder)


def timed_search(signature, queries, nprobe, rows_of):
    """Batch-1 calls: (median seconds, found gallery rows)."""
    times, found = [], []
    k = tf.constant([K])
    probe = tf.constant([nprobe])
    for query in queries:
        text = tf.constant([query.tobytes()])
        start = time.perf_counter()
        out = signature(text=text, k=k, nprobe=probe)
        ids = out["ids"].numpy()
        times.append(time.perf_counter() - start)
        found.append([rows_of[i] for i in ids[0]])
    return float(np.median(times[5:] if len(times) > 10 else times)), found


def faiss_ivf(gallery, centroids):
    import faiss

    quantizer = faiss.IndexFlatIP(gallery.shape[1])
    quantizer.add(centroids)
    ivf = faiss.IndexIVFFlat(
        quantizer, gallery.shape[1], len(centroids), faiss.METRIC_INNER_PRODUCT
    )
    ivf.is_trained = True
    ivf.add(gallery)
    return ivf


def faiss_search(ivf, queries, nprobe):
    ivf.nprobe = nprobe
    times, found = [], []
    for query in queries:
        start = time.perf_counter()
        found.append(ivf.search(query[None], K)[1][0])
        times.append(time.perf_counter() - start)
    return float(np.median(times[5:] if len(times) > 10 else times)), found


def numpy_search(gallery, queries):
    times = []
    for query in queries:
        start = time.perf_counter()
        scores = query[None] @ gallery.T
        np.argpartition(-scores, K - 1, axis=1)[:, :K]
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def folder_bytes(path):
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


SERVE = """
import sys, numpy as np, tensorflow as tf
if sys.argv[1] != "-":
    m = tf.saved_model.load(sys.argv[1])
    search = m.signatures["search_by_text"]
    q = np.random.default_rng(0).normal(size=(20, int(sys.argv[2])))
    for row in q.astype(np.float32):
        search(text=tf.constant([row.tobytes()]), k=tf.constant([10]))
else:
    tf.constant(1.0) + 1.0
# VmHWM: this process's peak RSS (ru_maxrss would hold the parent's from
# before the exec)
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(status.split()[0])
"""


def serving_rss(path, dim):
    """Peak RSS (bytes) of a process that loads `path` and answers 20
    queries ("-": TensorFlow alone)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", SERVE, path, str(dim)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return int(out.stdout.split()[-1]) * 1024


def curve_png(path, curves, default_nprobe):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, points in curves.items():
        ms = [1000 * t for _, t, _ in points]
        ax.plot(ms, [r for _, _, r in points], marker="o", label=name)
        for nprobe, t, r in points:
            if nprobe == default_nprobe:
                ax.annotate(f"nprobe {nprobe}", (1000 * t, r), fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("batch-1 latency (ms, median)")
    ax.set_ylabel(f"recall@{K} vs exact")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title("IVF search: recall vs latency over nprobe")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def demo_model(folder):
    """The demo preset's retrieval model, exported untrained."""
    from bench.rerank_search import WORDS
    from retrieval.config import get_config
    from retrieval.export import make_export_archive
    from retrieval.model import build_model

    config = get_config("demo", ["model.weights=none"])
    model = build_model(config, vocabulary=WORDS)
    path = os.path.join(folder, "model")
    archive = make_export_archive(model, config.data.image_size, rerank_top_k=0)
    archive.write_out(path, verbose=False)
    return path


def demo_case(images, model_dir, added=200, held_out=300):
    """Results of the image-embedding case: IVF recall on demo images'
    embeddings, and the time per image added by an update."""
    import shutil

    from retrieval.ann import IndexSettings
    from retrieval.demo_data import generate_demo_data
    from retrieval.index import build_index
    from retrieval.index_update import update_index

    with tempfile.TemporaryDirectory() as folder:
        demo = os.path.join(folder, "demo")
        generate_demo_data(demo, num_train=images - 400, num_val=100, num_test=300)
        model_dir = model_dir or demo_model(folder)
        names = sorted(os.listdir(os.path.join(demo, "Images")))
        rng = np.random.default_rng(0)
        rng.shuffle(names)
        later, names = names[:added], names[added:]
        gallery_dir, later_dir = (os.path.join(folder, n) for n in ("g", "new"))
        for target, chosen in ((gallery_dir, names), (later_dir, later)):
            os.makedirs(target)
            for name in chosen:
                shutil.copy(os.path.join(demo, "Images", name), target)
        # every gallery image's embedding, from an exact index
        exact_dir = os.path.join(folder, "exact")
        settings = IndexSettings(method="exact")
        build_index(model_dir, gallery_dir, exact_dir, rerank_depth=0,
                    settings=settings, verbose=False)  # fmt: skip
        stored = read_index(os.path.join(exact_dir, "1"))
        vectors = np.ascontiguousarray(stored.vectors, dtype=np.float32)
        queries, gallery = vectors[:held_out], vectors[held_out:]
        ids = stored.ids[held_out:].astype(str)
        truth = exact_top(gallery, queries)
        _, layout, path = build(
            gallery, ids, default_nlist(len(gallery)), "float32",
            os.path.join(folder, "ivf_demo"),
        )  # fmt: skip
        loaded = tf.saved_model.load(path)
        nprobe = int(loaded.gallery_info()["nprobe"])
        rows_of = {name.encode(): row for row, name in enumerate(ids)}
        signature = loaded.signatures["search_by_text_nprobe"]
        _, found = timed_search(signature, queries, nprobe, rows_of)
        demo_recall = recall(found, truth)
        # an update adding `added` images through the real model
        index_dir = os.path.join(folder, "ivf_real")
        build_index(model_dir, gallery_dir, index_dir, rerank_depth=0,
                    settings=IndexSettings(method="ivf"), verbose=False)  # fmt: skip
        start = time.perf_counter()
        update_index(model_dir, index_dir, add=later_dir, verbose=False)
        per_image = (time.perf_counter() - start) / added
    settings = {
        "demo_images": len(names),
        "demo_dim": int(vectors.shape[1]),
        "demo_nlist": layout.nlist,
        "demo_nprobe": nprobe,
        "demo_queries": held_out,
        "demo_added": added,
    }
    return [
        result("demo_ivf_recall_at_10", demo_recall, "", 0.95),
        result("update_ms_per_added_image", 1000 * per_image, "ms"),
    ], settings


def build(gallery, ids, nlist, codes, folder, centroids=None, rescore=False):
    """(seconds to lay out and write, the layout, the loaded signature)."""
    start = time.perf_counter()
    layout = build_layout(
        gallery, ids, nlist, codes, centroids=centroids, rescore=rescore
    )
    index = IvfSearchIndex(VectorEncoder(gallery.shape[1]), layout, "/gallery")
    path = save(index, folder)
    seconds = time.perf_counter() - start
    return seconds, layout, path


def run_phase(name, folder, path, codes="float32"):
    """In this process: times a full build (k-means, assignment, writing) of
    `folder/gallery.npy` with `codes` as version 9 beside `path`, or an
    update of `path` adding `folder/added.npy`; prints the seconds."""
    if name == "build":
        gallery = np.load(os.path.join(folder, "gallery.npy"))
        ids = np.array([f"img{i:07d}" for i in range(len(gallery))])
        start = time.perf_counter()
        layout = build_layout(gallery, ids, default_nlist(len(gallery)), codes)
        index = IvfSearchIndex(VectorEncoder(gallery.shape[1]), layout, "/gallery")
        export_index(index, os.path.dirname(path), 9)
    else:
        added = np.load(os.path.join(folder, "added.npy"))
        added_ids = np.array([f"new{i:07d}" for i in range(len(added))])
        start = time.perf_counter()
        stored = read_index(path)
        updated, _ = update_layout(stored.layout, added, added_ids)
        del stored  # (as `retrieval index --update` does)
        index = IvfSearchIndex(VectorEncoder(added.shape[1]), updated, "/gallery")
        export_index(index, os.path.dirname(path), 2)
    print(f"seconds={time.perf_counter() - start}")


def phase(name, folder, path, codes="float32"):
    """`run_phase` in a fresh Python process; its seconds."""
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; "
        "from bench.ann import run_phase; run_phase(*sys.argv[2:])"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code, root, name, folder, path, codes],
        capture_output=True, text=True, check=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )  # fmt: skip
    return float(out.stdout.strip().rsplit("seconds=", 1)[1])


def main(argv=None):
    parser = bench_parser(__doc__, "ann", quick_help="100,000 vectors, fewer queries")
    parser.add_argument("--size", type=int)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int)
    parser.add_argument("--demo-images", type=int, help="default 3000, quick 800")
    parser.add_argument(
        "--demo-model", help="a retrieval SavedModel (default: untrained demo model)"
    )
    args = parser.parse_args(argv)
    size = args.size or (100_000 if args.quick else 1_000_000)
    n_queries = args.queries or (200 if args.quick else 1000)
    mixture = Mixture(args.dim)
    gallery = mixture.sample(size)
    queries = mixture.sample(n_queries)
    truth = exact_top(gallery, queries)
    ids = np.array([f"img{i:07d}" for i in range(size)])
    nlist = default_nlist(size)
    results, settings = [], {"gallery": size, "dim": args.dim, "queries": n_queries}
    with tempfile.TemporaryDirectory() as folder:
        build_s, layout, float_path = build(
            gallery, ids, nlist, "float32", os.path.join(folder, "ivf_f32")
        )
        _, _, int8_path = build(
            gallery, ids, nlist, "int8", os.path.join(folder, "ivf_int8"),
            centroids=layout.centroids,
        )  # fmt: skip
        _, _, rescore_path = build(
            gallery, ids, nlist, "int8", os.path.join(folder, "ivf_int8_rescore"),
            centroids=layout.centroids, rescore=True,
        )  # fmt: skip
        exact = SearchIndex(VectorEncoder(args.dim), gallery, ids, "/gallery")
        exact_path = save(exact, os.path.join(folder, "exact"))
        del exact
        rows_of = {name.encode(): row for row, name in enumerate(ids)}
        loaded = {
            name: tf.saved_model.load(path)
            for name, path in (
                ("float32", float_path),
                ("int8", int8_path),
                ("int8 re-scored", rescore_path),
            )
        }
        nprobe = int(loaded["float32"].gallery_info()["nprobe"])
        settings |= {"nlist": nlist, "default_nprobe": nprobe}
        ivf = faiss_ivf(gallery, layout.centroids)
        curves = {"ours float32": [], "ours int8": [], "faiss IndexIVFFlat": []}
        probes = sorted({p for p in (4, 8, 16, 32, 64, 128) if p <= nlist} | {nprobe})
        at_default = {}
        for p in probes:  # the curve: 200 queries at each nprobe
            for name in ("float32", "int8"):
                signature = loaded[name].signatures["search_by_text_nprobe"]
                seconds, found = timed_search(signature, queries[:200], p, rows_of)
                r = recall(found, truth[:200])
                curves[f"ours {name}"].append((p, seconds, r))
            seconds, found = faiss_search(ivf, queries[:200], p)
            curves["faiss IndexIVFFlat"].append(
                (p, seconds, recall(found, truth[:200]))
            )
        for name in loaded:  # the figures: every query
            signature = loaded[name].signatures["search_by_text_nprobe"]
            seconds, found = timed_search(signature, queries, nprobe, rows_of)
            at_default[name] = (seconds, recall(found, truth))
        seconds, found = faiss_search(ivf, queries, nprobe)
        at_default["faiss"] = (seconds, recall(found, truth))
        numpy_s = numpy_search(gallery, queries[:30])
        for name, points in curves.items():
            print(name, [(p, round(1000 * t, 2), round(r, 3)) for p, t, r in points])
        png = os.path.splitext(args.output)[0] + "_curve.png"
        curve_png(png, curves, nprobe)
        ours_s, ours_r = at_default["float32"]
        int8_s, int8_r = at_default["int8"]
        rescored_s, rescored_r = at_default["int8 re-scored"]
        faiss_s, faiss_r = at_default["faiss"]
        results += [
            result("ivf_f32_recall_at_10", ours_r, "", 0.95),
            result("ivf_int8_recall_at_10", int8_r, "", 0.95),
            result("ivf_int8_rescored_recall_at_10", rescored_r, "", 0.95),
            result("faiss_ivfflat_recall_at_10", faiss_r, ""),
            result("ivf_f32_b1_ms", 1000 * ours_s, "ms"),
            result("ivf_int8_b1_ms", 1000 * int8_s, "ms"),
            result("ivf_int8_rescored_b1_ms", 1000 * rescored_s, "ms"),
            result("faiss_ivfflat_b1_ms", 1000 * faiss_s, "ms"),
            result("numpy_brute_force_b1_ms", 1000 * numpy_s, "ms"),
            result("ivf_f32_latency_vs_numpy", ours_s / numpy_s, "x", 0.1, False),
            result("ivf_f32_latency_vs_faiss", ours_s / faiss_s, "x", 1.5, False),
            result("ivf_int8_latency_vs_faiss", int8_s / faiss_s, "x"),
        ]
        del loaded
        exact_bytes = folder_bytes(exact_path)
        int8_bytes = folder_bytes(int8_path)
        rescore_bytes = folder_bytes(rescore_path)
        base = serving_rss("-", args.dim)
        exact_rss = serving_rss(exact_path, args.dim)
        int8_rss = serving_rss(int8_path, args.dim)
        results += [
            result("exact_f32_disk_mb", exact_bytes / 2**20, "MiB"),
            result("ivf_int8_disk_mb", int8_bytes / 2**20, "MiB"),
            result("ivf_int8_rescored_disk_mb", rescore_bytes / 2**20, "MiB"),
            result("int8_disk_vs_exact", int8_bytes / exact_bytes, "x", 0.35, False),
            result("tensorflow_alone_rss_mb", base / 2**20, "MiB"),
            result("exact_f32_serving_rss_mb", exact_rss / 2**20, "MiB"),
            result("ivf_int8_serving_rss_mb", int8_rss / 2**20, "MiB"),
            result("int8_rss_vs_exact", int8_rss / exact_rss, "x", 0.35, False),
            result(
                "int8_rss_over_tensorflow_vs_exact",
                (int8_rss - base) / (exact_rss - base),
                "x",
            ),
        ]
        # An update adding 1% new vectors, against a full rebuild, each in a
        # fresh process (as the command line runs them; the timing excludes
        # loading the vectors).
        added = mixture.sample(max(1, size // 100))
        added_ids = np.array([f"new{i:07d}" for i in range(len(added))])
        np.save(os.path.join(folder, "gallery.npy"), gallery)
        np.save(os.path.join(folder, "added.npy"), added)
        build_s = phase("build", folder, float_path)
        update_s = phase("update", folder, float_path)
        build8_s = phase("build", folder, int8_path, "int8")
        update8_s = phase("update", folder, int8_path, "int8")
        updated_path = os.path.join(os.path.dirname(float_path), "2")
        everything = np.concatenate([gallery, added])
        names = np.concatenate([ids, added_ids])
        truth2 = exact_top(everything, queries[:200])
        rows2 = {name.encode(): row for row, name in enumerate(names)}
        loaded2 = tf.saved_model.load(updated_path)
        signature = loaded2.signatures["search_by_text_nprobe"]
        _, found = timed_search(signature, queries[:200], nprobe, rows2)
        results += [
            result("full_build_s", build_s, "s"),
            result("update_1pct_s", update_s, "s"),
            result("update_vs_full_build", update_s / build_s, "x", 0.2, False),
            result("int8_full_build_s", build8_s, "s"),
            result("int8_update_1pct_s", update8_s, "s"),
            result("int8_update_vs_full_build", update8_s / build8_s, "x", 0.2, False),
            result("updated_recall_at_10", recall(found, truth2), "", 0.95),
        ]
    demo_images = args.demo_images or (800 if args.quick else 3000)
    demo_results, demo_settings = demo_case(demo_images, args.demo_model)
    results += demo_results
    settings |= demo_settings
    curve = {name: [list(p) for p in points] for name, points in curves.items()}
    return write_report(args.output, results, settings, {"curve": curve, "png": png})


if __name__ == "__main__":
    main()
