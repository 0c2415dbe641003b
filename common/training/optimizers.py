"""AdamW with a learning-rate multiplier per group of variables."""

import re

import keras
import tensorflow as tf

# What Keras accepts in the name of an optimizer's slot variable.
_NOT_IN_SCOPE_NAMES = re.compile(r"[^A-Za-z0-9_.\\/>-]")


class TowerAdamW(keras.optimizers.AdamW):
    """AdamW whose step for some variables uses a multiple of the learning
    rate: one learning rate does not fit every tower (VGG16 from scratch needs
    ~1e-4, a small Conv1D log-mel tower learns far faster at ~1e-3).

    Args:
        variable_multipliers: list of `(variables, multiplier)`; a variable
            in no group steps at the base learning rate.
        **kwargs: `keras.optimizers.AdamW` arguments. Weight decay stays at
            the base rate for every variable.

    Example:

    >>> dense = keras.layers.Dense(2)
    >>> dense.build((None, 3))
    >>> optimizer = TowerAdamW([(dense.trainable_variables, 10.0)],
    ...                        learning_rate=1e-4)
    """

    def __init__(self, variable_multipliers=(), **kwargs):
        super().__init__(**kwargs)
        self.variable_multipliers = [
            (list(variables), float(multiplier))
            for variables, multiplier in variable_multipliers
        ]
        for _, multiplier in self.variable_multipliers:
            if not multiplier > 0:
                raise ValueError(
                    "Learning-rate multipliers must be positive; received "
                    f"{multiplier}."
                )

    def build(self, var_list):
        super().build(var_list)
        scale = {}
        for variables, multiplier in self.variable_multipliers:
            for variable in variables:
                scale[id(variable)] = multiplier
        self._scales = [scale.get(id(v), 1.0) for v in var_list]

    def add_variable_from_reference(
        self, reference_variable, name=None, initializer="zeros"
    ):
        # The variables of a SavedModel tower (`keras.layers.TFSMLayer`) have
        # paths like "conv2d/kernel:0", which Keras would turn into an
        # invalid slot name.
        path = str(getattr(reference_variable, "path", ""))
        if not _NOT_IN_SCOPE_NAMES.search(path.replace("/", "_")):
            return super().add_variable_from_reference(
                reference_variable, name, initializer
            )
        name = f"{_NOT_IN_SCOPE_NAMES.sub('_', path.replace('/', '_'))}_{name or 'var'}"
        with tf.device(getattr(reference_variable, "device", None) or ""):
            return self.add_variable(
                shape=reference_variable.shape,
                initializer=initializer,
                dtype=reference_variable.dtype,
                name=name,
            )

    def update_step(self, gradient, variable, learning_rate):
        scale = self._scales[self._get_variable_index(variable)]
        if scale != 1.0:
            learning_rate = learning_rate * scale
        super().update_step(gradient, variable, learning_rate)
