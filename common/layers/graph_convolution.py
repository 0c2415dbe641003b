"""Graph convolution (GCN) with symmetric normalisation."""

import keras
from keras import ops

from common.layers.validation import check_positive_int, check_rank


def check_adjacency(adjacency_shape, num_nodes):
    """Validates `[N, N]` or `[B, N, N]` against the node count `N`."""
    check_rank("adjacency", adjacency_shape, {2, 3})
    rows, cols = adjacency_shape[-2], adjacency_shape[-1]
    if rows is not None and cols is not None and rows != cols:
        raise ValueError(
            "`adjacency` must be square over its last two axes; received shape "
            f"{tuple(adjacency_shape)}."
        )
    if num_nodes is not None and rows is not None and rows != num_nodes:
        raise ValueError(
            f"`adjacency` of shape {tuple(adjacency_shape)} does not match the "
            f"{num_nodes} nodes of `node_features`."
        )


def add_self_loops(adjacency):
    """`A + I` for `[N, N]` or `[B, N, N]` adjacency."""
    num_nodes = ops.shape(adjacency)[-1]
    return adjacency + ops.eye(num_nodes, dtype=adjacency.dtype)


class GraphLayer(keras.layers.Layer):
    """The settings every graph layer here shares with `keras.layers.Dense`:
    `units` per node, `activation`, `use_bias` and `kernel_initializer`
    (validated, and serialised by `get_config`)."""

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _build_kernel(self, node_features_shape, adjacency_shape, shape):
        """Checks the input shapes and adds `kernel` of `shape`."""
        check_rank("node_features", node_features_shape, {3})
        if adjacency_shape is not None:
            check_adjacency(adjacency_shape, node_features_shape[1])
        self.kernel = self.add_weight(
            name="kernel", shape=shape, initializer=self.kernel_initializer
        )

    def _build_bias(self, features):
        """A zero `bias` of `features` with `use_bias`, else `None`."""
        self.bias = (
            self.add_weight(name="bias", shape=(features,), initializer="zeros")
            if self.use_bias
            else None
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="common")
class GraphConvolution(GraphLayer):
    """Graph convolution `activation(D^-1/2 (A + I) D^-1/2 H W + b)`.

    `D` is the degree matrix of `A + I` (row sums), so every node mixes its own
    features with its neighbours' in a symmetric, scale-preserving way; edge
    weights in `A` are used as given.

    Args:
        units: int. Output features per node.
        activation: activation applied to the output (`sigma`).
        use_bias: bool. Add a bias `b`.
        kernel_initializer: initializer of `kernel` `[F, units]`.
        **kwargs: base layer arguments.

    Call arguments:
        node_features: tensor `[B, N, F]`.
        adjacency: tensor `[N, N]` (one graph for the batch) or `[B, N, N]`,
            non-negative edge weights, without self loops (they are added).

    Returns:
        `[B, N, units]`.

    Example:

    >>> import numpy as np
    >>> gcn = GraphConvolution(units=4, activation="relu")
    >>> h = np.random.rand(2, 3, 5).astype("float32")
    >>> a = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], "float32")
    >>> tuple(gcn(h, a).shape)
    (2, 3, 4)

    Reference:
        Kipf and Welling, "Semi-Supervised Classification with Graph
        Convolutional Networks", ICLR 2017.
    """

    def build(self, node_features_shape, adjacency_shape=None):
        kernel = (node_features_shape[-1], self.units)
        self._build_kernel(node_features_shape, adjacency_shape, kernel)
        self._build_bias(self.units)

    def call(self, node_features, adjacency):
        check_adjacency(tuple(adjacency.shape), node_features.shape[1])
        # The normalisation is computed in float32 whatever the policy.
        adjacency = add_self_loops(ops.cast(adjacency, "float32"))
        inverse_sqrt_degree = ops.rsqrt(ops.sum(adjacency, axis=-1))
        normalized = (
            inverse_sqrt_degree[..., :, None]
            * adjacency
            * inverse_sqrt_degree[..., None, :]
        )
        normalized = ops.cast(normalized, self.compute_dtype)
        # [B, N, F] @ [F, units] -> [B, N, units]
        transformed = ops.matmul(node_features, self.kernel)
        output = ops.matmul(normalized, transformed)
        if self.bias is not None:
            output = output + self.bias
        return self.activation(output)

    def compute_output_shape(self, node_features_shape, adjacency_shape=None):
        return tuple(node_features_shape[:-1]) + (self.units,)
