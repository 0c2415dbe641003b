"""Re-ranked search: the index's `search_by_text` re-ranking its top candidates
with the matching head, against the same index ranking by cosine alone.

A retrieval model with a preset's shapes (untrained: timing does not depend on
the weights) is exported like `retrieval export`; a gallery of random unit
embeddings and float16 region features is indexed with it, saved and loaded
back as TF Serving would. Both calls go through `search_by_text_reranked`
(depth 0 = cosine only), so text encoding is in both. Reports batch-1 median
latencies, their ratio (target: at most 2x at depth 20 on 10,000 images) and
the index's region bytes per image.

    python bench/rerank_search.py [--quick] [--preset demo|flickr8k]
"""

import functools
import os
import sys
import tempfile

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, median_time, result, write_report  # noqa: E402
from retrieval.config import get_config  # noqa: E402
from retrieval.export import make_export_archive  # noqa: E402
from retrieval.gallery import REGION_DTYPE  # noqa: E402
from retrieval.model import build_model  # noqa: E402
from retrieval.search_index import SearchIndex  # noqa: E402

WORDS = "a the red blue dog cat runs on grass in of with man woman ball".split()


def main(argv=None):
    parser = bench_parser(__doc__, "rerank_search", quick_help="fewer repeats")
    parser.add_argument("--preset", default="demo", choices=("demo", "flickr8k"))
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args(argv)
    repeats = 7 if args.quick else 21
    config = get_config(args.preset, ["model.weights=none"])
    model = build_model(config, vocabulary=WORDS)
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(args.size, model.embedding_dim)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    regions = rng.normal(
        size=(args.size, model.num_regions, model.embedding_dim)
    ).astype(REGION_DTYPE)
    ids = np.array([f"img{i:06d}.jpg" for i in range(args.size)])
    with tempfile.TemporaryDirectory() as folder:
        model_dir = os.path.join(folder, "model")
        make_export_archive(
            model, config.data.image_size, rerank_top_k=args.depth
        ).write_out(model_dir, verbose=False)
        encoder = tf.saved_model.load(model_dir)
        index = SearchIndex(encoder, gallery, ids, "/gallery", regions, 1.0, args.depth)
        index_dir = os.path.join(folder, "index")
        tf.saved_model.save(index, index_dir, signatures=index.signature_map())
        del index, regions
        loaded = tf.saved_model.load(index_dir)
        search = loaded.signatures["search_by_text_reranked"]
        info = loaded.gallery_info()
        text = tf.constant(["a red dog runs on the grass"])
        k = tf.constant([args.k])
        calls = {
            depth: functools.partial(
                search, text=text, k=k, rerank_depth=tf.constant([depth])
            )
            for depth in (0, args.depth)
        }
        # Interleaved, so a slow spell on a shared machine hits both alike.
        times = {depth: [] for depth in calls}
        for _ in range(3):
            for depth, call in calls.items():
                times[depth].append(median_time(call, repeats // 3 or 1, 2))
        plain, reranked = (float(np.median(times[d])) for d in (0, args.depth))
    per_image = int(info["region_bytes_per_image"])
    results = [
        result("search_b1_cosine_ms", 1000 * plain, "ms"),
        result(f"search_b1_rerank{args.depth}_ms", 1000 * reranked, "ms"),
        result(
            f"search_b1_rerank{args.depth}_vs_cosine",
            reranked / plain,
            "x",
            2.0,
            at_least=False,
        ),
        result("region_bytes_per_image", per_image, "bytes"),
        result("embedding_bytes_per_image", model.embedding_dim * 4, "bytes"),
    ]
    settings = {
        "preset": args.preset,
        "gallery": args.size,
        "depth": args.depth,
        "k": args.k,
        "regions": model.num_regions,
        "dim": model.embedding_dim,
    }
    return write_report(args.output, results, settings)


if __name__ == "__main__":
    main()
