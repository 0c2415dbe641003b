"""The approximate (inverted-file) gallery layout, built with NumPy and
`faiss.Kmeans` and searched by `retrieval.ivf_index.IvfSearchIndex` with
stock TensorFlow ops.

An IVF layout groups the gallery's unit vectors by their nearest of `nlist`
centroids (spherical k-means). Members are stored cluster after cluster
(`offsets[c]:offsets[c + 1]` are cluster `c`'s rows), so a query gathers the
rows of its `nprobe` nearest clusters in one op. Vectors are kept as float32
or as int8 codes with a per-dimension scale and offset (a quarter of the
bytes; scores are computed from the float query and the decoded codes).
"""

import dataclasses
import math

import numpy as np

# Below this many images `retrieval index` builds the exact index unless told
# otherwise: a full scan of 100,000 x 512 float32 vectors takes about 10 ms on
# 2 CPU cores (bench/search.py), and an approximate index only pays off above.
EXACT_BELOW = 100_000
# The centroids are trained again when an update has grown the gallery past
# this factor of the size they were trained on.
RETRAIN_GROWTH = 2.0
CODES = ("float32", "int8")


METHODS = ("auto", "exact", "ivf")

# Rows per block of the stored layout: a cluster takes whole blocks, so the
# padding is under one block per cluster (about 1.6% of 1M images in 1,000
# clusters).
BLOCK_ROWS = 32


