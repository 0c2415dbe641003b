"""The optional projection every encoder ends with."""

import keras


def projection_layer(projection_dim, dtype_policy):
    """The `Dense(projection_dim)` named `projection` that maps an encoder's
    features to the shared width, or `None` without a `projection_dim` (the
    encoder then returns its own features)."""
    if not projection_dim:
        return None
    return keras.layers.Dense(projection_dim, dtype=dtype_policy, name="projection")
