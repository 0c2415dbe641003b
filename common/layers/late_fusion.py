"""Late fusion: combine per-modality outputs (scores, logits or vectors)."""

import keras
from keras import ops

from common.layers.validation import check_choice, check_shape_list

LATE_FUSION_MODES = ("mean", "weighted", "max")


@keras.saving.register_keras_serializable(package="common")
class LateFusion(keras.layers.Layer):
    """Combines the outputs of several per-modality models of one shape.

    `mean` averages them, `max` takes the element-wise maximum, `weighted`
    takes `sum_m softmax(w)_m * x_m` with one learned weight per modality
    (initialised equal, so it starts as the mean).

    Args:
        mode: str. One of `"mean"`, `"weighted"`, `"max"`.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: list of two or more tensors of the same shape `[B, ...]`.

    Returns:
        A tensor of that shape.

    Example:

    >>> import numpy as np
    >>> fuse = LateFusion(mode="weighted")
    >>> tuple(fuse([np.ones((2, 3)), np.zeros((2, 3))]).shape)
    (2, 3)

    Reference:
        Snoek et al., "Early versus Late Fusion in Semantic Video Analysis",
        ACM MM 2005.
    """

    def __init__(self, mode="mean", **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, LATE_FUSION_MODES)
        self.modality_weights = None

    def build(self, inputs_shape):
        check_shape_list("LateFusion", inputs_shape, True)
        if self.mode == "weighted":
            self.modality_weights = self.add_weight(
                name="modality_weights",
                shape=(len(inputs_shape),),
                initializer="zeros",
            )

    def call(self, inputs):
        stacked = ops.stack([ops.cast(x, self.compute_dtype) for x in inputs], 0)
        if self.mode == "mean":
            return ops.mean(stacked, axis=0)
        if self.mode == "max":
            return ops.max(stacked, axis=0)
        weights = ops.cast(ops.softmax(self.modality_weights), self.compute_dtype)
        weights = ops.reshape(weights, (-1,) + (1,) * (len(stacked.shape) - 1))
        return ops.sum(weights * stacked, axis=0)

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode})
        return config
