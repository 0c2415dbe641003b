import math

import keras
import numpy as np

from common.testing import TestCase
from common.training import WarmupCosineDecay


class WarmupCosineDecayTest(TestCase):
    def test_matches_formula(self):
        schedule = WarmupCosineDecay(1e-3, warmup_steps=10, decay_steps=100, alpha=0.1)
        for step in (0, 5, 10, 35, 60, 110, 500):
            if step < 10:
                expected = 1e-3 * step / 10
            else:
                p = min(1.0, (step - 10) / 100)
                expected = 1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))
            self.assertAlmostEqual(float(schedule(step)), expected, places=8)

    def test_serializes_and_drives_an_optimizer(self):
        schedule = WarmupCosineDecay(1e-4, warmup_steps=0, decay_steps=10)
        revived = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(schedule)
        )
        self.assertEqual(revived.get_config(), schedule.get_config())
        # The optimizer applies the schedule's rate at its own step count:
        # plain SGD moves a weight by exactly lr(step) * gradient.
        schedule = WarmupCosineDecay(1e-2, warmup_steps=4, decay_steps=10)
        optimizer = keras.optimizers.SGD(learning_rate=schedule)
        variable = keras.Variable(np.zeros(1, "float32"))
        for step in range(8):
            before = float(variable.numpy()[0])
            optimizer.apply_gradients([(np.ones(1, "float32"), variable)])
            moved = before - float(variable.numpy()[0])
            self.assertAlmostEqual(moved, float(schedule(step)), places=7)
            self.assertEqual(int(optimizer.iterations), step + 1)
        self.assertAlmostEqual(float(schedule(2)), 1e-2 * 2 / 4, places=9)
        with self.assertRaisesRegex(ValueError, "decay_steps"):
            WarmupCosineDecay(1e-4, warmup_steps=5, decay_steps=0)
