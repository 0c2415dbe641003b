"""AdamW with a learning-rate multiplier per group of variables."""

import keras


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

    def update_step(self, gradient, variable, learning_rate):
        scale = self._scales[self._get_variable_index(variable)]
        if scale != 1.0:
            learning_rate = learning_rate * scale
        super().update_step(gradient, variable, learning_rate)
