import numpy as np

from common.layers import EarlyFusion, GatedFusion, LateFusion
from common.testing import TestCase


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class EarlyFusionTest(TestCase):
    def setUp(self):
        super().setUp()
        self.a, self.b = self.random_normal(0, (3, 4, 6), (3, 4, 10))

    def test_layer_contract_and_numpy(self):
        layer = self.run_layer_test(
            EarlyFusion,
            {"projection_dim": 8, "activation": "relu"},
            ([self.a, self.b],),
            expected_output_shape=(3, 4, 8),
        )
        kernel, bias = (w.numpy() for w in layer.weights)
        expected = np.maximum(np.concatenate([self.a, self.b], -1) @ kernel + bias, 0)
        self.assertAllClose(layer([self.a, self.b]), expected, atol=1e-5)

    def test_without_projection_is_concatenation(self):
        out = EarlyFusion()([self.a, self.b])
        self.assertAllClose(out, np.concatenate([self.a, self.b], -1))

    def test_mismatched_leading_axes(self):
        with self.assertRaisesRegex(ValueError, r"input 1 has shape \(3, 5, 10\)"):
            EarlyFusion(4)([self.a, self.b[:, :1].repeat(5, axis=1)])
        with self.assertRaisesRegex(ValueError, "two or more"):
            EarlyFusion(4)([self.a])
        with self.assertRaisesRegex(ValueError, "projection_dim.*-2"):
            EarlyFusion(-2)


class LateFusionTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(1)
        self.outputs = [rng.standard_normal((4, 5)).astype("float32") for _ in range(3)]

    def test_mean_and_max(self):
        stacked = np.stack(self.outputs)
        self.assertAllClose(
            LateFusion("mean")(self.outputs), stacked.mean(0), atol=1e-6
        )
        self.assertAllClose(LateFusion("max")(self.outputs), stacked.max(0))

    def test_weighted_uses_softmax_of_learned_weights(self):
        layer = self.run_layer_test(
            LateFusion,
            {"mode": "weighted"},
            (self.outputs,),
            expected_output_shape=(4, 5),
            expected_num_trainable_weights=1,
        )
        raw = np.array([0.5, -1.0, 2.0], dtype="float32")
        layer.modality_weights.assign(raw)
        w = np.exp(raw) / np.exp(raw).sum()
        expected = sum(wi * x for wi, x in zip(w, self.outputs, strict=True))
        self.assertAllClose(layer(self.outputs), expected, atol=1e-6)

    def test_bad_mode_and_shapes(self):
        with self.assertRaisesRegex(ValueError, "mode.*'median'"):
            LateFusion("median")
        with self.assertRaisesRegex(ValueError, "same shape"):
            LateFusion()([self.outputs[0], self.outputs[1][:, :3]])


class GatedFusionTest(TestCase):
    def test_matches_gated_multimodal_unit(self):
        a, b = self.random_normal(2, (3, 6), (3, 10))
        layer = self.run_layer_test(
            GatedFusion,
            {"hidden_dim": 8},
            ([a, b],),
            expected_output_shape=(3, 8),
            expected_num_trainable_weights=4,
        )
        fused, gate = layer([a, b], return_gate=True)
        w = {v.path.split("/", 1)[1]: v.numpy() for v in layer.weights}
        h_a = np.tanh(a @ w["first_projection/kernel"])
        h_b = np.tanh(b @ w["second_projection/kernel"])
        z = sigmoid(np.concatenate([a, b], -1) @ w["gate/kernel"] + w["gate/bias"])
        self.assertAllClose(gate, z, atol=1e-6)
        self.assertAllClose(fused, z * h_a + (1 - z) * h_b, atol=1e-6)
        self.run_model_saving_test(layer, ([a, b],))

    def test_bad_inputs(self):
        with self.assertRaisesRegex(ValueError, "exactly two"):
            GatedFusion(4)([np.ones((2, 3))] * 3)
        with self.assertRaisesRegex(ValueError, "hidden_dim.*True"):
            GatedFusion(True)
