import numpy as np

from common.layers import GraphAttention, GraphConvolution, ModalityGraphFusion
from common.testing import TestCase
from tests import numpy_reference as ref


def random_graph(rng, batch, nodes, features):
    h = rng.standard_normal((batch, nodes, features)).astype("float32")
    a = (rng.random((nodes, nodes)) > 0.5).astype("float32")
    a = np.triu(a, 1)
    return h, a + a.T


class GraphConvolutionTest(TestCase):
    def setUp(self):
        super().setUp()
        self.rng = np.random.default_rng(0)
        self.h, self.a = random_graph(self.rng, 2, 5, 6)

    def test_layer_contract(self):
        layer = self.run_layer_test(
            GraphConvolution,
            {"units": 4, "activation": "relu"},
            (self.h, self.a),
            expected_output_shape=(2, 5, 4),
            expected_num_trainable_weights=2,
        )
        self.assertEqual(tuple(layer.kernel.shape), (6, 4))
        self.assertEqual([w.name for w in layer.weights], ["kernel", "bias"])

    def test_matches_kipf_welling_formula(self):
        layer = GraphConvolution(units=4, activation="tanh")
        out = layer(self.h, self.a)
        expected = ref.gcn(
            self.h, self.a, layer.kernel.numpy(), layer.bias.numpy(), np.tanh
        )
        self.assertAllClose(out, expected, atol=1e-5)

    def test_weighted_batched_adjacency(self):
        weights = self.rng.random((2, 5, 5)).astype("float32")
        a = (weights + np.transpose(weights, (0, 2, 1))) * self.a
        layer = GraphConvolution(units=3, use_bias=False)
        out = layer(self.h, a)
        expected = ref.gcn(self.h, a, layer.kernel.numpy())
        self.assertAllClose(out, expected, atol=1e-5)

    def test_permutation_equivariance(self):
        layer = GraphConvolution(units=4, activation="relu")
        p = self.rng.permutation(5)
        out = layer(self.h, self.a).numpy()
        permuted = layer(self.h[:, p], self.a[p][:, p]).numpy()
        self.assertAllClose(permuted, out[:, p], atol=1e-5)

    def test_bad_adjacency(self):
        layer = GraphConvolution(units=4)
        with self.assertRaisesRegex(ValueError, r"square.*\(5, 4\)"):
            layer(self.h, self.a[:, :4])
        with self.assertRaisesRegex(ValueError, "does not match the 5 nodes"):
            layer(self.h, np.ones((3, 3), "float32"))
        with self.assertRaisesRegex(ValueError, "units.*received 0"):
            GraphConvolution(0)

    def test_saving_and_export(self):
        layer = GraphConvolution(units=4, activation="relu")
        self.run_model_saving_test(layer, (self.h, self.a))
        self.run_export_test(
            layer, {"node_features": self.h, "adjacency": np.stack([self.a] * 2)}
        )


