"""The approximate search SavedModel's module: an inverted-file gallery
(`retrieval.ann.IvfLayout`) searched with stock TensorFlow ops, under the
exact index's signatures plus `*_nprobe` ones that take the number of
clusters to scan per query."""

import numpy as np
import tensorflow as tf

from common.serving.checks import ensure_batch, ensure_same_batch
from retrieval.ann import BLOCK_ROWS
from retrieval.search_index import SearchIndex

# With int8 codes and re-scoring, the int8 scan's top RESCORE_FACTOR x k
# candidates are scored again with the float32 vectors.
RESCORE_FACTOR = 4


def _bucket(size):
    """`size` rounded up to 4, 5, 6 or 7 times a power of two (at most 25%
    more): the shapes the compiled scan sees stay few."""
    size = tf.maximum(size, 1)
    step = tf.bitwise.left_shift(
        1,
        tf.maximum(
            tf.cast(tf.math.log(tf.cast(size, tf.float32)) / np.log(2.0), tf.int32) - 2,
            0,
        ),
    )
    return (size + step - 1) // step * step


class IvfSearchIndex(SearchIndex):
    """A `SearchIndex` that scans, for each query, the gallery rows of its
    `nprobe` nearest centroids (more when those hold fewer rows than the
    answer needs), instead of the whole gallery.

    With `nprobe = nlist` it answers as the exact index over the same vectors.
    With int8 codes a score is `q . decode(code)`: the query stays float32,
    only the gallery is quantized.
    """

    def __init__(
        self,
        encoder,
        layout,
        gallery_root,
        rerank_weight=1.0,
        rerank_depth=0,
        nprobe=None,
        model_dir="",
    ):
        from retrieval.ann import blocked, default_nprobe

        super().__init__(
            encoder,
            None,
            layout.ids,
            gallery_root,
            layout.regions,
            rerank_weight,
            rerank_depth,
            model_dir,
        )
        self.quantized = layout.quantizer is not None
        blocks = blocked(layout, BLOCK_ROWS)
        # `block_codes[b]` holds BLOCK_ROWS rows of one cluster; `block_rows[b]`
        # their positions in `ids` (-1: padding); cluster c is blocks
        # `block_start[c]` to `block_start[c] + block_count[c]`.
        self.block_codes = tf.Variable(
            blocks.codes, trainable=False, name="block_codes"
        )
        self.block_rows = tf.Variable(blocks.rows, trainable=False, name="block_rows")
        self.block_start = tf.Variable(
            blocks.start, trainable=False, name="block_start"
        )
        self.block_count = tf.Variable(
            blocks.count, trainable=False, name="block_count"
        )
        if self.quantized:
            self.code_scale = tf.Variable(
                layout.quantizer.scale, trainable=False, name="code_scale"
            )
            self.code_low = tf.Variable(
                layout.quantizer.low, trainable=False, name="code_low"
            )
        self.centroids = tf.Variable(
            layout.centroids, trainable=False, name="centroids"
        )
        self.cluster_sizes = tf.Variable(
            np.diff(layout.offsets).astype(np.int32),
            trainable=False,
            name="cluster_sizes",
        )
        self.trained_size = tf.Variable(
            int(layout.trained_size), trainable=False, name="trained_size"
        )
        nprobe = default_nprobe(layout.nlist) if nprobe is None else int(nprobe)
        if not 1 <= nprobe <= layout.nlist:
            raise ValueError(
                f"--nprobe must be between 1 and nlist ({layout.nlist}); "
                f"received {nprobe}."
            )
        self.default_nprobe = tf.Variable(nprobe, trainable=False, name="nprobe")
        # int8 with re-scoring: the float32 rows (in `ids` order) score the
        # top RESCORE_FACTOR x k candidates of the int8 scan exactly
        self.rescored = self.quantized and layout.floats is not None
        if self.rescored:
            self.float_vectors = tf.Variable(
                layout.floats, trainable=False, name="float_vectors"
            )

    def _checked_nprobe(self, queries, nprobe):
        nprobe = ensure_batch(nprobe, "nprobe", 1)
        nprobe, queries = ensure_same_batch({"nprobe": nprobe, "queries": queries})
        check = tf.debugging.assert_positive(
            nprobe, message="`nprobe` must be at least 1"
        )
        with tf.control_dependencies([check]):
            return tf.identity(queries), tf.identity(nprobe)

    def _probes(self, queries, count, nprobe):
        """`(clusters [B, P], scanned [B, P])`: each query's clusters, nearest
        first, and whether it scans each (false past its own nprobe), enough
        clusters for `count` rows."""
        nlist = tf.shape(self.centroids)[0]
        coarse = tf.matmul(queries, self.centroids, transpose_b=True)
        order = tf.math.top_k(coarse, k=nlist).indices
        sizes = tf.gather(self.cluster_sizes, order)
        before = tf.cumsum(sizes, axis=1, exclusive=True)
        needed = tf.reduce_sum(tf.cast(before < count, tf.int32), axis=1)
        probes = tf.maximum(tf.minimum(nprobe, nlist), needed)
        width = tf.reduce_max(probes)
        return order[:, :width], tf.range(width)[None, :] < probes[:, None]

    def _scanned_blocks(self, queries, count, nprobe):
        """`(blocks [U], scans [B, U])`: the blocks any query of the batch
        scans (padded with block 0 to a size of few distinct values, so the
        compiled scan is reused), and which query scans which."""
        batch = tf.shape(queries)[0]
        clusters, scanned = self._probes(queries, count, nprobe)
        starts = tf.reshape(tf.gather(self.block_start, clusters), [-1])
        counts = tf.where(scanned, tf.gather(self.block_count, clusters), 0)
        counts = tf.reshape(counts, [-1])
        blocks = tf.ragged.range(starts, starts + counts).flat_values
        query_of = tf.repeat(tf.repeat(tf.range(batch), tf.shape(clusters)[1]), counts)
        unique, slot = tf.unique(blocks)
        size = tf.shape(unique)[0]
        padded = _bucket(size)
        scans = tf.scatter_nd(
            tf.stack([query_of, slot], axis=1),
            tf.ones_like(slot, tf.bool),
            tf.stack([batch, padded]),
        )
        unique = tf.pad(unique, [[0, padded - size]])
        return unique, scans

    # XLA-compiled: it reads the gathered blocks without copying them first
    # (3x faster than TF's gather + product on 2 cores, bench/ann.py); one
    # compilation per (batch, blocks) shape, which `_bucket` keeps few.
    @tf.function(jit_compile=True)
    def _block_scores(self, queries, blocks):
        rows = tf.gather(self.block_codes, blocks)
        if not self.quantized:
            return tf.einsum("ucd,bd->buc", rows, queries)
        # (code + 128) * scale + low, dotted with q, is
        # code . (q * scale) + q . (128 * scale + low)
        scaled = queries * self.code_scale[None, :]
        bias = tf.linalg.matvec(queries, 128.0 * self.code_scale + self.code_low)
        rows = tf.cast(rows, tf.float32)
        return tf.einsum("ucd,bd->buc", rows, scaled) + bias[:, None, None]

    def _candidates(self, queries, count, nprobe=None):
        batch = tf.shape(queries)[0]
        if nprobe is None:
            nprobe = tf.fill([batch], self.default_nprobe)
        blocks, scans = self._scanned_blocks(queries, count, nprobe)
        scores = self._block_scores(queries, blocks)  # [B, U, BLOCK_ROWS]
        rows = tf.gather(self.block_rows, blocks)  # [U, BLOCK_ROWS]
        valid = scans[:, :, None] & (rows >= 0)[None]
        scores = tf.where(valid, scores, float("-inf"))
        scores = tf.reshape(scores, [batch, -1])
        flat_rows = tf.reshape(rows, [-1])
        if not self.rescored:
            top = tf.math.top_k(scores, k=count)
            return top.values, tf.gather(flat_rows, top.indices)
        # the int8 scan's top candidates, scored again with the float rows
        depth = tf.minimum(RESCORE_FACTOR * count, tf.shape(scores)[1])
        top = tf.math.top_k(scores, k=depth)
        found = tf.gather(flat_rows, top.indices)  # [B, depth], -1: none
        vectors = tf.gather(self.float_vectors, tf.maximum(found, 0))
        exact = tf.einsum("bkd,bd->bk", vectors, queries)
        exact = tf.where(top.values > float("-inf"), exact, float("-inf"))
        best = tf.math.top_k(exact, k=count)
        return best.values, tf.gather(found, best.indices, batch_dims=1)

    @tf.function(
        input_signature=[
            tf.TensorSpec((None,), tf.string, name="text"),
            tf.TensorSpec((None,), tf.int32, name="k"),
            tf.TensorSpec((None,), tf.int32, name="nprobe"),
        ]
    )
    def search_by_text_nprobe(self, text, k, nprobe):
        text = ensure_batch(text, "text", 1)
        if self.has_regions:
            text, nprobe = self._checked_nprobe(text, nprobe)
            depth = tf.fill(tf.shape(text)[:1], self.rerank_depth)
            return self._reranked(text, k, depth, nprobe)
        queries = self.encoder.signatures["embed_text"](text=text)["embeddings"]
        queries, nprobe = self._checked_nprobe(queries, nprobe)
        return self._top_k(queries, k, nprobe)

    @tf.function(
        input_signature=[
            tf.TensorSpec((None,), tf.string, name="image_bytes"),
            tf.TensorSpec((None,), tf.int32, name="k"),
            tf.TensorSpec((None,), tf.int32, name="nprobe"),
        ]
    )
    def search_by_image_nprobe(self, image_bytes, k, nprobe):
        image_bytes = ensure_batch(image_bytes, "image_bytes", 1)
        signature = self.encoder.signatures["embed_image"]
        queries = signature(image_bytes=image_bytes)["embeddings"]
        queries, nprobe = self._checked_nprobe(queries, nprobe)
        return self._top_k(queries, k, nprobe)

    def signature_map(self):
        return super().signature_map() | {
            "search_by_text_nprobe": self.search_by_text_nprobe,
            "search_by_image_nprobe": self.search_by_image_nprobe,
        }

    def _method_info(self):
        return {
            "method": tf.constant("ivf"),
            "codes": tf.constant("int8" if self.quantized else "float32"),
            "nlist": tf.shape(self.centroids)[0],
            "nprobe": self.default_nprobe,
            "trained_size": self.trained_size,
            "rescore": tf.constant(RESCORE_FACTOR if self.rescored else 0),
        }

    def describe(self):
        kind = "int8 codes" if self.quantized else "float32 embeddings"
        per_image = int(self.block_codes.shape[2]) * self.block_codes.dtype.size
        if self.rescored:
            kind += " (re-scored with the float32 vectors, also kept)"
            per_image += 4 * int(self.float_vectors.shape[1])
        nlist, nprobe = int(self.centroids.shape[0]), int(self.default_nprobe.numpy())
        return (
            f"IVF search over {int(self.ids.shape[0]):,} images: "
            f"{nlist} clusters, {nprobe} "
            f"scanned per query by default (--nprobe), {kind}, "
            f"{per_image:,} bytes per image."
        )
