"""Gated fusion of two modalities (Gated Multimodal Unit)."""

import keras
from keras import ops

from common.layers.validation import check_positive_int


@keras.saving.register_keras_serializable(package="common")
class GatedFusion(keras.layers.Layer):
    """Gated Multimodal Unit: a learned sigmoid gate between two modalities.

    `h_a = tanh(x_a W_a)`, `h_b = tanh(x_b W_b)`,
    `z = sigmoid([x_a || x_b] W_z + b_z)`, output `z * h_a + (1 - z) * h_b`.

    Args:
        hidden_dim: int. Width of the fused features.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list `[x_a, x_b]` of tensors `[..., D_a]`, `[..., D_b]` with
            equal leading axes.
        return_gate: bool. Also return the gate `z`.

    Returns:
        `[..., hidden_dim]` (and the gate of the same shape when asked).

    Example:

    >>> import numpy as np
    >>> fuse = GatedFusion(hidden_dim=8)
    >>> tuple(fuse([np.zeros((2, 4)), np.zeros((2, 6))]).shape)
    (2, 8)

    Reference:
        Arevalo et al., "Gated Multimodal Units for Information Fusion",
        ICLR workshop 2017.
    """

    def __init__(self, hidden_dim, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        policy = self.dtype_policy
        self.first_projection = keras.layers.Dense(
            self.hidden_dim, use_bias=False, dtype=policy, name="first_projection"
        )
        self.second_projection = keras.layers.Dense(
            self.hidden_dim, use_bias=False, dtype=policy, name="second_projection"
        )
        self.gate = keras.layers.Dense(self.hidden_dim, dtype=policy, name="gate")

    def build(self, inputs_shape):
        if not isinstance(inputs_shape, (list, tuple)) or len(inputs_shape) != 2:
            raise ValueError(
                f"GatedFusion takes a list of exactly two tensors; received "
                f"{inputs_shape!r}."
            )
        first, second = (tuple(s) for s in inputs_shape)
        if len(first) != len(second):
            raise ValueError(
                "GatedFusion inputs must have the same rank; received shapes "
                f"{first} and {second}."
            )
        self.first_projection.build(first)
        self.second_projection.build(second)
        self.gate.build(first[:-1] + (first[-1] + second[-1],))

    def call(self, inputs, return_gate=False):
        first, second = (ops.cast(x, self.compute_dtype) for x in inputs)
        h_first = ops.tanh(self.first_projection(first))
        h_second = ops.tanh(self.second_projection(second))
        z = ops.sigmoid(self.gate(ops.concatenate([first, second], axis=-1)))
        fused = z * h_first + (1.0 - z) * h_second
        return (fused, z) if return_gate else fused

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[0])[:-1] + (self.hidden_dim,)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim})
        return config