@dataclasses.dataclass
class IndexSettings:
    """How `retrieval index` stores and searches a gallery: `method` exact,
    ivf, or auto (exact below `EXACT_BELOW` images, or with float32 codes
    asked for none; ivf above, or with int8 codes); for IVF, `nlist`
    clusters (default about sqrt(size)), `nprobe` scanned per query by
    default (`default_nprobe`), `codes` float32 or int8, and the k-means
    `seed`."""

    method: str = "auto"
    nlist: int | None = None
    nprobe: int | None = None
    codes: str = "float32"
    seed: int = 0
    rescore: bool = False

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(
                f"--method must be one of {', '.join(METHODS)}; got {self.method!r}."
            )
        if self.codes not in CODES:
            raise ValueError(
                f"--codes must be one of {', '.join(CODES)}; got {self.codes!r}."
            )
        if self.method == "exact" and self.codes != "float32":
            raise ValueError(
                "--codes int8 needs --method ivf (the exact index stores float32)."
            )
        if self.rescore and self.codes != "int8":
            raise ValueError(
                "--rescore needs --codes int8 (float32 codes score exactly already)."
            )
        for name in ("nlist", "nprobe"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be at least 1; received {value}.")

    def method_for(self, size):
        """ "exact" or "ivf" for a gallery of `size` images."""
        if self.method != "auto":
            return self.method
        if self.codes == "int8" or size >= EXACT_BELOW:
            return "ivf"
        return "exact"


def default_nlist(size):
    """About sqrt(size) clusters (at least 1, at most `size`): each then holds
    about sqrt(size) vectors, balancing the coarse and the fine scan."""
    return int(max(1, min(size, round(math.sqrt(size)))))


def default_nprobe(nlist):
    """The clusters a query scans by default: 1/16 of them, at least 8 (all of
    them when there are fewer); bench/ann.py measures the recall it gives."""
    return int(min(nlist, max(8, math.ceil(nlist / 16))))


def train_centroids(vectors, nlist, seed=0, iterations=20):
    """`[nlist, D]` unit centroids of `vectors` by spherical k-means (faiss;
    at most 256 training points per centroid, sampled)."""
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a dependency
        raise ImportError(
            "An IVF index needs faiss to train its centroids: pip install faiss-cpu"
        ) from None
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not 1 <= nlist <= len(vectors):
        raise ValueError(
            f"--nlist must be between 1 and the gallery size {len(vectors)}; "
            f"received {nlist}."
        )
    kmeans = faiss.Kmeans(
        vectors.shape[1],
        int(nlist),
        niter=iterations,
        spherical=True,
        seed=int(seed),
        verbose=False,
        min_points_per_centroid=1,  # (small galleries: no warning)
    )
    kmeans.train(vectors)
    return np.asarray(kmeans.centroids, dtype=np.float32)


def assign(vectors, centroids, chunk=65536):
    """The nearest centroid (largest dot product) of each vector."""
    out = np.empty(len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        scores = vectors[start : start + chunk] @ centroids.T
        out[start : start + chunk] = np.argmax(scores, axis=1)
    return out


@dataclasses.dataclass
class Int8Quantizer:
    """Per-dimension scalar quantization: `x ~ (code + 128) * scale + low`,
    codes in [-128, 127]. The range is the fitted vectors' plus a margin of
    `MARGIN` of it on each side, for vectors added later; values beyond it
    are clipped."""

    MARGIN = 0.1

    low: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, vectors):
        low, high = vectors.min(axis=0), vectors.max(axis=0)
        margin = cls.MARGIN * (high - low)
        low, high = (low - margin).astype(np.float32), high + margin
        scale = np.maximum(high - low, 1e-12).astype(np.float32) / 255.0
        return cls(low, scale)

    def encode(self, vectors):
        codes = np.rint((vectors - self.low) / self.scale) - 128.0
        return np.clip(codes, -128, 127).astype(np.int8)

    def decode(self, codes):
        return (codes.astype(np.float32) + 128.0) * self.scale + self.low


@dataclasses.dataclass
class IvfLayout:
    """An IVF gallery: `codes[i]` (float32 vectors or int8 codes) and `ids[i]`
    stored cluster by cluster, `offsets` (`[nlist + 1]`) where each cluster's
    rows start, `regions` (re-ranking features or None) in the same order, and
    what an update needs: the centroids, the quantizer and the gallery size
    the centroids were trained on.

    The codes are held either contiguous (`codes`) or as the search index
    stores them (`blocks`, a `Blocks` in cluster order, as `blocked` writes
    them); `stored_codes()` gives them contiguous either way."""

    centroids: np.ndarray
    offsets: np.ndarray
    codes: np.ndarray | None
    ids: np.ndarray
    regions: np.ndarray | None = None
    quantizer: Int8Quantizer | None = None
    trained_size: int = 0
    blocks: "Blocks | None" = None
    floats: np.ndarray | None = None  # float32 rows kept to re-score int8

    def __post_init__(self):
        if self.codes is None and self.blocks is None:
            raise ValueError("An IvfLayout needs its codes or its blocks.")

    @property
    def nlist(self):
        return len(self.centroids)

    @property
    def size(self):
        return len(self.ids)

    @property
    def dim(self):
        source = self.codes if self.codes is not None else self.blocks.codes
        return int(source.shape[-1])

    @property
    def code_dtype(self):
        source = self.codes if self.codes is not None else self.blocks.codes
        return source.dtype

    @property
    def code_type(self):
        return "float32" if self.quantizer is None else "int8"

    def cluster_codes(self, cluster):
        """The codes of `cluster`'s rows (a view, no copy)."""
        begin, end = self.offsets[cluster], self.offsets[cluster + 1]
        if self.codes is not None:
            return self.codes[begin:end]
        per_block = self.blocks.codes.shape[1]
        flat = self.blocks.codes.reshape(-1, self.dim)
        first = int(self.blocks.start[cluster]) * per_block
        return flat[first : first + end - begin]

    def stored_codes(self):
        """`[N, D]` codes in row order (built from the blocks once)."""
        if self.codes is None:
            codes = np.empty((self.size, self.dim), self.code_dtype)
            for cluster in np.flatnonzero(np.diff(self.offsets)):
                begin, end = self.offsets[cluster], self.offsets[cluster + 1]
                codes[begin:end] = self.cluster_codes(cluster)
            self.codes = codes
        return self.codes

    def vectors(self):
        """The stored vectors as float32 (decoded from int8 codes, unless
        the float32 rows are kept for re-scoring)."""
        if self.floats is not None:
            return self.floats
        if self.quantizer is None:
            return self.stored_codes()
        return self.quantizer.decode(self.stored_codes())

    def assignments(self):
        """The cluster of each stored row."""
        return np.repeat(np.arange(self.nlist), np.diff(self.offsets))


def _laid_out(
    centroids, clusters, codes, ids, regions, quantizer, trained_size, floats=None
):
    """An `IvfLayout` of rows sorted by cluster (stable: a cluster keeps its
    rows' order)."""
    order = np.argsort(clusters, kind="stable")
    counts = np.bincount(clusters, minlength=len(centroids))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return IvfLayout(
        centroids=centroids,
        offsets=offsets,
        codes=np.take(codes, order, axis=0),
        ids=np.asarray(ids)[order],
        regions=None if regions is None else np.take(regions, order, axis=0),
        quantizer=quantizer,
        trained_size=trained_size,
        floats=None if floats is None else np.take(floats, order, axis=0),
    )


def _coded(vectors, code_type, quantizer=None):
    if code_type == "float32":
        return np.ascontiguousarray(vectors, dtype=np.float32), None
    quantizer = quantizer or Int8Quantizer.fit(vectors)
    return quantizer.encode(vectors), quantizer


def build_layout(
    vectors,
    ids,
    nlist=None,
    codes="float32",
    regions=None,
    seed=0,
    centroids=None,
    rescore=False,
):
    """An `IvfLayout` of `vectors` (unit rows) with `nlist` clusters (default
    `default_nlist`), trained by k-means unless `centroids` are given;
    `rescore` (int8 codes) keeps the float32 rows too."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    nlist = default_nlist(len(vectors)) if nlist is None else int(nlist)
    if centroids is None:
        centroids = train_centroids(vectors, nlist, seed)
    coded, quantizer = _coded(vectors, codes)
    return _laid_out(
        centroids,
        assign(vectors, centroids),
        coded,
        ids,
        regions,
        quantizer,
        len(vectors),
        vectors if rescore and quantizer is not None else None,
    )


def update_layout(layout, vectors, ids, regions=None, remove=(), retrain=None, seed=0):
    """`layout` with the rows of `remove` (ids) dropped and `vectors` / `ids`
    added (an id already present is replaced by its new vector). The centroids
    and quantizer are kept, unless `retrain` (default: when the gallery has
    grown past `RETRAIN_GROWTH` x the size they were trained on), in which
    case k-means runs again on all stored vectors. Returns `(layout,
    retrained)`."""
    ids = np.asarray(ids)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(
        len(ids), layout.dim
    )
    if (regions is None) != (layout.regions is None):
        raise ValueError(
            "The update's region features do not match the index: it was built "
            + ("with" if layout.regions is not None else "without")
            + " re-ranking features."
        )
    dropped = set(map(str, remove)) | set(map(str, ids))
    keep = np.array([i not in dropped for i in map(str, layout.ids)], dtype=bool)
    size = int(keep.sum()) + len(ids)
    if retrain is None:
        retrain = size > RETRAIN_GROWTH * max(layout.trained_size, 1)
    if retrain:
        old_regions = None if layout.regions is None else layout.regions[keep]
        return (
            build_layout(
                np.concatenate([layout.vectors()[keep], vectors]),
                np.concatenate([layout.ids[keep], ids]),
                nlist=min(layout.nlist, size),
                codes=layout.code_type,
                regions=None
                if regions is None
                else np.concatenate([old_regions, regions]),
                seed=seed,
                rescore=layout.floats is not None,
            ),
            True,
        )
    new_codes, _ = _coded(vectors, layout.code_type, layout.quantizer)
    clusters = assign(vectors, layout.centroids)
    return (
        _merged(layout, keep, new_codes, clusters, ids, regions, floats=vectors),
        False,
    )


def _merged(layout, keep, codes, clusters, ids, regions, floats):
    """`layout` keeping its rows where `keep`, with rows `codes` / `ids` /
    `regions` added to `clusters`: each cluster holds its kept rows, then
    its new ones in their given order (what a stable sort by cluster of the
    kept rows followed by the new ones gives); `floats` (the new rows' float32
    vectors) join the layout's own where it keeps them for re-scoring. The
    codes are written straight into blocks (as `layout`'s, else `BLOCK_ROWS`
    rows), cluster by cluster: contiguous slices copy many times faster than
    a gather of rows, and the index needs no second copy."""
    nlist = layout.nlist
    per_block = BLOCK_ROWS if layout.blocks is None else layout.blocks.codes.shape[1]
    order = np.argsort(clusters, kind="stable")
    codes, ids = codes[order], np.asarray(ids, dtype=object)[order]
    regions = None if regions is None else regions[order]
    rescored = layout.floats is not None
    floats = np.asarray(floats, np.float32)[order] if rescored else None
    added = np.bincount(clusters, minlength=nlist)
    added_at = np.concatenate([[0], np.cumsum(added)])
    kept = np.bincount(layout.assignments()[keep], minlength=nlist)
    sizes = kept + added
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    total = int(offsets[-1])
    count, start, blocks_total = _block_counts(sizes, per_block)
    out_codes = np.zeros((blocks_total * per_block, layout.dim), layout.code_dtype)
    out_ids = np.empty(total, dtype=object)
    out_regions = out_floats = None
    if regions is not None:
        out_regions = np.empty(
            (total,) + layout.regions.shape[1:], layout.regions.dtype
        )
    if rescored:
        out_floats = np.empty((total, layout.dim), np.float32)
    pruned = np.zeros(nlist, bool)
    pruned[layout.assignments()[~keep]] = True
    for cluster in np.flatnonzero(sizes):
        begin, end = layout.offsets[cluster], layout.offsets[cluster + 1]
        mask = keep[begin:end] if pruned[cluster] else slice(None)
        new = slice(added_at[cluster], added_at[cluster + 1])
        first = int(start[cluster]) * per_block
        middle = first + int(kept[cluster])
        out_codes[first:middle] = layout.cluster_codes(cluster)[mask]
        out_codes[middle : first + int(sizes[cluster])] = codes[new]
        first, middle = offsets[cluster], offsets[cluster] + kept[cluster]
        out_ids[first:middle] = layout.ids[begin:end][mask]
        out_ids[middle : offsets[cluster + 1]] = ids[new]
        if regions is not None:
            out_regions[first:middle] = layout.regions[begin:end][mask]
            out_regions[middle : offsets[cluster + 1]] = regions[new]
        if rescored:
            out_floats[first:middle] = layout.floats[begin:end][mask]
            out_floats[middle : offsets[cluster + 1]] = floats[new]
    blocks = Blocks(
        out_codes.reshape(blocks_total, per_block, layout.dim),
        _block_positions(sizes, offsets, count, start, blocks_total, per_block),
        start.astype(np.int32),
        count.astype(np.int32),
    )
    return IvfLayout(
        centroids=layout.centroids,
        offsets=offsets,
        codes=None,
        ids=out_ids,
        regions=out_regions,
        quantizer=layout.quantizer,
        trained_size=layout.trained_size,
        blocks=blocks,
        floats=out_floats,
    )


@dataclasses.dataclass
class Blocks:
    """An `IvfLayout` in blocks of `rows` rows, each of one cluster: `codes`
    `[NB, rows, D]` (zero padding), `rows` `[NB, rows]` positions in the
    layout's order (-1: padding), and each cluster's first block `start` and
    number of blocks `count`."""

    codes: np.ndarray
    rows: np.ndarray
    start: np.ndarray
    count: np.ndarray


def _block_counts(sizes, per_block):
    """`(count, start, total)`: each cluster's number of blocks and first
    block, and the number of blocks (at least one, so an empty gallery still
    has a shape)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    count = -(-sizes // per_block)
    start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    return count, start, max(int(count.sum()), 1)


def _block_positions(sizes, offsets, count, start, total, per_block):
    """`[total, per_block]` int32: each block slot's row (-1: padding)."""
    positions = np.full(total * per_block, -1, np.int32)
    slots = np.arange(int(sizes.sum()), dtype=np.int64)
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    slots += (start[cluster] * per_block - offsets[:-1][cluster]).astype(np.int64)
    positions[slots] = np.arange(int(sizes.sum()), dtype=np.int32)
    return positions.reshape(total, per_block)


def blocked(layout, rows):
    """The `Blocks` of `layout`, `rows` rows a block (the layout's own blocks
    when it holds blocks of that size)."""
    if layout.blocks is not None and layout.blocks.codes.shape[1] == rows:
        return layout.blocks
    sizes = np.diff(layout.offsets)
    count, start, total = _block_counts(sizes, rows)
    codes = np.zeros((total * rows, layout.dim), layout.code_dtype)
    for cluster in np.flatnonzero(sizes):
        first = start[cluster] * rows
        codes[first : first + sizes[cluster]] = layout.cluster_codes(cluster)
    return Blocks(
        codes.reshape(total, rows, layout.dim),
        _block_positions(sizes, layout.offsets, count, start, total, rows),
        start.astype(np.int32),
        count.astype(np.int32),
    )


def in_cluster_order(blocks, sizes):
    """Whether `blocks` (read back from an index) are laid out as `blocked`
    writes them, so `IvfLayout(blocks=...)` can read clusters from them."""
    sizes = np.asarray(sizes, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    per_block = blocks.codes.shape[1]
    count, start, total = _block_counts(sizes, per_block)
    return (
        blocks.rows.shape == (total, per_block)
        and np.array_equal(blocks.start, start)
        and np.array_equal(blocks.count, count)
        and np.array_equal(
            blocks.rows,
            _block_positions(sizes, offsets, count, start, total, per_block),
        )
    )


def unblocked(codes, rows, sizes):
    """The layout's `(codes, offsets)` back from `Blocks` codes and rows in
    any block order."""
    sizes = np.asarray(sizes, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    flat_rows, flat = rows.reshape(-1), codes.reshape(-1, codes.shape[2])
    keep = flat_rows >= 0
    ordered = np.empty((int(keep.sum()), codes.shape[2]), codes.dtype)
    ordered[flat_rows[keep]] = flat[keep]
    return ordered, offsets
