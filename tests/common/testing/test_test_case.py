"""The shared helpers must catch the defects they exist for."""

import keras
import numpy as np
import tensorflow as tf

from common.testing import TestCase


@keras.saving.register_keras_serializable(package="tests")
class ForgetfulConfig(keras.layers.Layer):
    """Drops its `units` argument from the config."""

    def __init__(self, units=2, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units)

    def build(self, shape):
        self.dense.build(shape)

    def call(self, x):
        return self.dense(x)

    def get_config(self):
        config = super().get_config()
        config.pop("units", None)
        return config


@keras.saving.register_keras_serializable(package="tests")
class DeadWeight(keras.layers.Layer):
    """Has a weight that never reaches the output."""

    def build(self, shape):
        self.used = self.add_weight(shape=(shape[-1],), initializer="ones")
        self.unused = self.add_weight(shape=(1,), initializer="ones")

    def call(self, x):
        return x * self.used


class EagerOnlyOffset(keras.layers.Layer):
    """Adds 1 only when run eagerly, so its export differs from Keras."""

    def call(self, x):
        return x + 1.0 if tf.executing_eagerly() else x


class TestCaseHelpersTest(TestCase):
    def test_serialization_check_catches_a_missing_argument(self):
        layer = ForgetfulConfig(units=5)
        layer(np.ones((1, 3), "float32"))
        with self.assertRaisesRegex(AssertionError, "weights differ"):
            self.run_serialization_test(layer)

    def test_layer_check_catches_a_weight_without_gradient(self):
        with self.assertRaisesRegex(AssertionError, "without a gradient"):
            self.run_layer_test(
                DeadWeight,
                {},
                (np.ones((2, 3), "float32"),),
                run_mixed_precision_check=False,
            )

    def test_export_check_catches_a_mismatch(self):
        layer = EagerOnlyOffset()
        layer.build((None, 3))
        with self.assertRaises(AssertionError):
            self.run_export_test(layer, {"x": np.zeros((2, 3), "float32")})

    def test_shape_check_catches_a_wrong_shape(self):
        with self.assertRaises(AssertionError):
            self.run_layer_test(
                keras.layers.Dense,
                {"units": 3},
                (np.ones((2, 4), "float32"),),
                expected_output_shape=(2, 4),
            )
