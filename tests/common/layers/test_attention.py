import numpy as np
import tensorflow as tf

from common.layers import scaled_dot_product_attention
from common.testing import TestCase
from tests import numpy_reference as ref


class ScaledDotProductAttentionTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.q = rng.standard_normal((2, 3, 4, 8)).astype("float32")
        self.k = rng.standard_normal((2, 3, 5, 8)).astype("float32")
        self.v = rng.standard_normal((2, 3, 5, 6)).astype("float32")

    def test_matches_numpy_formula(self):
        out, weights = scaled_dot_product_attention(self.q, self.k, self.v)
        expected_out, expected_weights = ref.attention(self.q, self.k, self.v)
        self.assertAllClose(weights, expected_weights, atol=1e-6)
        self.assertAllClose(out, expected_out, atol=1e-5)
        self.assertAllClose(np.sum(weights, -1), np.ones((2, 3, 4)), atol=1e-6)

    def test_batch_and_head_axes_broadcast(self):
        # One set of keys/values shared by all heads.
        k, v = self.k[:, :1], self.v[:, :1]
        out, weights = scaled_dot_product_attention(self.q, k, v)
        expected_out, expected_weights = ref.attention(self.q, k, v)
        self.assertEqual(tuple(out.shape), (2, 3, 4, 6))
        self.assertAllClose(out, expected_out, atol=1e-5)
        self.assertAllClose(weights, expected_weights, atol=1e-6)

    def test_masked_keys_get_exactly_zero_weight(self):
        mask = np.random.default_rng(1).random((2, 1, 4, 5)) > 0.4
        mask[..., 0] = True  # every row keeps one key
        out, weights = scaled_dot_product_attention(self.q, self.k, self.v, mask=mask)
        weights = weights.numpy()
        self.assertTrue((weights[np.broadcast_to(~mask, weights.shape)] == 0).all())
        expected_out, expected_weights = ref.attention(self.q, self.k, self.v, mask)
        self.assertAllClose(weights, expected_weights, atol=1e-6)
        self.assertAllClose(out, expected_out, atol=1e-5)

    def test_fully_masked_row_gives_zeros_and_finite_gradients(self):
        mask = np.ones((2, 3, 4, 5), dtype=bool)
        mask[:, :, 1, :] = False
        q = tf.Variable(self.q)
        with tf.GradientTape() as tape:
            out, weights = scaled_dot_product_attention(q, self.k, self.v, mask=mask)
            loss = tf.reduce_sum(out)
        gradient = tape.gradient(loss, q)
        self.assertTrue((weights.numpy()[:, :, 1] == 0).all())
        self.assertTrue((out.numpy()[:, :, 1] == 0).all())
        self.assertAllFinite([out, weights, gradient])
        self.assertTrue((gradient.numpy()[:, :, 1] == 0).all())

    def test_bfloat16_inputs(self):
        q, k, v = (tf.cast(t, tf.bfloat16) for t in (self.q, self.k, self.v))
        out, weights = scaled_dot_product_attention(q, k, v)
        self.assertEqual(out.dtype, tf.bfloat16)
        expected_out, _ = ref.attention(self.q, self.k, self.v)
        self.assertAllClose(out, expected_out, atol=0.1, rtol=0.05)

    def test_bad_shapes_raise_value_error_naming_them(self):
        with self.assertRaisesRegex(ValueError, "same last dimension"):
            scaled_dot_product_attention(self.q, self.k[..., :7], self.v)
        with self.assertRaisesRegex(ValueError, "same length Lk"):
            scaled_dot_product_attention(self.q, self.k, self.v[..., :4, :])
        with self.assertRaisesRegex(ValueError, "rank >= 2"):
            scaled_dot_product_attention(np.ones(3), self.k, self.v)
