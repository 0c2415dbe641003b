import numpy as np
import tensorflow as tf

from common.layers import CrossModalAttention
from common.testing import TestCase
from tests import numpy_reference as ref


def named_weights(layer):
    return {
        w.path.split("/", 1)[1]: w.numpy().astype(np.float64) for w in layer.weights
    }


class CrossModalAttentionTest(TestCase):
    def setUp(self):
        super().setUp()
        self.query, self.context = self.random_normal(0, (3, 4, 16), (3, 6, 12))
        self.context_mask = np.ones((3, 6), dtype=bool)
        self.context_mask[0, 3:] = False
        self.context_mask[2, 1:] = False
        self.query_mask = np.ones((3, 4), dtype=bool)
        self.query_mask[1, 2:] = False

    def test_layer_contract(self):
        self.run_layer_test(
            CrossModalAttention,
            init_kwargs={"num_heads": 2, "key_dim": 8, "value_dim": 4},
            call_args=(self.query, self.context),
            call_kwargs={"context_mask": self.context_mask},
            expected_output_shape=(3, 4, 16),
            expected_num_trainable_weights=10,
        )

    def test_matches_numpy_with_masks(self):
        for use_residual, use_layer_norm in ((True, True), (False, False)):
            layer = CrossModalAttention(
                num_heads=2,
                key_dim=8,
                value_dim=4,
                use_residual=use_residual,
                use_layer_norm=use_layer_norm,
            )
            out, scores = layer(
                self.query,
                self.context,
                query_mask=self.query_mask,
                context_mask=self.context_mask,
                return_attention_scores=True,
            )
            expected, expected_scores = ref.cross_modal_attention(
                self.query.astype(np.float64),
                self.context.astype(np.float64),
                named_weights(layer),
                num_heads=2,
                key_dim=8,
                value_dim=4,
                use_residual=use_residual,
                use_layer_norm=use_layer_norm,
                query_mask=self.query_mask,
                context_mask=self.context_mask,
            )
            self.assertEqual(tuple(scores.shape), (3, 2, 4, 6))
            self.assertAllClose(scores, expected_scores, atol=1e-5)
            self.assertAllClose(out, expected, atol=1e-4)

    def test_masked_context_gets_zero_weight_and_has_no_influence(self):
        layer = CrossModalAttention(num_heads=2, key_dim=8)
        out, scores = layer(
            self.query,
            self.context,
            context_mask=self.context_mask,
            return_attention_scores=True,
        )
        scores = scores.numpy()
        self.assertTrue((scores[0, :, :, 3:] == 0).all())
        self.assertTrue((scores[2, :, :, 1:] == 0).all())
        changed = self.context.copy()
        changed[~self.context_mask] = 1e3
        out_changed = layer(self.query, changed, context_mask=self.context_mask)
        self.assertAllClose(out_changed, out, atol=1e-5)

    def test_fully_masked_query_rows_are_finite(self):
        layer = CrossModalAttention(num_heads=2, key_dim=8, use_layer_norm=False)
        context_mask = np.zeros((3, 6), dtype=bool)
        out, scores = layer(
            self.query,
            self.context,
            context_mask=context_mask,
            return_attention_scores=True,
        )
        self.assertTrue((scores.numpy() == 0).all())
        # Nothing to attend to: the attention adds only the output bias.
        bias = layer.output_dense.bias.numpy()
        self.assertAllClose(out, self.query + bias, atol=1e-6)

    def test_dropout_only_in_training(self):
        layer = CrossModalAttention(num_heads=2, key_dim=8, dropout_rate=0.5)
        a = layer(self.query, self.context)
        b = layer(self.query, self.context, training=False)
        c = layer(self.query, self.context, training=True)
        self.assertAllClose(a, b)
        self.assertGreater(float(np.abs(c.numpy() - a.numpy()).max()), 1e-4)

    def test_saving_and_export(self):
        layer = CrossModalAttention(num_heads=2, key_dim=8)
        self.run_model_saving_test(
            layer, (self.query, self.context), {"context_mask": self.context_mask}
        )
        self.run_export_test(
            layer,
            {
                "query": self.query,
                "context": self.context,
                "context_mask": self.context_mask,
            },
            call_fn=lambda query, context, context_mask: layer(
                query, context, context_mask=context_mask
            ),
        )

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "key_dim.*received 0"):
            CrossModalAttention(num_heads=2, key_dim=0)
        with self.assertRaisesRegex(ValueError, "num_heads.*received -1"):
            CrossModalAttention(num_heads=-1, key_dim=4)
        with self.assertRaisesRegex(ValueError, "dropout_rate.*1.5"):
            CrossModalAttention(num_heads=1, key_dim=4, dropout_rate=1.5)
        layer = CrossModalAttention(num_heads=1, key_dim=4)
        with self.assertRaisesRegex(ValueError, "batch size.*query: 3.*context: 2"):
            layer(self.query, self.context[:2])
        with self.assertRaisesRegex(ValueError, "rank 3"):
            CrossModalAttention(num_heads=1, key_dim=4)(self.query[0], self.context[0])

    def test_graph_mode_with_unknown_batch(self):
        layer = CrossModalAttention(num_heads=2, key_dim=8)

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, None, 16)),
                tf.TensorSpec((None, None, 12)),
            ]
        )
        def run(query, context):
            return layer(query, context)

        self.assertAllClose(
            run(self.query, self.context), layer(self.query, self.context)
        )
