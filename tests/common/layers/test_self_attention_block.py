import numpy as np

from common.layers import SelfAttentionBlock
from common.testing import TestCase
from tests import numpy_reference as ref


def gelu(x):
    from math import erf, sqrt

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))


class SelfAttentionBlockTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((2, 5, 16)).astype("float32")
        self.mask = np.ones((2, 5), dtype=bool)
        self.mask[1, 3:] = False

    def test_layer_contract(self):
        self.run_layer_test(
            SelfAttentionBlock,
            {"num_heads": 2, "key_dim": 8, "hidden_dim": 32},
            (self.x,),
            {"padding_mask": self.mask},
            expected_output_shape=(2, 5, 16),
        )

    def test_matches_numpy_pre_norm_block(self):
        block = SelfAttentionBlock(num_heads=2, key_dim=8, hidden_dim=32)
        out = block(self.x, padding_mask=self.mask)
        w = {
            v.path.split("/", 1)[1]: v.numpy().astype(np.float64) for v in block.weights
        }
        x = self.x.astype(np.float64)
        normed = ref.layer_norm(
            x, w["attention_norm/gamma"], w["attention_norm/beta"], 1e-6
        )
        attention_weights = {
            k.split("/", 1)[1]: v for k, v in w.items() if k.startswith("attention/")
        }
        attended, _ = ref.cross_modal_attention(
            normed,
            normed,
            attention_weights,
            num_heads=2,
            key_dim=8,
            value_dim=8,
            use_residual=False,
            use_layer_norm=False,
            query_mask=self.mask,
            context_mask=self.mask,
        )
        x = x + attended
        hidden = gelu(
            ref.dense(
                ref.layer_norm(x, w["mlp_norm/gamma"], w["mlp_norm/beta"], 1e-6),
                w["mlp_hidden/kernel"],
                w["mlp_hidden/bias"],
            )
        )
        expected = x + ref.dense(hidden, w["mlp_output/kernel"], w["mlp_output/bias"])
        self.assertAllClose(out, expected, atol=1e-4)

    def test_padding_does_not_leak_into_real_tokens(self):
        block = SelfAttentionBlock(num_heads=2, key_dim=8, hidden_dim=32)
        out = block(self.x, padding_mask=self.mask).numpy()
        changed = self.x.copy()
        changed[1, 3:] = 100.0
        out_changed = block(changed, padding_mask=self.mask).numpy()
        self.assertAllClose(out_changed[1, :3], out[1, :3], atol=1e-5)

    def test_saving_and_bad_arguments(self):
        block = SelfAttentionBlock(num_heads=2, key_dim=8, hidden_dim=32)
        self.run_model_saving_test(block, (self.x,))
        with self.assertRaisesRegex(ValueError, "hidden_dim.*received 0"):
            SelfAttentionBlock(num_heads=2, key_dim=8, hidden_dim=0)
        with self.assertRaisesRegex(ValueError, "rank 3"):
            SelfAttentionBlock(num_heads=2, key_dim=8, hidden_dim=4)(self.x[0])
