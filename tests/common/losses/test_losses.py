import math

import numpy as np
import tensorflow as tf

from common.losses import ContrastiveLoss, contrastive_loss, hard_negative_triplet_loss
from common.testing import TestCase
from tests import numpy_reference as ref


class ContrastiveLossTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.images = rng.standard_normal((6, 8)).astype("float32")
        self.texts = rng.standard_normal((6, 8)).astype("float32")

    def test_matches_numpy_info_nce(self):
        for scale in (1.0, 14.2857, 100.0):
            loss = contrastive_loss(self.images, self.texts, scale)
            self.assertAllClose(
                loss, ref.info_nce(self.images, self.texts, scale), atol=1e-4, rtol=1e-5
            )

    def test_perfect_alignment_and_random_baseline(self):
        eye = np.eye(6, dtype="float32")
        self.assertLess(float(contrastive_loss(eye, eye, 100.0)), 1e-6)
        # Identical embeddings for everything: uniform logits, loss = ln(B).
        same = np.ones((6, 8), "float32")
        self.assertAllClose(contrastive_loss(same, same, 10.0), math.log(6), atol=1e-5)

    def test_scale_invariance_of_inputs(self):
        # Embeddings are L2-normalised inside.
        a = contrastive_loss(self.images, self.texts, 10.0)
        b = contrastive_loss(3.0 * self.images, 0.5 * self.texts, 10.0)
        self.assertAllClose(a, b, atol=1e-6)

    def test_learnable_temperature(self):
        layer = ContrastiveLoss()
        self.assertAllClose(layer.logit_scale, math.log(1 / 0.07), atol=1e-6)
        self.assertAllClose(layer.scale, 1 / 0.07, atol=1e-4)
        expected = ref.info_nce(self.images, self.texts, 1 / 0.07)
        self.assertAllClose(layer(self.images, self.texts), expected, atol=1e-4)
        layer.logit_scale.assign(10.0)  # exp(10) is clipped to 100
        self.assertAllClose(layer.scale, 100.0)
        self.assertAllClose(
            layer(self.images, self.texts),
            ref.info_nce(self.images, self.texts, 100.0),
            atol=1e-3,
        )
        layer.logit_scale.assign(1.0)
        with tf.GradientTape() as tape:
            value = layer(self.images, self.texts)
        (gradient,) = tape.gradient(value, layer.trainable_weights)
        self.assertNotEqual(float(gradient), 0.0)
        self.run_serialization_test(layer)

    def test_mixed_precision_inputs_give_float32_loss(self):
        loss = contrastive_loss(
            tf.cast(self.images, tf.bfloat16), tf.cast(self.texts, tf.bfloat16), 10.0
        )
        self.assertEqual(loss.dtype, tf.float32)
        self.assertAllClose(
            loss, ref.info_nce(self.images, self.texts, 10.0), atol=0.05
        )

    def test_bad_shapes(self):
        with self.assertRaisesRegex(ValueError, r"same batch size.*\(5, 8\)"):
            contrastive_loss(self.images, self.texts[:5], 1.0)
        with self.assertRaisesRegex(ValueError, "same embedding dim"):
            contrastive_loss(self.images, self.texts[:, :4], 1.0)
        with self.assertRaisesRegex(ValueError, r"\[batch, dim\]"):
            contrastive_loss(self.images[None], self.texts[None], 1.0)
        with self.assertRaisesRegex(ValueError, "initial_temperature.*0"):
            ContrastiveLoss(initial_temperature=0)


class TripletLossTest(TestCase):
    def test_matches_vse_loops(self):
        rng = np.random.default_rng(1)
        images = rng.standard_normal((5, 8)).astype("float32")
        texts = rng.standard_normal((5, 8)).astype("float32")
        for max_violation in (True, False):
            for margin in (0.0, 0.2, 1.0):
                loss = hard_negative_triplet_loss(
                    images, texts, margin=margin, max_violation=max_violation
                )
                expected = ref.vse_triplet(images, texts, margin, max_violation)
                self.assertAllClose(loss, expected, atol=1e-5)

    def test_zero_when_positives_beat_negatives_by_margin(self):
        eye = np.eye(4, dtype="float32")
        self.assertEqual(float(hard_negative_triplet_loss(eye, eye, margin=0.5)), 0.0)
        # Margin larger than the gap: every negative violates.
        self.assertAllClose(
            hard_negative_triplet_loss(eye, eye, margin=1.5, max_violation=False),
            2 * 3 * 0.5,
            atol=1e-6,
        )

    def test_gradient_and_errors(self):
        images = tf.Variable(
            np.random.default_rng(2).standard_normal((4, 6)), dtype="float32"
        )
        texts = np.random.default_rng(3).standard_normal((4, 6)).astype("float32")
        with tf.GradientTape() as tape:
            loss = hard_negative_triplet_loss(images, texts, margin=0.5)
        self.assertAllFinite(tape.gradient(loss, images))
        with self.assertRaisesRegex(ValueError, "margin.*-1"):
            hard_negative_triplet_loss(texts, texts, margin=-1)
