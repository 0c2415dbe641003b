"""The search SavedModel's module: a gallery's embeddings (and region
features) beside the retrieval SavedModel, answering top-k queries by text or
image in one call."""

import numpy as np
import tensorflow as tf

from common.serving.checks import ensure_batch, ensure_same_batch
from retrieval.gallery import REGION_DTYPE


def model_fingerprint(model_dir):
    """The fingerprint TensorFlow writes beside a SavedModel (graph and
    weights), as a string; "" without one."""
    if not model_dir:
        return ""
    try:
        return tf.saved_model.experimental.read_fingerprint(model_dir).singleprint()
    except (ValueError, OSError, tf.errors.OpError):
        return ""


class SearchIndex(tf.Module):
    """Gallery embeddings and ids beside the retrieval SavedModel that made them.

    Its signatures embed the query with that model and return the top-k
    gallery ids and scores in one call. With `regions` (each image's region
    features, `[N, R, E]`), `search_by_text` also re-ranks its top
    `rerank_depth` candidates with the model's matching head, scoring each by
    cosine + `rerank_weight` x match probability, as `retrieval evaluate`
    does, in the same call.
    """

    def __init__(
        self,
        encoder,
        embeddings,
        ids,
        gallery_root,
        regions=None,
        rerank_weight=1.0,
        rerank_depth=0,
        model_dir="",
    ):
        super().__init__()
        self.encoder = encoder
        if embeddings is not None:  # (an int8 IVF index stores codes instead)
            self.embeddings = tf.Variable(
                embeddings, trainable=False, name="embeddings"
            )
        # the retrieval SavedModel the embeddings came from: an update with
        # another model is refused
        self.model_path = tf.Variable(str(model_dir), trainable=False, name="model")
        self.model_fingerprint = tf.Variable(
            model_fingerprint(model_dir), trainable=False, name="model_fingerprint"
        )
        ids = np.asarray(ids).astype(str)
        self.ids = tf.Variable(ids, trainable=False, name="ids")
        self.gallery_root = tf.Variable(
            gallery_root, trainable=False, name="gallery_root"
        )
        self.has_regions = regions is not None
        if regions is None:
            regions = np.zeros((0, 1, 1), REGION_DTYPE)
            rerank_depth = 0
        self.regions = tf.Variable(
            np.asarray(regions, REGION_DTYPE), trainable=False, name="regions"
        )
        self.rerank_weight = tf.Variable(
            float(rerank_weight), trainable=False, name="rerank_weight"
        )
        self.rerank_depth = tf.Variable(
            int(rerank_depth), trainable=False, name="rerank_depth"
        )

    def _checked_k(self, queries, k):
        size = tf.shape(self.ids)[0]
        k = ensure_batch(k, "k", 1)
        k, queries = ensure_same_batch({"k": k, "queries": queries})
        # The checks must run before top_k, which would otherwise fail first
        # with its own message.
        checks = [
            tf.debugging.assert_positive(k, message="`k` must be at least 1"),
            tf.debugging.assert_less_equal(
                k, size, message="`k` is larger than the number of gallery images"
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(queries), tf.reduce_max(k)

    def _top_k(self, queries, k, nprobe=None):
        queries, k_max = self._checked_k(queries, k)
        scores, positions = self._candidates(queries, k_max, nprobe)
        return {"ids": tf.gather(self.ids, positions), "scores": scores}

    def _candidates(self, queries, count, nprobe=None):
        """`(scores, positions)`, `[B, count]` each: every query's `count`
        best gallery rows, best first (`nprobe`: see the IVF index)."""
        del nprobe  # an exact index scans everything
        top = tf.math.top_k(self._scores(queries), k=count)
        return top.values, top.indices

    # XLA-compiled: at batch 1 this product is bound by reading the gallery
    # from memory, and XLA's kernel reads it faster than TF's MatMul; at
    # batch 32, like gallery @ queries^T, it is 2x faster than TF's
    # queries @ gallery^T (bench/search.py). TF Serving on CPU needs
    # --xla_cpu_compilation_enabled=true; on GPU XLA is on.
    @tf.function(jit_compile=True)
    def _scores(self, queries):
        return tf.matmul(queries, self.embeddings, transpose_b=True)

    def _reranked(self, text, k, depth, nprobe=None):
        """Top-k of a text query, its first `depth` candidates (per query)
        ordered by the re-ranking score, the rest by cosine."""
        text = ensure_batch(text, "text", 1)
        encoded = self.encoder.signatures["text_tokens"](text=text)
        queries, k_max = self._checked_k(encoded["embeddings"], k)
        depth = ensure_batch(depth, "rerank_depth", 1)
        depth, queries = ensure_same_batch({"rerank_depth": depth, "text": queries})
        size = tf.shape(self.ids)[0]
        depth = tf.clip_by_value(depth, 0, size)
        d_max = tf.reduce_max(depth)
        values, positions = self._candidates(queries, tf.maximum(k_max, d_max), nprobe)
        head, tail = values[:, :d_max], values[:, d_max:]

        def with_match():
            match = self._match(encoded, positions[:, :d_max], d_max)
            return head + self.rerank_weight * match

        def without_match():
            return head

        # (Named functions, not lambdas: AutoGraph reads a lambda's source.)
        fused = tf.cond(d_max > 0, with_match, without_match)
        reranked = tf.range(d_max)[None, :] < depth[:, None]
        scores = tf.concat([tf.where(reranked, fused, head), tail], axis=1)
        # Re-ranked candidates stay above the others (cosines are <= 1).
        order = tf.concat([tf.where(reranked, fused + 3.0, head), tail], axis=1)
        best = tf.math.top_k(order, k=k_max).indices
        indices = tf.gather(positions, best, batch_dims=1)
        return {
            "ids": tf.gather(self.ids, indices),
            "scores": tf.gather(scores, best, batch_dims=1),
        }

    def _match(self, encoded, candidates, depth):
        """Match probabilities `[B, depth]` of each query's candidates."""
        batch = tf.shape(candidates)[0]
        regions = tf.cast(tf.gather(self.regions, candidates), tf.float32)
        regions = tf.reshape(
            regions, tf.concat([[batch * depth], tf.shape(self.regions)[1:]], 0)
        )
        tokens = tf.repeat(encoded["tokens"], depth, axis=0)
        mask = tf.repeat(encoded["mask"], depth, axis=0)
        match = self.encoder.signatures["match_regions"](
            regions=regions, tokens=tokens, mask=mask
        )["match"]
        return tf.reshape(match, (batch, depth))

    # `k` has one value per query (not a scalar) so that every input has the
    # batch dimension TF Serving's server-side batching needs; the outputs have
    # max(k) columns, best first (a request whose queries all ask the same k,
    # the usual case, gets exactly k).
    @tf.function(
        input_signature=[
            tf.TensorSpec((None,), tf.string, name="text"),
            tf.TensorSpec((None,), tf.int32, name="k"),
        ]
    )
    def search_by_text(self, text, k):
        if self.has_regions:
            # One depth per query; `k` is checked (against the queries) later.
            text = ensure_batch(text, "text", 1)
            depth = tf.fill(tf.shape(text)[:1], self.rerank_depth)
            return self._reranked(text, k, depth)
        text = ensure_batch(text, "text", 1)
        queries = self.encoder.signatures["embed_text"](text=text)["embeddings"]
        return self._top_k(queries, k)

    # The same with the re-rank depth chosen per query (0: cosine only).
    @tf.function(
        input_signature=[
            tf.TensorSpec((None,), tf.string, name="text"),
            tf.TensorSpec((None,), tf.int32, name="k"),
            tf.TensorSpec((None,), tf.int32, name="rerank_depth"),
        ]
    )
    def search_by_text_reranked(self, text, k, rerank_depth):
        if not self.has_regions:  # (traced when saved; not a signature then)
            return self.search_by_text(text, k)
        return self._reranked(text, k, rerank_depth)

    @tf.function(
        input_signature=[
            tf.TensorSpec((None,), tf.string, name="image_bytes"),
            tf.TensorSpec((None,), tf.int32, name="k"),
        ]
    )
    def search_by_image(self, image_bytes, k):
        image_bytes = ensure_batch(image_bytes, "image_bytes", 1)
        signature = self.encoder.signatures["embed_image"]
        queries = signature(image_bytes=image_bytes)["embeddings"]
        return self._top_k(queries, k)

    def signature_map(self):
        """The serving signatures, by name."""
        signatures = {
            "search_by_text": self.search_by_text,
            "search_by_image": self.search_by_image,
            "serving_default": self.search_by_text,
        }
        if self.has_regions:
            signatures["search_by_text_reranked"] = self.search_by_text_reranked
        return signatures

    # Not a serving signature (TF Serving's batching refuses a signature
    # without batched inputs): `index = tf.saved_model.load(path)`, then
    # `index.gallery_info()` (keep `index` alive: it holds the variables).
    @tf.function(input_signature=[])
    def gallery_info(self):
        region_shape = tf.shape(self.regions)[1:]
        return self._method_info() | {
            "model": self.model_path,
            "model_fingerprint": self.model_fingerprint,
            "size": tf.shape(self.ids)[0],
            "gallery_root": self.gallery_root,
            "rerank_depth": self.rerank_depth,
            "rerank_weight": self.rerank_weight,
            "region_bytes_per_image": tf.reduce_prod(region_shape)
            * (np.dtype(REGION_DTYPE).itemsize if self.has_regions else 0),
        }

    def _method_info(self):
        return {
            "method": tf.constant("exact"),
            "codes": tf.constant("float32"),
            "nlist": tf.constant(0),
            "nprobe": tf.constant(0),
            "rescore": tf.constant(0),
        }

    def describe(self):
        """One line: how this index searches and what it stores per image."""
        dim = int(self.embeddings.shape[1])
        return (
            f"Exact search over {int(self.ids.shape[0]):,} images: float32 "
            f"embeddings, {4 * dim:,} bytes per image."
        )
