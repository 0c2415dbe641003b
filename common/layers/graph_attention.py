"""Graph attention (GAT) layer."""

import keras
from keras import ops

from common.layers.graph_convolution import (
    GraphLayer,
    add_self_loops,
    check_adjacency,
)
from common.layers.validation import check_positive_int, check_rate

# Scores are computed in float32; see common.layers.attention.
_MASKED_SCORE = -1.0e9


@keras.saving.register_keras_serializable(package="common")
class GraphAttention(GraphLayer):
    """Graph attention: each node attends to its neighbours and itself.

    Per head, `z_i = h_i W`, `e_ij = LeakyReLU(a_dst . z_i + a_src . z_j)`
    (the split form of `a^T [z_i || z_j]`), `alpha_ij = softmax_j(e_ij)` over
    the neighbours `j` of `i` in `A + I`, and `h'_i = sum_j alpha_ij z_j`.
    Non-neighbours get a weight of exactly 0. Heads are concatenated or
    averaged, then the bias and activation are applied.

    Args:
        units: int. Output features per head.
        num_heads: int. Number of attention heads.
        concat_heads: bool. Concatenate the heads (`num_heads * units` output
            features) or average them (`units`).
        negative_slope: float. Slope of the LeakyReLU.
        dropout_rate: float. Dropout on the attention coefficients in training.
        activation: activation applied to the output.
        use_bias: bool. Add a bias.
        kernel_initializer: initializer of `kernel` and the attention vectors.
        **kwargs: base layer arguments.

    Call arguments:
        node_features: tensor `[B, N, F]`.
        adjacency: tensor `[N, N]` or `[B, N, N]`; an edge is any non-zero
            entry (self loops are added).
        return_attention_scores: bool. Also return `alpha` `[B, heads, N, N]`.
        training: bool. Enables dropout.

    Returns:
        `[B, N, num_heads * units]` (concat) or `[B, N, units]` (average).

    Example:

    >>> import numpy as np
    >>> gat = GraphAttention(units=4, num_heads=2)
    >>> h = np.random.rand(2, 3, 5).astype("float32")
    >>> tuple(gat(h, np.ones((3, 3), "float32")).shape)
    (2, 3, 8)

    Reference:
        Velickovic et al., "Graph Attention Networks", ICLR 2018.
    """

    def __init__(
        self,
        units,
        num_heads=1,
        concat_heads=True,
        negative_slope=0.2,
        dropout_rate=0.0,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(units, activation, use_bias, kernel_initializer, **kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.concat_heads = bool(concat_heads)
        if not isinstance(negative_slope, (int, float)) or negative_slope < 0:
            raise ValueError(
                f"`negative_slope` must be a non-negative float; received "
                f"{negative_slope!r}."
            )
        self.negative_slope = float(negative_slope)
        self.dropout_rate = check_rate("dropout_rate", dropout_rate)
        self.attention_dropout = keras.layers.Dropout(
            self.dropout_rate, dtype=self.dtype_policy, name="attention_dropout"
        )

    @property
    def output_dim(self):
        return self.num_heads * self.units if self.concat_heads else self.units

    def build(self, node_features_shape, adjacency_shape=None):
        kernel = (node_features_shape[-1], self.num_heads, self.units)
        self._build_kernel(node_features_shape, adjacency_shape, kernel)
        self.attention_source = self.add_weight(
            name="attention_source",
            shape=(self.num_heads, self.units),
            initializer=self.kernel_initializer,
        )
        self.attention_target = self.add_weight(
            name="attention_target",
            shape=(self.num_heads, self.units),
            initializer=self.kernel_initializer,
        )
        self._build_bias(self.output_dim)

    def call(
        self, node_features, adjacency, return_attention_scores=False, training=None
    ):
        check_adjacency(tuple(adjacency.shape), node_features.shape[1])
        # b: batch, n/m: nodes, f: input features, h: heads, u: units
        z = ops.einsum("bnf,fhu->bhnu", node_features, self.kernel)
        z32 = ops.cast(z, "float32")
        target = ops.einsum(
            "bhnu,hu->bhn", z32, ops.cast(self.attention_target, "float32")
        )
        source = ops.einsum(
            "bhmu,hu->bhm", z32, ops.cast(self.attention_source, "float32")
        )
        scores = ops.leaky_relu(
            target[..., :, None] + source[..., None, :],
            negative_slope=self.negative_slope,
        )
        edges = add_self_loops(ops.cast(ops.not_equal(adjacency, 0), "float32")) > 0
        # [N, N] or [B, N, N] -> broadcast over [B, H, N, N]
        edges = edges[None, None] if len(edges.shape) == 2 else edges[:, None]
        scores = ops.where(edges, scores, _MASKED_SCORE)
        weights = ops.softmax(scores, axis=-1)
        weights = ops.where(edges, weights, ops.zeros_like(weights))
        weights = ops.cast(weights, z.dtype)
        dropped = self.attention_dropout(weights, training=training)
        # [B, H, N, U]
        attended = ops.matmul(dropped, z)
        if self.concat_heads:
            attended = ops.transpose(attended, (0, 2, 1, 3))
            shape = ops.shape(attended)
            output = ops.reshape(
                attended, (shape[0], shape[1], self.num_heads * self.units)
            )
        else:
            output = ops.mean(attended, axis=1)
        if self.bias is not None:
            output = output + self.bias
        output = self.activation(output)
        return (output, weights) if return_attention_scores else output

    def compute_output_shape(self, node_features_shape, adjacency_shape=None):
        return tuple(node_features_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "concat_heads": self.concat_heads,
                "negative_slope": self.negative_slope,
                "dropout_rate": self.dropout_rate,
            }
        )
        return config
