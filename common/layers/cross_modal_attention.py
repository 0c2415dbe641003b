"""Cross-modal multi-head attention: one modality queries another."""

import keras
from keras import ops

from common.layers.attention import attention_weights
from common.layers.validation import (
    check_optional_positive_int,
    check_positive_int,
    check_rank,
    check_rate,
    check_same_batch,
)


@keras.saving.register_keras_serializable(package="common")
class CrossModalAttention(keras.layers.Layer):
    """Multi-head attention from a query modality to a context modality.

    Tokens of one modality (the query, e.g. words) attend to the tokens of
    another (the context, e.g. image regions): per-head linear projections,
    `softmax(Q K^T / sqrt(key_dim)) V`, an output projection back to the
    query's feature size, then an optional residual connection and LayerNorm.
    It is the attention layer of both applications.

    Args:
        num_heads: int. Number of attention heads.
        key_dim: int. Size of each head's query and key projections.
        value_dim: int. Size of each head's value projection; defaults to
            `key_dim`.
        dropout_rate: float. Dropout on the attention weights in training.
        use_residual: bool. Add the query to the attention output.
        use_layer_norm: bool. Apply LayerNorm to the (residual) output.
        layer_norm_epsilon: float. Epsilon of the LayerNorm.
        kernel_initializer: initializer of the projection kernels.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        query: tensor `[B, Lq, Dq]`.
        context: tensor `[B, Lk, Dk]`.
        query_mask: optional boolean `[B, Lq]`; `False` marks padding queries.
        context_mask: optional boolean `[B, Lk]`; `False` marks context tokens
            that must get zero weight.
        return_attention_scores: bool. Also return the attention weights
            `[B, num_heads, Lq, Lk]`.
        training: bool. Enables dropout.

    Returns:
        `[B, Lq, Dq]`, or `(output, scores)` when `return_attention_scores`.

    Example:

    >>> import numpy as np
    >>> layer = CrossModalAttention(num_heads=2, key_dim=8)
    >>> words = np.random.rand(4, 7, 16).astype("float32")
    >>> regions = np.random.rand(4, 49, 32).astype("float32")
    >>> out, scores = layer(words, regions, return_attention_scores=True)
    >>> tuple(out.shape), tuple(scores.shape)
    ((4, 7, 16), (4, 2, 7, 49))

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017; Lee et al.,
        "Stacked Cross Attention for Image-Text Matching", ECCV 2018.
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout_rate=0.0,
        use_residual=True,
        use_layer_norm=True,
        layer_norm_epsilon=1e-6,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.key_dim = check_positive_int("key_dim", key_dim)
        self.value_dim = check_optional_positive_int("value_dim", value_dim)
        self.dropout_rate = check_rate("dropout_rate", dropout_rate)
        self.use_residual = bool(use_residual)
        self.use_layer_norm = bool(use_layer_norm)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True
        head_value_dim = self.value_dim or self.key_dim

        def projection(units, name):
            return keras.layers.Dense(
                units,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        self.query_dense = projection(self.num_heads * self.key_dim, "query")
        self.key_dense = projection(self.num_heads * self.key_dim, "key")
        self.value_dense = projection(self.num_heads * head_value_dim, "value")
        # The output projection's width is the query's feature size, known only
        # in build(); it is created there.
        self.output_dense = None
        self.attention_dropout = keras.layers.Dropout(
            self.dropout_rate, dtype=self.dtype_policy, name="attention_dropout"
        )
        self.layer_norm = (
            keras.layers.LayerNormalization(
                epsilon=self.layer_norm_epsilon,
                dtype=self.dtype_policy,
                name="layer_norm",
            )
            if self.use_layer_norm
            else None
        )

    def build(self, query_shape, context_shape=None):
        if context_shape is None:
            context_shape = query_shape
        check_rank("query", query_shape, {3})
        check_rank("context", context_shape, {3})
        query_dim = query_shape[-1]
        if query_dim is None:
            raise ValueError(
                "The last dimension of `query` must be known; received shape "
                f"{tuple(query_shape)}."
            )
        head_value_dim = self.value_dim or self.key_dim
        self.query_dense.build(query_shape)
        self.key_dense.build(context_shape)
        self.value_dense.build(context_shape)
        self.output_dense = keras.layers.Dense(
            query_dim,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="output",
        )
        self.output_dense.build(
            tuple(query_shape[:-1]) + (self.num_heads * head_value_dim,)
        )
        if self.layer_norm is not None:
            self.layer_norm.build(query_shape)

    def _split_heads(self, tensor, head_dim):
        # [B, L, H * d] -> [B, H, L, d]
        batch, length = ops.shape(tensor)[0], ops.shape(tensor)[1]
        tensor = ops.reshape(tensor, (batch, length, self.num_heads, head_dim))
        return ops.transpose(tensor, (0, 2, 1, 3))

    def call(
        self,
        query,
        context,
        query_mask=None,
        context_mask=None,
        return_attention_scores=False,
        training=None,
    ):
        check_same_batch(
            [("query", query.shape), ("context", context.shape)]
            + ([("query_mask", query_mask.shape)] if query_mask is not None else [])
            + (
                [("context_mask", context_mask.shape)]
                if context_mask is not None
                else []
            )
        )
        head_value_dim = self.value_dim or self.key_dim
        q = self._split_heads(self.query_dense(query), self.key_dim)
        k = self._split_heads(self.key_dense(context), self.key_dim)
        v = self._split_heads(self.value_dense(context), head_value_dim)

        mask = None
        if context_mask is not None:
            # [B, 1, 1, Lk]
            mask = ops.cast(context_mask, "bool")[:, None, None, :]
        if query_mask is not None:
            # [B, 1, Lq, 1]
            rows = ops.cast(query_mask, "bool")[:, None, :, None]
            mask = rows if mask is None else ops.logical_and(mask, rows)

        # [B, H, Lq, Lk]
        weights = attention_weights(q, k, mask=mask)
        weights = ops.cast(weights, v.dtype)
        dropped = self.attention_dropout(weights, training=training)
        # [B, H, Lq, d_v] -> [B, Lq, H * d_v]
        attended = ops.matmul(dropped, v)
        attended = ops.transpose(attended, (0, 2, 1, 3))
        batch, length = ops.shape(attended)[0], ops.shape(attended)[1]
        attended = ops.reshape(
            attended, (batch, length, self.num_heads * head_value_dim)
        )
        output = self.output_dense(attended)
        if self.use_residual:
            output = output + ops.cast(query, output.dtype)
        if self.layer_norm is not None:
            output = self.layer_norm(output)
        if return_attention_scores:
            return output, weights
        return output

    def compute_mask(self, query, context=None, query_mask=None, **kwargs):
        return query_mask

    def compute_output_shape(self, query_shape, context_shape=None):
        return tuple(query_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "dropout_rate": self.dropout_rate,
                "use_residual": self.use_residual,
                "use_layer_norm": self.use_layer_norm,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
