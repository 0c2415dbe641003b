import keras
import numpy as np

from common.testing import TestCase
from common.training.optimizers import TowerAdamW


def adam_steps(w, grads, lr, beta_1=0.9, beta_2=0.999, eps=1e-7):
    """NumPy Adam (no weight decay), Keras' epsilon placement."""
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        w = w - alpha * m / (np.sqrt(v) + eps)
    return w


class TowerAdamWTest(TestCase):
    def test_multiplied_group_steps_at_its_own_rate(self):
        fast = keras.Variable(np.ones(3, "float32"), name="fast")
        slow = keras.Variable(np.ones(3, "float32"), name="slow")
        optimizer = TowerAdamW([([fast], 10.0)], learning_rate=1e-3, weight_decay=0.0)
        rng = np.random.default_rng(0)
        grads = [rng.normal(size=(2, 3)).astype("float32") for _ in range(4)]
        for g in grads:
            optimizer.apply([g[0], g[1]], [fast, slow])
        np.testing.assert_allclose(
            fast.numpy(), adam_steps(np.ones(3), [g[0] for g in grads], 1e-2), rtol=1e-4
        )
        np.testing.assert_allclose(
            slow.numpy(), adam_steps(np.ones(3), [g[1] for g in grads], 1e-3), rtol=1e-4
        )

    def test_bad_multiplier(self):
        with self.assertRaisesRegex(ValueError, "positive"):
            TowerAdamW([([], 0.0)])
