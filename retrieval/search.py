"""Searching a gallery index by text or by image; an HTML page of results."""

import html
import os

import tensorflow as tf

from common.serving.topk import merge_top_k


class LoadedIndex:
    """A search index (one folder, a list of them, or a sharded folder)
    loaded once and asked many queries: `search` answers as the `search`
    function does, without loading the SavedModels again.

    Attributes:
        versions: the SavedModel folders answering (one per shard).
        gallery_root: the folder the gallery ids are relative to.
        ids: every gallery id, in the shards' order.
        size: the number of gallery images.
        rerank_depth: the re-rank depth the index was built with (0: none).
        methods: each shard's search method, `"exact"` or `"ivf"`.
    """

    def __init__(self, index):
        from retrieval.index import index_versions

        paths = [index] if isinstance(index, str | os.PathLike) else list(index)
        self.versions = [v for path in paths for v in index_versions(path)]
        self.loaded = [tf.saved_model.load(version) for version in self.versions]
        infos = [loaded.gallery_info() for loaded in self.loaded]
        roots = {info["gallery_root"].numpy().decode("utf-8") for info in infos}
        if len(roots) != 1:
            raise ValueError(
                f"The indexes cover different gallery folders: {sorted(roots)}"
            )
        self.gallery_root = roots.pop()
        self.sizes = [int(info["size"]) for info in infos]
        self.size = sum(self.sizes)
        self.depths = [int(info.get("rerank_depth", 0)) for info in infos]
        self.rerank_depth = max(self.depths)
        self.methods = [
            info["method"].numpy().decode("utf-8") if "method" in info else "exact"
            for info in infos
        ]
        self.ids = [
            i.decode("utf-8") for loaded in self.loaded for i in loaded.ids.numpy()
        ]

    def search(self, query=None, image_bytes=None, k=5, rerank_depth=None, nprobe=None):
        """Top-k `(id, score)` pairs for a text `query` or encoded
        `image_bytes` (see the `search` function)."""
        if (query is None) == (image_bytes is None):
            raise ValueError("Give exactly one of a text query or an image.")
        if nprobe is not None:
            if isinstance(nprobe, bool) or not isinstance(nprobe, int) or nprobe < 1:
                raise ValueError(f"--nprobe must be at least 1; received {nprobe!r}.")
            if rerank_depth is not None and "ivf" in self.methods:
                raise ValueError(
                    "--nprobe and --rerank-depth cannot be given together: the "
                    "IVF index's nprobe signatures re-rank at the index's own "
                    "depth. Give one of them."
                )
        if rerank_depth is not None and rerank_depth < 0:
            raise ValueError(
                f"--rerank-depth must be 0 or more; received {rerank_depth}."
            )
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.size:
            raise ValueError(
                f"-k must be between 1 and the gallery size {self.size}; "
                f"received {k!r}."
            )
        answers = []
        for loaded, size, depth, method in zip(
            self.loaded, self.sizes, self.depths, self.methods, strict=True
        ):
            # a shard without region features ranks by cosine alone; an
            # exact shard scans everything whatever the nprobe
            shard_depth = rerank_depth if depth > 0 else None
            probes = nprobe if method == "ivf" else None
            answers.append(
                self._shard_top_k(
                    loaded, size, query, image_bytes, k, shard_depth, probes
                )
            )
        return merge_top_k(answers, k)

    @staticmethod
    def _shard_top_k(loaded, size, query, image_bytes, k, rerank_depth, nprobe):
        want = tf.constant([min(k, size)])
        if nprobe is not None:
            name, inputs = "search_by_text_nprobe", {"text": tf.constant([query])}
            if image_bytes is not None:
                name = "search_by_image_nprobe"
                inputs = {"image_bytes": tf.constant([image_bytes])}
            out = loaded.signatures[name](
                **inputs, k=want, nprobe=tf.constant([nprobe])
            )
        elif image_bytes is not None:
            out = loaded.signatures["search_by_image"](
                image_bytes=tf.constant([image_bytes]), k=want
            )
        elif rerank_depth is not None:
            out = loaded.signatures["search_by_text_reranked"](
                text=tf.constant([query]),
                k=want,
                rerank_depth=tf.constant([rerank_depth]),
            )
        else:
            out = loaded.signatures["search_by_text"](text=tf.constant([query]), k=want)
        ids = [i.decode("utf-8") for i in out["ids"].numpy()[0]]
        scores = [float(s) for s in out["scores"].numpy()[0]]
        return list(zip(ids, scores, strict=True))


def search(index, query=None, image=None, k=5, rerank_depth=None, nprobe=None):
    """Top-k `(id, score)` pairs and the gallery root, for a text or image
    query. A text query's top `rerank_depth` candidates (default: the
    index's own) are re-ranked with the matching head where the index holds
    region features; image queries rank by cosine. `index` is one index
    folder or a list of them (the shards of a gallery indexed with `--shard
    i/N`), or a sharded index folder (`--max-shard-images`): each index
    answers its own top-k (re-ranking its own top candidates) and the answers
    are merged by score, which gives the same top-k as one index when
    ranking by cosine (re-ranked, each shard re-ranks its own candidates).
    `nprobe` (default: the index's own) is how many clusters an IVF index
    scans per query; exact indexes scan everything."""
    if (query is None) == (image is None):
        raise ValueError("Give exactly one of a text query or --image PATH.")
    image_bytes = None
    if image is not None:
        if not os.path.isfile(image):
            raise FileNotFoundError(f"Query image not found: {image!r}.")
        with open(image, "rb") as f:
            image_bytes = f.read()
    loaded = LoadedIndex(index)
    results = loaded.search(query, image_bytes, k, rerank_depth, nprobe)
    return results, loaded.gallery_root


def write_html(path, query, results, gallery_root):
    """A page of result thumbnails; ids and the query are HTML-escaped."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    cards = []
    for rank, (image_id, score) in enumerate(results, start=1):
        source = os.path.relpath(os.path.join(gallery_root, image_id), directory)
        cards.append(
            "<figure>"
            f'<img src="{html.escape(source.replace(os.sep, "/"), quote=True)}" '
            f'alt="{html.escape(image_id, quote=True)}">'
            f"<figcaption>#{rank} {html.escape(image_id)}<br>score {score:.3f}"
            "</figcaption></figure>"
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Search: {html.escape(query)}</title>"
        "<style>body{font-family:sans-serif}figure{display:inline-block;margin:8px;"
        "text-align:center}img{width:160px;height:160px;object-fit:cover}</style>"
        f"</head><body><h1>{html.escape(query)}</h1>{''.join(cards)}</body></html>"
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path
