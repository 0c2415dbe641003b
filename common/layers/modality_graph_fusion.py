"""Graph fusion: modality tokens as nodes of a graph, mixed by GCN or GAT."""

import keras
import numpy as np
from keras import ops

from common.layers.graph_attention import GraphAttention
from common.layers.graph_convolution import GraphConvolution
from common.layers.validation import (
    check_choice,
    check_positive_int,
    check_rate,
)


@keras.saving.register_keras_serializable(package="common")
class ModalityGraphFusion(keras.layers.Layer):
    """Fuses modalities by message passing over a graph of their tokens.

    Each modality's input (a vector `[B, D_m]`, one node, or a sequence
    `[B, T_m, D_m]`, `T_m` nodes) is projected to `hidden_dim`; all nodes are
    joined into one graph, fully connected by default or wired by the given
    `adjacency`, passed through `num_layers` GAT or GCN layers with residual
    connections, and pooled over the nodes.

    Args:
        hidden_dim: int. Node feature size.
        num_layers: int. Number of graph layers.
        graph_layer: str. `"gat"` (`GraphAttention`) or `"gcn"`
            (`GraphConvolution`).
        num_heads: int. GAT heads (averaged so the width stays `hidden_dim`).
        adjacency: optional nested list `[N, N]` over all nodes in input order;
            `None` connects every node to every other.
        pooling: str. `"mean"` or `"max"` over the nodes.
        activation: activation of the graph layers.
        dropout_rate: float. GAT attention dropout.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list of tensors `[B, D_m]` or `[B, T_m, D_m]`, one per modality.
        return_nodes: bool. Also return the node features `[B, N, hidden_dim]`.
        training: bool.

    Returns:
        `[B, hidden_dim]` (and the nodes when asked).

    Example:

    >>> import numpy as np
    >>> fuse = ModalityGraphFusion(hidden_dim=8)
    >>> frames, audio = np.zeros((2, 4, 16)), np.zeros((2, 3, 12))
    >>> tuple(fuse([frames, audio]).shape)
    (2, 8)

    Reference:
        Kipf and Welling, ICLR 2017; Velickovic et al., ICLR 2018.
    """

    def __init__(
        self,
        hidden_dim,
        num_layers=2,
        graph_layer="gat",
        num_heads=2,
        adjacency=None,
        pooling="mean",
        activation="relu",
        dropout_rate=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.graph_layer = check_choice("graph_layer", graph_layer, {"gat", "gcn"})
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.pooling = check_choice("pooling", pooling, {"mean", "max"})
        self.activation = keras.activations.get(activation)
        self.dropout_rate = check_rate("dropout_rate", dropout_rate)
        if adjacency is not None:
            matrix = np.asarray(adjacency, dtype="float32")
            if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
                raise ValueError(
                    "`adjacency` must be a square [N, N] matrix; received shape "
                    f"{matrix.shape}."
                )
            adjacency = matrix.tolist()
        self.adjacency = adjacency
        self.projections = []  # one per modality, created in build()
        self.graph_layers = []
        for index in range(self.num_layers):
            if self.graph_layer == "gat":
                layer = GraphAttention(
                    self.hidden_dim,
                    num_heads=self.num_heads,
                    concat_heads=False,
                    dropout_rate=self.dropout_rate,
                    activation=self.activation,
                    dtype=self.dtype_policy,
                    name=f"graph_layer_{index}",
                )
            else:
                layer = GraphConvolution(
                    self.hidden_dim,
                    activation=self.activation,
                    dtype=self.dtype_policy,
                    name=f"graph_layer_{index}",
                )
            self.graph_layers.append(layer)

    def _node_counts(self, inputs_shape):
        if not isinstance(inputs_shape, (list, tuple)) or len(inputs_shape) < 2:
            raise ValueError(
                "ModalityGraphFusion takes a list of two or more tensors; "
                f"received {inputs_shape!r}."
            )
        counts = []
        for index, shape in enumerate(inputs_shape):
            shape = tuple(shape)
            if len(shape) == 2:
                counts.append(1)
            elif len(shape) == 3 and shape[1] is not None:
                counts.append(shape[1])
            else:
                raise ValueError(
                    f"Input {index} must be [B, D] or [B, T, D] with a known T; "
                    f"received shape {shape}."
                )
        total = sum(counts)
        if self.adjacency is not None and len(self.adjacency) != total:
            raise ValueError(
                f"`adjacency` is {len(self.adjacency)}x{len(self.adjacency)} but "
                f"the inputs give {total} nodes ({counts})."
            )
        return counts

    def build(self, inputs_shape):
        counts = self._node_counts(inputs_shape)
        self.projections = []
        for index, shape in enumerate(inputs_shape):
            projection = keras.layers.Dense(
                self.hidden_dim, dtype=self.dtype_policy, name=f"projection_{index}"
            )
            projection.build(tuple(shape))
            self.projections.append(projection)
        nodes_shape = (inputs_shape[0][0], sum(counts), self.hidden_dim)
        adjacency_shape = (sum(counts), sum(counts))
        for layer in self.graph_layers:
            layer.build(nodes_shape, adjacency_shape)

    def call(self, inputs, return_nodes=False, training=None):
        nodes = []
        for projection, x in zip(self.projections, inputs, strict=True):
            projected = projection(x)
            if len(projected.shape) == 2:
                projected = projected[:, None, :]
            nodes.append(projected)
        nodes = ops.concatenate(nodes, axis=1)
        # Dynamic: sequence lengths may be unknown when traced (e.g. audio).
        num_nodes = ops.shape(nodes)[1]
        if self.adjacency is None:
            adjacency = ops.ones((num_nodes, num_nodes), dtype=self.compute_dtype)
        else:
            adjacency = ops.convert_to_tensor(
                np.asarray(self.adjacency, dtype="float32")
            )
        for layer in self.graph_layers:
            if self.graph_layer == "gat":
                nodes = nodes + layer(nodes, adjacency, training=training)
            else:
                nodes = nodes + layer(nodes, adjacency)
        pooled = (
            ops.mean(nodes, axis=1) if self.pooling == "mean" else ops.max(nodes, 1)
        )
        return (pooled, nodes) if return_nodes else pooled

    def compute_output_shape(self, inputs_shape):
        return (tuple(inputs_shape[0])[0], self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "graph_layer": self.graph_layer,
                "num_heads": self.num_heads,
                "adjacency": self.adjacency,
                "pooling": self.pooling,
                "activation": keras.activations.serialize(self.activation),
                "dropout_rate": self.dropout_rate,
            }
        )
        return config