class GraphAttentionTest(TestCase):
    def setUp(self):
        super().setUp()
        self.rng = np.random.default_rng(3)
        self.h, self.a = random_graph(self.rng, 2, 5, 6)
        self.a[0, :] = self.a[:, 0] = 0  # an isolated node: attends to itself only

    def test_layer_contract(self):
        self.run_layer_test(
            GraphAttention,
            {"units": 4, "num_heads": 3},
            (self.h, self.a),
            expected_output_shape=(2, 5, 12),
            expected_num_trainable_weights=4,
        )

    def test_matches_gat_equations(self):
        for concat_heads in (True, False):
            layer = GraphAttention(units=4, num_heads=2, concat_heads=concat_heads)
            out, alpha = layer(self.h, self.a, return_attention_scores=True)
            expected, expected_alpha = ref.gat(
                self.h,
                self.a,
                layer.kernel.numpy().astype(np.float64),
                layer.attention_source.numpy().astype(np.float64),
                layer.attention_target.numpy().astype(np.float64),
                layer.bias.numpy(),
                concat_heads=concat_heads,
            )
            self.assertAllClose(alpha, expected_alpha, atol=1e-5)
            self.assertAllClose(out, expected, atol=1e-5)

    def test_non_neighbours_get_exactly_zero_weight(self):
        layer = GraphAttention(units=4, num_heads=2)
        _, alpha = layer(self.h, self.a, return_attention_scores=True)
        alpha = alpha.numpy()
        allowed = (self.a + np.eye(5)) > 0
        self.assertTrue((alpha[:, :, ~allowed] == 0).all())
        self.assertAllClose(alpha[:, :, 0, 0], np.ones((2, 2)))
        self.assertAllClose(alpha.sum(-1), np.ones((2, 2, 5)), atol=1e-6)

    def test_permutation_equivariance(self):
        layer = GraphAttention(units=4, num_heads=2, activation="elu")
        p = self.rng.permutation(5)
        out = layer(self.h, self.a).numpy()
        permuted = layer(self.h[:, p], self.a[p][:, p]).numpy()
        self.assertAllClose(permuted, out[:, p], atol=1e-5)

    def test_saving_and_bad_arguments(self):
        layer = GraphAttention(units=4, num_heads=2)
        self.run_model_saving_test(layer, (self.h, self.a))
        with self.assertRaisesRegex(ValueError, "negative_slope.*-0.1"):
            GraphAttention(4, negative_slope=-0.1)
        with self.assertRaisesRegex(ValueError, "square"):
            layer(self.h, np.ones((5, 4), "float32"))


class ModalityGraphFusionTest(TestCase):
    def setUp(self):
        super().setUp()
        self.frames, self.audio, self.text = self.random_normal(
            4, (2, 4, 16), (2, 3, 12), (2, 10)
        )

    def test_layer_contract_gat_and_gcn(self):
        for graph_layer in ("gat", "gcn"):
            self.run_layer_test(
                ModalityGraphFusion,
                {"hidden_dim": 8, "graph_layer": graph_layer},
                ([self.frames, self.audio, self.text],),
                expected_output_shape=(2, 8),
            )

    def test_node_order_within_a_modality_does_not_matter(self):
        # Fully connected graph + mean pooling: a function of the node set.
        for graph_layer in ("gat", "gcn"):
            layer = ModalityGraphFusion(hidden_dim=8, graph_layer=graph_layer)
            out = layer([self.frames, self.audio])
            shuffled = layer([self.frames[:, ::-1], self.audio[:, [2, 0, 1]]])
            self.assertAllClose(shuffled, out, atol=1e-5)

    def test_given_adjacency_isolates_modalities(self):
        # Two components (frames | audio): frames' nodes never see audio.
        adjacency = np.zeros((7, 7), "float32")
        adjacency[:4, :4] = 1
        adjacency[4:, 4:] = 1
        layer = ModalityGraphFusion(hidden_dim=8, adjacency=adjacency, pooling="max")
        _, nodes = layer([self.frames, self.audio], return_nodes=True)
        _, nodes_changed = layer([self.frames, self.audio * 5.0], return_nodes=True)
        self.assertAllClose(nodes_changed[:, :4], nodes[:, :4], atol=1e-6)
        self.run_serialization_test(layer)
        self.run_model_saving_test(layer, ([self.frames, self.audio],))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "adjacency.*3x3.*7 nodes"):
            ModalityGraphFusion(8, adjacency=np.ones((3, 3)))([self.frames, self.audio])
        with self.assertRaisesRegex(ValueError, "graph_layer.*'gin'"):
            ModalityGraphFusion(8, graph_layer="gin")
        with self.assertRaisesRegex(ValueError, "square"):
            ModalityGraphFusion(8, adjacency=np.ones((3, 2)))

    def test_unknown_sequence_length_when_traced(self):
        import tensorflow as tf

        layer = ModalityGraphFusion(hidden_dim=8)
        expected = layer([self.frames, self.audio])

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, 4, 16)),
                tf.TensorSpec((None, None, 12)),
            ]
        )
        def run(frames, audio):
            return layer([frames, audio])

        self.assertAllClose(run(self.frames, self.audio), expected, atol=1e-6)
