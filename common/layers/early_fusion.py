"""Early fusion: concatenate modality features, then project."""

import keras
from keras import ops

from common.layers.validation import check_optional_positive_int, check_shape_list


@keras.saving.register_keras_serializable(package="common")
class EarlyFusion(keras.layers.Layer):
    """Concatenates the features of several modalities and projects them.

    All inputs share their leading axes (`[B, D_i]` vectors, or `[B, T, D_i]`
    sequences aligned in time); they are concatenated on the feature axis and
    passed through one `Dense(projection_dim)`.

    Args:
        projection_dim: int or None. Width of the fused features; `None`
            returns the plain concatenation.
        activation: activation of the projection.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list of two or more tensors `[..., D_i]` with equal leading
            axes.

    Returns:
        `[..., projection_dim]` (or `[..., sum(D_i)]` without projection).

    Example:

    >>> import numpy as np
    >>> fuse = EarlyFusion(projection_dim=8)
    >>> tuple(fuse([np.zeros((2, 4)), np.zeros((2, 6))]).shape)
    (2, 8)

    Reference:
        Baltrusaitis et al., "Multimodal Machine Learning: A Survey and
        Taxonomy", TPAMI 2019 (early fusion).
    """

    def __init__(self, projection_dim=None, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.projection_dim = check_optional_positive_int(
            "projection_dim", projection_dim
        )
        self.activation = keras.activations.get(activation)
        self.projection = (
            keras.layers.Dense(
                self.projection_dim,
                activation=self.activation,
                dtype=self.dtype_policy,
                name="projection",
            )
            if self.projection_dim
            else None
        )

    def _concat_shape(self, inputs_shape):
        inputs_shape = check_shape_list("EarlyFusion", inputs_shape, False)
        first = inputs_shape[0]
        dims = [tuple(shape)[-1] for shape in inputs_shape]
        total = None if any(d is None for d in dims) else sum(dims)
        return first[:-1] + (total,)

    def build(self, inputs_shape):
        concat_shape = self._concat_shape(inputs_shape)
        if self.projection is not None:
            self.projection.build(concat_shape)

    def call(self, inputs):
        self._concat_shape([tuple(x.shape) for x in inputs])
        fused = ops.concatenate(
            [ops.cast(x, self.compute_dtype) for x in inputs], axis=-1
        )
        return self.projection(fused) if self.projection is not None else fused

    def compute_output_shape(self, inputs_shape):
        concat_shape = self._concat_shape(inputs_shape)
        if self.projection_dim:
            return concat_shape[:-1] + (self.projection_dim,)
        return concat_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "projection_dim": self.projection_dim,
                "activation": keras.activations.serialize(self.activation),
            }
        )
        return config
