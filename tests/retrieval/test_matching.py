"""The image-text matching head, its loss and hard-negative sampling,
checked against NumPy."""

import keras
import numpy as np

from common.testing import TestCase
from retrieval.matching import (
    MASKED,
    ImageTextMatchingHead,
    itm_loss,
    negative_logits,
    sample_negatives,
)


def softplus(x):
    return np.log1p(np.exp(x))


def unit(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class MatchingTest(TestCase):
    def test_itm_loss_is_mean_binary_cross_entropy(self):
        rng = np.random.default_rng(0)
        pos, neg_i, neg_t = (rng.normal(size=5).astype("float32") for _ in range(3))
        labels = np.concatenate([np.ones(5), np.zeros(10)])
        logits = np.concatenate([pos, neg_i, neg_t])
        p = 1 / (1 + np.exp(-logits))
        expected = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
        self.assertAlmostEqual(float(itm_loss(pos, neg_i, neg_t)), expected, places=5)
        # a swap of positives and negatives changes it
        self.assertNotAlmostEqual(float(itm_loss(neg_i, pos, neg_t)), expected, 3)

    def test_negative_logits_mask_the_pair_and_false_negatives(self):
        rng = np.random.default_rng(1)
        images = unit(rng.normal(size=(4, 8)))
        texts = unit(rng.normal(size=(4, 8)))
        texts[3] = texts[1]  # captions 1 and 3 are the same text
        images[2] = images[0]  # images 0 and 2 are the same picture
        similarity = images @ texts.T
        image_logits, text_logits = negative_logits(
            similarity.astype("float32"),
            (images @ images.T).astype("float32"),
            (texts @ texts.T).astype("float32"),
            0.5,
        )
        invalid = np.eye(4, dtype=bool)
        invalid[[0, 2], [2, 0]] = True
        invalid[[1, 3], [3, 1]] = True
        expected_text = np.where(invalid, MASKED, similarity / 0.5)
        np.testing.assert_allclose(text_logits.numpy(), expected_text, rtol=1e-5)
        np.testing.assert_allclose(image_logits.numpy(), expected_text.T, rtol=1e-5)

    def test_sampling_follows_the_softmax_and_never_picks_a_masked_pair(self):
        rng = np.random.default_rng(2)
        similarity = rng.uniform(-1, 1, (6, 6)).astype("float32")
        same = np.eye(6, dtype="float32")
        _, logits = negative_logits(similarity, same, same, 0.2)
        seed = keras.random.SeedGenerator(0)
        draws = np.stack([sample_negatives(logits, seed).numpy() for _ in range(400)])
        self.assertFalse((draws == np.arange(6)).any())  # never the positive
        # frequencies follow softmax(similarity / 0.2) without the diagonal
        masked = np.where(np.eye(6, dtype=bool), -np.inf, similarity / 0.2)
        expected = np.exp(masked - masked.max(1, keepdims=True))
        expected /= expected.sum(1, keepdims=True)
        observed = np.stack([np.bincount(draws[:, r], minlength=6) for r in range(6)])
        np.testing.assert_allclose(observed / 400, expected, atol=0.09)
        # a very low temperature takes the hardest negative
        _, cold = negative_logits(similarity, same, same, 1e-4)
        hardest = np.argmax(np.where(np.eye(6, dtype=bool), -9, similarity), axis=1)
        np.testing.assert_array_equal(sample_negatives(cold, seed).numpy(), hardest)

    def test_head_layer_contract(self):
        self.run_layer_test(
            ImageTextMatchingHead,
            {"num_heads": 2, "key_dim": 4, "hidden_dim": 16, "num_layers": 2},
            (
                np.random.rand(3, 4, 8).astype("float32"),
                np.random.rand(3, 5, 8).astype("float32"),
                np.array([[1, 1, 1, 0, 0]] * 3, dtype=bool),
            ),
            expected_output_shape=(3,),
            run_mixed_precision_check=False,
        )


class RerankTest(TestCase):
    def test_fused_order_on_a_hand_built_matrix(self):
        from retrieval.embed import candidate_pairs, rerank

        # rows: images, columns: captions (caption j describes image j)
        similarity = np.array(
            [
                [0.50, 0.60, 0.10, 0.00],
                [0.55, 0.40, 0.20, 0.05],
                [0.10, 0.00, 0.30, 0.35],
                [0.00, 0.10, 0.25, 0.30],
            ]
        )
        # text queries (axis 0), top-2 images each
        images, texts = candidate_pairs(similarity, 2, axis=0)
        pairs = sorted(zip(images.tolist(), texts.tolist(), strict=True))
        self.assertEqual(
            pairs, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3)]
        )
        # the matching head is sure of the true pairs, doubtful of the others
        match = np.array(
            [0.9 if i == t else 0.1 for i, t in zip(images, texts, strict=True)]
        )
        for weight, expected_top in ((0.0, [1, 0, 2, 2]), (1.0, [0, 1, 2, 3])):
            reranked = rerank(similarity, images, texts, match, weight)
            self.assertEqual(reranked.argmax(axis=0).tolist(), expected_top)
            # candidates stay above every non-candidate
            for t in range(4):
                chosen = {i for i, q in zip(images, texts, strict=True) if q == t}
                others = [reranked[i, t] for i in range(4) if i not in chosen]
                self.assertGreater(min(reranked[i, t] for i in chosen), max(others))
        fused = rerank(similarity, images, texts, match, 0.5)
        np.testing.assert_allclose(fused[0, 0], 3 + 0.50 + 0.5 * 0.9)
        np.testing.assert_allclose(fused[3, 0], 0.0)  # not a candidate: unchanged
        # image queries (axis 1)
        images, texts = candidate_pairs(similarity, 2, axis=1)
        self.assertEqual(sorted(texts[images == 1].tolist()), [0, 1])
