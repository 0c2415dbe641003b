"""Search: the index SavedModel's exact top-k vs faiss `IndexFlatIP` and NumPy.

A gallery of 100,000 x 512 random unit vectors; queries are unit vectors too.
The SavedModel is a `SearchIndex` with an identity "encoder" (queries are given
as vectors through `embed_text`, so only the search is timed), saved and loaded
back as TF Serving would. All three are exact; their top-k id sets must agree.
Target: latency at most 1.0x the faster peer at batch 1 and 32.

    python bench/search.py [--quick]
"""

import functools
import os
import sys
import tempfile

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, median_time, result, write_report  # noqa: E402
from retrieval.search_index import SearchIndex  # noqa: E402


class VectorEncoder(tf.Module):
    """Stands in for the retrieval SavedModel: queries arrive as vectors."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.signatures = {"embed_text": self.embed_text, "embed_image": self.embed}

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
    def embed(self, image_bytes):
        vectors = tf.io.decode_raw(image_bytes, tf.float32)
        return {"embeddings": tf.reshape(vectors, (-1, self.dim))}

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
    def embed_text(self, text):
        vectors = tf.io.decode_raw(text, tf.float32)
        return {"embeddings": tf.reshape(vectors, (-1, self.dim))}


def build_search_model(gallery, folder):
    encoder = VectorEncoder(gallery.shape[1])
    ids = np.array([f"img{i:06d}" for i in range(len(gallery))])
    index = SearchIndex(encoder, gallery, ids, "/gallery")
    path = os.path.join(folder, "index")
    tf.saved_model.save(
        index, path, signatures={"search_by_text": index.search_by_text}
    )
    return tf.saved_model.load(path).signatures["search_by_text"]


def unit(rng, n, dim):
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_top_k(queries, gallery, k):
    scores = queries @ gallery.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
    return np.take_along_axis(part, order, 1)


def measure(gallery, batches, k, repeats, folder):
    import faiss

    rng = np.random.default_rng(1)
    search = build_search_model(gallery, folder)
    faiss_index = faiss.IndexFlatIP(gallery.shape[1])
    faiss_index.add(gallery)
    out = {}
    for batch in batches:
        queries = unit(rng, batch, gallery.shape[1])
        text = tf.constant([q.tobytes() for q in queries])
        k_in = tf.constant([k] * batch, tf.int32)
        ours = search(text=text, k=k_in)
        ours_ids = ours["ids"].numpy().astype(str)
        _, faiss_ids = faiss_index.search(queries, k)
        numpy_ids = numpy_top_k(queries, gallery, k)
        for row in range(batch):
            expected = {f"img{i:06d}" for i in numpy_ids[row]}
            if set(ours_ids[row]) != expected or set(faiss_ids[row]) != set(
                numpy_ids[row]
            ):
                raise AssertionError(f"top-{k} sets differ at batch {batch} row {row}")
        calls = {
            "savedmodel": (search, {"text": text, "k": k_in}),
            "faiss": (faiss_index.search, {"x": queries, "k": k}),
            "numpy": (numpy_top_k, {"queries": queries, "gallery": gallery, "k": k}),
        }
        out[batch] = {
            name: median_time(functools.partial(f, **kw), repeats, 2)
            for name, (f, kw) in calls.items()
        }
    return out


def main(argv=None):
    parser = bench_parser(__doc__, "search", quick_help="fewer repeats")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 15
    gallery = unit(np.random.default_rng(0), args.size, args.dim)
    with tempfile.TemporaryDirectory() as folder:
        timings = measure(gallery, (1, 32), args.k, repeats, folder)
    results = []
    for batch, t in timings.items():
        peer = min(t["faiss"], t["numpy"])
        results += [
            result(f"search_b{batch}_savedmodel_ms", 1000 * t["savedmodel"], "ms"),
            result(f"search_b{batch}_faiss_ms", 1000 * t["faiss"], "ms"),
            result(f"search_b{batch}_numpy_ms", 1000 * t["numpy"], "ms"),
            result(
                f"search_b{batch}_latency_vs_fastest_peer",
                t["savedmodel"] / peer,
                "x",
                1.0,
                at_least=False,
            ),
        ]
    settings = {"gallery": args.size, "dim": args.dim, "k": args.k}
    return write_report(args.output, results, settings)


if __name__ == "__main__":
    main()
