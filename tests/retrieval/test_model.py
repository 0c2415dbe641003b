import numpy as np

from common.testing import TestCase
from retrieval.model import ImageTextRetrievalModel


def tiny_model(**kwargs):
    options = dict(
        image_shape=(32, 32, 3),
        weights=None,
        feature_layer="block5_conv3",
        embedding_dim=16,
        vocabulary=["a", "red", "blue", "circle", "square"],
        sequence_length=6,
        word_embedding_dim=8,
        text_hidden_dim=8,
        num_heads=2,
        key_dim=8,
        dropout_rate=0.0,
    )
    options.update(kwargs)
    model = ImageTextRetrievalModel(**options)
    model.build()
    return model


class ImageTextRetrievalModelTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.inputs = {
            "images": rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
            "text": np.array(["a red circle", "a blue square", "red", "a circle"]),
        }

    def test_outputs(self):
        model = tiny_model()
        out = model(self.inputs)
        self.assertEqual(tuple(out["image_embeddings"].shape), (4, 16))
        self.assertEqual(tuple(out["region_features"].shape), (4, 4, 16))
        self.assertEqual(tuple(out["token_features"].shape), (4, 6, 16))
        norms = np.linalg.norm(out["text_embeddings"].numpy(), axis=1)
        np.testing.assert_allclose(norms, np.ones(4), atol=1e-5)

    def test_match_scores_are_the_itm_probabilities(self):
        model = tiny_model()
        out = model(self.inputs)
        regions, tokens = out["region_features"], out["token_features"]
        mask = out["padding_mask"]
        logits = model.match_logits(regions, tokens, mask).numpy()
        scores, attention = model.match_scores(regions, tokens, mask, True)
        np.testing.assert_allclose(scores.numpy(), 1 / (1 + np.exp(-logits)), atol=1e-6)
        self.assertEqual(tuple(attention.shape), (4, 2, 6, 4))
        # padded token positions do not change a pair's logit
        noisy = tokens.numpy().copy()
        noisy[~mask.numpy()] = 100.0
        np.testing.assert_allclose(
            model.match_logits(regions, noisy, mask).numpy(), logits, atol=1e-4
        )

    def test_losses_are_finite_and_train(self):
        for loss in ("contrastive", "triplet"):
            model = tiny_model(loss=loss)
            out = model(self.inputs)
            value = model.compute_loss(y_pred=out)
            self.assertTrue(np.isfinite(float(value)))
            self.assertGreater(float(model.matching_loss(out)), 0.0)

    def test_config_round_trip_and_saving(self):
        model = tiny_model()
        config = model.get_config()
        revived = ImageTextRetrievalModel.from_config(config)
        self.assertEqual(revived.get_vocabulary(), model.get_vocabulary())
        self.run_model_saving_test(model, (self.inputs,), atol=1e-5)

    def test_bad_loss(self):
        with self.assertRaisesRegex(ValueError, "loss.*'hinge'"):
            tiny_model(loss="hinge")
