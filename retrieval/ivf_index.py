"""The approximate search SavedModel's module: an inverted-file gallery
(`retrieval.ann.IvfLayout`) searched with stock TensorFlow ops, under the
exact index's signatures plus `*_nprobe` ones that take the number of
clusters to scan per query."""

import tensorflow as tf

from common.serving.checks import ensure_batch, ensure_same_batch
from retrieval.search_index import SearchIndex


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
        from retrieval.ann import default_nprobe

        quantized = layout.quantizer is not None
        super().__init__(
            encoder,
            None if quantized else layout.codes,
            layout.ids,
            gallery_root,
            layout.regions,
            rerank_weight,
            rerank_depth,
            model_dir,
        )
        self.quantized = quantized
        if quantized:
            self.codes = tf.Variable(layout.codes, trainable=False, name="codes")
            self.code_scale = tf.Variable(
                layout.quantizer.scale, trainable=False, name="code_scale"
            )
            self.code_low = tf.Variable(
                layout.quantizer.low, trainable=False, name="code_low"
            )
        self.centroids = tf.Variable(
            layout.centroids, trainable=False, name="centroids"
        )
        offsets = layout.offsets.astype("int32")
        self.offsets = tf.Variable(offsets[:-1], trainable=False, name="offsets")
        self.cluster_sizes = tf.Variable(
            offsets[1:] - offsets[:-1], trainable=False, name="cluster_sizes"
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

    def _checked_nprobe(self, queries, nprobe):
        nprobe = ensure_batch(nprobe, "nprobe", 1)
        nprobe, queries = ensure_same_batch({"nprobe": nprobe, "queries": queries})
        check = tf.debugging.assert_positive(
            nprobe, message="`nprobe` must be at least 1"
        )
        with tf.control_dependencies([check]):
            return tf.identity(queries), tf.identity(nprobe)

    def _member_scores(self, queries, query_of, positions):
        """The score of each gathered row `positions[i]` for the query
        `query_of[i]`."""
        if not self.quantized:
            rows = tf.gather(self.embeddings, positions)
            return tf.reduce_sum(rows * tf.gather(queries, query_of), axis=1)
        # (code + 128) * scale + low, dotted with q, is
        # code . (q * scale) + q . (128 * scale + low)
        scaled = queries * self.code_scale[None, :]
        bias = tf.linalg.matvec(queries, 128.0 * self.code_scale + self.code_low)
        rows = tf.cast(tf.gather(self.codes, positions), tf.float32)
        dots = tf.reduce_sum(rows * tf.gather(scaled, query_of), axis=1)
        return dots + tf.gather(bias, query_of)

    def _probes(self, queries, count, nprobe):
        """`(clusters [B, P], rows [B, P])`: each query's clusters to scan,
        nearest first, and how many rows of each it scans (0 past its own
        nprobe), enough for `count` rows."""
        nlist = tf.shape(self.centroids)[0]
        coarse = tf.matmul(queries, self.centroids, transpose_b=True)
        order = tf.math.top_k(coarse, k=nlist).indices
        sizes = tf.gather(self.cluster_sizes, order)
        before = tf.cumsum(sizes, axis=1, exclusive=True)
        needed = tf.reduce_sum(tf.cast(before < count, tf.int32), axis=1)
        probes = tf.maximum(tf.minimum(nprobe, nlist), needed)
        width = tf.reduce_max(probes)
        active = tf.range(width)[None, :] < probes[:, None]
        return order[:, :width], tf.where(active, sizes[:, :width], 0)

    def _candidates(self, queries, count, nprobe=None):
        batch = tf.shape(queries)[0]
        if nprobe is None:
            nprobe = tf.fill([batch], self.default_nprobe)
        clusters, sizes = self._probes(queries, count, nprobe)
        starts = tf.reshape(tf.gather(self.offsets, clusters), [-1])
        positions = tf.ragged.range(starts, starts + tf.reshape(sizes, [-1]))
        positions = positions.flat_values
        per_query = tf.reduce_sum(sizes, axis=1)
        query_of = tf.repeat(tf.range(batch), per_query)
        scores = self._member_scores(queries, query_of, positions)
        scores = tf.RaggedTensor.from_row_lengths(scores, per_query)
        positions = tf.RaggedTensor.from_row_lengths(positions, per_query)
        top = tf.math.top_k(scores.to_tensor(default_value=float("-inf")), k=count)
        return top.values, tf.gather(positions.to_tensor(), top.indices, batch_dims=1)

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
        }

    def describe(self):
        codes = self.codes if self.quantized else self.embeddings
        kind = "int8 codes" if self.quantized else "float32 embeddings"
        per_image = int(codes.shape[1]) * codes.dtype.size
        return (
            f"IVF search over {int(self.ids.shape[0]):,} images: "
            f"{int(self.centroids.shape[0])} clusters, {int(self.default_nprobe.numpy())} "
            f"scanned per query by default (--nprobe), {kind}, "
            f"{per_image:,} bytes per image."
        )
